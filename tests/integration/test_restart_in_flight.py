"""A command in flight while the server restarts: the client sees a timeout for a command
that was carried out. Every client sends it again with the same id, within a bound, and is
answered with the reply the service kept: the CLI's and the library's (``AlongsideClient``)
and the console's (``Asking.any``). And the service's late answer is not refused: services
answer by their permission to publish to inboxes, not by the per-request right
(``allow_responses``) that the restart took with it, which used to end in "Publish
Violation". On a server of the test's own, with the shipped auth."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client

from alongside import sample, services
from alongside.client import AlongsideClient
from contracts import subjects
from contracts.replies import CommandAccepted
from runtime import asking, bus, topology
from runtime.access import ADMIN, AuthDir
from runtime.asking import Asking
from runtime.clock import SYSTEM
from runtime.embedded import EmbeddedNats
from runtime.settings import Settings
from services.intake.handlers import handlers as intake_handlers
from tests.support import free_port, register, wait_for

ORG = "in-flight-org"
Send = Callable[[Client], Coroutine[Any, Any, Any]]


def by_cli(nc: Client) -> Coroutine[Any, Any, Any]:
    client = AlongsideClient(nc, source="tests")
    return client.submit(
        ORG, sample.intake(random.Random(1), "c1"), command_id="in-flight-1", timeout=2.0
    )


def by_console(nc: Client) -> Coroutine[Any, Any, Any]:
    console = Asking(nc, "alongside/console/tests", SYSTEM, subjects.OPERATOR)
    return console.any(ORG, sample.intake(random.Random(1), "c1"), "in-flight-1")


async def connected(*connections: Client, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not all(nc.is_connected for nc in connections):
        assert asyncio.get_running_loop().time() < deadline, "not reconnected"
        await asyncio.sleep(0.05)


@pytest.mark.nats  # its own server, restarted mid-command
@pytest.mark.parametrize("send", [by_cli, by_console], ids=["cli", "console"])
async def test_a_command_in_flight_across_a_server_restart_is_answered_once(
    tmp_path: Path,
    auth: AuthDir,
    send: Send,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(asking, "REQUEST_TIMEOUT_S", 2.0)  # the console's wait, shortened
    server = EmbeddedNats(tmp_path, port=free_port(), auth=auth)
    server.start()
    nc = await bus.connect(server.url, "tests", auth.credentials(ADMIN))
    running = None
    route = intake_handlers.commands["SubmitIntake"]
    entered, release = asyncio.Event(), asyncio.Event()
    calls: list[str] = []

    outcomes: list[str] = []

    async def held(command: Any, received: Any, deps: Any) -> Any:
        calls.append(received.envelope.id)
        entered.set()
        await release.wait()  # carried out after the restart
        reply = await route.handler(command, received, deps)
        outcomes.append(reply.status)
        return reply

    try:
        await topology.provision(nc.jetstream(), Settings())
        await register(nc, ORG)
        running = await services.start(server.url, ["intake"], credentials=auth.credentials)
        service = running.brokers["intake"].connection
        intake_handlers.commands["SubmitIntake"] = dataclasses.replace(route, handler=held)
        sent = asyncio.create_task(send(nc))
        await asyncio.wait_for(entered.wait(), 10)

        server.stop()
        server.start()
        await connected(nc, service)
        await jetstream_back(nc)
        release.set()  # the command is carried out now, its first asker gone
        reply = await asyncio.wait_for(sent, 60)

        assert isinstance(reply, CommandAccepted), reply
        assert reply.command_id == "in-flight-1"
        assert outcomes[0] == "accepted"  # the first attempt was carried out
        assert len(calls) >= 2  # sent again with the same id, after the timeout
        assert set(calls) == {"in-flight-1"}
        await asyncio.sleep(0.5)
        said = capsys.readouterr()
        assert "permissions violation" not in (said.out + said.err).lower()
        client = AlongsideClient(nc, source="tests")
        received = await wait_for(client, ORG, "IntakeReceived")
        await asyncio.sleep(0.5)
        assert len(await wait_for(client, ORG, "IntakeReceived")) == len(received) == 1
    finally:
        intake_handlers.commands["SubmitIntake"] = route
        release.set()
        if running is not None:
            await running.stop()
        await nc.close()
        server.stop()


async def jetstream_back(nc: Client, timeout: float = 30) -> None:
    """Once the restarted server answers for its streams and buckets again."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await nc.jetstream().stream_info(topology.EVENTS_STREAM)
            await (await nc.jetstream().key_value(topology.ORGANISATIONS_BUCKET)).status()
            return
        except Exception:
            assert asyncio.get_running_loop().time() < deadline, "JetStream not back"
            await asyncio.sleep(0.1)
