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
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from alongside import sample
from alongside.client import AlongsideClient
from contracts import subjects
from contracts.envelope import RawEnvelope, wrap
from contracts.replies import CommandAccepted
from contracts.views import CaseView, ViewCase
from runtime import commands, topology
from runtime.access import AuthDir, principal, service_permissions
from runtime.clock import SYSTEM
from runtime.credentials import Credentials
from runtime.dispatch import Received
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

    user.nc = await nats.connect(
        url,
        user_credentials=str(credentials),
        inbox_prefix=principal(credentials).inbox_prefix,
        error_cb=on_error,
        max_reconnect_attempts=0,
    )
    return user


@pytest.fixture
async def feeds(
    provisioned: str, credentials: Credentials, org: str, other_org: str, tmp_path: Path
) -> AsyncIterator[tuple[As, As]]:
    """An integration credential for each of two organisations, connected."""
    users = []
    for each in (org, other_org):
        path = tmp_path / f"{each}.creds"
        path.write_text((await credentials.issue(each, "integration", "crm")).text)
        users.append(await connect_as(provisioned, path))
    yield users[0], users[1]
    for user in users:
        await user.nc.close()


@pytest.fixture
async def kinds(
    provisioned: str, credentials: Credentials, org: str, tmp_path: Path
) -> AsyncIterator[dict[str, As]]:
    """One credential of each kind for ``org``, connected: a subscriber ``feed``, an
    integration ``crm`` and the console's."""
    users = {}
    for kind, name in (("subscriber", "feed"), ("integration", "crm"), ("console", None)):
        path = tmp_path / f"{kind}.creds"
        path.write_text((await credentials.issue(org, kind, name)).text)  # type: ignore[arg-type]
        users[kind] = await connect_as(provisioned, path)
    yield users
    for user in users.values():
        await user.nc.close()


SENDERS = {"subscriber": "feed", "integration": "crm", "console": subjects.CONSOLE}


