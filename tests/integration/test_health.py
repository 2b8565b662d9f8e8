"""Health endpoints for container health checks: healthy while a service reaches NATS."""

from __future__ import annotations

import asyncio
import random
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from alongside import sample, services
from alongside.client import AlongsideClient
from contracts.replies import CommandAccepted
from runtime import bus, health, metrics
from runtime.access import AuthDir
from services.matching import sweeps as matching_sweeps
from tests.conftest import Start
from tests.support import free_port, wait_for


async def get(port: int, path: str) -> tuple[int, str]:
    """The status and body of a GET on the endpoints."""

    def fetch() -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
                return int(reply.status), reply.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    return await asyncio.to_thread(fetch)


async def status(port: int, path: str) -> int:
    return (await get(port, path))[0]


@asynccontextmanager
async def serving(running: services.Running, *names: str) -> AsyncIterator[int]:
    """The endpoints of ``running`` on a free port, once they answer; stopped afterwards."""
    port = free_port()
    process = health.Process(names or list(running.brokers), running.brokers, running.ready)
    server = asyncio.create_task(health.serve(process, "127.0.0.1", port))
    try:
        for _ in range(100):
            try:
                await get(port, "/health")
                break
            except urllib.error.URLError:
                await asyncio.sleep(0.05)
        yield port
    finally:
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)


async def test_health_answers_per_service_and_fails_when_nats_is_out_of_reach(
    start: Start,
) -> None:
    running: services.Running = await start("intake", "rules")
    async with serving(running) as port:
        assert await status(port, "/health/intake") == 204
        assert await status(port, "/health") == 204
        assert await status(port, "/health/nosuch") == 404

        await running.brokers["rules"].stop()  # rules loses its connection
        assert await status(port, "/health/rules") == 500
        assert await status(port, "/health") == 500
        assert await status(port, "/health/intake") == 204


async def test_a_service_is_ready_once_it_answers_and_while_it_reaches_nats(
    provisioned: str, auth: AuthDir
) -> None:
    running = services.Running()
    async with serving(running, "intake", "rules") as port:
        assert await get(port, "/ready") == (503, "intake: starting\nrules: starting")
        assert await status(port, "/health/intake") == 503
        try:
            await services.start(
                provisioned, ["intake"], running=running, credentials=auth.credentials
            )
            assert await status(port, "/ready/intake") == 204
            assert await get(port, "/ready") == (503, "rules: starting")
            assert await status(port, "/ready/nosuch") == 404

            await running.brokers["intake"].stop()
            assert await get(port, "/ready/intake") == (503, "intake: NATS out of reach")
        finally:
            await running.stop()


async def test_metrics_count_what_an_operator_watches(
    start: Start, client: AlongsideClient, org: str
) -> None:
    running: services.Running = await start("intake", "rules")
    async with serving(running) as port:
        assert isinstance(
            await client.submit(org, sample.intake(random.Random(1), "c1")), CommandAccepted
        )
        await wait_for(client, org, "MatchingPolicyDecided")
        await client.send_raw(org, "intake", "NoSuchCommand", b"{}")
        _, text = await get(port, "/metrics")

    def value(name: str, **labels: str) -> float:
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith(f"{name}{{{wanted}}} "):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no {name}{{{wanted}}} in /metrics")

    assert value("alongside_events_published_total", org=org, type="IntakeReceived") == 1
    assert (
        value("alongside_rules_decisions_total", org=org, kind="matching_policy", outcome="policy")
        >= 1
    )
    assert (
        value("alongside_commands_total", service="intake", type="SubmitIntake", outcome="accepted")
        >= 1
    )
    # A made-up command type is counted, but never becomes a label of its own.
    assert (
        value("alongside_commands_total", service="intake", type="unknown", outcome="rejected") >= 1
    )
    assert "NoSuchCommand" not in text
    assert "faststream_received_messages_total" in text  # FastStream's own, per subscriber
    assert 'alongside_rules_decision_seconds_bucket{kind="matching_policy"' in text


async def test_matching_figures_show_who_waits_and_for_what(
    start: Start, client: AlongsideClient, org: str, other_org: str
) -> None:
    running: services.Running = await start()
    for case_id in ("c1", "c2"):  # nobody is vetted: each client waits
        assert isinstance(
            await client.submit(org, sample.intake(random.Random(1), case_id)), CommandAccepted
        )
    await wait_for(client, org, "ClientWaitlisted", 2)
    await matching_sweeps.observe(running.deps["matching"])
    async with serving(running) as port:
        _, text = await get(port, "/metrics")
    assert f'alongside_waitlisted_clients{{org="{org}"}} 2.0' in text
    assert f'alongside_consents_pending{{org="{org}"}} 0.0' in text
    # No cases, no figures: only its counters, at zero from the start (dead letters).
    theirs = [line for line in text.splitlines() if f'org="{other_org}"' in line]
    assert all(line.startswith("alongside_dead_letters_") for line in theirs), theirs
    assert f'alongside_waitlist_longest_wait_seconds{{org="{org}"}}' in text


async def test_queue_depth_is_what_the_server_says_a_service_has_waiting(
    provisioned: str, auth: AuthDir, client: AlongsideClient, intake: services.Running, org: str
) -> None:
    # The rules service is not running: what intake publishes waits in its consumer.
    rules = bus.make_broker(provisioned, "rules", auth.credentials("rules"))
    await rules.connect()
    watching = asyncio.create_task(health.watch_queues({"rules": rules}, every_s=0.05))
    try:
        before = await _gauge_after_a_look("rules")
        for n in range(3):
            command = sample.intake(random.Random(n), f"c{n}")
            assert isinstance(await client.submit(org, command), CommandAccepted)
        after = before
        for _ in range(100):
            after = await _gauge_after_a_look("rules")
            if after >= before + 3:
                break
        assert after >= before + 3
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        await rules.stop()


async def _gauge_after_a_look(service: str) -> float:
    await asyncio.sleep(0.1)
    value = metrics.REGISTRY.get_sample_value("alongside_consumer_pending", {"service": service})
    assert value is not None
    return value
