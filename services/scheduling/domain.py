"""Scheduling decisions in the organisation's time zone. No I/O.

Availability is weekly windows of local time; a weekly session keeps its local
time across a daylight-saving change (its UTC time moves, not the other way
round). Whether a booking may happen at all is the boundaries ruleset's call:
this module only builds the facts it judges.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from contracts.intake import Method, Slot, Weekday
from contracts.records import CaseRecord, Session
from contracts.rules import SessionFacts
from contracts.scheduling import SchedulingPolicy


@dataclass(frozen=True)
class Context:
    """The organisation's scheduling policy and the time now, in its zone."""

    org: str
    now: datetime
    policy: SchedulingPolicy

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.policy.time_zone)

    @property
    def today(self) -> date:
        return self.now.astimezone(self.zone).date()


WEEKDAYS = list(Weekday)  # Monday first, as date.weekday() counts
# An initial meeting is a conversation: not by text.
MEETING_METHODS = (Method.VIDEO, Method.PHONE, Method.IN_PERSON, Method.HOME_VISIT)
# What bounds a case's record: a funded service runs at most 104 weeks (the policy's
# limit), an extension adds at most as much, and a record holds at most this many sessions.
MAX_EXTENSION_WEEKS = 104
MAX_SESSIONS = 400
LIVE = ("proposed", "booked")
# Sessions that happen, or happened: they count towards how often the two meet.
MEETING = ("proposed", "booked", "completed")


def at(day: date, local: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, local, tzinfo=zone)


def common_windows(
    a: Sequence[Slot], b: Sequence[Slot], minutes: int
) -> list[tuple[Weekday, time]]:
    """Start times each week when both are free for ``minutes``, Monday first."""
    starts = []
    for x in a:
        for y in b:
            if x.day != y.day:
                continue
            start, end = max(x.start, y.start), min(x.end, y.end)
            if _minutes(end) - _minutes(start) >= minutes:
                starts.append((x.day, start))
    return sorted(set(starts), key=lambda s: (WEEKDAYS.index(s[0]), s[1]))


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


def first_common_time(
    a: Sequence[Slot],
    b: Sequence[Slot],
    minutes: int,
    after: datetime,
    zone: ZoneInfo,
) -> datetime | None:
    """The earliest start, no sooner than ``after``, when both are free for ``minutes``."""
    windows = common_windows(a, b, minutes)
    first_day = after.astimezone(zone).date()
    for offset in range(28):  # four weeks ahead, no further
        day = first_day + timedelta(days=offset)
        for weekday, start in windows:
            if WEEKDAYS.index(weekday) == day.weekday() and at(day, start, zone) >= after:
                return at(day, start, zone)
    return None


def meeting_method(
    client_methods: Iterable[Method], supporter_methods: Iterable[Method], safety: Iterable[str]
) -> Method | None:
    """The first of the client's methods (their order) the supporter offers and that is safe."""
    offered = set(supporter_methods)
    unsafe = {Method.HOME_VISIT} if "no_home_visits" in set(safety) else set()
    for method in client_methods:
        if method in offered and method in MEETING_METHODS and method not in unsafe:
            return method
    return None


def weekly(first: datetime, until: date, zone: ZoneInfo) -> list[datetime]:
    """Every week from ``first`` until (not on) ``until``, the day the service ends, at the
    same local wall-clock time."""
    local = first.astimezone(zone)
    starts = []
    day = local.date()
    while day < until:
        starts.append(at(day, local.time(), zone))
        day += timedelta(weeks=1)
    return starts


def next_week(moment: datetime, zone: ZoneInfo) -> datetime:
    """The same local wall-clock time a week later (adding 7 days to an instant would move it
    by an hour across a daylight-saving change)."""
    local = moment.astimezone(zone)
    return at(local.date() + timedelta(weeks=1), local.time(), zone)


def sessions_within_a_week(sessions: Iterable[Session], start: datetime, zone: ZoneInfo) -> int:
    """How often the two would meet: the most sessions (this one included) in any seven
    consecutive local days that include ``start``'s day. A rolling week, not a calendar one:
    a weekly rhythm is measured between sessions, whichever weekday a week begins on, so
    Sunday then Monday is more than weekly and the verdict never depends on today's weekday.
    Counted in local dates, so a daylight-saving change never makes a week 6 days 23 hours."""
    day = start.astimezone(zone).date()
    days = [s.start.astimezone(zone).date() for s in sessions if s.status in MEETING]
    windows = (day - timedelta(days=back) for back in range(7))
    return 1 + max(sum(first <= d < first + timedelta(days=7) for d in days) for first in windows)


def boundaries_facts(
    case: CaseRecord,
    *,
    start: datetime,
    minutes: int,
    method: Method,
    agreed_methods: Iterable[Method],
    per_week: int,
    agreed_per_week: int,
    service_ends_on: date | None,
    consent_active: bool,
    zone: ZoneInfo,
    purposes: Sequence[str] = ("peer_support",),
) -> SessionFacts:
    """What the boundaries ruleset judges about one booking."""
    day = start.astimezone(zone).date()
    return SessionFacts(
        case_id=case.case_id,
        sessions_per_week=per_week,
        both_agreed_more_often=agreed_per_week >= per_week > 1,
        duration_minutes=minutes,
        method=method.value,
        method_agreed=method in set(agreed_methods),
        safety_concerns=list(case.intake.client.safety_concerns),
        days_past_service_end=(day - service_ends_on).days if service_ends_on else -1,
        consent_active=consent_active,
        purposes=list(purposes),
    )


def future(sessions: Iterable[Session], now: datetime) -> list[Session]:
    return [s for s in sessions if s.status in LIVE and s.start > now]
