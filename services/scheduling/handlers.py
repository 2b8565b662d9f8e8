"""Scheduling's handlers: an active match in, an initial meeting, then sessions within bounds.

Every change to a case's schedule (or a supporter's supervision, or a group)
is committed with its outbox by a ``Changer``. Every booking and move is first
judged by the rules service's boundaries ruleset; a refusal names each rule
that refused (``rules.boundaries.<rule>``) with its reason. Reminders are set
and cleared as message schedules when a change's outbox is flushed.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from contracts.intake import Method, RecordVettingEvidence, Supervision
from contracts.matching import MatchActivated, MatchEnded, ServiceRefused
from contracts.records import (
    CaseRecord,
    CaseSchedule,
    GroupSession,
    Record,
    SchedulingSettings,
    Session,
    SupervisionSession,
    SupporterRecord,
    SupporterSupervision,
)
from contracts.replies import CommandAccepted, CommandRejected, FieldError
from contracts.rules import (
    ConsentDecided,
    EvaluateRules,
    Kind,
    SessionFacts,
    SupporterEligibilityDecided,
)
from contracts.scheduling import (
    SERVICE,
    BookSession,
    CancelSession,
    ConfigureScheduling,
    ConfirmMeeting,
    CreateGroupSession,
    ExtendService,
    FrequencyAgreed,
    GoAhead,
    GroupParticipantJoined,
    GroupSessionCreated,
    InitialMeetingProposed,
    JoinGroupSession,
    ProposeMeetingTime,
    RecordAttendance,
    RecordFrequencyAgreement,
    RecordSupervisionAttendance,
    RescheduleSession,
    SchedulingConfigured,
    SchedulingPolicy,
    ServiceEnded,
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
from runtime import periodic
from runtime.asking import Asking
from runtime.changes import Change, Refused
from runtime.clock import Clock
from runtime.dispatch import Handlers, Meta, Received
from runtime.logging import get_logger
from runtime.settings import Settings
from runtime.state import SETTINGS_KEY, DecisionStore, Policies, RecordReader
from runtime.store import Changer, RecordStore, Stored
from services.scheduling import domain
from services.scheduling.adapters import NAMESPACE, Reminders

log = get_logger(__name__)

R = TypeVar("R", bound=Record)
# Commands about one case's schedule.
CaseCommand = (
    ConfirmMeeting | ProposeMeetingTime | RecordAttendance | GoAhead | RecordFrequencyAgreement
    | BookSession | RescheduleSession | CancelSession | ExtendService
)  # fmt: skip
C = TypeVar("C", bound=CaseCommand)

Reply = CommandAccepted | CommandRejected
SUPERVISION_HOUR = 10  # local time of scheduled supervision and debriefs


@dataclass(frozen=True)
class SchedulingDeps:
    settings_store: Changer[SchedulingSettings]
    schedules: Changer[CaseSchedule]
    supervision: Changer[SupporterSupervision]
    groups: Changer[GroupSession]
    policies: Policies
    records: RecordReader
    decisions: DecisionStore
    asking: Asking
    settings: Settings
    clock: Clock


def reminders_keeper(
    reminders: Reminders, policies: Policies, schedules: RecordStore[CaseSchedule],
    clock: Clock,
) -> Callable[[str, str, CaseSchedule], Awaitable[None]]:  # fmt: skip
    """What a committed schedule change does besides its events: set or clear the reminders of
    the sessions it touched (run on every flush, so a crash in between is completed). It acts
    on the sessions as they stand now, so a late flush cannot revive a cancelled reminder."""

    async def keep_reminders(org: str, case_id: str, schedule: CaseSchedule) -> None:
        policy = await policies.get(org)
        now = clock()
        latest, _ = await schedules.load(org, case_id)
        current = latest.record if latest else schedule
        for session_id in schedule.touched:
            session = current.session(session_id)
            if session is not None and session.status == "booked":
                due = session.start - timedelta(hours=policy.reminder_hours)
                await reminders.set(org, case_id, session, due, now)
            else:
                await reminders.clear(org, session_id)

    return keep_reminders


@dataclass(frozen=True)
class Context:
    org: str
    now: datetime
    policy: SchedulingPolicy

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.policy.time_zone)


async def _context(org: str, deps: SchedulingDeps) -> Context:
    policy = await deps.policies.get(org)
    return Context(org, deps.clock().astimezone(ZoneInfo(policy.time_zone)), policy)


def _changed(
    schedule: CaseSchedule, ctx: Context, touched: list[str], **update: object
) -> CaseSchedule:
    return schedule.model_copy(update={**update, "touched": touched, "updated_at": ctx.now})


def _session_id(schedule: CaseSchedule, added: int = 0) -> str:
    """Sessions are numbered in the order they were added, across supporters; none is ever
    removed."""
    return f"{schedule.case_id}-{schedule.earlier_sessions + len(schedule.sessions) + added:03d}"


# Reacting to events -------------------------------------------------------------


handlers: Handlers[SchedulingDeps] = Handlers(SERVICE)


@handlers.on(MatchActivated)
async def on_match_activated(event: MatchActivated, meta: Meta, deps: SchedulingDeps) -> None:
    org, case_id, supporter_id = meta.org, event.case_id, event.supporter_id
    await deps.schedules.change(
        org, case_id, lambda s: _arrange(org, case_id, supporter_id, s, deps)
    )


@handlers.on(ConsentDecided)
async def on_consent_decided(event: ConsentDecided, meta: Meta, deps: SchedulingDeps) -> None:
    if event.status == "active":
        await _resume(meta.org, event.case_id, "consent_not_active", deps)
    else:
        await _stop_sessions(meta.org, event.case_id, "consent_not_active", "suspended", deps)


@handlers.on(MatchEnded)
async def on_match_ended(event: MatchEnded, meta: Meta, deps: SchedulingDeps) -> None:
    if event.reason == "service_completed":
        return  # scheduling ended it itself
    changed = event.reason == "change_of_supporter"
    reason = "supporter_changed" if changed else "service_refused"
    await _stop_sessions(meta.org, event.case_id, reason, "ended", deps, event.supporter_id)


@handlers.on(ServiceRefused)
async def on_service_refused(event: ServiceRefused, meta: Meta, deps: SchedulingDeps) -> None:
    await _stop_sessions(meta.org, event.case_id, "service_refused", "ended", deps)


@handlers.on(SupporterEligibilityDecided)
async def on_supporter_eligibility_decided(
    event: SupporterEligibilityDecided, meta: Meta, deps: SchedulingDeps
) -> None:
    # A full caseload stops new matches, not the sessions of current ones.
    fit = event.eligible or event.caseload_full_only
    await _supporter_decided(meta.org, event.supporter_id, fit, deps)


async def _resume(org: str, case_id: str, because: str, deps: SchedulingDeps) -> None:
    """What suspended the schedule has passed: its future sessions are booked again (each is
    still judged by the boundaries when it is moved or a new one is booked)."""

    async def resume(schedule: CaseSchedule | None) -> Change[CaseSchedule] | None:
        if schedule is None or schedule.suspended_because != because:
            return None
        ctx = await _context(org, deps)
        back = [s.model_copy(update={"status": "booked", "cancel_reason": None})
                for s in schedule.sessions
                if s.status == "cancelled" and s.cancel_reason == because and s.start > ctx.now]
        ids = {s.session_id for s in back}
        sessions = [next((b for b in back if b.session_id == s.session_id), s)
                    for s in schedule.sessions]  # fmt: skip
        status = "going_ahead" if schedule.service_ends_on else "arranging"
        record = _changed(schedule, ctx, sorted(ids), sessions=sessions, status=status,
                          suspended_because=None)  # fmt: skip
        return Change(record, [SessionsResumed(case_id=case_id, session_ids=sorted(ids))])

    await deps.schedules.change(org, case_id, resume)


async def _supporter_decided(
    org: str, supporter_id: str, fit: bool, deps: SchedulingDeps
) -> None:
    # Supervision is booked whatever the eligibility: attending it is how a supporter whose
    # supervision lapsed becomes eligible again.
    await plan_supervision(org, supporter_id, deps)
    for _, case_id, stored, _ in await deps.schedules.store.each(org):
        if stored.record.supporter_id != supporter_id:
            continue
        if fit:
            await _resume(org, case_id, "supporter_ineligible", deps)
        else:
            await _stop_sessions(
                org, case_id, "supporter_ineligible", "suspended", deps, supporter_id
            )


async def _arrange(
    org: str, case_id: str, supporter_id: str, schedule: CaseSchedule | None, deps: SchedulingDeps
) -> Change[CaseSchedule] | None:
    """An active match: offer an initial meeting at the first time both are free."""
    # Only a first match, or a new supporter after the last one ended: a late or repeated
    # event about a supporter this case already had changes nothing.
    if schedule is not None and (
        schedule.status != "ended" or schedule.supporter_id == supporter_id
    ):
        return None
    case = await deps.records.case(org, case_id)
    supporter = await deps.records.supporter(org, supporter_id)
    if case is None or supporter is None:
        return None
    ctx = await _context(org, deps)
    earlier = schedule.earlier_sessions + len(schedule.sessions) if schedule else 0
    fresh = CaseSchedule(case_id=case_id, supporter_id=supporter_id, status="arranging",
                         earlier_sessions=earlier, updated_at=ctx.now)  # fmt: skip
    meeting = _meeting_offer(fresh, case, supporter, ctx)
    if meeting is None:
        log.warning("no_common_time", org=org, case_id=case_id)
        return Change(fresh, [])
    record = fresh.model_copy(update={"sessions": [meeting]})
    return Change(record, [_meeting_proposed(record, meeting, "scheduling")])


def _meeting_offer(
    schedule: CaseSchedule, case: CaseRecord, supporter: SupporterRecord, ctx: Context
) -> Session | None:
    client = case.intake.client
    method = domain.meeting_method(
        client.methods, supporter.profile.methods, client.safety_concerns
    )
    start = domain.first_common_time(
        client.availability, supporter.profile.availability, ctx.policy.session_minutes,
        ctx.now + timedelta(hours=ctx.policy.lead_hours), ctx.zone,
    )  # fmt: skip
    if method is None or start is None:
        return None
    return Session(
        session_id=_session_id(schedule), kind="initial_meeting", start=start,
        end=start + timedelta(minutes=ctx.policy.session_minutes), method=method,
        status="proposed",
    )  # fmt: skip


def _meeting_proposed(schedule: CaseSchedule, meeting: Session, by: str) -> InitialMeetingProposed:
    return InitialMeetingProposed(
        case_id=schedule.case_id, supporter_id=schedule.supporter_id,
        session_id=meeting.session_id, start=meeting.start, end=meeting.end,
        method=meeting.method, proposed_by=by,
    )  # fmt: skip


async def _stop_sessions(
    org: str, case_id: str, reason: str, status: str, deps: SchedulingDeps,
    supporter_id: str | None = None,
) -> None:  # fmt: skip
    """Cancel every future session of the case at once, with the reason (only those with
    ``supporter_id``, if given: a late event about an earlier supporter changes nothing)."""

    async def stop(schedule: CaseSchedule | None) -> Change[CaseSchedule] | None:
        if schedule is None or schedule.status == "ended":
            return None
        if supporter_id is not None and schedule.supporter_id != supporter_id:
            return None
        ctx = await _context(org, deps)
        upcoming = {s.session_id for s in domain.future(schedule.sessions, ctx.now)}
        if not upcoming and schedule.status == status:
            return None
        sessions = [
            s.model_copy(update={"status": "cancelled", "cancel_reason": reason})
            if s.session_id in upcoming else s
            for s in schedule.sessions
        ]  # fmt: skip
        events = [
            SessionCancelled(case_id=case_id, session_id=s, reason=reason)
            for s in sorted(upcoming)
        ]
        because = reason if status == "suspended" else None
        record = _changed(schedule, ctx, sorted(upcoming), sessions=sessions, status=status,
                          suspended_because=because)  # fmt: skip
        return Change(record, events)

    await deps.schedules.change(org, case_id, stop)


# Commands ---------------------------------------------------------------------------


@handlers.on(ConfigureScheduling)
async def configure_scheduling(
    command: ConfigureScheduling, received: Received, deps: SchedulingDeps
) -> Reply:
    return await _answer(deps.settings_store, SETTINGS_KEY, lambda _: _configure(command, deps),
                         received)  # fmt: skip


@handlers.on(RecordSupervisionAttendance)
async def record_supervision_attendance(
    command: RecordSupervisionAttendance, received: Received, deps: SchedulingDeps
) -> Reply:
    org = received.org
    return await _answer(deps.supervision, command.supporter_id,
                         lambda s: _supervised(org, command, s, deps), received)  # fmt: skip


@handlers.on(CreateGroupSession)
async def create_group_session(
    command: CreateGroupSession, received: Received, deps: SchedulingDeps
) -> Reply:
    org = received.org
    return await _answer(deps.groups, command.group_id,
                         lambda g: _create_group(org, command, g, deps), received)  # fmt: skip


@handlers.on(JoinGroupSession)
async def join_group_session(
    command: JoinGroupSession, received: Received, deps: SchedulingDeps
) -> Reply:
    org = received.org
    return await _answer(deps.groups, command.group_id,
                         lambda g: _join_group(org, command, g, deps), received)  # fmt: skip


async def _answer(
    changer: Changer[R], entity_id: str, decide: Callable[[R | None], Awaitable[Change[R]]],
    received: Received,
) -> Reply:  # fmt: skip
    reply = await changer.change(received.org, entity_id, decide, received)
    assert reply is not None  # a command is always answered
    return reply


async def _configure(
    command: ConfigureScheduling, deps: SchedulingDeps
) -> Change[SchedulingSettings]:
    record = SchedulingSettings(policy=command.policy, updated_at=deps.clock())
    return Change(record, [SchedulingConfigured(policy=command.policy)])


def _must_have(schedule: CaseSchedule | None, *statuses: str) -> CaseSchedule:
    if schedule is None:
        raise Refused("case_id", "this case has no active match to schedule for")
    if schedule.status not in statuses:
        wanted = " or ".join(statuses)
        raise Refused("case_id", f"the case's schedule is {schedule.status}, not {wanted}")
    return schedule


def _meeting(schedule: CaseSchedule) -> Session:
    meeting = _current_meeting(schedule)
    if meeting is None:
        raise Refused("case_id", "no initial meeting has been proposed yet")
    return meeting


def _current_meeting(schedule: CaseSchedule) -> Session | None:
    """The latest initial meeting (earlier times are kept: cancelled, or missed)."""
    meetings = [s for s in schedule.sessions if s.kind == "initial_meeting"]
    return next((s for s in reversed(meetings) if s.status != "cancelled"), None)


def _replace(schedule: CaseSchedule, session: Session) -> list[Session]:
    return [session if s.session_id == session.session_id else s for s in schedule.sessions]


async def _confirm(
    org: str, command: ConfirmMeeting, schedule: CaseSchedule | None, deps: SchedulingDeps
) -> Change[CaseSchedule]:
    schedule = _must_have(schedule, "arranging")
    meeting = _meeting(schedule)
    if meeting.status != "proposed":
        raise Refused("case_id", f"the initial meeting is already {meeting.status}")
    ctx = await _context(org, deps)
    confirmed = sorted({*meeting.confirmed_by, command.by})
    if len(confirmed) < 2:
        meeting = meeting.model_copy(update={"confirmed_by": confirmed})
        return Change(_changed(schedule, ctx, [], sessions=_replace(schedule, meeting)), [])
    await _judge(org, schedule, ctx, deps, start=meeting.start, minutes=_minutes(meeting),
                 method=meeting.method, moving=meeting.session_id)  # fmt: skip
    meeting = meeting.model_copy(update={"confirmed_by": confirmed, "status": "booked"})
    record = _changed(schedule, ctx, [meeting.session_id], sessions=_replace(schedule, meeting))
    return Change(record, [_booked(schedule, meeting)])


def _minutes(session: Session | GroupSession) -> int:
    return int((session.end - session.start).total_seconds() // 60)


def _booked(schedule: CaseSchedule, session: Session) -> SessionBooked:
    return SessionBooked(
        case_id=schedule.case_id, supporter_id=schedule.supporter_id,
        session_id=session.session_id, kind=session.kind, start=session.start,
        end=session.end, method=session.method,
    )  # fmt: skip


async def _propose_time(
    org: str, command: ProposeMeetingTime, schedule: CaseSchedule | None, deps: SchedulingDeps
) -> Change[CaseSchedule]:
    schedule = _must_have(schedule, "arranging")
    ctx = await _context(org, deps)
    if command.start <= ctx.now:
        raise Refused("start", "the meeting must be in the future")
    old = _current_meeting(schedule)
    if old is not None and old.status == "completed":
        raise Refused("case_id", "the initial meeting has already taken place")
    minutes = _minutes(old) if old else ctx.policy.session_minutes
    case = await deps.records.case(org, schedule.case_id)
    supporter = await deps.records.supporter(org, schedule.supporter_id)
    assert case is not None
    assert supporter is not None
    method = old.method if old else domain.meeting_method(
        case.intake.client.methods, supporter.profile.methods, case.intake.client.safety_concerns
    )  # fmt: skip
    if method is None:
        raise Refused("case_id", "the client and supporter share no safe method to meet by")
    start = command.start.astimezone(ctx.zone)
    meeting = Session(
        session_id=_session_id(schedule), kind="initial_meeting", start=start,
        end=start + timedelta(minutes=minutes), method=method, status="proposed",
        confirmed_by=[command.by],
    )  # fmt: skip
    sessions = [*schedule.sessions, meeting]
    touched = []
    if old is not None and old.status in domain.LIVE:  # a missed meeting stays on record
        moved = old.model_copy(update={"status": "cancelled", "cancel_reason": "another_time"})
        sessions = [*_replace(schedule, moved), meeting]
        touched = [old.session_id]
    record = _changed(schedule, ctx, touched, sessions=sessions)
    return Change(record, [_meeting_proposed(record, meeting, command.by)])


async def _attendance(
    org: str, command: RecordAttendance, schedule: CaseSchedule | None, deps: SchedulingDeps
) -> Change[CaseSchedule]:
    schedule = _must_have(schedule, "arranging", "going_ahead", "suspended", "ended")
    session = schedule.session(command.session_id)
    if session is None:
        raise Refused("session_id", "no such session in this case")
    if session.status != "booked":
        raise Refused("session_id", f"the session is {session.status}, not booked")
    ctx = await _context(org, deps)
    if session.start > ctx.now:
        raise Refused("session_id", "the session has not started yet")
    done = session.model_copy(update={"status": command.outcome})
    record = _changed(schedule, ctx, [done.session_id], sessions=_replace(schedule, done))
    event = SessionAttended(case_id=schedule.case_id, session_id=done.session_id,
                            outcome=command.outcome)  # fmt: skip
    return Change(record, [event])


async def _go_ahead(
    org: str, command: GoAhead, schedule: CaseSchedule | None, deps: SchedulingDeps
) -> Change[CaseSchedule]:
    schedule = _must_have(schedule, "arranging")
    meeting = _meeting(schedule)
    if meeting.status != "completed":
        raise Refused("case_id", "the client decides after the initial meeting has taken place")
    ctx = await _context(org, deps)
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
    await _judge(org, schedule, ctx, deps, start=starts[0], minutes=ctx.policy.session_minutes,
                 method=method, service_ends_on=ends_on)  # fmt: skip
    sessions = _regular(schedule, starts, ctx.policy.session_minutes, method)
    record = _changed(
        schedule, ctx, [s.session_id for s in sessions], status="going_ahead", method=method,
        sessions=[*schedule.sessions, *sessions], service_ends_on=ends_on,
    )  # fmt: skip
    local = starts[0].astimezone(ctx.zone)
    event = SessionsScheduled(
        case_id=schedule.case_id, supporter_id=schedule.supporter_id,
        session_ids=[s.session_id for s in sessions], weekday=f"{local:%A}",
        local_time=f"{local:%H:%M}", time_zone=ctx.policy.time_zone, service_ends_on=ends_on,
    )  # fmt: skip
    return Change(record, [event])


def _regular(
    schedule: CaseSchedule, starts: list[datetime], minutes: int, method: Method
) -> list[Session]:
    return [
        Session(session_id=_session_id(schedule, k), kind="regular", start=start,
                end=start + timedelta(minutes=minutes), method=method, status="booked")
        for k, start in enumerate(starts)
    ]  # fmt: skip


async def _agree_frequency(
    org: str, command: RecordFrequencyAgreement, schedule: CaseSchedule | None,
    deps: SchedulingDeps,
) -> Change[CaseSchedule]:  # fmt: skip
    schedule = _must_have(schedule, "arranging", "going_ahead")
    ctx = await _context(org, deps)
    record = _changed(schedule, ctx, [], sessions_per_week_agreed=command.sessions_per_week)
    event = FrequencyAgreed(case_id=schedule.case_id, sessions_per_week=command.sessions_per_week)
    return Change(record, [event])


async def _book(
    org: str, command: BookSession, schedule: CaseSchedule | None, deps: SchedulingDeps
) -> Change[CaseSchedule]:
    schedule = _must_have(schedule, "going_ahead", "suspended")
    ctx = await _context(org, deps)
    start = command.start.astimezone(ctx.zone)
    if start <= ctx.now:
        raise Refused("start", "a session must be booked in the future")
    await _judge(org, schedule, ctx, deps, start=start, minutes=command.minutes,
                 method=command.method, purposes=command.purposes)  # fmt: skip
    if any(s.start == start for s in domain.future(schedule.sessions, ctx.now)):
        raise Refused("start", "a session already starts at that time")
    session = Session(
        session_id=_session_id(schedule), kind="extra", start=start,
        end=start + timedelta(minutes=command.minutes), method=command.method, status="booked",
    )  # fmt: skip
    record = _changed(schedule, ctx, [session.session_id],
                      sessions=[*schedule.sessions, session])  # fmt: skip
    return Change(record, [_booked(schedule, session)])


async def _reschedule(
    org: str, command: RescheduleSession, schedule: CaseSchedule | None, deps: SchedulingDeps
) -> Change[CaseSchedule]:
    schedule = _must_have(schedule, "arranging", "going_ahead")
    session = schedule.session(command.session_id)
    if session is None or session.status != "booked":
        raise Refused("session_id", "no booked session with this id in this case")
    ctx = await _context(org, deps)
    start = command.start.astimezone(ctx.zone)
    if start <= ctx.now:
        raise Refused("start", "a session can only move to a future time")
    await _judge(org, schedule, ctx, deps, start=start, minutes=_minutes(session),
                 method=session.method, moving=session.session_id)  # fmt: skip
    moved = session.model_copy(
        update={"start": start, "end": start + (session.end - session.start)}
    )
    record = _changed(schedule, ctx, [moved.session_id], sessions=_replace(schedule, moved))
    event = SessionRescheduled(case_id=schedule.case_id, session_id=moved.session_id,
                               start=moved.start, end=moved.end)  # fmt: skip
    return Change(record, [event])


async def _cancel(
    org: str, command: CancelSession, schedule: CaseSchedule | None, deps: SchedulingDeps
) -> Change[CaseSchedule]:
    schedule = _must_have(schedule, "arranging", "going_ahead", "suspended")
    session = schedule.session(command.session_id)
    if session is None or session.status not in domain.LIVE:
        raise Refused("session_id", "no upcoming session with this id in this case")
    ctx = await _context(org, deps)
    reason = f"cancelled_by_{command.by}"
    gone = session.model_copy(update={"status": "cancelled", "cancel_reason": reason})
    record = _changed(schedule, ctx, [gone.session_id], sessions=_replace(schedule, gone))
    event = SessionCancelled(case_id=schedule.case_id, session_id=gone.session_id,
                             reason=reason)  # fmt: skip
    return Change(record, [event])


async def _extend(
    org: str, command: ExtendService, schedule: CaseSchedule | None, deps: SchedulingDeps
) -> Change[CaseSchedule]:
    schedule = _must_have(schedule, "going_ahead")
    assert schedule.service_ends_on is not None
    assert schedule.method is not None
    if command.until <= schedule.service_ends_on:
        raise Refused("until", f"the service already runs to {schedule.service_ends_on}")
    ctx = await _context(org, deps)
    last = max(s.start for s in schedule.sessions if s.kind == "regular")
    starts = domain.weekly(domain.next_week(last, ctx.zone), command.until, ctx.zone)
    sessions = _regular(schedule, starts, ctx.policy.session_minutes, schedule.method)
    record = _changed(schedule, ctx, [s.session_id for s in sessions],
                      sessions=[*schedule.sessions, *sessions],
                      service_ends_on=command.until)  # fmt: skip
    event = ServiceExtended(case_id=schedule.case_id, service_ends_on=command.until,
                            session_ids=[s.session_id for s in sessions])  # fmt: skip
    return Change(record, [event])


def _case_command(
    command_type: type[C], decide: Callable[[str, C, CaseSchedule | None, SchedulingDeps],
                                            Awaitable[Change[CaseSchedule]]],
) -> None:  # fmt: skip
    """A command on one case's schedule: decided on the schedule, committed with its outbox."""

    async def handle(command: C, received: Received, deps: SchedulingDeps) -> Reply:
        org = received.org
        return await _answer(deps.schedules, command.case_id,
                             lambda s: decide(org, command, s, deps), received)  # fmt: skip

    handle.__name__ = f"on_{command_type.type_name}"
    handlers.on(command_type)(handle)


