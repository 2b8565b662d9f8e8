"""An organisation's work lists and monthly figures, folded from its events. Pure: events in
(each with when it was published), answers out, no I/O.

Events are the system of record and are never forgotten, so replaying an organisation's
stream from the start rebuilds all of this; ``readmodel`` keeps one following each
organisation. Only ids, stages, times and outcomes are kept: nothing here is personal.
"""

from __future__ import annotations

import bisect
import csv
import heapq
import io
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

from contracts.envelope import Event
from contracts.intake import ClientErased, IntakeReceived, SupporterErased
from contracts.matching import (
    ClientWaitlisted,
    MatchActivated,
    MatchEnded,
    MatchPaused,
    MatchProposed,
    MatchResumed,
    ProposalAccepted,
    ProposalsDeclined,
    ProposalsExpired,
    ServiceRefused,
)
from contracts.overview import (
    AwaitingChoice,
    ConsentMissing,
    Durations,
    Hold,
    LiveRuleset,
    MeetingToConfirm,
    MonthReport,
    RulesHistory,
    ScheduledSession,
    SupervisionDue,
    Today,
    ToReview,
    VettingLapse,
    Waiting,
)
from contracts.rules import ConsentDecided, RulesetPublished, SupporterEligibilityDecided
from contracts.scheduling import (
    InitialMeetingProposed,
    SchedulingConfigured,
    SchedulingPolicy,
    ServiceExtended,
    SessionAttended,
    SessionBooked,
    SessionCancelled,
    SessionRescheduled,
    SessionsResumed,
    SessionsScheduled,
    SupervisionAttended,
    SupervisionScheduled,
)

LAPSING_WITHIN = timedelta(days=30)
SUPERVISION_AHEAD = timedelta(days=7)

# The events the fold reads; the others are skipped unread (``readmodel`` checks the
# subject's type before parsing).
FOLDED: tuple[type[Event], ...] = (
    IntakeReceived,
    ClientErased,
    SupporterErased,
    ClientWaitlisted,
    MatchProposed,
    ProposalAccepted,
    ProposalsDeclined,
    ProposalsExpired,
    MatchActivated,
    MatchEnded,
    MatchPaused,
    MatchResumed,
    ServiceRefused,
    ConsentDecided,
    SupporterEligibilityDecided,
    RulesetPublished,
    InitialMeetingProposed,
    SessionBooked,
    SessionsScheduled,
    ServiceExtended,
    SessionRescheduled,
    SessionCancelled,
    SessionsResumed,
    SessionAttended,
    SupervisionScheduled,
    SupervisionAttended,
    SchedulingConfigured,
)


@dataclass
class _Case:
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


@dataclass
class _Session:
    case_id: str
    supporter_id: str
    kind: str
    start: datetime
    cancelled: bool = False
    outcome: str | None = None


@dataclass
class _Supervision:
    supporter_id: str
    kind: str
    start: datetime
    attended: bool = False


@dataclass
class _Day:
    """What happened, or is due, on one UTC day: a month's figures read only its own days,
    whatever the organisation's time zone (a local month spans parts of two UTC months)."""

    intakes: list[str] = field(default_factory=list)
    first_proposals: list[str] = field(default_factory=list)
    activations: list[str] = field(default_factory=list)
    outcomes: list[tuple[datetime, str]] = field(default_factory=list)
    sessions: set[str] = field(default_factory=set)
    supervision: set[str] = field(default_factory=set)


When = TypeVar("When", date, datetime)


class _Soonest(Generic[When]):
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


