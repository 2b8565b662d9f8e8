"""A case's first meeting and sessions: decisions on its schedule. Pure: no I/O.

Each function takes the schedule as it stands, the command or event, the context (policy
and time) and what the handler gathered (``Parties``, the boundaries' ``Verdicts``), and
returns the new schedule with its events (``Change``), nothing (``None``: no change), or
raises ``Refused`` naming each field and reason. Whatever binds the client to the supporter
(a meeting proposed, confirmed or moved, sessions booked, extended or agreed more often)
needs the supporter fit to support them now, or is refused with each eligibility rule that
refused (``rules.eligibility.<rule>``), and is refused while the match is paused; a booking
or a move is then judged by the boundaries ruleset, a refusal naming each rule that refused
(``rules.boundaries.<rule>``). How they are judged is in ``judging``; the helpers on the
schedule record they share, in ``schedule_record``.
"""

from __future__ import annotations

from datetime import timedelta

from contracts.records import CaseRecord, CaseSchedule, Session, SupporterRecord
from contracts.scheduling import (
    BookSession,
    CancelSession,
    ConfirmMeeting,
    ExtendService,
    FrequencyAgreed,
    GoAhead,
    ProposeMeetingTime,
    RecordAttendance,
    RecordFrequencyAgreement,
    RescheduleSession,
    ServiceEnded,
    ServiceExtended,
    SessionAttended,
    SessionCancelled,
    SessionRescheduled,
    SessionsResumed,
    SessionsScheduled,
)
from runtime.changes import Change, Refused
from services.scheduling import domain
from services.scheduling.domain import Context
from services.scheduling.judging import PAUSED, SUSPENDED, Parties, Verdicts, bindable, judge
from services.scheduling.schedule_record import (
    Decision,
    binding,
    changed,
    current_meeting,
    meeting_proposed,
    minutes_of,
    must_have,
    regular_sessions,
    replaced,
    required_meeting,
    room_for,
    session_booked,
    session_id,
)

# An active match ----------------------------------------------------------------------


def arrange(
    schedule: CaseSchedule | None, case_id: str, parties: Parties, ctx: Context
) -> Decision | None:
    """An active match: offer an initial meeting at the first time both are free."""
    # Only a first match, or a new supporter after the last one ended: a late or repeated
    # event about a supporter this case already had changes nothing.
    if schedule is not None and (
        schedule.status != "ended" or schedule.supporter_id == parties.supporter_id
    ):
        return None
    if parties.case is None or parties.supporter is None:
        return None
    earlier = schedule.earlier_sessions + len(schedule.sessions) if schedule else 0
    fresh = CaseSchedule(
        case_id=case_id,
        supporter_id=parties.supporter_id,
        status="arranging",
        earlier_sessions=earlier,
        updated_at=ctx.now,
    )
    meeting = _meeting_offer(fresh, parties.case, parties.supporter, ctx)
    if meeting is None:
        return Change(fresh, [])  # no common time: either side proposes one
    record = fresh.model_copy(update={"sessions": [meeting]})
    return Change(record, [meeting_proposed(record, meeting, "scheduling")])


def _meeting_offer(
    schedule: CaseSchedule, case: CaseRecord, supporter: SupporterRecord, ctx: Context
) -> Session | None:
    client = case.intake.client
    method = domain.meeting_method(
        client.methods, supporter.profile.methods, client.safety_concerns
    )
    start = domain.first_common_time(
        client.availability,
        supporter.profile.availability,
        ctx.policy.session_minutes,
        ctx.now + timedelta(hours=ctx.policy.lead_hours),
        ctx.zone,
    )
    if method is None or start is None:
        return None
    return Session(
        session_id=session_id(schedule),
        kind="initial_meeting",
        start=start,
        end=start + timedelta(minutes=ctx.policy.session_minutes),
        method=method,
        status="proposed",
    )