def families(org: str, other_org: str, kind: str) -> dict[str, tuple[str, str, bool]]:
    """Every family of subjects, as (publish or subscribe, a subject of it, whether a
    credential of ``kind`` may use it)."""
    me, stream = SENDERS[kind], subjects.org_events_stream(org)
    console, reader = kind == "console", kind != "console"
    return {
        "its intake command": (
            "pub",
            subjects.command(org, "intake", "SubmitIntake", me),
            kind != "subscriber",
        ),
        "a view of a case": ("pub", subjects.command(org, "intake", "ViewCase", me), console),
        "a view of a decision": (
            "pub",
            subjects.command(org, "intake", "ViewDecision", me),
            console,
        ),
        "a person's export": (
            "pub",
            subjects.command(org, "intake", "ExportPersonData", me),
            console,
        ),
        "an erasure": ("pub", subjects.command(org, "intake", "EraseClient", me), console),
        "a matching command": (
            "pub",
            subjects.command(org, "matching", "AcceptProposal", me),
            console,
        ),
        "a scheduling command": (
            "pub",
            subjects.command(org, "scheduling", "BookSession", me),
            console,
        ),
        "a rules evaluation": ("pub", subjects.command(org, "rules", "EvaluateRules", me), console),
        "a command as the console": (
            "pub",
            subjects.command(org, "intake", "SubmitIntake", subjects.CONSOLE),
            console,
        ),
        "a command as another credential": (
            "pub",
            subjects.command(org, "intake", "SubmitIntake", "other-crm"),
            False,
        ),
        "a command as the operator": (
            "pub",
            subjects.command(org, "intake", "ViewCase", subjects.OPERATOR),
            False,
        ),
        "a command as a service": (
            "pub",
            subjects.command(org, "intake", "NameSupportPerson", "matching"),
            False,
        ),
        "another organisation's command": (
            "pub",
            subjects.command(other_org, "intake", "SubmitIntake", me),
            False,
        ),
        "an event, published": ("pub", subjects.event(org, "MatchActivated"), False),
        "a consumer of its own making": (
            "pub",
            f"$JS.API.CONSUMER.CREATE.{stream}.mine.{subjects.events(org)}",
            False,
        ),
        "a durable consumer of its own making": (
            "pub",
            f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.mine",
            False,
        ),
        # (the console's credential sends commands only: its read model is the console's)
        "its feed": ("pub", f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{me}", reader),
        "another credential's feed": (
            "pub",
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.other-feed",
            False,
        ),
        "deleting a consumer": ("pub", f"$JS.API.CONSUMER.DELETE.{stream}.{me}", False),
        "the stream's information": ("pub", f"$JS.API.STREAM.INFO.{stream}", False),
        "a bucket": ("pub", f"$JS.API.DIRECT.GET.KV_{topology.CASES_BUCKET}.x", False),
        "a person's key": ("pub", f"$JS.API.DIRECT.GET.{topology.KEYS_STREAM}.x", False),
        "the decision log": ("pub", subjects.decision_log(org, "eligibility", "s1", "d1"), False),
        "the system account": ("pub", "$SYS.REQ.CLAIMS.UPDATE", False),
        "its replies": ("sub", f"{subjects.org_inbox(org, me)}.>", True),
        "another credential's replies": (
            "sub",
            f"{subjects.org_inbox(org, 'other-crm' if reader else 'crm')}.>",
            False,
        ),
        "the console's replies": ("sub", f"{subjects.org_inbox(org, subjects.CONSOLE)}.>", console),
        "the organisation's every reply": ("sub", f"_INBOX_org.{org}.>", False),
        "the operator's and services' replies": ("sub", "_INBOX.>", False),
        "the commands": ("sub", subjects.commands(org), False),
        "the events, unstored": ("sub", subjects.events(org), False),
        "the dead letters": ("sub", subjects.dead_letters(org), False),
    }


@pytest.mark.parametrize("kind", ["subscriber", "integration", "console"])
async def test_each_kind_of_credential_is_held_to_its_job_by_the_server(
    kinds: dict[str, As], org: str, other_org: str, kind: str
) -> None:
    user = kinds[kind]
    tried = families(org, other_org, kind)
    for how, subject, _ in tried.values():
        if how == "pub":
            await user.tries_to_publish(subject)
        else:
            await user.tries_to_subscribe(subject)
    refused = [
        f'{"publish to" if how == "pub" else "subscription to"} "{subject}"'
        for how, subject, allowed in tried.values()
        if not allowed
    ]
    await user.refuses(*refused)
    said = " ".join(user.refused)
    allowed_refused = [
        family
        for family, (_, subject, allowed) in tried.items()
        if allowed and f'"{subject}"' in said
    ]
    assert allowed_refused == []
    assert len(user.refused) == len(refused)  # each refusal once, and nothing else


async def test_each_kind_does_its_job(
    kinds: dict[str, As], org: str, client: AlongsideClient
) -> None:
    # An integration sends intake under its own name, and reads the feed made for it.
    crm = AlongsideClient(kinds["integration"].nc, sender="crm")
    assert isinstance(await crm.submit(org, sample.intake(random.Random(1), "c1")), CommandAccepted)
    assert [e.type async for e in crm.events(org, durable="crm")] == ["IntakeReceived"]
    # A subscriber reads its own feed, durably: acked events are not read again.
    feed = AlongsideClient(kinds["subscriber"].nc, sender="feed")
    assert [e.type async for e in feed.events(org, durable="feed")] == ["IntakeReceived"]
    assert [e.type async for e in feed.events(org, durable="feed")] == []
    # The console reads a case, and the access log names whom the console said, as only
    # the console's credential may send a view.
    console = AlongsideClient(
        kinds["console"].nc, source="alongside/console/acc-1", sender=subjects.CONSOLE
    )
    view = await console.request(org, ViewCase(case_id="c1"))
    assert isinstance(view, CaseView)
    by_operator = await client.request(org, ViewCase(case_id="c1"))
    assert isinstance(by_operator, CaseView)
    viewed = [e.data["viewed_by"] async for e in client.events(org) if e.type == "CaseViewed"]
    assert viewed == ["alongside/console/acc-1", "operator (tests)"]
    for user in kinds.values():
        assert user.refused == []


async def test_who_acted_is_the_server_vouched_sender_never_the_envelope_alone() -> None:
    envelope = RawEnvelope.model_validate_json(
        wrap(
            ViewCase(case_id="c1"),
            org="acme",
            source="alongside/console/acc-1",
            time=datetime(2026, 1, 1, tzinfo=UTC),
        ).model_dump_json()
    )

    def by(sender: str) -> str:
        return Received("acme", envelope, ViewCase(case_id="c1"), sender).acted_by

    assert by(subjects.CONSOLE) == "alongside/console/acc-1"
    assert by("crm") == "credential crm"  # whatever its envelope claims
    assert by("intake") == "alongside/intake"
    assert by(subjects.OPERATOR) == "operator (alongside/console/acc-1)"


async def test_another_organisations_commands_events_and_replies_are_refused(
    feeds: tuple[As, As], org: str, other_org: str
) -> None:
    mine, _ = feeds
    theirs_events = subjects.org_events_stream(other_org)
    await mine.tries_to_subscribe(subjects.events(other_org))
    await mine.tries_to_subscribe(subjects.commands(other_org))
    await mine.tries_to_subscribe(f"{subjects.org_inbox(other_org, 'crm')}.>")
    await mine.tries_to_subscribe("_INBOX.>")  # the operator's and services' replies
    await mine.tries_to_publish(subjects.command(other_org, "intake", "SubmitIntake", "crm"))
    await mine.tries_to_publish(f"$JS.API.CONSUMER.CREATE.{theirs_events}")
    await mine.tries_to_publish(f"$JS.API.CONSUMER.MSG.NEXT.{theirs_events}.crm")
    await mine.tries_to_publish(f"$JS.API.STREAM.INFO.{theirs_events}")

    await mine.refuses(
        f'subscription to "{subjects.events(other_org)}"',
        f'subscription to "{subjects.commands(other_org)}"',
        f'subscription to "{subjects.org_inbox(other_org, "crm")}.>"',
        'subscription to "_INBOX.>"',
        f'publish to "{subjects.command(other_org, "intake", "SubmitIntake", "crm")}"',
        f'publish to "$JS.API.CONSUMER.CREATE.{theirs_events}"',
        f'publish to "$JS.API.CONSUMER.MSG.NEXT.{theirs_events}.crm"',
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
    old.write_text((await credentials.issue(org, "integration", "desk")).text)
    user = await connect_as(provisioned, old)
    assert user.nc.is_connected

    # Rotation: the name issued again; the earlier file stops working at once.
    new.write_text((await credentials.issue(org, "integration", "desk")).text)
    await dropped_and_refused(provisioned, user, old)
    rotated = await connect_as(provisioned, new)
    desk = AlongsideClient(rotated.nc, sender="desk")
    reply = await desk.submit(org, sample.intake(random.Random(2), "c2"))
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
        await nats.connect(
            url, user_credentials=str(credentials), max_reconnect_attempts=0, allow_reconnect=False
        )


async def test_an_organisation_added_while_the_services_run_works_at_once(
    provisioned: str, nc: Client, credentials: Credentials, tmp_path: Path
) -> None:
    late = f"late-{random.Random().randrange(10**6)}"
    await register(nc, late)
    path = tmp_path / "late.creds"
    path.write_text((await credentials.issue(late, "integration", "main")).text)
    user = await connect_as(provisioned, path)
    try:
        main = AlongsideClient(user.nc, sender="main")
        reply = await main.submit(late, sample.intake(random.Random(3), "c3"))
        assert isinstance(reply, CommandAccepted)
        assert [e.type async for e in main.events(late, durable="main")] == ["IntakeReceived"]
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
            subjects.command("acme", "matching", "RefuseService", "intake"),
            subjects.command("acme", "intake", "ViewCase", subjects.CONSOLE),
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
            f'publish to "{subjects.command("acme", "matching", "RefuseService", "intake")}"',
            f'publish to "{subjects.command("acme", "intake", "ViewCase", subjects.CONSOLE)}"',
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
        await scheduling.refuses(
            *(f'publish to "$JS.API.{api}.{topology.EVENTS_STREAM}"' for api in erasing)
        )
        await scheduling.nc.close()
    finally:
        await intake.nc.close()


async def test_a_commands_answer_cannot_be_sent_into_anything_of_ours(
    kinds: dict[str, As], org: str, other_org: str, nc: Client
) -> None:
    """NATS checks no reply subject against the sender's permissions: a request may name a
    bucket's subject as where its answer goes. An organisation's credential sends from its
    own account, so its reply subjects are there, where nothing of ours is; and a service
    may answer nowhere but an inbox, or a reply the server made (``_R_``)."""
    registry = await nc.jetstream().key_value(topology.REGISTRY_BUCKET)
    before = await registry.get(other_org)
    crm = kinds["integration"].nc
    body = (
        wrap(sample.intake(random.Random(1), "c1"), org=org, source="crm", time=SYSTEM())
        .model_dump_json()
        .encode()
    )
    await crm.publish(
        subjects.command(org, "intake", "SubmitIntake", "crm"),
        body,
        reply=f"$KV.{topology.REGISTRY_BUCKET}.{other_org}",
    )
    await crm.flush()
    await AlongsideClient(nc, source="tests").events(org).__anext__()  # it was carried out
    await asyncio.sleep(0.3)
    after = await registry.get(other_org)
    assert (after.revision, after.value) == (before.revision, before.value)
    allowed = service_permissions("intake").publish
    assert not any(
        subjects.matches(a, f"$KV.{topology.CONSOLE_ACCOUNTS_BUCKET}.x") for a in allowed
    )
    assert commands.answerable(
        subjects.command(org, "intake", "SubmitIntake", "crm"),
        f"{subjects.org_inbox(org, 'crm')}.x",
    )
    assert not commands.answerable(
        subjects.command(org, "intake", "SubmitIntake", "crm"),
        f"$KV.{topology.REGISTRY_BUCKET}.{other_org}",
    )


@pytest.mark.parametrize("kind", ["subscriber", "integration", "console"])
async def test_a_jetstream_answer_cannot_write_into_another_organisation(
    kinds: dict[str, As], org: str, other_org: str, nc: Client, kind: str
) -> None:
    """Each kind asks JetStream about its own feed, naming another organisation's registry
    record as where the answer goes. NATS checks no reply subject, and JetStream answers
    wherever one points; but a credential's reply subject is in its organisation's own
    account, and the answer stays there (docs/decisions/0003)."""
    registry = await nc.jetstream().key_value(topology.REGISTRY_BUCKET)
    before = await registry.get(other_org)
    durable = SENDERS[kind] if kind != "console" else "feed"
    await kinds[kind].nc.publish(  # a pull: its messages, or its status, go to the reply
        f"$JS.API.CONSUMER.MSG.NEXT.{subjects.org_events_stream(org)}.{durable}",
        b'{"batch": 1, "no_wait": true}',
        reply=f"$KV.{topology.REGISTRY_BUCKET}.{other_org}",
    )
    await kinds[kind].nc.flush()
    await asyncio.sleep(0.3)
    after = await registry.get(other_org)
    assert (after.revision, after.value) == (before.revision, before.value)
