"""Scheduling without a broker: common times, methods, weekly series across daylight saving."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alongside import sample
from contracts.intake import Method, Slot, Stage, Weekday
from contracts.records import CaseRecord, Session
from services.scheduling import domain

AUCKLAND = ZoneInfo("Pacific/Auckland")


def slot(day: Weekday, start: int, end: int) -> Slot:
    return Slot(day=day, start=time(start), end=time(end))


def test_the_first_common_time_is_the_earliest_overlap_long_enough_after_the_lead() -> None:
    client = [slot(Weekday.TUE, 18, 20), slot(Weekday.THU, 9, 10)]
    supporter = [slot(Weekday.TUE, 19, 21), slot(Weekday.THU, 9, 12)]
    # Monday 2026-11-23, 12:00 in Auckland.
    after = datetime(2026, 11, 23, 12, tzinfo=AUCKLAND)
    start = domain.first_common_time(client, supporter, 60, after, AUCKLAND)
    assert start == datetime(2026, 11, 24, 19, tzinfo=AUCKLAND)  # Tuesday 19:00-20:00
    # Two hours do not fit on Tuesday (one hour of overlap) nor on Thursday.
    assert domain.first_common_time(client, supporter, 120, after, AUCKLAND) is None
    later = datetime(2026, 11, 24, 19, 30, tzinfo=AUCKLAND)
    assert domain.first_common_time(client, supporter, 60, later, AUCKLAND) == datetime(
        2026, 11, 26, 9, tzinfo=AUCKLAND
    )


def test_a_meeting_method_is_the_clients_first_that_the_supporter_offers_and_is_safe() -> None:
    both = [Method.HOME_VISIT, Method.PHONE]
    assert domain.meeting_method(both, both, []) == Method.HOME_VISIT
    assert domain.meeting_method(both, both, ["no_home_visits"]) == Method.PHONE
    assert domain.meeting_method([Method.TEXT], [Method.TEXT], []) is None  # not a meeting


def test_a_weekly_session_keeps_its_local_time_across_the_daylight_saving_change() -> None:
    # New Zealand daylight time ends on Sunday 2027-04-04 (UTC+13 -> UTC+12).
    first = datetime(2027, 3, 23, 18, tzinfo=AUCKLAND)  # a Tuesday, 18:00
    starts = domain.weekly(first, date(2027, 4, 20), AUCKLAND)  # the service ends on the 20th
    assert [s.date() for s in starts] == [date(2027, 3, 23) + timedelta(weeks=k) for k in range(4)]
    assert {s.astimezone(AUCKLAND).time() for s in starts} == {time(18)}
    offsets = [s.utcoffset() for s in starts]
    assert offsets[:2] == [timedelta(hours=13)] * 2
    assert offsets[2:] == [timedelta(hours=12)] * 2
    # In UTC the session moves by an hour: 05:00 becomes 06:00.
    assert [s.astimezone(UTC).hour for s in starts] == [5, 5, 6, 6]


def test_next_week_keeps_the_wall_clock_time_of_a_stored_fixed_offset_time() -> None:
    # Read back from a record, a time carries a fixed offset (+13:00), not the zone.
    stored = datetime(2027, 4, 1, 18, tzinfo=timezone(timedelta(hours=13)))
    after = domain.next_week(stored, AUCKLAND)
    assert after.astimezone(AUCKLAND).time() == time(18)
    assert after.utcoffset() == timedelta(hours=12)


@given(
    zone=st.sampled_from(["Pacific/Auckland", "Europe/London", "America/New_York", "UTC"]),
    day=st.dates(min_value=date(2026, 1, 1), max_value=date(2030, 12, 31)),
    hour=st.integers(6, 21),
    weeks=st.integers(1, 60),
)
def test_every_weekly_session_is_seven_days_apart_at_the_same_wall_clock_time(
    zone: str, day: date, hour: int, weeks: int
) -> None:
    tz = ZoneInfo(zone)
    starts = domain.weekly(domain.at(day, time(hour), tz), day + timedelta(weeks=weeks), tz)
    assert len(starts) == weeks
    for earlier, later in itertools.pairwise(starts):
        assert later.date() - earlier.date() == timedelta(days=7)
        assert later.astimezone(tz).time() == time(hour)


def _session(start: datetime, status: str = "booked") -> Session:
    return Session(
        session_id=f"s{start:%d%H}",
        kind="regular",
        start=start,
        end=start + timedelta(hours=1),
        method=Method.PHONE,
        status=status,
    )


def test_a_week_is_any_seven_consecutive_local_days_not_a_calendar_week() -> None:
    sunday = datetime(2026, 11, 29, 18, tzinfo=AUCKLAND)
    weekly = [_session(sunday), _session(sunday + timedelta(days=7))]
    # Monday after a Sunday session: a new ISO week, yet two sessions in two days.
    assert domain.sessions_within_a_week(weekly, sunday + timedelta(days=1), AUCKLAND) == 2
    # The weekly rhythm itself is never "more than weekly", whichever weekday it falls on.
    assert domain.sessions_within_a_week(weekly, sunday + timedelta(days=14), AUCKLAND) == 1
    assert domain.sessions_within_a_week(weekly[:1], sunday - timedelta(days=7), AUCKLAND) == 1


def test_held_sessions_count_and_cancelled_or_missed_ones_do_not() -> None:
    monday = datetime(2026, 11, 23, 10, tzinfo=AUCKLAND)
    sessions = [
        _session(monday, "completed"),
        _session(monday + timedelta(days=1), "cancelled"),
        _session(monday + timedelta(days=2), "client_no_show"),
    ]
    assert domain.sessions_within_a_week(sessions, monday + timedelta(days=3), AUCKLAND) == 2
    assert domain.sessions_within_a_week(sessions, monday + timedelta(days=7), AUCKLAND) == 1


def test_a_week_across_a_daylight_saving_change_is_seven_local_days() -> None:
    # Auckland moves its clocks forward on 27 September 2026: that week is 167 hours long.
    before = datetime(2026, 9, 24, 18, tzinfo=AUCKLAND)
    after = datetime(2026, 10, 1, 18, tzinfo=AUCKLAND)
    assert after.astimezone(UTC) - before.astimezone(UTC) == timedelta(days=7, hours=-1)
    assert domain.sessions_within_a_week([_session(before)], after, AUCKLAND) == 1
    # Sunday 23:30 in Auckland is Sunday morning in UTC: its local date is what counts.
    late = datetime(2026, 11, 29, 23, 30, tzinfo=AUCKLAND)
    assert domain.sessions_within_a_week([_session(late)], late + timedelta(days=7), AUCKLAND) == 1


@pytest.mark.parametrize(
    ("per_week", "agreed", "expected"), [(1, 1, False), (2, 1, False), (2, 2, True), (3, 2, False)]
)
def test_more_than_weekly_is_agreed_only_as_often_as_both_sides_agreed(
    per_week: int, agreed: int, expected: bool
) -> None:

    case_intake = sample.intake(random.Random(1), "c1")

    moment = datetime(2026, 11, 28, 22, 11, tzinfo=UTC)
    case = CaseRecord(
        case_id="c1", intake=case_intake, stage=Stage.ENTRY, opened_at=moment, updated_at=moment
    )
    facts = domain.boundaries_facts(
        case,
        start=moment,
        minutes=60,
        method=Method.PHONE,
        agreed_methods=[Method.PHONE],
        per_week=per_week,
        agreed_per_week=agreed,
        service_ends_on=None,
        consent_active=True,
        zone=AUCKLAND,
    )
    assert facts.both_agreed_more_often is expected
    assert facts.days_past_service_end == -1