def stop(
    schedule: CaseSchedule | None,
    reason: str,
    status: str,
    ctx: Context,
    supporter_id: str | None = None,
) -> Decision | None:
    """Cancel every future session at once, with the reason (only with ``supporter_id``, if
    given: a late event about an earlier supporter changes nothing)."""
    if schedule is None or schedule.status == "ended":
        return None
    if supporter_id is not None and schedule.supporter_id != supporter_id:
        return None
    upcoming = {s.session_id for s in domain.future(schedule.sessions, ctx.now)}
    because = reason if status == "suspended" else None
    if because is not None and schedule.suspended_because == PAUSED:
        because = PAUSED  # only a coordinator's review lifts a pause, whatever else passes
    if not upcoming and schedule.status == status and schedule.suspended_because == because:
        return None
    sessions = [
        s.model_copy(update={"status": "cancelled", "cancel_reason": reason})
        if s.session_id in upcoming
        else s
        for s in schedule.sessions
    ]
    events = [
        SessionCancelled(case_id=schedule.case_id, session_id=s, reason=reason)
        for s in sorted(upcoming)
    ]
    record = changed(
        schedule, ctx, sorted(upcoming), sessions=sessions, status=status, suspended_because=because
    )
    return Change(record, events)


def resume(
    schedule: CaseSchedule | None,
    because: str,
    ctx: Context,
    *,
    supporter_id: str | None = None,
    still: str | None = None,
) -> Decision | None:
    """What suspended the schedule has passed: its future sessions cancelled while suspended
    are booked again (each is still judged by the boundaries when it is moved or a new one is
    booked). Unless another reason to suspend it holds now (``still``: consent not active when
    a paused match is resumed): then it stays suspended for that, and they come back when that
    passes. Only with ``supporter_id``, if given, as ``stop``."""
    if schedule is None or schedule.suspended_because != because:
        return None
    if supporter_id is not None and schedule.supporter_id != supporter_id:
        return None
    if still is not None:
        return Change(changed(schedule, ctx, [], suspended_because=still), [])
    back = [
        s.model_copy(update={"status": "booked", "cancel_reason": None})
        for s in schedule.sessions
        if s.status == "cancelled" and s.cancel_reason in SUSPENDED and s.start > ctx.now
    ]
    ids = {s.session_id for s in back}
    sessions = [
        next((b for b in back if b.session_id == s.session_id), s) for s in schedule.sessions
    ]
    status = "going_ahead" if schedule.service_ends_on else "arranging"
    record = changed(
        schedule, ctx, sorted(ids), sessions=sessions, status=status, suspended_because=None
    )
    return Change(record, [SessionsResumed(case_id=schedule.case_id, session_ids=sorted(ids))])


def end_service(schedule: CaseSchedule | None, ctx: Context) -> Decision | None:
    """The funded period is over (and was not extended): the service ends."""
    live = ("going_ahead", "suspended")
    if schedule is None or schedule.status not in live or schedule.service_ends_on is None:
        return None
    if ctx.today < schedule.service_ends_on:
        return None
    event = ServiceEnded(
        case_id=schedule.case_id,
        supporter_id=schedule.supporter_id,
        ended_on=schedule.service_ends_on,
    )
    return Change(changed(schedule, ctx, [], status="ended"), [event])


# The first meeting ----------------------------------------------------------------------


def confirm(
    schedule: CaseSchedule | None,
    command: ConfirmMeeting,
    ctx: Context,
    parties: Parties,
    verdicts: Verdicts,
) -> Decision:
    schedule = binding(schedule, parties, "arranging")
    meeting = required_meeting(schedule)
    if meeting.status != "proposed":
        raise Refused("case_id", f"the initial meeting is already {meeting.status}")
    confirmed = sorted({*meeting.confirmed_by, command.by})
    if len(confirmed) < 2:
        meeting = meeting.model_copy(update={"confirmed_by": confirmed})
        return Change(changed(schedule, ctx, [], sessions=replaced(schedule, meeting)), [])
    judge(
        schedule,
        ctx,
        parties,
        verdicts,
        start=meeting.start,
        minutes=minutes_of(meeting),
        method=meeting.method,
        moving=meeting.session_id,
    )
    meeting = meeting.model_copy(update={"confirmed_by": confirmed, "status": "booked"})
    record = changed(schedule, ctx, [meeting.session_id], sessions=replaced(schedule, meeting))
    return Change(record, [session_booked(schedule, meeting)])


