"""Organisations as a real boundary, enforced by the nats-server with the shipped auth.

Each forbidden action is attempted with one organisation's credential against the other
(and against the deployment itself) and must be refused by the server; beside each, what
the credential may do is shown working, so a credential that could do nothing would fail.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig

from alongside import sample
from alongside.client import AlongsideClient
from contracts import subjects
from contracts.replies import CommandAccepted
from runtime import topology
from runtime.access import AuthDir, inbox_prefix
from runtime.credentials import Credentials
from runtime.settings import Settings
from tests.support import register

pytestmark = pytest.mark.usefixtures("intake")


@dataclass
class As:
    """A connection as one user, with what the server refused it."""

    nc: Client
    refused: list[str] = field(default_factory=list)

    async def refuses(self, *subjects_tried: str) -> None:
        """The server refused each of these (a permissions violation naming it)."""
        await self.nc.flush()
        for _ in range(50):
            said = " ".join(self.refused).lower()
            if all(subject.lower() in said for subject in subjects_tried):
                return
            await asyncio.sleep(0.02)
        missing = [s for s in subjects_tried if s.lower() not in " ".join(self.refused).lower()]
        raise AssertionError(f"not refused: {missing}; refused: {self.refused}")

    async def tries_to_publish(self, subject: str) -> None:
        await self.nc.publish(subject, b"{}", reply=self.nc.new_inbox())

    async def tries_to_subscribe(self, subject: str) -> None:
        await self.nc.subscribe(subject)


async def connect_as(url: str, credentials: Path) -> As:
    user = As(nc=None)  # type: ignore[arg-type]

    async def on_error(error: Exception) -> None:
        user.refused.append(str(error))

    user.nc = await nats.connect(url, user_credentials=str(credentials),
                                 inbox_prefix=inbox_prefix(credentials), error_cb=on_error,
                                 max_reconnect_attempts=0)  # fmt: skip
    return user


@pytest.fixture
async def feeds(
    provisioned: str, credentials: Credentials, org: str, other_org: str, tmp_path: Path
) -> AsyncIterator[tuple[As, As]]:
    """A credential for each of two organisations, connected."""
    users = []
    for each in (org, other_org):
        path = tmp_path / f"{each}.creds"
        path.write_text((await credentials.issue(each, "feed")).text)
        users.append(await connect_as(provisioned, path))
    yield users[0], users[1]
    for user in users:
        await user.nc.close()


async def test_an_organisations_credential_sends_its_commands_and_reads_its_events(
    feeds: tuple[As, As], org: str
) -> None:
    mine, _ = feeds
    reply = await AlongsideClient(mine.nc).submit(org, sample.intake(random.Random(1), "c1"))
    assert isinstance(reply, CommandAccepted)

    # Durably, from the start, with a consumer it names itself.
    js = mine.nc.jetstream()
    stream = subjects.org_events_stream(org)
    await js.add_consumer(stream, ConsumerConfig(name="mine", durable_name="mine",
                                                 ack_policy=AckPolicy.EXPLICIT))  # fmt: skip
    sub = await js.pull_subscribe_bind(
        "mine", stream, inbox_prefix=f"{subjects.org_inbox(org)}.".encode()
    )
    [msg] = await sub.fetch(1, timeout=5)
    assert msg.subject == subjects.event(org, "IntakeReceived")
    await msg.ack_sync()
    events = [e.type async for e in AlongsideClient(mine.nc).events(org)]
    assert events == ["IntakeReceived"]
    assert mine.refused == []


async def test_another_organisations_commands_events_and_replies_are_refused(
    feeds: tuple[As, As], org: str, other_org: str
) -> None:
    mine, _ = feeds
    theirs_events = subjects.org_events_stream(other_org)
    await mine.tries_to_subscribe(subjects.events(other_org))
    await mine.tries_to_subscribe(subjects.commands(other_org))
    await mine.tries_to_subscribe(f"{subjects.org_inbox(other_org)}.>")
    await mine.tries_to_subscribe("_INBOX.>")  # the operator's and services' replies
    await mine.tries_to_publish(subjects.command(other_org, "intake", "SubmitIntake"))
    await mine.tries_to_publish(f"$JS.API.CONSUMER.CREATE.{theirs_events}")
    await mine.tries_to_publish(f"$JS.API.CONSUMER.MSG.NEXT.{theirs_events}.feed")
    await mine.tries_to_publish(f"$JS.API.STREAM.INFO.{theirs_events}")

    await mine.refuses(
        f'subscription to "{subjects.events(other_org)}"',
        f'subscription to "{subjects.commands(other_org)}"',
        f'subscription to "{subjects.org_inbox(other_org)}.>"',
        'subscription to "_INBOX.>"',
        f'publish to "{subjects.command(other_org, "intake", "SubmitIntake")}"',
        f'publish to "$JS.API.CONSUMER.CREATE.{theirs_events}"',
        f'publish to "$JS.API.CONSUMER.MSG.NEXT.{theirs_events}.feed"',
        f'publish to "$JS.API.STREAM.INFO.{theirs_events}"',
    )


async def test_no_bucket_dead_letter_or_shared_stream_is_reachable(
    feeds: tuple[As, As], org: str, other_org: str
) -> None:
    mine, _ = feeds
    tried = []
    for bucket in topology.topology(Settings()).buckets:
        stream = f"KV_{bucket.bucket}"
        for subject in (
            f"$JS.API.STREAM.INFO.{stream}",
            f"$JS.API.DIRECT.GET.{stream}.$KV.{bucket.bucket}.{other_org}.c1",
            f"$JS.API.STREAM.MSG.GET.{stream}",
            f"$KV.{bucket.bucket}.{org}.c1",  # a write, even under its own organisation
        ):
            await mine.tries_to_publish(subject)
            tried.append(f'publish to "{subject}"')
    for subject in (
        # Its own events, published directly: only the services publish events.
        subjects.event(org, "MatchActivated"),
        f"$JS.API.CONSUMER.CREATE.{topology.EVENTS_STREAM}.x.{subjects.events(org)}",
        f"$JS.API.CONSUMER.MSG.NEXT.{topology.EVENTS_STREAM}.matching",
        f"$JS.API.CONSUMER.DELETE.{topology.EVENTS_STREAM}.matching",
        f"$JS.ACK.{topology.EVENTS_STREAM}.matching.1.1.1.1.1",
        f"$JS.API.STREAM.DELETE.{topology.DEADLETTER_STREAM}",
        f"$JS.API.CONSUMER.CREATE.{topology.DEADLETTER_STREAM}",
        f"$JS.API.STREAM.PURGE.{topology.EVENTS_STREAM}",
        # The decision log, even its own organisation's: operators only.
        f"$JS.API.STREAM.INFO.{topology.DECISION_LOG_STREAM}",
        f"$JS.API.CONSUMER.CREATE.{topology.DECISION_LOG_STREAM}.x.{subjects.decision_logs(org)}",
        f"$JS.API.DIRECT.GET.{topology.DECISION_LOG_STREAM}",
        subjects.decision_log(org, "eligibility", "s1", "d1"),
        "$SYS.REQ.CLAIMS.UPDATE",
    ):
        await mine.tries_to_publish(subject)
        tried.append(f'publish to "{subject}"')
    for subject in (subjects.dead_letters(org), subjects.decision_logs(org)):
        await mine.tries_to_subscribe(subject)
        tried.append(f'subscription to "{subject}"')

    await mine.refuses(*tried)


async def test_a_revoked_credential_is_dropped_and_refused_at_once_and_rotation_works(
    provisioned: str, credentials: Credentials, org: str, tmp_path: Path
) -> None:
    old, new = tmp_path / "old.creds", tmp_path / "new.creds"
    old.write_text((await credentials.issue(org, "desk")).text)
    user = await connect_as(provisioned, old)
    assert user.nc.is_connected

    # Rotation: the name issued again; the earlier file stops working at once.
    new.write_text((await credentials.issue(org, "desk")).text)
    await dropped_and_refused(provisioned, user, old)
    rotated = await connect_as(provisioned, new)
    reply = await AlongsideClient(rotated.nc).submit(org, sample.intake(random.Random(2), "c2"))
    assert isinstance(reply, CommandAccepted)

    assert await credentials.revoke(org, "desk") == ["desk"]
    await dropped_and_refused(provisioned, rotated, new)


async def dropped_and_refused(url: str, user: As, credentials: Path) -> None:
    """The user's connection is dropped within a second, and a new one refused."""
    for _ in range(100):
        if not user.nc.is_connected:
            break
        await asyncio.sleep(0.01)
    assert not user.nc.is_connected
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(url, user_credentials=str(credentials), max_reconnect_attempts=0,
                           allow_reconnect=False)  # fmt: skip


