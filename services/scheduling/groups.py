"""Group peer support sessions: decisions on a group's record. Pure: no I/O.

A supporter fit to support clients facilitates (when the group is made, and still when
each client joins: refused with each eligibility rule that refused, ``rules.eligibility.
<rule>``); clients join up to the group's capacity, each judged by the boundaries ruleset
as for any session (consent first of all).
"""

from __future__ import annotations

from datetime import timedelta

from contracts.records import CaseRecord, GroupSession
from contracts.replies import FieldError
from contracts.scheduling import (
    CreateGroupSession,
    GroupParticipantJoined,
    GroupSessionCreated,
    JoinGroupSession,
)
from runtime.changes import Change, Refused
from services.scheduling import domain
from services.scheduling.domain import Context
from services.scheduling.judging import Verdicts, refuse_unless_allowed


def refuse_unless_fit(unfit: list[FieldError]) -> None:
    """Refuse a group whose facilitator may not support anyone now, with the eligibility
    rules' reasons (a missing decision is said of the facilitator)."""
    if unfit:
        raise Refused.each(
            [
                e
                if e.field.startswith("rules.")
                else e.model_copy(update={"field": "facilitator_id"})
                for e in unfit
            ]
        )


def create(
    group: GroupSession | None,
    command: CreateGroupSession,
    ctx: Context,
    facilitator_unfit: list[FieldError],
) -> Change[GroupSession]:
    if group is not None:
        raise Refused("group_id", "a group session with this id exists")
    refuse_unless_fit(facilitator_unfit)
    start = command.start.astimezone(ctx.zone)
    if start <= ctx.now:
        raise Refused("start", "a group session must be in the future")
    new = GroupSession(
        group_id=command.group_id,
        facilitator_id=command.facilitator_id,
        start=start,
        end=start + timedelta(minutes=command.minutes),
        method=command.method,
        capacity=command.capacity,
        updated_at=ctx.now,
    )
    event = GroupSessionCreated(
        group_id=new.group_id,
        facilitator_id=new.facilitator_id,
        start=new.start,
        end=new.end,
        method=new.method,
        capacity=new.capacity,
    )
    return Change(new, [event])


def join(
    group: GroupSession | None,
    command: JoinGroupSession,
    ctx: Context,
    case: CaseRecord | None,
    consent_active: bool,
    facilitator_unfit: list[FieldError],
    verdicts: Verdicts,
) -> Change[GroupSession]:
    if group is None:
        raise Refused("group_id", "no such group session")
    refuse_unless_fit(facilitator_unfit)
    if command.case_id in group.participants:
        raise Refused("case_id", "the client has already joined this group session")
    if len(group.participants) >= group.capacity:
        raise Refused("group_id", f"the group session is full ({group.capacity} places)")
    if case is None:
        raise Refused("case_id", "there is no such case in this organisation")
    minutes = int((group.end - group.start).total_seconds() // 60)
    facts = domain.boundaries_facts(
        case,
        start=group.start,
        minutes=minutes,
        method=group.method,
        agreed_methods=case.intake.client.methods,
        per_week=1,
        agreed_per_week=1,
        service_ends_on=None,
        consent_active=consent_active,
        zone=ctx.zone,
    )
    refuse_unless_allowed(verdicts.on(facts))
    joined = [*group.participants, command.case_id]
    new = group.model_copy(update={"participants": joined, "updated_at": ctx.now})
    event = GroupParticipantJoined(
        group_id=group.group_id, case_id=command.case_id, places_left=group.capacity - len(joined)
    )
    return Change(new, [event])