_case_command(ConfirmMeeting, _confirm)
_case_command(ProposeMeetingTime, _propose_time)
_case_command(RecordAttendance, _attendance)
_case_command(GoAhead, _go_ahead)
_case_command(RecordFrequencyAgreement, _agree_frequency)
_case_command(BookSession, _book)
_case_command(RescheduleSession, _reschedule)
_case_command(CancelSession, _cancel)
_case_command(ExtendService, _extend)


async def _judge(
    org: str, schedule: CaseSchedule, ctx: Context, deps: SchedulingDeps, *, start: datetime,
    minutes: int, method: Method, purposes: list[str] | None = None, moving: str | None = None,
    service_ends_on: date | None = None,
) -> None:  # fmt: skip
    """Ask the boundaries ruleset; a refusal names every rule that refused, with its reason."""
    case = await deps.records.case(org, schedule.case_id)
    supporter = await deps.records.supporter(org, schedule.supporter_id)
    if case is None or supporter is None:
        raise Refused("case_id", "the case or its supporter is no longer on record")
    fitness, _ = await deps.decisions.get(org, Kind.ELIGIBILITY, schedule.supporter_id)
    if fitness is None or not (fitness.outcome == "eligible" or fitness.caseload_full_only):
        raise Refused("case_id", "the supporter is not eligible to support anyone at present")
    consent, _ = await deps.decisions.get(org, Kind.CONSENT, schedule.case_id)
    others = [s for s in schedule.sessions if s.session_id != moving]
    facts = domain.boundaries_facts(
        case, start=start, minutes=minutes, method=method,
        agreed_methods=set(case.intake.client.methods) & set(supporter.profile.methods),
        per_week=domain.sessions_within_a_week(others, start, ctx.zone),
        agreed_per_week=schedule.sessions_per_week_agreed,
        service_ends_on=service_ends_on or schedule.service_ends_on,
        consent_active=consent is not None and consent.outcome == "active", zone=ctx.zone,
        purposes=purposes or ["peer_support"],
    )  # fmt: skip
    await _within_boundaries(org, facts, deps)


