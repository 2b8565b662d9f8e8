"""What an organisation's overview keeps: its cases, sessions and supervision by id, indexed
by the UTC day each falls on, with lapse days and due supervision kept in order.

Only ids, stages, times and outcomes are kept: nothing here is personal. Every time is kept
in UTC: comparing times of one zone is several times faster.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Generic, Literal, TypeVar
from zoneinfo import ZoneInfo

from contracts.lists import CaseState
from contracts.overview import (
    AwaitingChoice,
    ConsentMissing,
    LiveRuleset,
    MeetingToConfirm,
    ToReview,
)
from contracts.scheduling import SchedulingPolicy


@dataclass
class FoldedCase:
    intake_at: datetime | None = None
    first_proposed_at: datetime | None = None
    activated_at: datetime | None = None
    supporter_id: str | None = None  # the latest matched supporter
    waiting: tuple[str, datetime] | None = None  # constraint, since
    waitlisted: list[list[datetime | None]] = field(default_factory=list)  # [start, end)
    proposal: AwaitingChoice | None = None
    paused: ToReview | None = None  # paused for review: the supporter became ineligible
    consent: ConsentMissing | None = None
    meeting: MeetingToConfirm | None = None
    erased: bool = False
    stage: str | None = None
    state: CaseState = "matching"
    state_since: datetime | None = None
    holders: tuple[str, ...] = ()  # supporters whose place this case holds now


@dataclass
class FoldedGroup:
    facilitator_id: str
    start: datetime
    end: datetime
    method: str
    capacity: int
    case_ids: list[str] = field(default_factory=list)


@dataclass
class FoldedSupporter:
    registered_at: datetime
    region: str
    caseload_cap: int
    suspended: bool = False
    eligible: bool | None = None
    lapses_on: date | None = None
    caseload: set[str] = field(default_factory=set)  # cases that chose them or hold a place


@dataclass
class FoldedSession:
    case_id: str
    supporter_id: str
    kind: str
    start: datetime
    cancelled: bool = False
    outcome: str | None = None


@dataclass
class FoldedSupervision:
    supporter_id: str
    kind: str
    start: datetime
    attended: bool = False


@dataclass
class Day:
    """What happened, or is due, on one UTC day: a month's figures read only its own days,
    whatever the organisation's time zone (a local month spans parts of two UTC months)."""

    intakes: list[str] = field(default_factory=list)
    first_proposals: list[str] = field(default_factory=list)
    activations: list[str] = field(default_factory=list)
    outcomes: list[tuple[datetime, str]] = field(default_factory=list)
    sessions: set[str] = field(default_factory=set)
    supervision: set[str] = field(default_factory=set)


When = TypeVar("When", date, datetime)


class Soonest(Generic[When]):
    """Ids ordered by a day or a time, the soonest first: those up to a horizon are found by
    bisection, not by reading all of them (20,000 supporters' lapse days)."""

    def __init__(self) -> None:
        self._when: dict[str, When] = {}
        self._order: list[tuple[When, str]] = []

    def put(self, key: str, when: When) -> None:
        self.drop(key)
        self._when[key] = when
        bisect.insort(self._order, (when, key))

    def drop(self, key: str) -> None:
        when = self._when.pop(key, None)
        if when is not None:
            del self._order[bisect.bisect_left(self._order, (when, key))]

    def until(self, horizon: When) -> list[tuple[When, str]]:
        return self._order[: bisect.bisect_right(self._order, (horizon, "\uffff"))]


class OverviewState:
    """One organisation's folded state; ``overview_events`` changes it, event by event."""

    def __init__(self, org: str) -> None:
        self.org = org
        self.zone_name = SchedulingPolicy().time_zone
        self.cases: dict[str, FoldedCase] = {}
        self.sessions: dict[str, FoldedSession] = {}
        self.supervision: dict[str, FoldedSupervision] = {}
        self.unattended: Soonest[datetime] = Soonest()  # supervision not (yet) attended
        self.lapses: Soonest[date] = Soonest()  # eligible supporters: the day each lapses
        self.waitlisted: set[str] = set()  # every case that ever waited
        self.days: defaultdict[date, Day] = defaultdict(Day)
        self.rulesets: list[LiveRuleset] = []
        self.supporters: dict[str, FoldedSupporter] = {}
        self.groups: dict[str, FoldedGroup] = {}
        # Whose name or contact details may have changed since the search last read them,
        # and who was erased since (``directory``): (person, id).
        self.directory_changed: set[tuple[Literal["client", "supporter"], str]] = set()
        self.directory_erased: set[tuple[Literal["client", "supporter"], str]] = set()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.zone_name)

    def case(self, case_id: str) -> FoldedCase:
        return self.cases.setdefault(case_id, FoldedCase())

    def on(self, at: datetime) -> Day:
        return self.days[at.date()]  # ``at`` in UTC

    def erased(self, case_id: str) -> bool:
        case = self.cases.get(case_id)
        return case is not None and case.erased

    def days_between(self, start: datetime, end: datetime) -> list[Day]:
        """The UTC days that hold any of [start, end)."""
        day, last = start.date(), end.date()  # both in UTC
        found = []
        while day <= last:
            if day in self.days:
                found.append(self.days[day])
            day += timedelta(days=1)
        return found


def midnight(day: date, zone: ZoneInfo) -> datetime:
    """The day's start in ``zone``, in UTC."""
    return utc(datetime.combine(day, time(0), zone))


def utc(at: datetime) -> datetime:
    return at.astimezone(UTC)
