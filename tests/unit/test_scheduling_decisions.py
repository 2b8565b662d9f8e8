"""Scheduling's decisions as plain functions: a schedule, a command, what was gathered."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest
from pydantic import ValidationError

from contracts.intake import Method
from contracts.records import CaseSchedule, Session
from contracts.rules import FiredRule, Kind, RulesDecision, RulesetRef, unfit_reasons
from contracts.scheduling import (
    BookSession,
    CancelSession,
    ConfirmMeeting,
    ExtendService,
    GoAhead,
    ProposeMeetingTime,
    RecordAttendance,
    RecordFrequencyAgreement,
    RescheduleSession,
    SchedulingPolicy,
    SessionsResumed,
)
from runtime.changes import Refused
from services.scheduling import judging, sessions
from services.scheduling.domain import Context
from services.scheduling.judging import GatherAgain, Parties, Verdicts
from tests import records
from tests.support import AUCKLAND

NOW = datetime(2027, 3, 7, 23, 59, tzinfo=AUCKLAND)  # a Sunday, a minute before Monday
CTX = Context("harbour-ombudsman", NOW, SchedulingPolicy())
RULESET = RulesetRef(
    org="harbour-ombudsman", kind=Kind.BOUNDARIES, version="1.0.0", content_hash="0" * 64
)


def _going_ahead() -> tuple[CaseSchedule, Parties]:
    s1 = records.supporter("s1", NOW.date(), NOW)
    c1 = records.consented(records.case("c1", NOW), s1, NOW.date(), NOW)
    weekly = [
        Session(
            session_id=f"c1-{n:03d}",
            kind="regular",
            start=NOW + timedelta(weeks=n),
            end=NOW + timedelta(weeks=n, hours=1),
            method=Method.PHONE,
            status="booked",
        )
        for n in range(1, 5)
    ]
    schedule = CaseSchedule(
        case_id="c1",
        supporter_id="s1",
        status="going_ahead",
        sessions=weekly,
        method=Method.PHONE,
        service_ends_on=date(2027, 4, 8),
        updated_at=NOW,
    )
    return schedule, Parties("s1", c1, s1, supporter_unfit=[], consent_active=True)


def _verdict(outcome: str, *refusing: str) -> RulesDecision:
    fired = [FiredRule(rule=rule, outcome="refused", reason=f"{rule} says no") for rule in refusing]
    return RulesDecision(
        kind=Kind.BOUNDARIES,
        subject_id="c1",
        outcome=outcome,
        fired=fired,
        ruleset=RULESET,
        decided_at=NOW,
    )


def test_a_booking_asks_for_its_verdict_first_and_decides_nothing_without_it() -> None:
    schedule, parties = _going_ahead()
    tomorrow = BookSession(
        case_id="c1", start=NOW + timedelta(days=1), minutes=60, method=Method.PHONE
    )
    verdicts = Verdicts()

    with pytest.raises(GatherAgain):
        sessions.book(schedule, tomorrow, CTX, parties, verdicts)

    [facts] = verdicts.missing
    # Tomorrow is within seven days of next Sunday's session: twice in a week.
    assert facts.sessions_per_week == 2
    assert facts.both_agreed_more_often is False
    verdicts.missing.clear()
    verdicts.add(facts, _verdict("allowed"))
    change = sessions.book(schedule, tomorrow, CTX, parties, verdicts)
    assert [e.type_name for e in change.events] == ["SessionBooked"]
    assert change.record.touched == ["c1-004"]  # numbered after the four on record


def test_a_refusing_verdict_names_each_rule_and_its_reason() -> None:
    schedule, parties = _going_ahead()
    command = BookSession(
        case_id="c1", start=NOW + timedelta(days=1), minutes=20, method=Method.PHONE
    )
    verdicts = Verdicts()
    with pytest.raises(GatherAgain):
        sessions.book(schedule, command, CTX, parties, verdicts)
    verdicts.add(verdicts.missing.pop(), _verdict("refused", "too-short", "more-than-weekly"))

    with pytest.raises(Refused) as refused:
        sessions.book(schedule, command, CTX, parties, verdicts)

    assert [(e.field, e.reason) for e in refused.value.errors] == [
        ("rules.boundaries.too-short", "too-short says no"),
        ("rules.boundaries.more-than-weekly", "more-than-weekly says no"),
    ]


def test_what_was_gathered_for_another_supporter_is_gathered_again() -> None:
    schedule, parties = _going_ahead()
    earlier = Parties("s0", parties.case, parties.supporter, [], True)
    command = BookSession(
        case_id="c1", start=NOW + timedelta(days=3), minutes=60, method=Method.PHONE
    )
    with pytest.raises(GatherAgain):
        sessions.book(schedule, command, CTX, earlier, Verdicts())


UNFIT = RulesDecision(
    kind=Kind.ELIGIBILITY,
    subject_id="s1",
    outcome="ineligible",
    fired=[
        FiredRule(
            rule="caseload-full", outcome="ineligible", reason="The supporter's caseload is full."
        ),
        FiredRule(rule="suspended", outcome="ineligible", reason="The supporter is suspended."),
    ],
    ruleset=RULESET.model_copy(update={"kind": Kind.ELIGIBILITY}),
    decided_at=NOW,
)
# Each eligibility rule that refused, in its own words; the full caseload among them.
UNFIT_ERRORS = [
    ("rules.eligibility.caseload-full", "The supporter's caseload is full."),
    ("rules.eligibility.suspended", "The supporter is suspended."),
]


def _arranging(meeting: str) -> CaseSchedule:
    """Arranging the first meeting: proposed, one side confirmed (or held, two hours ago)."""
    start = NOW - timedelta(hours=2) if meeting == "completed" else NOW + timedelta(days=2)
    session = Session(
        session_id="c1-000",
        kind="initial_meeting",
        start=start,
        end=start + timedelta(hours=1),
        method=Method.PHONE,
        status=meeting,
        confirmed_by=["client"],
    )
    return CaseSchedule(
        case_id="c1", supporter_id="s1", status="arranging", sessions=[session], updated_at=NOW
    )


LATER = NOW + timedelta(days=3)
Decide = Callable[[CaseSchedule, Parties], object]


def _binding(command: str) -> tuple[CaseSchedule, Decide]:
    """Each decision that binds the client to the supporter, and a schedule it applies to."""
    going_ahead, _ = _going_ahead()
    decisions: dict[str, tuple[CaseSchedule, Decide]] = {
        "ConfirmMeeting": (
            _arranging("proposed"),
            lambda s, p: sessions.confirm(
                s, ConfirmMeeting(case_id="c1", by="supporter"), CTX, p, Verdicts()
            ),
        ),
        "ProposeMeetingTime": (
            _arranging("proposed"),
            lambda s, p: sessions.propose_time(
                s, ProposeMeetingTime(case_id="c1", by="client", start=LATER), CTX, p
            ),
        ),
        "GoAhead": (
            _arranging("completed"),
            lambda s, p: sessions.go_ahead(s, GoAhead(case_id="c1"), CTX, p, Verdicts()),
        ),
        "RecordFrequencyAgreement": (
            going_ahead,
            lambda s, p: sessions.agree_frequency(
                s, RecordFrequencyAgreement(case_id="c1", sessions_per_week=2), CTX, p
            ),
        ),
        "BookSession": (
            going_ahead,
            lambda s, p: sessions.book(
                s,
                BookSession(case_id="c1", start=LATER, minutes=60, method=Method.PHONE),
                CTX,
                p,
                Verdicts(),
            ),
        ),
        "RescheduleSession": (
            going_ahead,
            lambda s, p: sessions.reschedule(
                s,
                RescheduleSession(case_id="c1", session_id="c1-001", start=LATER),
                CTX,
                p,
                Verdicts(),
            ),
        ),
        "ExtendService": (
            going_ahead,
            lambda s, p: sessions.extend(
                s, ExtendService(case_id="c1", until=date(2027, 5, 1)), CTX, p
            ),
        ),
    }
    return decisions[command]


BINDING = [
    "ConfirmMeeting",
    "ProposeMeetingTime",
    "GoAhead",
    "RecordFrequencyAgreement",
    "BookSession",
    "RescheduleSession",
    "ExtendService",
]
PAUSED = (
    "case_id",
    "the match is paused until a coordinator reviews it (its supporter became "
    "ineligible): no meeting or session is arranged, booked or moved meanwhile",
)


@pytest.mark.parametrize("command", BINDING)
def test_an_unfit_supporter_is_refused_with_the_eligibility_rules_reasons_before_any_verdict(
    command: str,
) -> None:
    schedule, decide = _binding(command)
    _, parties = _going_ahead()
    with suppress(GatherAgain):  # a fit supporter's goes ahead, or asks for its verdict
        decide(schedule, parties)
    unfit = replace(parties, supporter_unfit=unfit_reasons(UNFIT))

    with pytest.raises(Refused) as refused:
        decide(schedule, unfit)

    assert [(e.field, e.reason) for e in refused.value.errors] == UNFIT_ERRORS


@pytest.mark.parametrize("command", BINDING)
def test_a_full_caseload_alone_holds_up_nothing_for_the_clients_already_matched(
    command: str,
) -> None:
    schedule, decide = _binding(command)
    _, parties = _going_ahead()
    full = UNFIT.model_copy(update={"fired": UNFIT.fired[:1], "caseload_full_only": True})
    with suppress(GatherAgain):  # goes ahead, or asks for its verdict: not refused
        decide(schedule, replace(parties, supporter_unfit=unfit_reasons(full)))


@pytest.mark.parametrize("command", BINDING)
def test_a_paused_match_is_refused_in_plain_words_even_once_its_supporter_is_fit_again(
    command: str,
) -> None:
    schedule, decide = _binding(command)
    _, parties = _going_ahead()
    paused = sessions.stop(schedule, judging.PAUSED, "suspended", CTX, "s1")
    assert paused is not None

    with pytest.raises(Refused) as fit_again:
        decide(paused.record, parties)
    with pytest.raises(Refused) as unfit:
        decide(paused.record, replace(parties, supporter_unfit=unfit_reasons(UNFIT)))

    assert [(e.field, e.reason) for e in fit_again.value.errors] == [PAUSED]
    assert [(e.field, e.reason) for e in unfit.value.errors] == [*UNFIT_ERRORS, PAUSED]


def test_attendance_and_cancelling_are_never_held_up_by_a_pause() -> None:
    schedule, _ = _going_ahead()
    held = Session(
        session_id="c1-009",
        kind="extra",
        start=NOW - timedelta(minutes=30),
        end=NOW + timedelta(minutes=30),
        method=Method.PHONE,
        status="booked",
    )
    schedule = schedule.model_copy(update={"sessions": [*schedule.sessions, held]})
    paused = sessions.stop(schedule, judging.PAUSED, "suspended", CTX, "s1")
    assert paused is not None
    assert paused.record.session("c1-009") == held  # under way: not cancelled

    attended = sessions.attendance(
        paused.record, RecordAttendance(case_id="c1", session_id="c1-009", outcome="completed"), CTX
    )
    cancelled = sessions.cancel(
        paused.record, CancelSession(case_id="c1", session_id="c1-009", by="client"), CTX
    )

    assert [e.type_name for e in attended.events] == ["SessionAttended"]
    assert [e.type_name for e in cancelled.events] == ["SessionCancelled"]


def test_a_pause_outlasts_consent_and_its_review_waits_for_consent() -> None:
    schedule, _ = _going_ahead()
    future = {s.session_id for s in schedule.sessions}
    # Consent withdrawn, then the supporter became ineligible: the match is paused.
    withdrawn = sessions.stop(schedule, judging.CONSENT_NOT_ACTIVE, "suspended", CTX)
    assert withdrawn is not None
    paused = sessions.stop(withdrawn.record, judging.PAUSED, "suspended", CTX, "s1")
    assert paused is not None
    assert (paused.record.suspended_because, paused.events) == (judging.PAUSED, [])
    # Consent again is no review: nothing comes back, and consent withdrawn again changes
    # nothing either.
    assert sessions.resume(paused.record, judging.CONSENT_NOT_ACTIVE, CTX) is None
    assert sessions.stop(paused.record, judging.CONSENT_NOT_ACTIVE, "suspended", CTX) is None

    # The coordinator's review while consent is not active: suspended for consent now.
    reviewed = sessions.resume(
        paused.record, judging.PAUSED, CTX, supporter_id="s1", still=judging.CONSENT_NOT_ACTIVE
    )
    assert reviewed is not None
    assert (reviewed.record.status, reviewed.record.suspended_because) == (
        "suspended",
        judging.CONSENT_NOT_ACTIVE,
    )
    assert reviewed.events == []
    # Then consent: every session cancelled while suspended, for either reason, is back.
    back = sessions.resume(reviewed.record, judging.CONSENT_NOT_ACTIVE, CTX)
    assert back is not None
    assert back.record.status == "going_ahead"
    [resumed] = back.events
    assert isinstance(resumed, SessionsResumed)
    assert set(resumed.session_ids) == future


def test_a_review_of_an_earlier_supporters_match_resumes_nothing() -> None:
    schedule, _ = _going_ahead()
    paused = sessions.stop(schedule, judging.PAUSED, "suspended", CTX, "s1")
    assert paused is not None
    assert sessions.resume(paused.record, judging.PAUSED, CTX, supporter_id="s0") is None
    assert sessions.stop(schedule, judging.PAUSED, "suspended", CTX, "s0") is None


def test_the_service_ends_on_its_end_day_in_the_organisations_zone() -> None:
    schedule, _ = _going_ahead()
    assert schedule.service_ends_on is not None
    # 23:59 the evening before, in Auckland (10:59 UTC that day): not yet.
    eve = datetime(2027, 4, 7, 23, 59, tzinfo=AUCKLAND)
    assert sessions.end_service(schedule, Context(CTX.org, eve, CTX.policy)) is None
    day = eve + timedelta(minutes=1)
    change = sessions.end_service(schedule, Context(CTX.org, day, CTX.policy))
    assert change is not None
    assert change.record.status == "ended"
    assert [e.type_name for e in change.events] == ["ServiceEnded"]


def test_an_extension_is_bounded_and_so_is_the_record() -> None:
    schedule, parties = _going_ahead()
    assert schedule.service_ends_on is not None
    # To the year 2100 once made 3,815 sessions in an 825 kB record.
    with pytest.raises(Refused) as too_far:
        sessions.extend(schedule, ExtendService(case_id="c1", until=date(2100, 1, 1)), CTX, parties)
    assert too_far.value.errors[0].field == "data.until"
    assert "at most 104 weeks" in too_far.value.errors[0].reason

    longest = schedule.service_ends_on + timedelta(weeks=104)
    change = sessions.extend(schedule, ExtendService(case_id="c1", until=longest), CTX, parties)
    assert len(change.record.sessions) == 4 + 104

    full = change.record
    for _ in range(2):
        assert full.service_ends_on is not None
        until = full.service_ends_on + timedelta(weeks=104)
        full = sessions.extend(full, ExtendService(case_id="c1", until=until), CTX, parties).record
    assert len(full.sessions) == 4 + 3 * 104
    assert full.service_ends_on is not None
    with pytest.raises(Refused) as no_room:
        sessions.extend(
            full,
            ExtendService(case_id="c1", until=full.service_ends_on + timedelta(weeks=104)),
            CTX,
            parties,
        )
    assert "at most 400 sessions" in no_room.value.errors[0].reason


@pytest.mark.parametrize("year", [1, 1899, 2200, 9999])
def test_days_and_moments_outside_our_era_are_refused_naming_the_field(year: int) -> None:
    with pytest.raises(ValidationError) as error:
        ExtendService.model_validate({"case_id": "c1", "until": f"{year:04d}-12-31"})
    assert error.value.errors()[0]["loc"] == ("until",)
    with pytest.raises(ValidationError) as error:
        BookSession.model_validate(
            {
                "case_id": "c1",
                "start": f"{year:04d}-12-31T23:00:00-12:00",
                "minutes": 60,
                "method": "phone",
            }
        )
    assert error.value.errors()[0]["loc"] == ("start",)
