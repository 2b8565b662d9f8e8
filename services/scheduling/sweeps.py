"""Scheduling's work on the clock: finishing outboxes a crash left behind, ending services
whose funded period is over, and keeping every supporter's supervision booked."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from contracts.records import CaseSchedule, SupporterSupervision
from contracts.rules import Kind
from runtime import metrics, periodic
from runtime.changes import Change
from runtime.logging import get_logger
from runtime.unit import UnitOfWork
from services.scheduling import sessions, supervision
from services.scheduling.domain import Context
from services.scheduling.gathering import SchedulingDeps, changed, context

log = get_logger(__name__)


async def finish_outboxes(deps: SchedulingDeps) -> int:
    """Carry out every outbox a crash left behind; in a healthy run, none. Returns how many."""
    finished = 0
    units: list[UnitOfWork[Any]] = [
        deps.schedules,
        deps.supervision,
        deps.groups,
        deps.settings_store,
    ]
    for unit in units:
        finished += await unit.flush_pending(settle_s=deps.settings.settle_s)
    if finished:
        log.error("scheduling_outboxes_finished", count=finished)
        metrics.RECONCILED.labels("scheduling", "outboxes_finished").inc(finished)
    return finished


async def plan_all_supervision(deps: SchedulingDeps) -> None:
    supporters = await deps.decisions.subjects(Kind.ELIGIBILITY)
    await periodic.each(
        supporters, lambda item: plan_supervision(*item, deps), "supervision_planning"
    )


async def plan_supervision(org: str, supporter_id: str, deps: SchedulingDeps) -> None:
    """A supporter always has their next supervision and team debrief booked, at the
    organisation's cadence from the last one they attended (or from tomorrow)."""

    async def gather(_: SupporterSupervision | None) -> Context:
        return await context(org, deps)

    await changed(
        deps.supervision,
        org,
        supporter_id,
        lambda record, ctx: supervision.plan(record, supporter_id, ctx),
        gather,
    )


async def end_services(deps: SchedulingDeps, now: datetime | None = None) -> int:
    """Cases whose funded period is over (and not extended) end: ``ServiceEnded``. Returns how
    many ended."""
    live = [
        (org, case_id)
        for org, case_id, stored, _ in await deps.schedules.store.each()
        if stored.record.status in ("going_ahead", "suspended")
    ]
    ended: set[str] = set()

    async def end_one(item: tuple[str, str]) -> None:
        org, case_id = item

        async def gather(_: CaseSchedule | None) -> Context:
            return await context(org, deps, now)

        def end(schedule: CaseSchedule | None, ctx: Context) -> Change[CaseSchedule] | None:
            change = sessions.end_service(schedule, ctx)
            if change is not None:
                ended.add(f"{org}.{case_id}")
            return change

        await changed(deps.schedules, org, case_id, end, gather)

    await periodic.each(live, end_one, "service_end")
    return len(ended)