async def _within_boundaries(org: str, facts: SessionFacts, deps: SchedulingDeps) -> None:
    reply = await deps.asking.evaluate(
        org, EvaluateRules(kind=Kind.BOUNDARIES, facts=facts.model_dump(mode="json"))
    )
    if isinstance(reply, CommandRejected):
        raise Refused.each(reply.errors)
    decision = reply.decision
    if decision.outcome == "refused":
        raise Refused.each([
            FieldError(field=f"rules.boundaries.{f.rule}", reason=f.reason)
            for f in decision.fired if f.outcome == "refused"
        ])  # fmt: skip


# Supervision ------------------------------------------------------------------------


async def end_services(deps: SchedulingDeps, now: datetime | None = None) -> int:
    """Cases whose funded period is over (and not extended) end: ``ServiceEnded``. Returns how
    many ended."""
    ended: list[str] = []

    async def end_one(item: tuple[str, str, Stored[CaseSchedule], int]) -> None:
        org, case_id, _, _ = item

        async def end(schedule: CaseSchedule | None) -> Change[CaseSchedule] | None:
            change = await _end_service(org, schedule, deps, now)
            if change is not None:
                ended.append(case_id)
            return change

        await deps.schedules.change(org, case_id, end)

    await periodic.attempt(deps.schedules.flush_pending, "outbox_flush")
    live = [item for item in await deps.schedules.store.each()
            if item[2].record.status in ("going_ahead", "suspended")]  # fmt: skip
    await periodic.each(live, end_one, "service_end")
    return len(set(ended))


