"""Scheduling's decisions as plain functions: a schedule, a command, what was gathered."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from pydantic import ValidationError

from contracts.intake import Method
from contracts.records import CaseSchedule, Session
from contracts.rules import FiredRule, Kind, RulesDecision, RulesetRef
from contracts.scheduling import BookSession, ExtendService, SchedulingPolicy
from runtime.changes import Refused, Regather
from services.scheduling import sessions
from services.scheduling.domain import Context
from services.scheduling.sessions import Parties, Verdicts
from tests import records
from tests.support import AUCKLAND

NOW = datetime(2027, 3, 7, 23, 59, tzinfo=AUCKLAND)  # a Sunday, a minute before Monday
CTX = Context("harbour-ombudsman", NOW, SchedulingPolicy())
RULESET = RulesetRef(org="harbour-ombudsman", kind=Kind.BOUNDARIES, version="1.0.0",
                     content_hash="0" * 64)  # fmt: skip


def _going_ahead() -> tuple[CaseSchedule, Parties]:
    s1 = records.supporter("s1", NOW.date(), NOW)
    c1 = records.consented(records.case("c1", NOW), s1, NOW.date(), NOW)
    weekly = [
        Session(session_id=f"c1-{n:03d}", kind="regular", start=NOW + timedelta(weeks=n),
                end=NOW + timedelta(weeks=n, hours=1), method=Method.PHONE, status="booked")
        for n in range(1, 5)
    ]  # fmt: skip
    schedule = CaseSchedule(case_id="c1", supporter_id="s1", status="going_ahead",
                            sessions=weekly, method=Method.PHONE,
                            service_ends_on=date(2027, 4, 8), updated_at=NOW)  # fmt: skip
    return schedule, Parties("s1", c1, s1, supporter_fit=True, consent_active=True)


def _verdict(outcome: str, *refusing: str) -> RulesDecision:
    fired = [FiredRule(rule=rule, outcome="refused", reason=f"{rule} says no")
             for rule in refusing]  # fmt: skip
    return RulesDecision(kind=Kind.BOUNDARIES, subject_id="c1", outcome=outcome, fired=fired,
                         ruleset=RULESET, decided_at=NOW)  # fmt: skip


def test_a_booking_asks_for_its_verdict_first_and_decides_nothing_without_it() -> None:
    schedule, parties = _going_ahead()
    tomorrow = BookSession(case_id="c1", start=NOW + timedelta(days=1), minutes=60,
                           method=Method.PHONE)  # fmt: skip
    verdicts = Verdicts()

    with pytest.raises(Regather):
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
    command = BookSession(case_id="c1", start=NOW + timedelta(days=1), minutes=20,
                          method=Method.PHONE)  # fmt: skip
    verdicts = Verdicts()
    with pytest.raises(Regather):
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
    earlier = Parties("s0", parties.case, parties.supporter, True, True)
    command = BookSession(case_id="c1", start=NOW + timedelta(days=3), minutes=60,
                          method=Method.PHONE)  # fmt: skip
    with pytest.raises(Regather):
        sessions.book(schedule, command, CTX, earlier, Verdicts())


def test_an_unfit_supporter_is_refused_before_any_verdict() -> None:
    schedule, parties = _going_ahead()
    unfit = Parties("s1", parties.case, parties.supporter, supporter_fit=False,
                    consent_active=True)  # fmt: skip
    command = BookSession(case_id="c1", start=NOW + timedelta(days=3), minutes=60,
                          method=Method.PHONE)  # fmt: skip
    verdicts = Verdicts()
    with pytest.raises(Refused) as refused:
        sessions.book(schedule, command, CTX, unfit, verdicts)
    assert refused.value.errors[0].reason == (
        "the supporter is not eligible to support anyone at present"
    )
    assert verdicts.missing == []


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
    schedule, _ = _going_ahead()
    assert schedule.service_ends_on is not None
    # To the year 2100 once made 3,815 sessions in an 825 kB record.
    with pytest.raises(Refused) as too_far:
        sessions.extend(schedule, ExtendService(case_id="c1", until=date(2100, 1, 1)), CTX)
    assert too_far.value.errors[0].field == "until"
    assert "at most 104 weeks" in too_far.value.errors[0].reason

    longest = schedule.service_ends_on + timedelta(weeks=104)
    change = sessions.extend(schedule, ExtendService(case_id="c1", until=longest), CTX)
    assert len(change.record.sessions) == 4 + 104

    full = change.record
    for _ in range(2):
        assert full.service_ends_on is not None
        until = full.service_ends_on + timedelta(weeks=104)
        full = sessions.extend(full, ExtendService(case_id="c1", until=until), CTX).record
    assert len(full.sessions) == 4 + 3 * 104
    assert full.service_ends_on is not None
    with pytest.raises(Refused) as no_room:
        sessions.extend(full, ExtendService(case_id="c1", until=full.service_ends_on
                                            + timedelta(weeks=104)), CTX)  # fmt: skip
    assert "at most 400 sessions" in no_room.value.errors[0].reason


@pytest.mark.parametrize("year", [1, 1899, 2200, 9999])
def test_days_and_moments_outside_our_era_are_refused_naming_the_field(year: int) -> None:
    with pytest.raises(ValidationError) as error:
        ExtendService.model_validate({"case_id": "c1", "until": f"{year:04d}-12-31"})
    assert error.value.errors()[0]["loc"] == ("until",)
    with pytest.raises(ValidationError) as error:
        BookSession.model_validate({"case_id": "c1", "start": f"{year:04d}-12-31T23:00:00-12:00",
                                    "minutes": 60, "method": "phone"})  # fmt: skip
    assert error.value.errors()[0]["loc"] == ("start",)
