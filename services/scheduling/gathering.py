"""How scheduling's handlers gather what a decision needs, then decide and commit.

What they work with (``SchedulingDeps``); the organisation's policy and the time, the case
and its supporter, consent, eligibility, and the boundaries ruleset's verdicts from the
rules service; and the way into the unit of work (``changed``, ``on_schedule``), where a
decision that needs a verdict not yet gathered, or finds the case's supporter changed, is
gathered again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from contracts.records import CaseSchedule, GroupSession, SchedulingSettings, SupporterSupervision
from contracts.replies import CommandAccepted, CommandRejected, FieldError
from contracts.rules import EvaluateRules, Kind, unfit_reasons
from runtime.asking import Asking
from runtime.changes import Change, Refused, Stale
from runtime.clock import Clock
from runtime.dispatch import Received
from runtime.settings import Settings
from runtime.state import DecisionReader, Policies, RecordReader
from runtime.unit import UnitOfWork
from services.scheduling.domain import Context
from services.scheduling.judging import GatherAgain, Parties, Verdicts

Reply = CommandAccepted | CommandRejected


@dataclass(frozen=True)
class SchedulingDeps:
    settings_store: UnitOfWork[SchedulingSettings]
    schedules: UnitOfWork[CaseSchedule]
    supervision: UnitOfWork[SupporterSupervision]
    groups: UnitOfWork[GroupSession]
    policies: Policies
    records: RecordReader
    decisions: DecisionReader
    asking: Asking
    settings: Settings
    clock: Clock


R = TypeVar("R", bound=BaseModel)
In = TypeVar("In")


async def context(org: str, deps: SchedulingDeps, now: datetime | None = None) -> Context:
    """The organisation's policy, and the time now in its zone."""
    policy = await deps.policies.get(org)
    return Context(org, (now or deps.clock()).astimezone(ZoneInfo(policy.time_zone)), policy)


async def parties(org: str, case_id: str, supporter_id: str, deps: SchedulingDeps) -> Parties:
    case = await deps.records.case(org, case_id)
    supporter = await deps.records.supporter(org, supporter_id)
    return Parties(
        supporter_id=supporter_id,
        case=case,
        supporter=supporter,
        # A full caseload stops new matches, not the sessions of current ones.
        supporter_unfit=await unfit(org, supporter_id, deps),
        consent_active=await consent_active(org, case_id, deps),
    )


async def unfit(org: str, supporter_id: str, deps: SchedulingDeps) -> list[FieldError]:
    """Why the supporter may not support anyone now, in the eligibility rules' words (their
    decision as stored, as of now); empty when they may."""
    fitness, _ = await deps.decisions.get(org, Kind.ELIGIBILITY, supporter_id)
    return unfit_reasons(fitness)


async def consent_active(org: str, case_id: str, deps: SchedulingDeps) -> bool:
    consent, _ = await deps.decisions.get(org, Kind.CONSENT, case_id)
    return consent is not None and consent.outcome == "active"


async def judge_missing(org: str, verdicts: Verdicts, deps: SchedulingDeps) -> None:
    """Ask the rules service for every verdict the last decision found missing."""
    while verdicts.missing:
        facts = verdicts.missing.pop()
        reply = await deps.asking.evaluate(
            org, EvaluateRules(kind=Kind.BOUNDARIES, facts=facts.model_dump(mode="json"))
        )
        if isinstance(reply, CommandRejected):
            raise Refused.each(reply.errors)
        verdicts.add(facts, reply.decision)


@dataclass(frozen=True)
class Inputs:
    ctx: Context
    parties: Parties
    verdicts: Verdicts


NOBODY = Parties(
    supporter_id="", case=None, supporter=None, supporter_unfit=[], consent_active=False
)


async def changed(
    unit: UnitOfWork[R],
    org: str,
    entity_id: str,
    decide: Callable[[R | None, In], Change[R] | None],
    gather: Callable[[R | None], Awaitable[In]] | None = None,
    received: Received | None = None,
) -> Reply | None:
    """Scheduling's way into the unit of work: a decision that finds a verdict not asked for
    yet, or the case's supporter changed (``judging.GatherAgain``), is gathered again."""

    def pure(record: R | None, inputs: In) -> Change[R] | Stale | None:
        try:
            return decide(record, inputs)
        except GatherAgain as again:
            return Stale(str(again))

    return (await unit.change(org, entity_id, pure, gather=gather, command=received)).reply


async def on_schedule(
    org: str,
    case_id: str,
    deps: SchedulingDeps,
    decide: Callable[[CaseSchedule | None, Inputs], Change[CaseSchedule] | None],
    received: Received | None = None,
    supporter_id: str | None = None,
    judged: bool = False,
) -> Reply | None:
    """Gather, then decide on one case's schedule and commit. ``judged`` decisions get the
    case, its supporter (``supporter_id``, else the schedule's) and the boundaries' verdicts."""
    verdicts = Verdicts()

    async def gather(schedule: CaseSchedule | None) -> Inputs:
        who = supporter_id or (schedule.supporter_id if schedule else None)
        if judged:
            await judge_missing(org, verdicts, deps)
        return Inputs(
            await context(org, deps),
            await parties(org, case_id, who, deps) if judged and who else NOBODY,
            verdicts,
        )

    return await changed(deps.schedules, org, case_id, decide, gather, received)