async def _end_service(
    org: str, schedule: CaseSchedule | None, deps: SchedulingDeps, now: datetime | None
) -> Change[CaseSchedule] | None:
    live = ("going_ahead", "suspended")
    if schedule is None or schedule.status not in live or schedule.service_ends_on is None:
        return None
    ctx = await _context(org, deps)
    today = (now or ctx.now).astimezone(ctx.zone).date()
    if today < schedule.service_ends_on:
        return None
    event = ServiceEnded(case_id=schedule.case_id, supporter_id=schedule.supporter_id,
                         ended_on=schedule.service_ends_on)  # fmt: skip
    return Change(_changed(schedule, ctx, [], status="ended"), [event])


async def plan_all_supervision(deps: SchedulingDeps) -> None:
    supporters = await deps.decisions.subjects(Kind.ELIGIBILITY)
    await periodic.each(supporters, lambda item: plan_supervision(*item, deps),
                        "supervision_planning")  # fmt: skip


async def plan_supervision(org: str, supporter_id: str, deps: SchedulingDeps) -> None:
    """A supporter always has their next supervision and team debrief booked, at the
    organisation's cadence from the last one they attended (or from tomorrow)."""

    async def plan(record: SupporterSupervision | None) -> Change[SupporterSupervision] | None:
        ctx = await _context(org, deps)
        record = record or SupporterSupervision(supporter_id=supporter_id, updated_at=ctx.now)
        added, events = [], []
        for kind, every in (("supervision", ctx.policy.supervision_every_days),
                            ("team_debrief", ctx.policy.debrief_every_days)):  # fmt: skip
            mine = [s for s in record.sessions if s.kind == kind]
            if any(not s.attended and s.start > ctx.now for s in mine):
                continue
            last = max((s.start.date() for s in mine if s.attended), default=ctx.now.date())
            day = max(last + timedelta(days=every), ctx.now.date() + timedelta(days=1))
            start = domain.at(day, time(SUPERVISION_HOUR), ctx.zone)
            session = SupervisionSession(
                session_id=f"{kind.replace('_', '-')}-{supporter_id}-{day:%Y%m%d}", kind=kind,
                start=start,
            )  # fmt: skip
            added.append(session)
            events.append(SupervisionScheduled(supporter_id=supporter_id,
                                               session_id=session.session_id, kind=kind,
                                               start=start))  # fmt: skip
        if not added:
            return None
        new = record.model_copy(update={"sessions": [*record.sessions, *added],
                                        "updated_at": ctx.now})  # fmt: skip
        return Change(new, events)

    await deps.supervision.change(org, supporter_id, plan)


