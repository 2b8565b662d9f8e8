"""Scheduling's handlers with no broker: fake stores, a fake clock, the real rules in process.

The records they read are made the way intake makes them (its pure domain), and the
decisions the way the rules service makes them (its facts and the shipped rulesets), so
these tests exercise the real decisions in milliseconds; what is about delivery is in
``tests/integration/test_scheduling_service.py`` against a real nats-server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest

from contracts.envelope import wrap
from contracts.intake import (
    GiveConsent,
    Method,
    RecordVettingEvidence,
    Stage,
    Supervision,
    SupporterChanges,
    UpdateSupporter,
    WithdrawConsent,
)
from contracts.matching import MatchActivated, MatchPaused, MatchResumed
from contracts.records import CaseSchedule
from contracts.replies import CommandAccepted, CommandRejected, FieldError
from contracts.rules import ConsentDecided, EvaluateRules, Kind, SupporterEligibilityDecided
from contracts.scheduling import (
    BookSession,
    ConfirmMeeting,
    CreateGroupSession,
    GoAhead,
    JoinGroupSession,
    ProposeMeetingTime,
    RecordAttendance,
    RecordFrequencyAgreement,
    RecordSupervisionAttendance,
    SessionCancelled,
)
from runtime import topology
from runtime.changes import NotYet
from runtime.clock import ManualClock
from runtime.settings import Settings
from runtime.store import Outbox
from services.intake import domain as intake
from services.rules import facts
from services.scheduling.bootstrap import BUCKETS, wire
from services.scheduling.gathering import SchedulingDeps
from services.scheduling.handlers import handlers
from services.scheduling.sweeps import finish_outboxes
from tests import records
from tests.fakes import (
    ORG,
    FakeAsking,
    FakePublisher,
    FakeReminders,
    FakeVault,
    ServiceWorld,
    as_buckets,
    fake_buckets,
)
from tests.support import AUCKLAND

# A Wednesday morning in Auckland; nothing below depends on which day it is.
START = datetime(2027, 3, 3, 9, 0, tzinfo=AUCKLAND)


@dataclass
class World(ServiceWorld[SchedulingDeps]):
    reminders: FakeReminders = field(default_factory=FakeReminders)  # the message schedules


async def schedule_of(world: World) -> CaseSchedule:
    stored, _ = await world.deps.schedules.store.load(ORG, "c1")
    assert stored is not None
    assert stored.outbox is None  # every change carried out
    return stored.record


@pytest.fixture
async def world() -> World:
    clock = ManualClock(START)
    kv = fake_buckets(BUCKETS)
    events, asking, reminders = FakePublisher(), FakeAsking(clock), FakeReminders()
    vault = FakeVault()
    deps = wire(as_buckets(kv), events, asking, reminders, Settings(), clock, vault)
    world = World(clock, kv, events, asking, handlers, deps, vault=vault, reminders=reminders)
    # Case c1 and supporter s1, as intake records them; s1 eligible and every party's
    # consent given, as the rules service decides them.
    now, today = clock(), clock().astimezone(AUCKLAND).date()
    s1 = records.supporter("s1", today, now)
    await world.keep(topology.SUPPORTERS_BUCKET, "s1", s1)
    assert (await world.decide(Kind.ELIGIBILITY, "s1", facts.eligibility(s1, today))).outcome == (
        "eligible"
    )
    c1 = records.consented(records.case("c1", now), s1, today, now)
    await world.keep(topology.CASES_BUCKET, "c1", c1)
    assert (await world.decide(Kind.CONSENT, "c1", facts.consent(c1))).outcome == "active"
    return world


async def _held_meeting_and_weekly_sessions(world: World) -> CaseSchedule:
    await world.on(MatchActivated(case_id="c1", supporter_id="s1"))
    start = world.clock() + timedelta(hours=2)
    assert isinstance(
        await world.send(ProposeMeetingTime(case_id="c1", by="client", start=start)),
        CommandAccepted,
    )
    assert isinstance(
        await world.send(ConfirmMeeting(case_id="c1", by="supporter")), CommandAccepted
    )
    meeting = next(s for s in (await schedule_of(world)).sessions if s.status == "booked")
    early = await world.send(
        RecordAttendance(case_id="c1", session_id=meeting.session_id, outcome="completed")
    )
    assert isinstance(early, CommandRejected)  # not before it has started
    await world.clock.sleep_until(start + timedelta(minutes=5))
    await world.send(
        RecordAttendance(case_id="c1", session_id=meeting.session_id, outcome="completed")
    )
    assert isinstance(await world.send(GoAhead(case_id="c1")), CommandAccepted)
    return await schedule_of(world)


async def test_an_active_match_is_offered_a_first_meeting_when_both_are_free_once(
    world: World,
) -> None:
    await world.on(MatchActivated(case_id="c1", supporter_id="s1"))
    await world.on(MatchActivated(case_id="c1", supporter_id="s1"))  # redelivered

    [offered] = world.events.of("InitialMeetingProposed")
    start = datetime.fromisoformat(offered.data["start"]).astimezone(AUCKLAND)
    # The client is free on Tuesdays 18-20, the supporter every evening; 48 hours' lead.
    assert (start.strftime("%A"), start.time()) == ("Tuesday", time(18))
    assert start >= START + timedelta(hours=48)
    assert offered.data["method"] == Method.PHONE


async def test_after_the_meeting_weekly_sessions_each_get_a_reminder(world: World) -> None:
    schedule = await _held_meeting_and_weekly_sessions(world)

    regular = [s for s in schedule.sessions if s.kind == "regular"]
    assert len(regular) == 12  # the default funded weeks
    assert {s.start.astimezone(AUCKLAND).time() for s in regular} == {time(11)}
    assert set(world.reminders.due) == {s.session_id for s in regular}
    [scheduled] = world.events.of("SessionsScheduled")
    assert scheduled.data["session_ids"] == [s.session_id for s in regular]
    assert scheduled.data["starts"] == [s.start.isoformat() for s in regular]


async def test_a_booking_the_boundaries_refuse_names_each_rule_and_changes_nothing(
    world: World,
) -> None:
    before = await _held_meeting_and_weekly_sessions(world)
    soon = world.clock() + timedelta(days=2)  # its reminder is due a day ahead

    reply = await world.send(
        BookSession(
            case_id="c1", start=soon, minutes=20, method=Method.PHONE, purposes=["legal_advice"]
        )
    )

    assert isinstance(reply, CommandRejected)
    assert sorted(e.field for e in reply.errors) == [
        "rules.boundaries.more-than-weekly-without-agreement",
        "rules.boundaries.outside-peer-role",
        "rules.boundaries.too-short",
    ]
    assert await schedule_of(world) == before
    # Once both agree to meet twice a week, a proper extra session is booked.
    await world.send(RecordFrequencyAgreement(case_id="c1", sessions_per_week=2))
    booked = await world.send(
        BookSession(case_id="c1", start=soon, minutes=60, method=Method.PHONE)
    )
    assert isinstance(booked, CommandAccepted)
    assert len(world.reminders.due) == 12 + 1


async def test_withdrawn_consent_suspends_future_sessions_then_consent_resumes_them(
    world: World,
) -> None:
    schedule = await _held_meeting_and_weekly_sessions(world)
    future = {s.session_id for s in schedule.sessions if s.kind == "regular"}
    stored = await world.deps.records.case(ORG, "c1")
    assert stored is not None
    today: date = world.clock().astimezone(AUCKLAND).date()
    withdrawn = intake.withdraw_consent(
        WithdrawConsent(case_id="c1", party_id="respondent", withdrawn_on=today),
        stored,
        intake.Context(now=world.clock()),
    ).record
    await world.keep(topology.CASES_BUCKET, "c1", withdrawn)
    assert (await world.decide(Kind.CONSENT, "c1", facts.consent(withdrawn))).outcome == (
        "suspended"
    )

    await world.on(
        ConsentDecided(
            case_id="c1",
            stage=Stage.ENTRY,
            status="suspended",
            missing_party_ids=["respondent"],
            ruleset=_ruleset_ref(world),
        )
    )

    suspended = await schedule_of(world)
    assert suspended.status == "suspended"
    assert {e.data["session_id"] for e in world.events.of("SessionCancelled")} == future
    assert {e.data["reason"] for e in world.events.of("SessionCancelled")} == {"consent_not_active"}
    assert world.reminders.due == {}

    # An "active" event the stored decision does not stand behind changes nothing: scheduling
    # acts on the decision as stored, never on an event's copy of it.
    await world.on(
        ConsentDecided(
            case_id="c1",
            stage=Stage.ENTRY,
            status="active",
            missing_party_ids=[],
            ruleset=_ruleset_ref(world),
        )
    )
    assert (await schedule_of(world)).status == "suspended"

    world.clock.advance(timedelta(minutes=1))
    given = intake.give_consent(
        GiveConsent(case_id="c1", party_id="respondent", stages=[Stage.ENTRY], given_on=today),
        withdrawn,
        intake.Context(now=world.clock()),
    ).record
    await world.keep(topology.CASES_BUCKET, "c1", given)
    assert (await world.decide(Kind.CONSENT, "c1", facts.consent(given))).outcome == "active"
    await world.on(
        ConsentDecided(
            case_id="c1",
            stage=Stage.ENTRY,
            status="active",
            missing_party_ids=[],
            ruleset=_ruleset_ref(world),
        )
    )
    assert (await schedule_of(world)).status == "going_ahead"
    [resumed] = world.events.of("SessionsResumed")
    assert set(resumed.data["session_ids"]) == future
    assert set(world.reminders.due) == future


def _ruleset_ref(world: World) -> Any:
    with world.asking.rules.lease(ORG, Kind.CONSENT) as loaded:
        return loaded.ref


async def test_a_judgement_the_rules_service_refuses_is_answered_not_dropped(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _held_meeting_and_weekly_sessions(world)

    async def refuse(org: str, command: EvaluateRules) -> CommandRejected:
        return CommandRejected(
            command_id=None,
            command_type="EvaluateRules",
            errors=[FieldError(field="data.facts", reason="unreadable")],
        )

    monkeypatch.setattr(world.asking, "evaluate", refuse)
    reply = await world.send(
        BookSession(
            case_id="c1", start=world.clock() + timedelta(days=2), minutes=60, method=Method.PHONE
        )
    )

    assert isinstance(reply, CommandRejected)
    assert [(e.field, e.reason) for e in reply.errors] == [("data.facts", "unreadable")]


async def test_events_about_what_is_not_on_record_are_not_acted_on(world: World) -> None:
    # 5,000 forged eligibility events once made 5,004 supervision records for nobody.
    ruleset = _ruleset_ref(world)
    forged = [
        SupporterEligibilityDecided(
            supporter_id="nobody",
            eligible=True,
            caseload_full_only=False,
            lapses_on=None,
            ruleset=ruleset,
        ),
        MatchActivated(case_id="no-case", supporter_id="nobody"),
        ConsentDecided(
            case_id="no-case",
            stage=Stage.ENTRY,
            status="active",
            missing_party_ids=[],
            ruleset=ruleset,
        ),
    ]
    for event in forged:
        with pytest.raises(NotYet, match=r"no .* on record|decision on no"):
            await world.on(event)

    assert world.kv[topology.SUPERVISION_BUCKET].entries == {}
    assert world.kv[topology.SCHEDULES_BUCKET].entries == {}
    assert world.events.published == []


async def test_the_sweep_finishes_a_schedule_change_a_crash_left_unannounced(
    world: World,
) -> None:
    schedule = await _held_meeting_and_weekly_sessions(world)
    announced = len(world.events.published)
    # A change committed with its outbox, then the process died before publishing it.
    event = SessionCancelled(
        case_id="c1", session_id=schedule.sessions[-1].session_id, reason="cancelled_by_client"
    )
    envelope = wrap(event, org=ORG, source="test", time=world.clock(), id="crashed-1")
    store = world.deps.schedules.store
    current, revision = await store.load(ORG, "c1")
    assert current is not None
    await store.save(
        ORG,
        "c1",
        store.stored(current.record, Outbox(events=[envelope.model_dump_json()])),
        revision,
    )

    assert await finish_outboxes(world.deps) == 1
    assert await finish_outboxes(world.deps) == 0
    assert [e.id for e in world.events.published[announced:]] == ["crashed-1"]


async def test_notes_on_a_booking_are_kept_but_never_widen_what_it_may_be_for(
    world: World,
) -> None:
    await _held_meeting_and_weekly_sessions(world)
    await world.send(RecordFrequencyAgreement(case_id="c1", sessions_per_week=2))
    soon = world.clock() + timedelta(days=2)

    def booking(purposes: list[str], notes: str) -> BookSession:
        return BookSession(
            case_id="c1",
            start=soon,
            minutes=60,
            method=Method.PHONE,
            purposes=purposes,
            notes=notes,
        )

    for asked in (
        ["represent_me_at_the_hearing"],
        ["draft_my_submission"],
        ["negotiate_with_the_company"],
        ["tell_me_if_i_will_win"],
    ):
        refused = await world.send(booking(asked, "it is really only listening, promise"))
        assert isinstance(refused, CommandRejected), asked
        assert [e.field for e in refused.errors] == ["rules.boundaries.outside-peer-role"]
        assert "advocacy" in refused.errors[0].reason

    booked = await world.send(booking(["preparing_to_be_heard"], "NOTE-MARKER-7 nervous"))
    assert isinstance(booked, CommandAccepted)
    [extra] = [s for s in (await schedule_of(world)).sessions if s.kind == "extra"]
    assert (extra.purposes, extra.notes) == (["preparing_to_be_heard"], "NOTE-MARKER-7 nervous")
    assert world.events.of("SessionBooked")  # the booking was announced, without the notes
    assert not [e for e in world.events.published if "NOTE-MARKER-7" in e.model_dump_json()]


# Eligibility where people are bound; paused matches -------------------------------------------

PAUSED = (
    "case_id",
    "the match is paused until a coordinator reviews it (its supporter became "
    "ineligible): no meeting or session is arranged, booked or moved meanwhile",
)


async def _supporter_decided(world: World, *, suspended: bool) -> None:
    """s1 suspended (or no longer) as intake records it, decided again by the rules service,
    and announced."""
    stored = await world.deps.records.supporter(ORG, "s1")
    assert stored is not None
    changes = SupporterChanges(suspended=suspended)
    record = intake.update_supporter(
        UpdateSupporter(supporter_id="s1", changes=changes),
        stored,
        intake.Context(now=world.clock()),
    ).record
    await world.keep(topology.SUPPORTERS_BUCKET, "s1", record)
    today = world.clock().astimezone(AUCKLAND).date()
    decision = await world.decide(Kind.ELIGIBILITY, "s1", facts.eligibility(record, today))
    assert (decision.outcome == "eligible") is not suspended
    await world.on(
        SupporterEligibilityDecided(
            supporter_id="s1",
            eligible=not suspended,
            caseload_full_only=False,
            lapses_on=decision.lapses_on,
            ruleset=decision.ruleset,
        )
    )


def _extra(world: World) -> BookSession:
    return BookSession(
        case_id="c1", start=world.clock() + timedelta(days=2), minutes=60, method=Method.PHONE
    )


async def test_an_ineligible_supporters_sessions_wait_for_a_coordinators_review_not_eligibility(
    world: World,
) -> None:
    schedule = await _held_meeting_and_weekly_sessions(world)
    future = {s.session_id for s in schedule.sessions if s.kind == "regular"}
    agreed = await world.send(RecordFrequencyAgreement(case_id="c1", sessions_per_week=2))
    assert isinstance(agreed, CommandAccepted)

    await _supporter_decided(world, suspended=True)

    cancelled = world.events.of("SessionCancelled")
    assert {e.data["session_id"] for e in cancelled} == future
    assert {e.data["reason"] for e in cancelled} == {"supporter_ineligible"}
    assert world.reminders.due == {}
    # Matching pauses the match: the same, already done.
    announced = len(world.events.published)
    await world.on(MatchPaused(case_id="c1", supporter_id="s1"))
    assert len(world.events.published) == announced
    # Nothing is booked meanwhile: the eligibility rules' own words, and the pause.
    refused = await world.send(_extra(world))
    assert isinstance(refused, CommandRejected)
    assert [(e.field, e.reason) for e in refused.errors] == [
        ("rules.eligibility.suspended", "The supporter is suspended."),
        PAUSED,
    ]

    # Eligible again: still paused, until a coordinator reviews the match.
    await _supporter_decided(world, suspended=False)
    assert world.events.of("SessionsResumed") == []
    assert (await schedule_of(world)).status == "suspended"
    refused = await world.send(_extra(world))
    assert isinstance(refused, CommandRejected)
    assert [(e.field, e.reason) for e in refused.errors] == [PAUSED]

    await world.on(MatchResumed(case_id="c1", supporter_id="s1"))
    [resumed] = world.events.of("SessionsResumed")
    assert set(resumed.data["session_ids"]) == future
    assert (await schedule_of(world)).status == "going_ahead"
    assert set(world.reminders.due) == future
    assert isinstance(await world.send(_extra(world)), CommandAccepted)


async def test_a_paused_match_reviewed_while_consent_is_withdrawn_resumes_with_consent(
    world: World,
) -> None:
    schedule = await _held_meeting_and_weekly_sessions(world)
    future = {s.session_id for s in schedule.sessions if s.kind == "regular"}
    await world.on(MatchPaused(case_id="c1", supporter_id="s1"))  # before any decision event
    assert {e.data["reason"] for e in world.events.of("SessionCancelled")} == {
        "supporter_ineligible"
    }
    stored = await world.deps.records.case(ORG, "c1")
    assert stored is not None
    today: date = world.clock().astimezone(AUCKLAND).date()
    withdrawn = intake.withdraw_consent(
        WithdrawConsent(case_id="c1", party_id="respondent", withdrawn_on=today),
        stored,
        intake.Context(now=world.clock()),
    ).record
    await world.keep(topology.CASES_BUCKET, "c1", withdrawn)
    await world.decide(Kind.CONSENT, "c1", facts.consent(withdrawn))
    await world.on(
        ConsentDecided(
            case_id="c1",
            stage=Stage.ENTRY,
            status="suspended",
            missing_party_ids=["respondent"],
            ruleset=_ruleset_ref(world),
        )
    )

    # The coordinator's review: the pause is over, but consent is not active.
    await world.on(MatchResumed(case_id="c1", supporter_id="s1"))
    assert world.events.of("SessionsResumed") == []
    still = await schedule_of(world)
    assert (still.status, still.suspended_because) == ("suspended", "consent_not_active")

    world.clock.advance(timedelta(minutes=1))
    given = intake.give_consent(
        GiveConsent(case_id="c1", party_id="respondent", stages=[Stage.ENTRY], given_on=today),
        withdrawn,
        intake.Context(now=world.clock()),
    ).record
    await world.keep(topology.CASES_BUCKET, "c1", given)
    await world.decide(Kind.CONSENT, "c1", facts.consent(given))
    await world.on(
        ConsentDecided(
            case_id="c1",
            stage=Stage.ENTRY,
            status="active",
            missing_party_ids=[],
            ruleset=_ruleset_ref(world),
        )
    )
    [resumed] = world.events.of("SessionsResumed")
    assert set(resumed.data["session_ids"]) == future


async def test_a_group_needs_its_facilitator_fit_when_made_and_when_each_client_joins(
    world: World,
) -> None:
    def group(group_id: str) -> CreateGroupSession:
        return CreateGroupSession(
            group_id=group_id,
            facilitator_id="s1",
            start=world.clock() + timedelta(days=3),
            minutes=90,
            method=Method.PHONE,
            capacity=4,
        )

    await _supporter_decided(world, suspended=True)
    refused = await world.send(group("g0"))
    assert isinstance(refused, CommandRejected)
    assert [(e.field, e.reason) for e in refused.errors] == [
        ("rules.eligibility.suspended", "The supporter is suspended.")
    ]

    await _supporter_decided(world, suspended=False)
    assert isinstance(await world.send(group("g1")), CommandAccepted)
    await _supporter_decided(world, suspended=True)
    joining = await world.send(JoinGroupSession(group_id="g1", case_id="c1"))
    assert isinstance(joining, CommandRejected)
    assert [(e.field, e.reason) for e in joining.errors] == [
        ("rules.eligibility.suspended", "The supporter is suspended.")
    ]
    await _supporter_decided(world, suspended=False)
    assert isinstance(
        await world.send(JoinGroupSession(group_id="g1", case_id="c1")), CommandAccepted
    )


async def test_a_supervision_is_attended_only_once_it_has_started(world: World) -> None:
    await _supporter_decided(world, suspended=False)  # supervision is planned for s1
    planned = world.events.of("SupervisionScheduled")
    supervision = next(e for e in planned if e.data["kind"] == "supervision")
    start = datetime.fromisoformat(supervision.data["start"])
    attend = RecordSupervisionAttendance(
        supporter_id="s1", session_id=supervision.data["session_id"]
    )

    early = await world.send(attend)

    assert isinstance(early, CommandRejected)
    local = start.astimezone(AUCKLAND)
    assert [(e.field, e.reason) for e in early.errors] == [
        (
            "data.session_id",
            "this session has not started yet: attendance counts once it has "
            f"happened (it starts {local:%Y-%m-%d %H:%M} here)",
        )
    ]
    assert world.asking.sent == []  # intake was not asked to keep it
    await world.clock.sleep_until(start + timedelta(minutes=50))
    assert isinstance(await world.send(attend), CommandAccepted)
    [evidence] = world.asking.sent
    assert isinstance(evidence, RecordVettingEvidence)
    assert isinstance(evidence.evidence, Supervision)
    assert evidence.evidence.attended_on == local.date()
