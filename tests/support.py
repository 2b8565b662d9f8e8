"""Helpers for tests that drive the services through their commands and events."""

from __future__ import annotations

import asyncio
import random
import socket
from collections import Counter
from collections.abc import Callable
from datetime import date, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeoutError

from alongside import sample
from alongside.client import AlongsideClient
from contracts.envelope import RawEnvelope
from contracts.intake import (
    Affiliation,
    Contact,
    Method,
    Preference,
    RecordCheck,
    RecordVettingEvidence,
    RegisterSupporter,
    Slot,
    SubmitIntake,
    Supervision,
    Weekday,
)
from contracts.records import CaseMatch
from contracts.replies import CommandAccepted
from contracts.scheduling import SchedulingPolicy
from runtime import bus, registry, topology
from runtime.clock import SYSTEM, Clock
from runtime.settings import Settings
from runtime.state import CaseloadReader
from runtime.store import bound_store
from runtime.vault import Vault

RESPONDENT = "Harbour Housing Ltd"
# The default organisation time zone: what "today" means for eligibility and scheduling.
AUCKLAND = ZoneInfo(SchedulingPolicy().time_zone)


def org_today(clock: Clock) -> date:
    return clock().astimezone(AUCKLAND).date()


def free_port() -> int:
    """A free loopback port, for a server a test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def accepted(client: AlongsideClient, org: str, command: Any) -> CommandAccepted:
    reply = await client.submit(org, command)
    assert isinstance(reply, CommandAccepted), reply
    return reply


async def event_where(
    client: AlongsideClient,
    org: str,
    event_type: str,
    matches: Callable[[dict[str, Any]], bool],
    timeout: float = 15,
) -> RawEnvelope:
    """The first event of that type whose data ``matches``: for a state that may be reached
    in more or fewer steps (each handler reads the latest state, not the event's)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = [e for e in await seen(client, org, event_type) if matches(e.data)]
        if found:
            return found[0]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no {event_type} as expected in {org} within {timeout} s")
        await asyncio.sleep(0.1)


async def seen(client: AlongsideClient, org: str, event_type: str) -> list[RawEnvelope]:
    """The organisation's events of one type so far."""
    return [e async for e in client.events(org, idle_s=0.2) if e.type == event_type]


async def wait_for(
    client: AlongsideClient, org: str, event_type: str, count: int = 1, timeout: float = 15
) -> list[RawEnvelope]:
    """The organisation's events of one type, once there are ``count``; at the timeout it
    fails, naming what the organisation's feed held instead."""
    deadline = asyncio.get_running_loop().time() + timeout
    every: list[RawEnvelope] = []
    while True:
        try:
            every = [e async for e in client.events(org, idle_s=0.2)]
        except NatsTimeoutError:
            # Reading while a cluster elects a new stream leader times out: read again.
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)
            continue
        found = [e for e in every if e.type == event_type]
        if len(found) >= count:
            return found
        if asyncio.get_running_loop().time() > deadline:
            held = Counter(e.type for e in every)
            raise AssertionError(
                f"waited {timeout:g} s for {count} {event_type} in {org}, saw {len(found)}; "
                f"the feed held {dict(sorted(held.items())) or 'nothing'}"
            )
        await asyncio.sleep(0.1)


async def supporter(
    client: AlongsideClient,
    org: str,
    supporter_id: str,
    languages: list[str],
    cap: int = 2,
    lived: list[str] | None = None,
    affiliated_with: str | None = None,
    supervised_days_ago: int | None = None,
    methods: list[Method] | None = None,
    today: date | None = None,
) -> None:
    """A vetted supporter, vetted as of ``today`` (by default the organisation's date now):
    eligible once the rules service has decided."""
    today = today or org_today(SYSTEM)
    rng = random.Random(supporter_id)
    command = sample.supporter(rng, supporter_id)
    profile = command.profile.model_copy(
        update={
            "languages": languages,
            "caseload_cap": cap,
            "methods": methods or [Method.PHONE, Method.VIDEO],
            "availability": [Slot(day=d, start=time(17), end=time(21)) for d in Weekday],
            "lived_experience": lived or ["employment_dispute"],
            "affiliations": [Affiliation(name=affiliated_with, relationship="former employee")]
            if affiliated_with
            else [],
        }
    )
    await accepted(client, org, command.model_copy(update={"profile": profile}))
    for evidence in sample.vetting(rng, supporter_id, today):
        if supervised_days_ago is not None and isinstance(evidence.evidence, Supervision):
            attended = today - timedelta(days=supervised_days_ago)
            evidence = evidence.model_copy(
                update={"evidence": evidence.evidence.model_copy(update={"attended_on": attended})}
            )
        await accepted(client, org, evidence)


