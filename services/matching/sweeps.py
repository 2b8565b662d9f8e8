"""Matching's periodic work, whatever events said: the safety net for cases without an
outcome, holds expiring, waitlisted organisations, and the figures on /metrics."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from prometheus_client import Gauge

from contracts.rules import Kind
from runtime import metrics, periodic
from runtime.logging import get_logger
from services.matching import decisions
from services.matching.adapters import match_records
from services.matching.deps import MatchingDeps
from services.matching.figures import Figures, figures
from services.matching.offering import nothing, on_case
from services.matching.waitlist import first_offer

log = get_logger(__name__)


async def reconcile(deps: MatchingDeps) -> int:
    """The safety net: every case whose policy was decided more than ``settle_s`` ago has a
    matching outcome (proposed, waitlisted, awaiting its batch, or later); one without is
    offered now and counted (in a healthy run, none). Returns how many."""
    settled_before = deps.clock() - timedelta(seconds=deps.settings.settle_s)
    missing = 0
    for org, case_id in await deps.records.every_case():
        stored, _ = await deps.matches.load(org, case_id)
        if stored is not None:
            continue
        decision, _ = await deps.decisions.get(org, Kind.MATCHING_POLICY, case_id)
        if decision is None or decision.decided_at > settled_before:
            continue
        log.error("case_without_matching_outcome", org=org, case_id=case_id)
        metrics.RECONCILED.labels("matching", "case_without_matching_outcome").inc()
        await first_offer(org, case_id, deps)
        missing += 1
    return missing


async def expire_holds(deps: MatchingDeps, now: datetime | None = None) -> int:
    """Proposals the client did not answer in time give their slots back. Returns how many."""
    moment = now or deps.clock()
    await periodic.attempt(
        lambda: deps.unit.flush_pending(settle_s=deps.settings.settle_s), "outbox_flush"
    )
    due = [
        (org, stored.record.case_id)
        for org, stored, _ in await match_records(deps.matches)
        if stored.record.status == "proposed"
        and all(o.held_until <= moment for o in stored.record.proposals)
    ]

    async def expire(item: tuple[str, str]) -> None:
        await on_case(item[0], item[1], deps, nothing, lambda m, _: decisions.expire(m, moment))

    await periodic.each(due, expire, "hold_expiry")
    return len(due)


async def observe(deps: MatchingDeps) -> dict[str, Figures]:
    """Put matching's figures of every organisation on /metrics, as the records say now (as
    the watch on them has told so far)."""
    cases = [(org, standing) for (org, _), standing in deps.standings.cases.items()]
    found = figures(cases, deps.clock())
    gauges: dict[Gauge, Callable[[Figures], float]] = {
        metrics.WAITLISTED: lambda of: of.waitlisted,
        metrics.LONGEST_WAIT: lambda of: of.longest_wait_s,
        metrics.AWAITING_CHOICE: lambda of: of.awaiting_choice,
        metrics.HOLDS_ENDING_SOON: lambda of: of.holds_ending_soon,
        metrics.CONSENTS_PENDING: lambda of: of.consents_pending,
    }
    for gauge, value in gauges.items():
        gauge.clear()  # an organisation with no cases left shows none, not its last figure
        for org, of in found.items():
            gauge.labels(org).set(value(of))
    return found


async def waitlisted_orgs(deps: MatchingDeps) -> set[str]:
    return {
        org
        for org, stored, _ in await match_records(deps.matches)
        if stored.record.status == "waitlisted"
    }
