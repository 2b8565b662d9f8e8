"""Matching's subscribers and background work. Thin: handlers hold the logic."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from faststream.nats import NatsBroker

from alongside.runtime import commands, consumer, periodic, topology
from alongside.runtime.logging import get_logger
from alongside.runtime.periodic import every
from contracts.envelope import Message, RawEnvelope
from contracts.matching import SERVICE
from services.matching import handlers
from services.matching.handlers import MatchingDeps

log = get_logger(__name__)

COMMAND_WORKERS = 16


def register(broker: NatsBroker, deps: MatchingDeps) -> None:
    async def on_matching_command(
        subject: str, body: bytes, headers: Mapping[str, str]
    ) -> Message:
        return await handlers.handle_command(subject, body, headers, deps)

    commands.serve(broker, SERVICE, COMMAND_WORKERS, on_matching_command)

    async def on_event(envelope: RawEnvelope) -> None:
        await handlers.on_event(envelope, deps)

    # Replicas share this durable consumer: each event is handled by one of them.
    consumer.subscribe(broker, topology.MATCHING_CONSUMER, deps.settings, on_event)


async def run(deps: MatchingDeps) -> None:
    """Keep the supporter index current; now and then release expired holds and retry every
    waitlist, whatever events said."""

    async def sweep() -> None:
        expired = await handlers.expire_holds(deps)
        if expired:
            log.info("holds_expired", count=expired)
        orgs = await handlers.waitlisted_orgs(deps)
        await periodic.each(orgs, lambda org: handlers.retry_waitlist(org, deps), "waitlist_retry")

    await asyncio.gather(
        deps.supporters.follow(), every(deps.settings.sweep_interval_s, sweep, "matching_sweep")
    )