async def _supervised(
    org: str, command: RecordSupervisionAttendance, record: SupporterSupervision | None,
    deps: SchedulingDeps,
) -> Change[SupporterSupervision]:  # fmt: skip
    session = next((s for s in record.sessions if s.session_id == command.session_id), None) \
        if record else None  # fmt: skip
    if record is None or session is None:
        raise Refused("session_id", "no such supervision or debrief for this supporter")
    if session.attended:
        raise Refused("session_id", "this attendance is already recorded")
    ctx = await _context(org, deps)
    attended_on = min(session.start.astimezone(ctx.zone).date(), ctx.now.date())
    # Intake keeps vetting evidence; eligibility counts supervision from there.
    evidence = RecordVettingEvidence(
        supporter_id=command.supporter_id,
        evidence=Supervision(session=session.kind, attended_on=attended_on),
    )
    command_id = uuid.uuid5(NAMESPACE, f"{org}:{session.session_id}:attended").hex
    reply = await deps.asking.command(org, evidence, command_id)
    if isinstance(reply, CommandRejected):
        said = "; ".join(f"{e.field}: {e.reason}" for e in reply.errors)
        raise Refused("session_id", f"intake did not record the attendance ({said})")
    sessions = [s.model_copy(update={"attended": True}) if s is session else s
                for s in record.sessions]  # fmt: skip
    new = record.model_copy(update={"sessions": sessions, "updated_at": ctx.now})
    event = SupervisionAttended(supporter_id=command.supporter_id, session_id=session.session_id,
                                kind=session.kind, attended_on=attended_on)  # fmt: skip
    return Change(new, [event])


