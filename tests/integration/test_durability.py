"""Nothing accepted is lost: restarts of the service and the server, and a crash mid-command."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.errors import NoRespondersError

from alongside import sample, services
from alongside.client import AlongsideClient
from contracts.envelope import wrap
from contracts.intake import SubmitIntake
from contracts.replies import CommandAccepted
from runtime import bus, topology
from runtime.clock import SYSTEM
from runtime.embedded import EmbeddedNats
from runtime.settings import Settings
from runtime.store import Outbox
from runtime.unit import fingerprint
from services.intake.bootstrap import bootstrap
from services.intake.domain import Context, submit_intake
from services.intake.handlers import IntakeDeps, event_id, finish_outboxes
from tests.support import free_port, register

from .test_intake import events_of


@pytest.mark.nats  # its own server, restarted mid-run
async def test_service_and_server_restart_lose_no_accepted_command(tmp_path: Path) -> None:
    port = free_port()
    org = "restart-org"
    commands = [sample.intake(random.Random(n), f"c{n}") for n in range(20)]

    with EmbeddedNats(tmp_path, port=port) as server:
        nc = await bus.connect(server.url, "t")
        await topology.provision(nc.jetstream(), Settings())
        await register(nc, org)
        brokers = await services.start(server.url, ["intake"])
        client = AlongsideClient(nc)
        first = [await client.submit(org, c, command_id=f"cmd-{n}") for n, c in enumerate(commands)]
        await services.stop(brokers)
        with pytest.raises(
            NoRespondersError
        ):  # while it is down nothing is accepted, and the caller knows
            await client.submit(org, commands[0], command_id="while-down", retry_for=0)
        await nc.close()

    assert all(isinstance(r, CommandAccepted) for r in first)

    with EmbeddedNats(tmp_path, port=port) as server:
        nc = await bus.connect(server.url, "t")
        brokers = await services.start(server.url, ["intake"])
        client = AlongsideClient(nc)
        try:
            again = [
                await client.submit(org, c, command_id=f"cmd-{n}") for n, c in enumerate(commands)
            ]
            events = await events_of(client, org)
        finally:
            await services.stop(brokers)
            await nc.close()

    assert again == first
    assert sorted(e.data["case_id"] for e in events) == sorted(f"c{n}" for n in range(20))


@pytest.mark.nats  # its own server, the service started only while the client waits
async def test_a_command_sent_while_the_service_restarts_is_sent_again_and_carried_out_once(
    tmp_path: Path,
) -> None:
    org = "restarting-org"
    with EmbeddedNats(tmp_path) as server:
        nc = await bus.connect(server.url, "t")
        await topology.provision(nc.jetstream(), Settings())
        await register(nc, org)
        client = AlongsideClient(nc)
        try:
            # No intake replica yet: no responders, sent again (the same bytes) meanwhile.
            sending = asyncio.create_task(
                client.submit(org, sample.intake(random.Random(9), "c9"), command_id="c9-1")
            )
            await asyncio.sleep(1.5)
            assert not sending.done()
            brokers = await services.start(server.url, ["intake"])
            try:
                reply = await asyncio.wait_for(sending, 30)
                events = await events_of(client, org)
            finally:
                await services.stop(brokers)
        finally:
            await nc.close()

    assert isinstance(reply, CommandAccepted)
    assert reply.command_id == "c9-1"
    assert [e.data["case_id"] for e in events] == ["c9"]


async def _crashed_after_commit(
    nc: Client, org: str, command_id: str
) -> tuple[IntakeDeps, SubmitIntake, CommandAccepted]:
    """The record and its outbox saved, then the process died before publishing."""
    deps = await bootstrap(nc, Settings(), SYSTEM)
    command = sample.intake(random.Random(5), "c1")
    envelope = wrap(command, org=org, source="t", id=command_id, time=deps.clock())
    decision = submit_intake(command, None, Context(now=deps.clock()))
    events = [
        wrap(e, org=org, source="t", id=event_id(org, envelope.id, i), time=deps.clock())
        for i, e in enumerate(decision.events)
    ]
    reply = CommandAccepted(
        command_id=envelope.id, command_type="SubmitIntake", event_ids=[e.id for e in events]
    )
    outbox = Outbox(
        command_id=envelope.id,
        fingerprint=fingerprint(command),
        reply=reply,
        events=[e.model_dump_json() for e in events],
    )
    cases = deps.cases.store
    await cases.save(org, "c1", cases.stored(decision.record, outbox), 0)
    return deps, command, reply


@pytest.mark.usefixtures("intake")
async def test_crash_after_commit_before_publish_is_completed_by_the_retry(
    nc: Client, client: AlongsideClient, org: str
) -> None:
    """The record and its outbox were saved, then the process died: the retry finishes the job."""
    _, command, reply = await _crashed_after_commit(nc, org, "cmd-crash")
    assert await events_of(client, org) == []  # the crash: committed, not yet published

    retried = await client.submit(org, command, command_id="cmd-crash")
    await client.submit(org, command, command_id="cmd-crash")

    assert retried == reply
    assert [e.id for e in await events_of(client, org)] == reply.event_ids


async def test_a_crash_nobody_retries_is_finished_by_the_sweep(
    nc: Client, client: AlongsideClient, org: str
) -> None:
    """No retry ever comes (the client gave up): intake's sweep announces the case anyway,
    once, and keeps the reply for a late retry."""
    deps, _, reply = await _crashed_after_commit(nc, org, "cmd-abandoned")

    assert await finish_outboxes(deps) >= 1  # this org's case (and any other test's leftovers)
    assert await finish_outboxes(deps) == 0

    assert [e.id for e in await events_of(client, org)] == reply.event_ids
    stored, _ = await deps.cases.store.load(org, "c1")
    assert stored is not None
    assert stored.outbox is None
    assert deps.supporters.replies is not None
    previous = await deps.supporters.replies.get(org, "cmd-abandoned")
    assert previous is not None
    assert previous.reply == reply
