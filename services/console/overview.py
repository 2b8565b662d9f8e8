"""An organisation's work lists and monthly figures, folded from its events. Pure: events in
(each with when it was published), answers out, no I/O.

Events are the system of record and are never forgotten, so replaying an organisation's
stream from the start rebuilds all of this; ``readmodel`` keeps one following each
organisation. Only ids, stages, times and outcomes are kept: nothing here is personal.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from contracts.envelope import Event
from contracts.intake import ClientErased, IntakeReceived, SupporterErased
from contracts.matching import (
    ClientWaitlisted,
    MatchActivated,
    MatchEnded,
    MatchProposed,
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
    SessionThisWeek,
    SupervisionDue,
    Today,
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
    IntakeReceived, ClientErased, SupporterErased, ClientWaitlisted, MatchProposed,
    ProposalAccepted, ProposalsDeclined, ProposalsExpired, MatchActivated, MatchEnded,
    ServiceRefused, ConsentDecided, SupporterEligibilityDecided, RulesetPublished,
    InitialMeetingProposed, SessionBooked, SessionsScheduled, ServiceExtended,
    SessionRescheduled, SessionCancelled, SessionsResumed, SessionAttended,
    SupervisionScheduled, SupervisionAttended, SchedulingConfigured,
)  # fmt: skip


@dataclass
class _Case:
    intake_at: datetime | None = None
    first_proposed_at: datetime | None = None
    activated_at: datetime | None = None
    supporter_id: str | None = None  # the latest matched supporter
    waiting: tuple[str, datetime] | None = None  # constraint, since
    waitlisted: list[list[datetime | None]] = field(default_factory=list)  # [start, end)
    proposal: AwaitingChoice | None = None
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


class Overview:
    """One organisation's fold. ``apply`` each event in stream order."""

    def __init__(self, org: str) -> None:
        self.org = org
        self.zone_name = SchedulingPolicy().time_zone
        self.cases: dict[str, _Case] = {}
        self.sessions: dict[str, _Session] = {}
        self.supervision: dict[str, _Supervision] = {}
        self.lapses: dict[str, date] = {}  # eligible supporters: the day each lapses
        self.outcomes: list[tuple[datetime, str]] = []  # proposals answered, matches ended
        self.rulesets: list[LiveRuleset] = []

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.zone_name)

    def _case(self, case_id: str) -> _Case:
        return self.cases.setdefault(case_id, _Case())

    def apply(self, event: Event, at: datetime) -> None:  # noqa: C901 - one case per event
        match event:
            case IntakeReceived():
                case = self._case(event.case_id)
                case.intake_at = case.intake_at or at
            case ClientWaitlisted():
                case = self._case(event.case_id)
                since = case.waiting[1] if case.waiting else at
                case.waiting, case.proposal = (event.constraint, since), None
                if since == at:
                    case.waitlisted.append([at, None])
            case MatchProposed():
                case = self._case(event.case_id)
                self._stop_waiting(case, at)
                case.first_proposed_at = case.first_proposed_at or at
                holds = [Hold(supporter_id=p.supporter_id, held_until=p.held_until)
                         for p in event.proposals]  # fmt: skip
                case.proposal = AwaitingChoice(
                    case_id=event.case_id, round=event.round, proposed_at=at, holds=holds,
                    first_hold_ends=min(h.held_until for h in holds),
                ) if holds else None  # fmt: skip
            case ProposalAccepted():
                self._answered(event.case_id, at, "accepted")
            case ProposalsDeclined():
                self._answered(event.case_id, at, "declined")
            case ProposalsExpired():
                self._answered(event.case_id, at, "expired")
            case MatchActivated():
                case = self._case(event.case_id)
                case.activated_at = case.activated_at or at
                case.supporter_id = event.supporter_id
            case MatchEnded():
                if event.reason == "change_of_supporter":
                    self.outcomes.append((at, "changed_supporter"))
            case ServiceRefused():
                case = self._case(event.case_id)
                self._stop_waiting(case, at)
                case.proposal = case.consent = case.meeting = None
                self.outcomes.append((at, "dropped_out" if case.activated_at else "refused"))
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
                        case_id=event.case_id, stage=event.stage, status=event.status,
                        missing_party_ids=event.missing_party_ids, since=since,
                    )  # fmt: skip
            case InitialMeetingProposed():
                self._case(event.case_id).meeting = MeetingToConfirm(
                    case_id=event.case_id, supporter_id=event.supporter_id,
                    session_id=event.session_id, start=event.start,
                    proposed_by=event.proposed_by,
                )  # fmt: skip
            case SessionBooked():
                case = self._case(event.case_id)
                case.supporter_id = event.supporter_id
                if event.kind == "initial_meeting":
                    case.meeting = None
                self.sessions[event.session_id] = _Session(
                    event.case_id, event.supporter_id, event.kind, event.start
                )
            case SessionsScheduled():
                self._case(event.case_id).supporter_id = event.supporter_id
                self._book(event.case_id, event.session_ids, event.starts)
            case ServiceExtended():
                self._book(event.case_id, event.session_ids, event.starts)
            case SessionRescheduled():
                if event.session_id in self.sessions:
                    self.sessions[event.session_id].start = event.start
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
                self.supervision[event.session_id] = _Supervision(
                    event.supporter_id, event.kind, event.start
                )
            case SupervisionAttended():
                if event.session_id in self.supervision:
                    self.supervision[event.session_id].attended = True
            case SupporterEligibilityDecided():
                if event.eligible and event.lapses_on is not None:
                    self.lapses[event.supporter_id] = event.lapses_on
                else:
                    self.lapses.pop(event.supporter_id, None)
            case SupporterErased():
                self.lapses.pop(event.supporter_id, None)
                self.supervision = {k: s for k, s in self.supervision.items()
                                    if s.supporter_id != event.supporter_id}  # fmt: skip
            case RulesetPublished():
                self.rulesets.append(LiveRuleset(
                    ruleset=event.ruleset, revision=event.revision, published_at=at,
                    rolled_back_to=event.rolled_back_to,
                ))  # fmt: skip
            case SchedulingConfigured():
                self.zone_name = event.policy.time_zone

    def _stop_waiting(self, case: _Case, at: datetime) -> None:
        if case.waiting is not None and case.waitlisted:
            case.waitlisted[-1][1] = at
        case.waiting = None

    def _answered(self, case_id: str, at: datetime, outcome: str) -> None:
        self._case(case_id).proposal = None
        self.outcomes.append((at, outcome))

    def _book(self, case_id: str, session_ids: list[str], starts: list[datetime]) -> None:
        # 1.0 events named no starts: those sessions are left out of the lists.
        supporter_id = self._case(case_id).supporter_id or ""
        for session_id, start in zip(session_ids, starts, strict=False):
            self.sessions[session_id] = _Session(case_id, supporter_id, "regular", start)

    # Today ---------------------------------------------------------------------------

    def today(self, now: datetime, limit: int) -> Today:
        zone = self.zone
        local_today = now.astimezone(zone).date()
        monday = local_today - timedelta(days=local_today.weekday())
        week = (_midnight(monday, zone), _midnight(monday + timedelta(days=7), zone))
        live = [c for c in self.cases.values() if not c.erased]
        waiting = [
            Waiting(case_id=k, constraint=c.waiting[0], since=c.waiting[1])
            for k, c in self.cases.items()
            if c.waiting and not c.erased
        ]
        sessions = [
            SessionThisWeek(
                case_id=s.case_id,
                supporter_id=s.supporter_id,
                session_id=k,
                kind=s.kind,
                start=s.start,
                outcome=s.outcome,
            )
            for k, s in self.sessions.items()
            if not s.cancelled and week[0] <= s.start < week[1] and not self._erased(s.case_id)
        ]
        lapsing = [
            VettingLapse(supporter_id=k, lapses_on=day, days_left=(day - local_today).days)
            for k, day in self.lapses.items()
            if day <= local_today + LAPSING_WITHIN
        ]
        supervision = [
            SupervisionDue(
                supporter_id=s.supporter_id,
                session_id=k,
                kind=s.kind,
                start=s.start,
                overdue=s.start <= now,
            )
            for k, s in self.supervision.items()
            if not s.attended and s.start <= now + SUPERVISION_AHEAD
        ]
        awaiting = [c.proposal for c in live if c.proposal]
        consents = [c.consent for c in live if c.consent]
        meetings = [c.meeting for c in live if c.meeting]
        waiting.sort(key=lambda w: w.since)
        awaiting.sort(key=lambda p: p.first_hold_ends)
        consents.sort(key=lambda m: m.since)
        meetings.sort(key=lambda m: m.start)
        sessions.sort(key=lambda s: s.start)
        lapsing.sort(key=lambda v: v.lapses_on)
        supervision.sort(key=lambda s: s.start)
        lists: dict[str, Sequence[BaseModel]] = {
            "waiting": waiting, "awaiting_choice": awaiting, "consents_missing": consents,
            "meetings_to_confirm": meetings, "sessions_this_week": sessions,
            "vetting_lapsing": lapsing, "supervision_due": supervision,
        }  # fmt: skip
        return Today.model_validate({
            "org": self.org, "as_of": now, "time_zone": self.zone_name, "week_starts": monday,
            "counts": {name: len(rows) for name, rows in lists.items()},
            **{name: rows[:limit] for name, rows in lists.items()},
        })  # fmt: skip

    def _erased(self, case_id: str) -> bool:
        case = self.cases.get(case_id)
        return case is not None and case.erased

    # A month ---------------------------------------------------------------------------

    def month(self, month: str, now: datetime) -> MonthReport:
        zone = self.zone
        first = date.fromisoformat(f"{month}-01")
        start = _midnight(first, zone)
        end = _midnight((first + timedelta(days=32)).replace(day=1), zone)

        def within(at: datetime | None) -> bool:
            return at is not None and start <= at < end

        cases = list(self.cases.values())
        outcomes = [kind for at, kind in self.outcomes if within(at)]
        accepted, declined, expired = (outcomes.count(k)
                                       for k in ("accepted", "declined", "expired"))  # fmt: skip
        sessions = [s for s in self.sessions.values() if within(s.start) and not s.cancelled]
        supervision = [s for s in self.supervision.values() if within(s.start) and s.start <= now]
        attended = sum(s.attended for s in supervision)
        at_end = min(end, now)
        ages = [(at_end - since).total_seconds() / 86400 for since in _waiting_at(cases, at_end)]
        return MonthReport(
            org=self.org, month=month, time_zone=self.zone_name,
            intakes=sum(within(c.intake_at) for c in cases),
            intake_to_first_proposal=_durations(
                c.first_proposed_at - c.intake_at for c in cases
                if c.intake_at and c.first_proposed_at and within(c.first_proposed_at)),
            intake_to_active_match=_durations(
                c.activated_at - c.intake_at for c in cases
                if c.intake_at and c.activated_at and within(c.activated_at)),
            proposals_accepted=accepted, proposals_declined=declined,
            proposals_expired=expired,
            acceptance_rate=_ratio(accepted, accepted + declined + expired),
            changes_of_supporter=outcomes.count("changed_supporter"),
            refusals=outcomes.count("refused"), drop_outs=outcomes.count("dropped_out"),
            sessions_booked=len(sessions),
            sessions_held=sum(s.outcome == "completed" for s in sessions),
            client_no_shows=sum(s.outcome == "client_no_show" for s in sessions),
            supporter_no_shows=sum(s.outcome == "supporter_no_show" for s in sessions),
            supervision_due=len(supervision), supervision_attended=attended,
            supervision_compliance=_ratio(attended, len(supervision)),
            waitlist_size=len(ages),
            waitlist_median_days=round(statistics.median(ages), 1) if ages else None,
            waitlist_oldest_days=round(max(ages), 1) if ages else None,
        )  # fmt: skip

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
        return RulesHistory(org=self.org, live=sorted(live.values(),
                                                      key=lambda r: r.ruleset.kind.value),
                            history=newest)  # fmt: skip


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), zone)


def _waiting_at(cases: Iterable[_Case], at: datetime) -> list[datetime]:
    """When each client waiting at ``at`` began to wait."""
    return [start for c in cases for start, end in c.waitlisted
            if start is not None and start <= at and (end is None or end > at)]  # fmt: skip


def _durations(spans: Iterable[timedelta]) -> Durations:
    hours = sorted(span.total_seconds() / 3600 for span in spans)
    if not hours:
        return Durations(cases=0)
    p90 = hours[min(len(hours) - 1, max(0, -(-9 * len(hours) // 10) - 1))]  # nearest rank
    # Four places: a proposal within a second still reads as more than nothing.
    return Durations(cases=len(hours), median_hours=round(statistics.median(hours), 4),
                     p90_hours=round(p90, 4))  # fmt: skip


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
