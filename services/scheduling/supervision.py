"""Supporters' supervision and team debriefs: decisions on their record. Pure: no I/O.

A supporter always has their next supervision and debrief booked, at the
organisation's cadence from the last one attended; attending one is recorded here
and, as vetting evidence, by intake (the handler asks it first), once it has started:
evidence counts only once it has happened.
"""

from __future__ import annotations

from datetime import date, time, timedelta

from contracts.intake import RecordVettingEvidence, Supervision
from contracts.records import SupervisionSession, SupporterSupervision
from contracts.replies import CommandAccepted, CommandRejected
from contracts.scheduling import (
    RecordSupervisionAttendance,
    SupervisionAttended,
    SupervisionScheduled,
)
from runtime.changes import Change, Refused
from services.scheduling import domain
from services.scheduling.domain import Context

SUPERVISION_HOUR = 10  # local time of scheduled supervision and debriefs


def plan(
    record: SupporterSupervision | None, supporter_id: str, ctx: Context
) -> Change[SupporterSupervision] | None:
    """Book the next supervision and team debrief, each unless one is already ahead."""
    record = record or SupporterSupervision(supporter_id=supporter_id, updated_at=ctx.now)
    added, events = [], []
    for kind, every in (
        ("supervision", ctx.policy.supervision_every_days),
        ("team_debrief", ctx.policy.debrief_every_days),
    ):
        mine = [s for s in record.sessions if s.kind == kind]
        if any(not s.attended and s.start > ctx.now for s in mine):
            continue
        attended = (s.start.astimezone(ctx.zone).date() for s in mine if s.attended)
        last = max(attended, default=ctx.today)
        day = max(last + timedelta(days=every), ctx.today + timedelta(days=1))
        start = domain.at(day, time(SUPERVISION_HOUR), ctx.zone)
        session = SupervisionSession(
            session_id=f"{kind.replace('_', '-')}-{supporter_id}-{day:%Y%m%d}",
            kind=kind,
            start=start,
        )
        added.append(session)
        events.append(
            SupervisionScheduled(
                supporter_id=supporter_id, session_id=session.session_id, kind=kind, start=start
            )
        )
    if not added:
        return None
    new = record.model_copy(update={"sessions": [*record.sessions, *added], "updated_at": ctx.now})
    return Change(new, events)


def evidence_of(
    record: SupporterSupervision | None, command: RecordSupervisionAttendance, ctx: Context
) -> RecordVettingEvidence | None:
    """What intake is asked to keep as vetting evidence, when the session is on record."""
    session = _session(record, command)
    if session is None or session.attended or session.start > ctx.now:
        return None
    return RecordVettingEvidence(
        supporter_id=command.supporter_id,
        evidence=Supervision(session=session.kind, attended_on=_attended_on(session, ctx)),
    )


def _attended_on(session: SupervisionSession, ctx: Context) -> date:
    return session.start.astimezone(ctx.zone).date()


def attended(
    record: SupporterSupervision | None,
    command: RecordSupervisionAttendance,
    ctx: Context,
    intake_reply: CommandAccepted | CommandRejected | None,
) -> Change[SupporterSupervision]:
    """The supporter attended; intake's reply says whether it kept the evidence."""
    session = _session(record, command)
    if record is None or session is None:
        raise Refused("session_id", "no such supervision or debrief for this supporter")
    if session.attended:
        raise Refused("session_id", "this attendance is already recorded")
    if session.start > ctx.now:
        local = session.start.astimezone(ctx.zone)
        raise Refused(
            "session_id",
            "this session has not started yet: attendance counts once "
            f"it has happened (it starts {local:%Y-%m-%d %H:%M} here)",
        )
    if isinstance(intake_reply, CommandRejected):
        said = "; ".join(f"{e.field}: {e.reason}" for e in intake_reply.errors)
        raise Refused("session_id", f"intake did not record the attendance ({said})")
    sessions = [
        s.model_copy(update={"attended": True}) if s is session else s for s in record.sessions
    ]
    new = record.model_copy(update={"sessions": sessions, "updated_at": ctx.now})
    event = SupervisionAttended(
        supporter_id=command.supporter_id,
        session_id=session.session_id,
        kind=session.kind,
        attended_on=_attended_on(session, ctx),
    )
    return Change(new, [event])


def _session(
    record: SupporterSupervision | None, command: RecordSupervisionAttendance
) -> SupervisionSession | None:
    if record is None:
        return None
    return next((s for s in record.sessions if s.session_id == command.session_id), None)