async def test_an_organisation_added_while_the_services_run_works_at_once(
    provisioned: str, nc: Client, credentials: Credentials, tmp_path: Path
) -> None:
    late = f"late-{random.Random().randrange(10**6)}"
    await register(nc, late)
    path = tmp_path / "late.creds"
    path.write_text((await credentials.issue(late, "main")).text)
    user = await connect_as(provisioned, path)
    try:
        reply = await AlongsideClient(user.nc).submit(late, sample.intake(random.Random(3), "c3"))
        assert isinstance(reply, CommandAccepted)
        assert [e.type async for e in AlongsideClient(user.nc).events(late)] == ["IntakeReceived"]
    finally:
        await user.nc.close()


async def test_a_service_is_allowed_only_what_it_needs(provisioned: str, auth: AuthDir) -> None:
    intake = await connect_as(provisioned, auth.credentials("intake"))
    try:
        for subject in (
            f"$JS.API.CONSUMER.MSG.NEXT.{topology.EVENTS_STREAM}.matching",
            f"$JS.API.STREAM.INFO.KV_{topology.RULES_BUCKET}",
            f"$JS.API.STREAM.PURGE.{topology.EVENTS_STREAM}",
            f"$JS.API.STREAM.DELETE.{topology.DEADLETTER_STREAM}",
            f"$JS.API.CONSUMER.CREATE.{topology.DEADLETTER_STREAM}",
            subjects.command("acme", "matching", "RefuseService"),
            # What it may read for an export, it may not write or watch.
            f"$KV.{topology.MATCHES_BUCKET}.acme.c1",
            f"$JS.API.CONSUMER.CREATE.KV_{topology.DECISIONS_BUCKET}",
        ):
            await intake.tries_to_publish(subject)
        await intake.tries_to_subscribe(subjects.commands_of("matching"))
        await intake.refuses(
            f'publish to "$JS.API.CONSUMER.MSG.NEXT.{topology.EVENTS_STREAM}.matching"',
            f'publish to "$JS.API.STREAM.INFO.KV_{topology.RULES_BUCKET}"',
            f'publish to "$JS.API.STREAM.PURGE.{topology.EVENTS_STREAM}"',
            f'publish to "$JS.API.STREAM.DELETE.{topology.DEADLETTER_STREAM}"',
            f'publish to "$JS.API.CONSUMER.CREATE.{topology.DEADLETTER_STREAM}"',
            f'publish to "{subjects.command("acme", "matching", "RefuseService")}"',
            f'publish to "$KV.{topology.MATCHES_BUCKET}.acme.c1"',
            f'publish to "$JS.API.CONSUMER.CREATE.KV_{topology.DECISIONS_BUCKET}"',
            f'subscription to "{subjects.commands_of("matching")}"',
        )
        # What it needs, it has: its own buckets.
        info = await intake.nc.jetstream().stream_info(f"KV_{topology.CASES_BUCKET}")
        assert info.config.name == f"KV_{topology.CASES_BUCKET}"
        # No service may purge or delete the events: the system of record.
        scheduling = await connect_as(provisioned, auth.credentials("scheduling"))
        erasing = ("STREAM.PURGE", "STREAM.MSG.DELETE", "STREAM.DELETE")
        for api in erasing:
            await scheduling.tries_to_publish(f"$JS.API.{api}.{topology.EVENTS_STREAM}")
        await scheduling.refuses(*(f'publish to "$JS.API.{api}.{topology.EVENTS_STREAM}"'
                                   for api in erasing))  # fmt: skip
        await scheduling.nc.close()
    finally:
        await intake.nc.close()