def intake(case_id: str, languages: list[str]) -> SubmitIntake:
    command = sample.intake(random.Random(case_id), case_id)
    client = command.client.model_copy(
        update={
            "languages": languages,
            "methods": [Method.PHONE],
            "gender_preference": None,
            "lived_experience_preference": Preference(values=["tenancy_dispute"]),
            "safety_concerns": [],
            "birth_year": 1980,
            "availability": [
                Slot(day=d, start=time(18), end=time(20)) for d in (Weekday.TUE, Weekday.THU)
            ],
        }
    )
    parties = [p.model_copy(update={"name": RESPONDENT}) for p in command.other_parties]
    return command.model_copy(update={"client": client, "other_parties": parties})


async def eligible(client: AlongsideClient, org: str, count: int) -> None:
    decided = await wait_for(client, org, "SupporterEligibilityDecided", count)
    assert sum(e.data["eligible"] for e in decided) >= count


async def match_of(nc: Client, org: str, case_id: str) -> CaseMatch:
    js = nc.jetstream()
    store = await bound_store(js, topology.MATCHES_BUCKET, CaseMatch, Vault.of(js, Settings()))
    stored, _ = await store.load(org, case_id)
    assert stored is not None
    return stored.record


async def holds(nc: Client, org: str, supporter_id: str) -> dict[str, Any]:
    caseloads = CaseloadReader(await nc.jetstream().key_value(topology.CASELOADS_BUCKET))
    caseload, _ = await caseloads.load(org, supporter_id)
    return caseload.holds


async def register(nc: Client, *orgs: str) -> None:
    """Register organisations, as an operator does with `alongside orgs add`."""
    for org in orgs:
        await registry.register(nc.jetstream(), org, f"Test organisation {org}", Settings(), SYSTEM)


# A person's data that can be found anywhere it leaks: one distinctive marker per personal
# or sensitive field (contracts/privacy.py), lower-case where the field takes tags.
MARKERS = {
    "supporter_name": "Quillon Marker-Supporter",
    "supporter_email": "quillon.marker@example.org",
    "supporter_gender": "Marker-Gender-Quillon",
    "affiliation": "Marker-Affiliation-Quillon",
    "relationship": "Marker-Relationship-Quillon",
    "lived": "marker_lived_quillon",
    "culture": "marker_culture_quillon",
    "check_reference": "Marker-Check-Quillon",
    "client_name": "Wrenna Marker-Client",
    "client_email": "wrenna.marker@example.org",
    "access": "marker_access_wrenna",
    "safety": "marker_safety_wrenna",
    "other_factors": "Marker-Factors-Wrenna",
    "summary": "Marker-Dispute-Wrenna",
    "party": "Marker-Party-Wrenna",
    "preference": "marker_preference_wrenna",
    "notes": "Marker-Notes-Wrenna",
}


def marked_supporter(supporter_id: str) -> RegisterSupporter:
    """A supporter whose every personal and sensitive field holds a marker."""
    command = sample.supporter(random.Random(supporter_id), supporter_id)
    profile = command.profile.model_copy(
        update={
            "display_name": MARKERS["supporter_name"],
            "contact": Contact(email=MARKERS["supporter_email"], phone="+99 (0) 7731 3377"),
            "gender_identity": MARKERS["supporter_gender"],
            "affiliations": [
                Affiliation(name=MARKERS["affiliation"], relationship=MARKERS["relationship"])
            ],
            "lived_experience": [MARKERS["lived"]],
            "cultural_background": [MARKERS["culture"]],
        }
    )
    return command.model_copy(update={"profile": profile})


def marked_record_check(supporter_id: str, today: date) -> RecordVettingEvidence:
    return RecordVettingEvidence(
        supporter_id=supporter_id,
        evidence=RecordCheck(
            issued_on=today - timedelta(days=10),
            expires_on=today + timedelta(days=700),
            clear=True,
            reference=MARKERS["check_reference"],
        ),
    )


def marked_intake(case_id: str) -> SubmitIntake:
    """An intake whose every personal and sensitive field holds a marker."""
    command = sample.intake(random.Random(case_id), case_id)
    client = command.client.model_copy(
        update={
            "display_name": MARKERS["client_name"],
            "contact": Contact(email=MARKERS["client_email"]),
            "access_needs": [MARKERS["access"]],
            "safety_concerns": [MARKERS["safety"]],
            "other_factors": MARKERS["other_factors"],
            "cultural_preference": Preference(values=[MARKERS["preference"]]),
        }
    )
    dispute = command.dispute.model_copy(update={"summary": MARKERS["summary"]})
    parties = [p.model_copy(update={"name": MARKERS["party"]}) for p in command.other_parties]
    return command.model_copy(
        update={"client": client, "dispute": dispute, "other_parties": parties}
    )


async def opened_letter(nc: Client, letter: RawEnvelope) -> RawEnvelope:
    """A dead letter as an operator reads it: its sealed reason and original opened."""
    letters = bus.DeadLetters(Settings()).sealer(nc.jetstream())
    opened = await bus.read_dead_letter(letters, letter)
    return letter.model_copy(update={"data": opened.model_dump(mode="json")})
