"""Intake against a real nats-server: validation, idempotency, isolation, dead letters."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from zoneinfo import ZoneInfo

import pytest
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError

from alongside import sample, services
from alongside.client import AlongsideClient
from contracts import subjects
from contracts.envelope import RawEnvelope, wrap
from contracts.intake import (
    Contact,
    FamilyOrFriend,
    GiveConsent,
    Interview,
    NameSupportPerson,
    PeerSupporter,
    RecordVettingEvidence,
    Stage,
)
from contracts.replies import CommandAccepted, CommandRejected, DeadLetter
from contracts.scheduling import ConfigureScheduling, SchedulingPolicy
from runtime import topology
from runtime.access import AuthDir
from runtime.clock import SYSTEM
from runtime.registry import Registry
from runtime.vault import SEALED
from tests.conftest import Start
from tests.support import accepted, opened_letter, org_today, register

pytestmark = pytest.mark.usefixtures("intake")


async def events_of(client: AlongsideClient, org: str) -> list[RawEnvelope]:
    return [e async for e in client.events(org, idle_s=0.3)]


async def case_exists(nc: Client, org: str, case_id: str) -> bool:
    kv = await nc.jetstream().key_value(topology.CASES_BUCKET)
    try:
        await kv.get(f"{org}.{case_id}")
    except KeyNotFoundError:
        return False
    return True


async def test_accepted_intake_is_stored_and_published(
    client: AlongsideClient, nc: Client, org: str
) -> None:
    reply = await client.submit(org, sample.intake(random.Random(1), "c1"))

    assert isinstance(reply, CommandAccepted)
    assert await case_exists(nc, org, "c1")
    events = await events_of(client, org)
    assert [e.type for e in events] == ["IntakeReceived"]
    assert events[0].id == reply.event_ids[0]
    assert events[0].causationid == reply.command_id


async def test_bad_command_gets_field_errors_and_nothing_is_stored(
    client: AlongsideClient, nc: Client, org: str
) -> None:
    envelope = json.loads(
        wrap(
            sample.intake(random.Random(1), "c1"), org=org, source="t", time=SYSTEM()
        ).model_dump_json()
    )
    envelope["data"]["client"]["languages"] = ["English"]
    envelope["data"]["client"]["methods"] = ["carrier_pigeon"]
    envelope["data"]["surprise"] = True

    reply = await client.send_raw(org, "intake", "SubmitIntake", json.dumps(envelope).encode())

    assert isinstance(reply, CommandRejected)
    by_field = {e.field: e.reason for e in reply.errors}
    assert by_field["data.client.languages.0"] == (
        "must be a language code of 2 or 3 lower-case letters, like en or sm"
    )
    assert "in_person" in by_field["data.client.methods.0"]
    assert by_field["data.surprise"] == "is not one this takes: leave it out"
    assert not await case_exists(nc, org, "c1")
    assert await events_of(client, org) == []


async def test_domain_rejection_names_the_field(client: AlongsideClient, org: str) -> None:
    await client.submit(org, sample.intake(random.Random(1), "c1"))
    reply = await client.submit(
        org,
        GiveConsent(
            case_id="c1", party_id="client", stages=[Stage.ENTRY], given_on=org_today(SYSTEM)
        ),
    )
    assert isinstance(reply, CommandRejected)
    assert reply.errors[0].field == "data.case_id"
    assert "no support person" in reply.errors[0].reason

    reply = await client.submit(
        org, NameSupportPerson(case_id="c1", support_person=PeerSupporter(supporter_id="nobody"))
    )
    assert isinstance(reply, CommandRejected)
    assert reply.errors[0].field == "data.support_person.supporter_id"


async def test_evidence_and_consent_after_the_organisations_today_are_refused(
    start: Start, client: AlongsideClient, org: str
) -> None:
    await start("scheduling")  # which keeps the organisation's time zone
    # UTC-11, and UTC+14: the second is always a day or more ahead of the first.
    behind, ahead = ZoneInfo("Pacific/Pago_Pago"), ZoneInfo("Pacific/Kiritimati")
    zone = SchedulingPolicy(time_zone=behind.key)
    await accepted(client, org, ConfigureScheduling(policy=zone))
    await accepted(client, org, sample.supporter(random.Random(1), "s1"))
    here, elsewhere = SYSTEM().astimezone(behind).date(), SYSTEM().astimezone(ahead).date()

    reply = await client.submit(
        org,
        RecordVettingEvidence(
            supporter_id="s1", evidence=Interview(held_on=elsewhere, passed=True)
        ),
    )

    assert isinstance(reply, CommandRejected)
    assert [(e.field, e.reason) for e in reply.errors] == [
        (
            "data.evidence.held_on",
            f"cannot be in the future: evidence counts once it has happened (today is {here} here)",
        )
    ]
    held_today = Interview(held_on=here, passed=True)
    assert isinstance(
        await client.submit(org, RecordVettingEvidence(supporter_id="s1", evidence=held_today)),
        CommandAccepted,
    )

    await accepted(client, org, sample.intake(random.Random(1), "c1"))
    aunt = FamilyOrFriend(kind="family", display_name="Aunt", contact=Contact(phone="+64 21 555"))
    await accepted(client, org, NameSupportPerson(case_id="c1", support_person=aunt))
    early = await client.submit(
        org, GiveConsent(case_id="c1", party_id="client", stages=[Stage.ENTRY], given_on=elsewhere)
    )
    assert isinstance(early, CommandRejected)
    assert [e.field for e in early.errors] == ["data.given_on"]


async def test_same_command_twice_has_one_effect_and_the_same_reply(
    client: AlongsideClient, org: str
) -> None:
    command = sample.intake(random.Random(1), "c1")
    first = await client.submit(org, command, command_id="cmd-1")
    second = await client.submit(org, command, command_id="cmd-1")

    assert isinstance(first, CommandAccepted)
    assert second == first
    assert len(await events_of(client, org)) == 1


async def test_same_command_concurrently_on_two_replicas_has_one_effect(
    client: AlongsideClient, provisioned: str, auth: AuthDir, org: str
) -> None:
    second_replica = await services.start(provisioned, ["intake"], credentials=auth.credentials)
    try:
        command = sample.supporter(random.Random(1), "s1")
        replies = await asyncio.gather(
            *(client.submit(org, command, command_id="same") for _ in range(20))
        )
    finally:
        await services.stop(second_replica)

    assert all(r == replies[0] for r in replies), replies
    assert isinstance(replies[0], CommandAccepted)
    assert len(await events_of(client, org)) == 1


async def test_reused_command_id_with_another_payload_is_refused(
    client: AlongsideClient, org: str
) -> None:
    await client.submit(org, sample.intake(random.Random(1), "c1"), command_id="cmd-1")
    reply = await client.submit(org, sample.intake(random.Random(2), "c2"), command_id="cmd-1")
    assert isinstance(reply, CommandRejected)
    assert reply.errors[0].field == "id"


async def test_one_id_with_two_payloads_at_once_is_accepted_once_on_two_replicas(
    client: AlongsideClient, nc: Client, provisioned: str, auth: AuthDir, org: str
) -> None:
    # Both used to pass the reply check before either committed: 20 of 20 pairs made 40 cases.
    second_replica = await services.start(provisioned, ["intake"], credentials=auth.credentials)
    try:
        pairs = await asyncio.gather(
            *(
                asyncio.gather(
                    client.submit(
                        org, sample.intake(random.Random(n), f"a{n}"), command_id=f"id-{n}"
                    ),
                    client.submit(
                        org, sample.intake(random.Random(n), f"b{n}"), command_id=f"id-{n}"
                    ),
                )
                for n in range(20)
            )
        )
    finally:
        await services.stop(second_replica)

    for n, (a, b) in enumerate(pairs):
        assert sorted(type(r).__name__ for r in (a, b)) == ["CommandAccepted", "CommandRejected"]
        refused = a if isinstance(a, CommandRejected) else b
        assert isinstance(refused, CommandRejected)
        assert refused.errors[0].field == "id"
        assert await case_exists(nc, org, f"a{n}") != await case_exists(nc, org, f"b{n}")
    assert len(await events_of(client, org)) == 20


async def test_org_mismatch_is_refused(client: AlongsideClient, nc: Client, org: str) -> None:
    body = wrap(
        sample.intake(random.Random(1), "c1"), org="someone-else", source="t", time=SYSTEM()
    ).model_dump_json()

    reply = await client.send_raw(org, "intake", "SubmitIntake", body.encode())

    assert isinstance(reply, CommandRejected)
    assert reply.errors[0].field == "org"
    assert not await case_exists(nc, org, "c1")
    assert not await case_exists(nc, "someone-else", "c1")


async def last_dead_letter(nc: Client, org: str, service: str) -> RawEnvelope:
    letter = await nc.jetstream().get_last_msg(
        topology.DEADLETTER_STREAM, subjects.dead_letter(org, service, subjects.OPERATOR)
    )
    kept = RawEnvelope.model_validate_json(letter.data or b"")
    # Kept sealed: what was sent may hold anyone's data.
    assert kept.data["original"].startswith(SEALED)
    assert kept.data["reason"].startswith(SEALED)
    return await opened_letter(nc, kept)


async def test_malformed_message_is_dead_lettered_and_service_keeps_serving(
    client: AlongsideClient, nc: Client, org: str
) -> None:
    reply = await client.send_raw(org, "intake", "SubmitIntake", b'{"id": "x", "data": ')

    assert isinstance(reply, CommandRejected)
    assert reply.errors[0].field == "body"
    dead = await last_dead_letter(nc, org, "intake")
    assert dead.data["reason"].startswith("malformed envelope: body: is not JSON (EOF")
    assert dead.data["original"] == '{"id": "x", "data": '
    assert dead.data["subject"] == subjects.command(
        org, "intake", "SubmitIntake", subjects.OPERATOR
    )

    assert isinstance(
        await client.submit(org, sample.intake(random.Random(1), "c1")), CommandAccepted
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        # FastStream's own JSON decoder used to raise on these before our handler ran:
        # no reply, no dead letter.
        (b"[" * 20_000 + b"]" * 20_000, "recursion limit exceeded"),
        (b'{"id": ' + b"9" * 5_000 + b"}", "number out of range"),
        (b'{"id": "\xff\xfe"}', "is not JSON"),
        (b'{"id": "' + b"x" * 70_000 + b'"}', "a command may have at most 65536"),
    ],
    ids=["deep-nesting", "huge-number", "invalid-utf8", "over-64KiB"],
)
async def test_what_no_parser_can_read_is_answered_and_dead_lettered(
    client: AlongsideClient, nc: Client, org: str, body: bytes, reason: str
) -> None:
    reply = await client.send_raw(org, "intake", "SubmitIntake", body)

    assert isinstance(reply, CommandRejected)
    assert reply.errors[0].field == "body"
    assert reason in reply.errors[0].reason
    dead = await last_dead_letter(nc, org, "intake")
    assert reason in dead.data["reason"]
    assert dead.data["original_size"] == len(body)
    # Answered with its field errors: its first 1 KiB is kept, with the hash of the whole.
    assert dead.data["original_truncated"] == (len(body) > DeadLetter.MALFORMED_KEPT)
    assert len(dead.data["original"]) <= DeadLetter.MALFORMED_KEPT * 4 // 3 + 8
    assert dead.data["original_sha256"] == hashlib.sha256(body).hexdigest()

    assert isinstance(
        await client.submit(org, sample.intake(random.Random(1), "c1")), CommandAccepted
    )


async def test_unknown_command_is_refused(client: AlongsideClient, org: str) -> None:
    reply = await client.send_raw(org, "intake", "GrantEverything", b"{}")
    assert isinstance(reply, CommandRejected)
    assert reply.errors[0].field == "type"


async def test_events_of_one_org_never_reach_another(
    client: AlongsideClient, nc: Client, org: str
) -> None:
    other = f"{org}-b"
    await register(nc, other)
    await client.submit(org, sample.intake(random.Random(1), "c1"))
    await client.submit(other, sample.intake(random.Random(2), "c1"))

    assert {e.org for e in await events_of(client, org)} == {org}
    assert {e.org for e in await events_of(client, other)} == {other}


@pytest.mark.parametrize("command_id", ["a..b", ".leading", "trailing.", "colon:id"])
async def test_an_id_the_store_cannot_key_is_refused_naming_it(
    client: AlongsideClient, org: str, command_id: str
) -> None:
    envelope = json.loads(
        wrap(
            sample.intake(random.Random(1), "c1"), org=org, source="t", time=SYSTEM()
        ).model_dump_json()
    )
    envelope["id"] = command_id
    reply = await client.send_raw(org, "intake", "SubmitIntake", json.dumps(envelope).encode())
    assert isinstance(reply, CommandRejected)
    assert [e.field for e in reply.errors] == ["id"]


async def test_an_organisation_not_registered_or_disabled_is_refused_naming_it(
    client: AlongsideClient, nc: Client, org: str
) -> None:
    typo = f"{org}-typo"
    reply = await client.submit(typo, sample.intake(random.Random(1), "c1"))
    assert isinstance(reply, CommandRejected)
    assert (reply.errors[0].field, reply.errors[0].reason) == (
        "org",
        f"organisation {typo!r} is not registered here",
    )
    assert not await case_exists(nc, typo, "c1")

    later = f"{org}-later"
    await register(nc, later)  # added while the services run: works at once
    assert isinstance(
        await client.submit(later, sample.intake(random.Random(1), "c1")), CommandAccepted
    )

    gone = f"{org}-gone"
    await register(nc, gone)
    registry = Registry(await nc.jetstream().key_value(topology.REGISTRY_BUCKET), SYSTEM)
    await registry.disable(gone)
    reply = await client.submit(gone, sample.intake(random.Random(1), "c1"))
    assert isinstance(reply, CommandRejected)
    assert reply.errors[0].reason == f"organisation {gone!r} is disabled"
    assert not await case_exists(nc, gone, "c1")
