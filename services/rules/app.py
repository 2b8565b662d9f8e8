"""The rules service's subscribers and background work. Thin: handlers hold the logic."""

from __future__ import annotations

import asyncio

from faststream.nats import NatsBroker

from runtime import commands, consumer, topology
from runtime.logging import get_logger
from runtime.periodic import every
from services.rules import handlers
from services.rules.handlers import RulesDeps

log = get_logger(__name__)

COMMAND_WORKERS = 8


def register(broker: NatsBroker, deps: RulesDeps) -> None:
    commands.serve(broker, handlers.handlers, deps, COMMAND_WORKERS, deps.clock, deps.settings)
    # Replicas share this durable consumer: each event is handled by one of them.
    consumer.subscribe(
        broker, topology.RULES_CONSUMER, deps.settings, handlers.handlers, deps, deps.clock
    )


async def run(deps: RulesDeps) -> None:
    """Keep rulesets live (watch, plus a periodic re-read) and sweep lapsed eligibility."""
    settings = deps.settings
    await asyncio.gather(
        _watch_rulesets(deps),
        # A KV watch can stall after a server restart; re-reading closes that gap.
        every(settings.rules_refresh_s, lambda: _apply_and_redecide(deps), "ruleset_refresh"),
        every(settings.sweep_interval_s, lambda: _sweep(deps), "sweep"),
    )


async def _apply_and_redecide(deps: RulesDeps) -> None:
    for org, kind in await handlers.refresh_rulesets(deps):
        await handlers.redecide_org(org, kind, deps)


async def _watch_rulesets(deps: RulesDeps) -> None:
    watcher = await deps.published.kv.watchall(include_history=False)
    async for entry in watcher:
        if entry is None:  # end of the initial values
            continue
        try:
            await _apply_and_redecide(deps)
        except Exception as error:
            log.error("ruleset_watch_failed", error=str(error))


async def _sweep(deps: RulesDeps) -> None:
    # Announcements a crash left stored but unpublished, and cases left without a
    # decision: in a healthy run there are none.
    pending = await handlers.announce_pending(deps)
    if pending:
        log.error("decision_announcements_recovered", count=pending)
    missing = await handlers.reconcile(deps)
    if missing:
        log.error("case_decisions_recovered", count=missing)
    changed = await handlers.sweep(deps)
    if changed:
        log.info("eligibility_lapsed", count=changed)