class Overview:
    """One organisation's fold. ``apply`` each event in stream order."""

    def __init__(self, org: str) -> None:
        self.org = org
        self.zone_name = SchedulingPolicy().time_zone
        self.cases: dict[str, _Case] = {}
        self.sessions: dict[str, _Session] = {}
        self.supervision: dict[str, _Supervision] = {}
        self.unattended: _Soonest[datetime] = _Soonest()  # supervision not (yet) attended
        self.lapses: _Soonest[date] = _Soonest()  # eligible supporters: the day each lapses
        self.waitlisted: set[str] = set()  # every case that ever waited
        self.days: defaultdict[date, _Day] = defaultdict(_Day)
        self.rulesets: list[LiveRuleset] = []

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.zone_name)

    def _case(self, case_id: str) -> _Case:
        return self.cases.setdefault(case_id, _Case())

    def _on(self, at: datetime) -> _Day:
        return self.days[at.date()]  # ``at`` in UTC

    def apply(self, event: Event, at: datetime) -> None:  # noqa: C901 - one case per event
        # Every time is kept in UTC: comparing times of one zone is several times faster.
        at = _utc(at)
        match event:
            case IntakeReceived():
                case = self._case(event.case_id)
                if case.intake_at is None:
                    case.intake_at = at
                    self._on(at).intakes.append(event.case_id)
            case ClientWaitlisted():
                case = self._case(event.case_id)
                since = case.waiting[1] if case.waiting else at
                case.waiting, case.proposal = (event.constraint, since), None
                if since == at:
                    case.waitlisted.append([at, None])
                    self.waitlisted.add(event.case_id)
            case MatchProposed():
                case = self._case(event.case_id)
                self._stop_waiting(case, at)
                if case.first_proposed_at is None:
                    case.first_proposed_at = at
                    self._on(at).first_proposals.append(event.case_id)
                holds = [
                    Hold(supporter_id=p.supporter_id, held_until=_utc(p.held_until))
                    for p in event.proposals
                ]
                case.proposal = (
                    AwaitingChoice(
                        case_id=event.case_id,
                        round=event.round,
                        proposed_at=at,
                        holds=holds,
                        first_hold_ends=min(h.held_until for h in holds),
                    )
                    if holds
                    else None
                )
            case ProposalAccepted():
                self._answered(event.case_id, at, "accepted")
            case ProposalsDeclined():
                self._answered(event.case_id, at, "declined")
            case ProposalsExpired():
                self._answered(event.case_id, at, "expired")
            case MatchActivated():
                case = self._case(event.case_id)
                if case.activated_at is None:
                    case.activated_at = at
                    self._on(at).activations.append(event.case_id)
                case.supporter_id = event.supporter_id
            case MatchPaused():
                self._case(event.case_id).paused = ToReview(
                    case_id=event.case_id, supporter_id=event.supporter_id, since=at
                )
            case MatchResumed():
                self._case(event.case_id).paused = None
            case MatchEnded():
                self._case(event.case_id).paused = None
                if event.reason == "change_of_supporter":
                    self._on(at).outcomes.append((at, "changed_supporter"))
            case ServiceRefused():
                case = self._case(event.case_id)
                self._stop_waiting(case, at)
                case.proposal = case.consent = case.meeting = case.paused = None
                outcome = "dropped_out" if case.activated_at else "refused"
                self._on(at).outcomes.append((at, outcome))
            case ClientErased():
                case = self._case(event.case_id)
                self._stop_waiting(case, at)
                case.proposal = case.consent = case.meeting = None
                case.erased = True
            case ConsentDecided():
                case = self._case(event.case_id)
                if event.status == "active":
                    case.consent = None
                else:
                    since = case.consent.since if case.consent else at
                    case.consent = ConsentMissing(
                        case_id=event.case_id,
                        stage=event.stage,
                        status=event.status,
                        missing_party_ids=event.missing_party_ids,
                        since=since,
                    )
            case InitialMeetingProposed():
                self._case(event.case_id).meeting = MeetingToConfirm(
                    case_id=event.case_id,
                    supporter_id=event.supporter_id,
                    session_id=event.session_id,
                    start=_utc(event.start),
                    proposed_by=event.proposed_by,
                )
            case SessionBooked():
                case = self._case(event.case_id)
                case.supporter_id = event.supporter_id
                if event.kind == "initial_meeting":
                    case.meeting = None
                self._place(
                    event.session_id,
                    _Session(event.case_id, event.supporter_id, event.kind, _utc(event.start)),
                )
            case SessionsScheduled():
                self._case(event.case_id).supporter_id = event.supporter_id
                self._book(event.case_id, event.session_ids, event.starts)
            case ServiceExtended():
                self._book(event.case_id, event.session_ids, event.starts)
            case SessionRescheduled():
                if event.session_id in self.sessions:
                    moved = self.sessions[event.session_id]
                    self._place(event.session_id, replace(moved, start=_utc(event.start)))
            case SessionCancelled():
                if event.session_id in self.sessions:
                    self.sessions[event.session_id].cancelled = True
                case = self._case(event.case_id)
                if case.meeting and case.meeting.session_id == event.session_id:
                    case.meeting = None
            case SessionsResumed():
                for session_id in event.session_ids:
                    if session_id in self.sessions:
                        self.sessions[session_id].cancelled = False
            case SessionAttended():
                if event.session_id in self.sessions:
                    self.sessions[event.session_id].outcome = event.outcome
            case SupervisionScheduled():
                start = _utc(event.start)
                self.supervision[event.session_id] = _Supervision(
                    event.supporter_id, event.kind, start
                )
                self._on(start).supervision.add(event.session_id)
                self.unattended.put(event.session_id, start)
            case SupervisionAttended():
                if event.session_id in self.supervision:
                    self.supervision[event.session_id].attended = True
                    self.unattended.drop(event.session_id)
            case SupporterEligibilityDecided():
                if event.eligible and event.lapses_on is not None:
                    self.lapses.put(event.supporter_id, event.lapses_on)
                else:
                    self.lapses.drop(event.supporter_id)
            case SupporterErased():
                self.lapses.drop(event.supporter_id)
                for session_id, gone in list(self.supervision.items()):
                    if gone.supporter_id == event.supporter_id:
                        del self.supervision[session_id]
                        self.unattended.drop(session_id)
                        self._on(gone.start).supervision.discard(session_id)
            case RulesetPublished():
                self.rulesets.append(
                    LiveRuleset(
                        ruleset=event.ruleset,
                        revision=event.revision,
                        published_at=at,
                        rolled_back_to=event.rolled_back_to,
                    )
                )
            case SchedulingConfigured():
                self.zone_name = event.policy.time_zone

    def _stop_waiting(self, case: _Case, at: datetime) -> None:
        if case.waiting is not None and case.waitlisted:
            case.waitlisted[-1][1] = at
        case.waiting = None

    def _answered(self, case_id: str, at: datetime, outcome: str) -> None:
        self._case(case_id).proposal = None
        self._on(at).outcomes.append((at, outcome))

    def _book(self, case_id: str, session_ids: list[str], starts: list[datetime]) -> None:
        # 1.0 events named no starts: those sessions are left out of the lists.
        supporter_id = self._case(case_id).supporter_id or ""
        for session_id, start in zip(session_ids, starts, strict=False):
            self._place(session_id, _Session(case_id, supporter_id, "regular", _utc(start)))

    def _place(self, session_id: str, session: _Session) -> None:
        """A session, new or moved, on the day it starts."""
        earlier = self.sessions.get(session_id)
        if earlier is not None:
            self._on(earlier.start).sessions.discard(session_id)
        self.sessions[session_id] = session
        self._on(session.start).sessions.add(session_id)

    # Today ---------------------------------------------------------------------------

    def today(self, now: datetime, limit: int) -> Today:
        """Each list sorted by urgency; rows are made only for the first ``limit``."""
        zone, now = self.zone, _utc(now)
        local_today = now.astimezone(zone).date()
        monday = local_today - timedelta(days=local_today.weekday())
        week_start = _midnight(monday, zone)
        week_end = _midnight(monday + timedelta(days=7), zone)
        waiting: list[tuple[datetime, str, str]] = []
        awaiting: list[AwaitingChoice] = []
        to_review: list[ToReview] = []
        consents: list[ConsentMissing] = []
        meetings: list[MeetingToConfirm] = []
        for case_id, case in self.cases.items():
            if case.erased:
                continue
            if case.waiting:
                waiting.append((case.waiting[1], case_id, case.waiting[0]))
            if case.proposal:
                awaiting.append(case.proposal)
            if case.paused:
                to_review.append(case.paused)
            if case.consent:
                consents.append(case.consent)
            if case.meeting:
                meetings.append(case.meeting)
        sessions = [
            (s.start, session_id, s)
            for day in self._days_between(week_start, week_end)
            for session_id in day.sessions
            if not (s := self.sessions[session_id]).cancelled
            and week_start <= s.start < week_end
            and not self._erased(s.case_id)
        ]
        horizon = local_today + LAPSING_WITHIN
        lapsing = self.lapses.until(horizon)
        due = [
            (start, k, self.supervision[k])
            for start, k in self.unattended.until(now + SUPERVISION_AHEAD)
        ]
        counts = {
            "waiting": len(waiting),
            "matches_to_review": len(to_review),
            "awaiting_choice": len(awaiting),
            "consents_missing": len(consents),
            "meetings_to_confirm": len(meetings),
            "sessions_this_week": len(sessions),
            "vetting_lapsing": len(lapsing),
            "supervision_due": len(due),
        }
        return Today(
            org=self.org,
            as_of=now,
            time_zone=self.zone_name,
            week_starts=monday,
            counts=counts,
            waiting=[
                Waiting(case_id=k, constraint=why, since=since)
                for since, k, why in heapq.nsmallest(limit, waiting)
            ],
            matches_to_review=heapq.nsmallest(limit, to_review, key=lambda r: r.since),
            awaiting_choice=heapq.nsmallest(limit, awaiting, key=lambda p: p.first_hold_ends),
            consents_missing=heapq.nsmallest(limit, consents, key=lambda m: m.since),
            meetings_to_confirm=heapq.nsmallest(limit, meetings, key=lambda m: m.start),
            sessions_this_week=[
                ScheduledSession(
                    case_id=s.case_id,
                    supporter_id=s.supporter_id,
                    session_id=k,
                    kind=s.kind,
                    start=s.start,
                    outcome=s.outcome,
                )
                for _, k, s in heapq.nsmallest(limit, sessions, key=lambda row: row[:2])
            ],
            vetting_lapsing=[
                VettingLapse(supporter_id=k, lapses_on=day, days_left=(day - local_today).days)
                for day, k in lapsing[:limit]
            ],
            supervision_due=[
                SupervisionDue(
                    supporter_id=sv.supporter_id,
                    session_id=k,
                    kind=sv.kind,
                    start=sv.start,
                    overdue=sv.start <= now,
                )
                for _, k, sv in due[:limit]
            ],
        )

    def sessions_of(self, supporter_id: str, now: datetime, days: int) -> list[ScheduledSession]:
        """A supporter's sessions with clients from now to ``days`` ahead, soonest first."""
        start, end = _utc(now), _utc(now) + timedelta(days=days)
        found = sorted(
            (s.start, k, s)
            for day in self._days_between(start, end)
            for k in day.sessions
            if (s := self.sessions[k]).supporter_id == supporter_id
            and not s.cancelled
            and start <= s.start < end
            and not self._erased(s.case_id)
        )
        return [
            ScheduledSession(
                case_id=s.case_id,
                supporter_id=s.supporter_id,
                session_id=k,
                kind=s.kind,
                start=s.start,
                outcome=s.outcome,
            )
            for _, k, s in found
        ]

    def _erased(self, case_id: str) -> bool:
        case = self.cases.get(case_id)
        return case is not None and case.erased

    def _days_between(self, start: datetime, end: datetime) -> list[_Day]:
        """The UTC days that hold any of [start, end)."""
        day, last = start.date(), end.date()  # both in UTC
        found = []
        while day <= last:
            if day in self.days:
                found.append(self.days[day])
            day += timedelta(days=1)
        return found

    # A month ---------------------------------------------------------------------------

    def month(self, month: str, now: datetime) -> MonthReport:
        zone, now = self.zone, _utc(now)
        first = date.fromisoformat(f"{month}-01")
        start = _midnight(first, zone)
        end = _midnight((first + timedelta(days=32)).replace(day=1), zone)

        def within(at: datetime | None) -> bool:
            return at is not None and start <= at < end

        days = self._days_between(start, end)
        cases = self.cases
        outcomes = [kind for day in days for at, kind in day.outcomes if within(at)]
        accepted, declined, expired = (
            outcomes.count(k) for k in ("accepted", "declined", "expired")
        )
        sessions = [
            s
            for day in days
            for k in day.sessions
            if within((s := self.sessions[k]).start) and not s.cancelled
        ]
        supervision = [
            sv
            for day in days
            for k in day.supervision
            if within((sv := self.supervision[k]).start) and sv.start <= now
        ]
        attended = sum(sv.attended for sv in supervision)
        at_end = min(end, now)
        waited = (self.cases[k] for k in self.waitlisted)
        ages = [(at_end - since).total_seconds() / 86400 for since in _waiting_at(waited, at_end)]
        proposed = [cases[k] for day in days for k in day.first_proposals]
        activated = [cases[k] for day in days for k in day.activations]
        return MonthReport(
            org=self.org,
            month=month,
            time_zone=self.zone_name,
            intakes=sum(within(cases[k].intake_at) for day in days for k in day.intakes),
            intake_to_first_proposal=_durations(
                c.first_proposed_at - c.intake_at
                for c in proposed
                if c.intake_at and c.first_proposed_at and within(c.first_proposed_at)
            ),
            intake_to_active_match=_durations(
                c.activated_at - c.intake_at
                for c in activated
                if c.intake_at and c.activated_at and within(c.activated_at)
            ),
            proposals_accepted=accepted,
            proposals_declined=declined,
            proposals_expired=expired,
            acceptance_rate=_ratio(accepted, accepted + declined + expired),
            changes_of_supporter=outcomes.count("changed_supporter"),
            refusals=outcomes.count("refused"),
            drop_outs=outcomes.count("dropped_out"),
            sessions_booked=len(sessions),
            sessions_held=sum(s.outcome == "completed" for s in sessions),
            client_no_shows=sum(s.outcome == "client_no_show" for s in sessions),
            supporter_no_shows=sum(s.outcome == "supporter_no_show" for s in sessions),
            supervision_due=len(supervision),
            supervision_attended=attended,
            supervision_compliance=_ratio(attended, len(supervision)),
            waitlist_size=len(ages),
            waitlist_median_days=round(statistics.median(ages), 1) if ages else None,
            waitlist_oldest_days=round(max(ages), 1) if ages else None,
        )

    def months(self, now: datetime) -> list[str]:
        """Every month from the first intake to now, oldest first."""
        zone = self.zone
        firsts = [c.intake_at for c in self.cases.values() if c.intake_at]
        current = now.astimezone(zone).date().replace(day=1)
        month = min(firsts).astimezone(zone).date().replace(day=1) if firsts else current
        found = []
        while month <= current:
            found.append(f"{month:%Y-%m}")
            month = (month + timedelta(days=32)).replace(day=1)
        return found

    # Rules -----------------------------------------------------------------------------

    def rules(self) -> RulesHistory:
        newest = sorted(self.rulesets, key=lambda r: r.published_at, reverse=True)
        live: dict[str, LiveRuleset] = {}
        for published in newest:
            live.setdefault(published.ruleset.kind.value, published)
        return RulesHistory(
            org=self.org,
            live=sorted(live.values(), key=lambda r: r.ruleset.kind.value),
            history=newest,
        )


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    """The day's start in ``zone``, in UTC."""
    return _utc(datetime.combine(day, time(0), zone))


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC)


def _waiting_at(cases: Iterable[_Case], at: datetime) -> list[datetime]:
    """When each client waiting at ``at`` began to wait."""
    return [
        start
        for c in cases
        for start, end in c.waitlisted
        if start is not None and start <= at and (end is None or end > at)
    ]


def _durations(spans: Iterable[timedelta]) -> Durations:
    hours = sorted(span.total_seconds() / 3600 for span in spans)
    if not hours:
        return Durations(cases=0)
    p90 = hours[min(len(hours) - 1, max(0, -(-9 * len(hours) // 10) - 1))]  # nearest rank
    # Four places: a proposal within a second still reads as more than nothing.
    return Durations(
        cases=len(hours), median_hours=round(statistics.median(hours), 4), p90_hours=round(p90, 4)
    )


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def as_csv(reports: Sequence[MonthReport]) -> str:
    """One row a month; each duration as its cases, median and p90 columns."""
    rows = []
    for report in reports:
        row: dict[str, object] = {}
        for name, value in report.model_dump(mode="json").items():
            if isinstance(value, dict):
                row.update({f"{name}_{part}": v for part, v in value.items()})
            else:
                row[name] = value
        rows.append(row)
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()