def propose_time(
    schedule: CaseSchedule | None, command: ProposeMeetingTime, ctx: Context, parties: Parties
) -> Decision:
    schedule = binding(schedule, parties, "arranging")
    case, supporter = bindable(schedule, parties)
    if command.start <= ctx.now:
        raise Refused("start", "the meeting must be in the future")
    old = current_meeting(schedule)
    if old is not None and old.status == "completed":
        raise Refused("case_id", "the initial meeting has already taken place")
    minutes = minutes_of(old) if old else ctx.policy.session_minutes
    client = case.intake.client
    method = (
        old.method
        if old
        else domain.meeting_method(
            client.methods, supporter.profile.methods, client.safety_concerns
        )
    )
    if method is None:
        raise Refused("case_id", "the client and supporter share no safe method to meet by")
    start = command.start.astimezone(ctx.zone)
    meeting = Session(
        session_id=session_id(schedule),
        kind="initial_meeting",
        start=start,
        end=start + timedelta(minutes=minutes),
        method=method,
        status="proposed",
        confirmed_by=[command.by],
    )
    sessions = [*schedule.sessions, meeting]
    touched = []
    if old is not None and old.status in domain.LIVE:  # a missed meeting stays on record
        moved = old.model_copy(update={"status": "cancelled", "cancel_reason": "another_time"})
        sessions = [*replaced(schedule, moved), meeting]
        touched = [old.session_id]
    record = changed(schedule, ctx, touched, sessions=sessions)
    return Change(record, [meeting_proposed(record, meeting, command.by)])


def attendance(schedule: CaseSchedule | None, command: RecordAttendance, ctx: Context) -> Decision:
    schedule = must_have(schedule, "arranging", "going_ahead", "suspended", "ended")
    session = schedule.session(command.session_id)
    if session is None:
        raise Refused("session_id", "no such session in this case")
    if session.status != "booked":
        raise Refused("session_id", f"the session is {session.status}, not booked")
    if session.start > ctx.now:
        raise Refused("session_id", "the session has not started yet")
    done = session.model_copy(update={"status": command.outcome})
    record = changed(schedule, ctx, [done.session_id], sessions=replaced(schedule, done))
    event = SessionAttended(
        case_id=schedule.case_id, session_id=done.session_id, outcome=command.outcome
    )
    return Change(record, [event])


# Sessions ------------------------------------------------------------------------------


def go_ahead(
    schedule: CaseSchedule | None,
    command: GoAhead,
    ctx: Context,
    parties: Parties,
    verdicts: Verdicts,
) -> Decision:
    schedule = binding(schedule, parties, "arranging")
    meeting = required_meeting(schedule)
    if meeting.status != "completed":
        raise Refused("case_id", "the client decides after the initial meeting has taken place")
    method = command.method or meeting.method
    # The day after the last funded week's session: sessions run up to, not on, this day.
    ends_on = meeting.start.astimezone(ctx.zone).date() + timedelta(
        weeks=ctx.policy.funded_weeks, days=1
    )
    first = command.first_session or domain.next_week(meeting.start, ctx.zone)
    if first <= ctx.now:
        raise Refused("first_session", "the first session must be in the future")
    starts = domain.weekly(first, ends_on, ctx.zone)
    if not starts:
        raise Refused("case_id", "the funded service period has already ended")
    judge(
        schedule,
        ctx,
        parties,
        verdicts,
        start=starts[0],
        minutes=ctx.policy.session_minutes,
        method=method,
        service_ends_on=ends_on,
    )
    sessions = regular_sessions(schedule, starts, ctx.policy.session_minutes, method)
    record = changed(
        schedule,
        ctx,
        [s.session_id for s in sessions],
        status="going_ahead",
        method=method,
        sessions=[*schedule.sessions, *sessions],
        service_ends_on=ends_on,
    )
    local = starts[0].astimezone(ctx.zone)
    event = SessionsScheduled(
        case_id=schedule.case_id,
        supporter_id=schedule.supporter_id,
        session_ids=[s.session_id for s in sessions],
        starts=[s.start for s in sessions],
        weekday=f"{local:%A}",
        local_time=f"{local:%H:%M}",
        time_zone=ctx.policy.time_zone,
        service_ends_on=ends_on,
    )
    return Change(record, [event])


def agree_frequency(
    schedule: CaseSchedule | None,
    command: RecordFrequencyAgreement,
    ctx: Context,
    parties: Parties,
) -> Decision:
    schedule = binding(schedule, parties, "arranging", "going_ahead")
    record = changed(schedule, ctx, [], sessions_per_week_agreed=command.sessions_per_week)
    event = FrequencyAgreed(case_id=schedule.case_id, sessions_per_week=command.sessions_per_week)
    return Change(record, [event])


