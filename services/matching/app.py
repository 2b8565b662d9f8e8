"""Matching's subscribers and background work. Thin: handlers and sweeps hold the logic."""

from __future__ import annotations

import asyncio

from faststream.nats import NatsBroker

from runtime import commands, consumer, periodic, topology
from runtime.logging import get_logger
from services.matching import handlers, sweeps, waitlist
from services.matching.deps import MatchingDeps

log = get_logger(__name__)

COMMAND_WORKERS = 16


def register(broker: NatsBroker, deps: MatchingDeps) -> None:
    commands.serve(broker, handlers.handlers, deps, COMMAND_WORKERS, deps.clock, deps.settings)
    # Replicas share this durable consumer: each event is handled by one of them.
    consumer.subscribe(
        broker, topology.MATCHING_CONSUMER, deps.settings, handlers.handlers, deps, deps.clock
    )


async def run(deps: MatchingDeps) -> None:
    """Keep the supporter index current; now and then release expired holds and retry every
    waitlist, whatever events said."""

    async def sweep() -> None:
        missing = await sweeps.reconcile(deps)
        if missing:
            log.error("matching_outcomes_recovered", count=missing)
        expired = await sweeps.expire_holds(deps)
        if expired:
            log.info("holds_expired", count=expired)
        orgs = await sweeps.waitlisted_orgs(deps)
        await periodic.each(
            orgs, lambda org: waitlist.retry_waitlist(org, deps, read_all=True), "waitlist_retry"
        )

    async def observe() -> None:
        await sweeps.observe(deps)

    await asyncio.gather(
        deps.supporters.follow(),
        deps.standings.follow(),
        periodic.every(deps.settings.sweep_interval_s, sweep, "matching_sweep"),
        periodic.every(deps.settings.figures_interval_s, observe, "matching_figures"),
    )
