"""A case's schedule record: finding, guarding and editing what it holds, and the events
that say so; shared by the decisions in ``sessions``. Pure: no I/O.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from contracts.intake import Method
from contracts.records import CaseSchedule, Session
from contracts.scheduling import InitialMeetingProposed, SessionBooked
from runtime.changes import Change, Refused
from services.scheduling import domain
from services.scheduling.domain import Context
from services.scheduling.judging import SUSPENDED, Parties, bindable

Decision = Change[CaseSchedule]


def room_for(schedule: CaseSchedule, more: int, field: str) -> None:
    """A case's record holds at most ``MAX_SESSIONS`` sessions (cancelled ones included)."""
    if len(schedule.sessions) + more > domain.MAX_SESSIONS:
        raise Refused(
            field,
            f"a case holds at most {domain.MAX_SESSIONS} sessions; "
            "close this service and open another",
        )


def changed(
    schedule: CaseSchedule, ctx: Context, touched: list[str], **update: object
) -> CaseSchedule:
    """The schedule with ``update``; ``touched`` names the sessions whose reminders change."""
    return schedule.model_copy(update={**update, "touched": touched, "updated_at": ctx.now})


def session_id(schedule: CaseSchedule, added: int = 0) -> str:
    """Sessions are numbered in the order they were added, across supporters; none is ever
    removed."""
    return f"{schedule.case_id}-{schedule.earlier_sessions + len(schedule.sessions) + added:03d}"


def must_have(schedule: CaseSchedule | None, *statuses: str) -> CaseSchedule:
    if schedule is None:
        raise Refused("case_id", "this case has no active match to schedule for")
    if schedule.status not in statuses:
        wanted = " or ".join(statuses)
        why = SUSPENDED.get(schedule.suspended_because or "")
        raise Refused(
            "case_id",
            f"the case's schedule is {schedule.status}, not {wanted}" + (f": {why}" if why else ""),
        )
    return schedule


def binding(schedule: CaseSchedule | None, parties: Parties, *statuses: str) -> CaseSchedule:
    """``must_have``, for a decision that binds the client to the supporter: first, whether it
    may (``bindable``), so a paused match or an unfit supporter is refused saying why."""
    if schedule is not None:
        bindable(schedule, parties)
    return must_have(schedule, *statuses)


def current_meeting(schedule: CaseSchedule) -> Session | None:
    """The latest initial meeting (earlier times are kept: cancelled, or missed)."""
    meetings = [s for s in schedule.sessions if s.kind == "initial_meeting"]
    return next((s for s in reversed(meetings) if s.status != "cancelled"), None)


def required_meeting(schedule: CaseSchedule) -> Session:
    meeting = current_meeting(schedule)
    if meeting is None:
        raise Refused("case_id", "no initial meeting has been proposed yet")
    return meeting


def replaced(schedule: CaseSchedule, session: Session) -> list[Session]:
    return [session if s.session_id == session.session_id else s for s in schedule.sessions]


def minutes_of(session: Session) -> int:
    return int((session.end - session.start).total_seconds() // 60)


def session_booked(schedule: CaseSchedule, session: Session) -> SessionBooked:
    return SessionBooked(
        case_id=schedule.case_id,
        supporter_id=schedule.supporter_id,
        session_id=session.session_id,
        kind=session.kind,
        start=session.start,
        end=session.end,
        method=session.method,
    )


def meeting_proposed(schedule: CaseSchedule, meeting: Session, by: str) -> InitialMeetingProposed:
    return InitialMeetingProposed(
        case_id=schedule.case_id,
        supporter_id=schedule.supporter_id,
        session_id=meeting.session_id,
        start=meeting.start,
        end=meeting.end,
        method=meeting.method,
        proposed_by=by,
    )


def regular_sessions(
    schedule: CaseSchedule, starts: list[datetime], minutes: int, method: Method
) -> list[Session]:
    return [
        Session(
            session_id=session_id(schedule, k),
            kind="regular",
            start=start,
            end=start + timedelta(minutes=minutes),
            method=method,
            status="booked",
        )
        for k, start in enumerate(starts)
    ]