def book(
    schedule: CaseSchedule | None,
    command: BookSession,
    ctx: Context,
    parties: Parties,
    verdicts: Verdicts,
) -> Decision:
    # Booked while suspended for consent, so the boundaries' consent rule says why it is not.
    schedule = binding(schedule, parties, "going_ahead", "suspended")
    start = command.start.astimezone(ctx.zone)
    if start <= ctx.now:
        raise Refused("start", "a session must be booked in the future")
    judge(
        schedule,
        ctx,
        parties,
        verdicts,
        start=start,
        minutes=command.minutes,
        method=command.method,
        purposes=command.purposes,
    )
    if any(s.start == start for s in domain.future(schedule.sessions, ctx.now)):
        raise Refused("start", "a session already starts at that time")
    room_for(schedule, 1, "case_id")
    session = Session(
        session_id=session_id(schedule),
        kind="extra",
        start=start,
        end=start + timedelta(minutes=command.minutes),
        method=command.method,
        status="booked",
        purposes=command.purposes,
        notes=command.notes,
    )
    record = changed(schedule, ctx, [session.session_id], sessions=[*schedule.sessions, session])
    return Change(record, [session_booked(schedule, session)])


def reschedule(
    schedule: CaseSchedule | None,
    command: RescheduleSession,
    ctx: Context,
    parties: Parties,
    verdicts: Verdicts,
) -> Decision:
    schedule = binding(schedule, parties, "arranging", "going_ahead")
    session = schedule.session(command.session_id)
    if session is None or session.status != "booked":
        raise Refused("session_id", "no booked session with this id in this case")
    start = command.start.astimezone(ctx.zone)
    if start <= ctx.now:
        raise Refused("start", "a session can only move to a future time")
    judge(
        schedule,
        ctx,
        parties,
        verdicts,
        start=start,
        minutes=minutes_of(session),
        method=session.method,
        moving=session.session_id,
    )
    moved = session.model_copy(
        update={"start": start, "end": start + (session.end - session.start)}
    )
    record = changed(schedule, ctx, [moved.session_id], sessions=replaced(schedule, moved))
    event = SessionRescheduled(
        case_id=schedule.case_id, session_id=moved.session_id, start=moved.start, end=moved.end
    )
    return Change(record, [event])


def cancel(schedule: CaseSchedule | None, command: CancelSession, ctx: Context) -> Decision:
    schedule = must_have(schedule, "arranging", "going_ahead", "suspended")
    session = schedule.session(command.session_id)
    if session is None or session.status not in domain.LIVE:
        raise Refused("session_id", "no upcoming session with this id in this case")
    reason = f"cancelled_by_{command.by}"
    gone = session.model_copy(update={"status": "cancelled", "cancel_reason": reason})
    record = changed(schedule, ctx, [gone.session_id], sessions=replaced(schedule, gone))
    event = SessionCancelled(case_id=schedule.case_id, session_id=gone.session_id, reason=reason)
    return Change(record, [event])


def extend(
    schedule: CaseSchedule | None, command: ExtendService, ctx: Context, parties: Parties
) -> Decision:
    schedule = binding(schedule, parties, "going_ahead")
    assert schedule.service_ends_on is not None
    assert schedule.method is not None
    if command.until <= schedule.service_ends_on:
        raise Refused("until", f"the service already runs to {schedule.service_ends_on}")
    furthest = schedule.service_ends_on + timedelta(weeks=domain.MAX_EXTENSION_WEEKS)
    if command.until > furthest:
        raise Refused(
            "until",
            f"a service is extended by at most {domain.MAX_EXTENSION_WEEKS} "
            f"weeks at a time (to {furthest} at the latest)",
        )
    last = max(s.start for s in schedule.sessions if s.kind == "regular")
    starts = domain.weekly(domain.next_week(last, ctx.zone), command.until, ctx.zone)
    sessions = regular_sessions(schedule, starts, ctx.policy.session_minutes, schedule.method)
    room_for(schedule, len(sessions), "until")
    record = changed(
        schedule,
        ctx,
        [s.session_id for s in sessions],
        sessions=[*schedule.sessions, *sessions],
        service_ends_on=command.until,
    )
    event = ServiceExtended(
        case_id=schedule.case_id,
        service_ends_on=command.until,
        session_ids=[s.session_id for s in sessions],
        starts=[s.start for s in sessions],
    )
    return Change(record, [event])