# Groups -----------------------------------------------------------------------------


async def _create_group(
    org: str, command: CreateGroupSession, group: GroupSession | None, deps: SchedulingDeps
) -> Change[GroupSession]:
    if group is not None:
        raise Refused("group_id", "a group session with this id exists")
    eligibility, _ = await deps.decisions.get(org, Kind.ELIGIBILITY, command.facilitator_id)
    if eligibility is None or eligibility.outcome != "eligible":
        raise Refused("facilitator_id", "the facilitator is not an eligible supporter")
    ctx = await _context(org, deps)
    start = command.start.astimezone(ctx.zone)
    if start <= ctx.now:
        raise Refused("start", "a group session must be in the future")
    new = GroupSession(
        group_id=command.group_id, facilitator_id=command.facilitator_id, start=start,
        end=start + timedelta(minutes=command.minutes), method=command.method,
        capacity=command.capacity, updated_at=ctx.now,
    )  # fmt: skip
    event = GroupSessionCreated(
        group_id=new.group_id, facilitator_id=new.facilitator_id, start=new.start, end=new.end,
        method=new.method, capacity=new.capacity,
    )  # fmt: skip
    return Change(new, [event])


async def _join_group(
    org: str, command: JoinGroupSession, group: GroupSession | None, deps: SchedulingDeps
) -> Change[GroupSession]:
    if group is None:
        raise Refused("group_id", "no such group session")
    if command.case_id in group.participants:
        raise Refused("case_id", "the client has already joined this group session")
    if len(group.participants) >= group.capacity:
        raise Refused("group_id", f"the group session is full ({group.capacity} places)")
    case = await deps.records.case(org, command.case_id)
    if case is None:
        raise Refused("case_id", "there is no such case in this organisation")
    ctx = await _context(org, deps)
    consent, _ = await deps.decisions.get(org, Kind.CONSENT, command.case_id)
    facts = domain.boundaries_facts(
        case, start=group.start, minutes=_minutes(group),
        method=group.method, agreed_methods=case.intake.client.methods, per_week=1,
        agreed_per_week=1, service_ends_on=None,
        consent_active=consent is not None and consent.outcome == "active", zone=ctx.zone,
    )  # fmt: skip
    await _within_boundaries(org, facts, deps)
    joined = [*group.participants, command.case_id]
    new = group.model_copy(update={"participants": joined, "updated_at": ctx.now})
    event = GroupParticipantJoined(group_id=group.group_id, case_id=command.case_id,
                                   places_left=group.capacity - len(joined))  # fmt: skip
    return Change(new, [event])
