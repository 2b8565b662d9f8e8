"""Today's work lists, each sorted by urgency, and a supporter's coming sessions."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from contracts.overview import (
    AwaitingChoice,
    ConsentMissing,
    MeetingToConfirm,
    ScheduledSession,
    SupervisionDue,
    Today,
    ToReview,
    VettingLapse,
    Waiting,
)
from services.console.overview_state import (
    FoldedSession,
    FoldedSupervision,
    OverviewState,
    midnight,
    utc,
)

LAPSING_WITHIN = timedelta(days=30)
SUPERVISION_AHEAD = timedelta(days=7)


@dataclass
class _OpenWork:
    """What the cases not erased wait on, unsorted: one pass over every case."""

    waiting: list[tuple[datetime, str, str]] = field(default_factory=list)  # since, case, why
    awaiting: list[AwaitingChoice] = field(default_factory=list)
    to_review: list[ToReview] = field(default_factory=list)
    consents: list[ConsentMissing] = field(default_factory=list)
    meetings: list[MeetingToConfirm] = field(default_factory=list)


def today(kept: OverviewState, now: datetime, limit: int) -> Today:
    """Each list sorted by urgency; rows are made only for the first ``limit``."""
    now = utc(now)
    local_today = now.astimezone(kept.zone).date()
    monday = local_today - timedelta(days=local_today.weekday())
    work = _open_work(kept)
    sessions = _week_sessions(kept, monday)
    lapsing = kept.lapses.until(local_today + LAPSING_WITHIN)
    due = [
        (start, k, kept.supervision[k])
        for start, k in kept.unattended.until(now + SUPERVISION_AHEAD)
    ]
    counts = {
        "waiting": len(work.waiting),
        "matches_to_review": len(work.to_review),
        "awaiting_choice": len(work.awaiting),
        "consents_missing": len(work.consents),
        "meetings_to_confirm": len(work.meetings),
        "sessions_this_week": len(sessions),
        "vetting_lapsing": len(lapsing),
        "supervision_due": len(due),
    }
    return Today(
        org=kept.org,
        as_of=now,
        time_zone=kept.zone_name,
        week_starts=monday,
        counts=counts,
        waiting=[
            Waiting(case_id=k, constraint=why, since=since)
            for since, k, why in heapq.nsmallest(limit, work.waiting)
        ],
        matches_to_review=heapq.nsmallest(limit, work.to_review, key=lambda r: r.since),
        awaiting_choice=heapq.nsmallest(limit, work.awaiting, key=lambda p: p.first_hold_ends),
        consents_missing=heapq.nsmallest(limit, work.consents, key=lambda m: m.since),
        meetings_to_confirm=heapq.nsmallest(limit, work.meetings, key=lambda m: m.start),
        sessions_this_week=[
            _scheduled(k, s)
            for _, k, s in heapq.nsmallest(limit, sessions, key=lambda row: row[:2])
        ],
        vetting_lapsing=[
            VettingLapse(supporter_id=k, lapses_on=day, days_left=(day - local_today).days)
            for day, k in lapsing[:limit]
        ],
        supervision_due=[_supervision_due(k, sv, now) for _, k, sv in due[:limit]],
    )


def sessions_of(
    kept: OverviewState, supporter_id: str, now: datetime, days: int
) -> list[ScheduledSession]:
    """A supporter's sessions with clients from now to ``days`` ahead, soonest first."""
    start, end = utc(now), utc(now) + timedelta(days=days)
    found = sorted(
        (s.start, k, s)
        for day in kept.days_between(start, end)
        for k in day.sessions
        if (s := kept.sessions[k]).supporter_id == supporter_id
        and not s.cancelled
        and start <= s.start < end
        and not kept.erased(s.case_id)
    )
    return [_scheduled(k, s) for _, k, s in found]


def _open_work(kept: OverviewState) -> _OpenWork:
    work = _OpenWork()
    for case_id, case in kept.cases.items():
        if case.erased:
            continue
        if case.waiting:
            work.waiting.append((case.waiting[1], case_id, case.waiting[0]))
        if case.proposal:
            work.awaiting.append(case.proposal)
        if case.paused:
            work.to_review.append(case.paused)
        if case.consent:
            work.consents.append(case.consent)
        if case.meeting:
            work.meetings.append(case.meeting)
    return work


def _week_sessions(kept: OverviewState, monday: date) -> list[tuple[datetime, str, FoldedSession]]:
    """The sessions not cancelled in the week from ``monday``, in the organisation's zone."""
    zone = kept.zone
    week_start, week_end = midnight(monday, zone), midnight(monday + timedelta(days=7), zone)
    return [
        (s.start, session_id, s)
        for day in kept.days_between(week_start, week_end)
        for session_id in day.sessions
        if not (s := kept.sessions[session_id]).cancelled
        and week_start <= s.start < week_end
        and not kept.erased(s.case_id)
    ]


def _scheduled(session_id: str, session: FoldedSession) -> ScheduledSession:
    return ScheduledSession(
        case_id=session.case_id,
        supporter_id=session.supporter_id,
        session_id=session_id,
        kind=session.kind,
        start=session.start,
        outcome=session.outcome,
    )


def _supervision_due(session_id: str, due: FoldedSupervision, now: datetime) -> SupervisionDue:
    return SupervisionDue(
        supporter_id=due.supporter_id,
        session_id=session_id,
        kind=due.kind,
        start=due.start,
        overdue=due.start <= now,
    )
