"""Notifications' subscribers and background work. Thin: handlers hold the logic."""

from __future__ import annotations

from faststream.nats import NatsBroker

from runtime import commands, consumer, periodic, topology
from services.notifications import link_commands, sweeps
from services.notifications.gathering import NotificationsDeps
from services.notifications.handlers import handlers

COMMAND_WORKERS = 16
RECOVER_EVERY_S = 3600.0

assert link_commands.PERSON_SOURCE  # (its handlers register on import)


def register(broker: NatsBroker, deps: NotificationsDeps) -> None:
    commands.serve(broker, handlers, deps, COMMAND_WORKERS, deps.clock, deps.settings)
    # Replicas share this durable consumer: each event is handled by one of them.
    consumer.subscribe(
        broker, topology.NOTIFICATIONS_CONSUMER, deps.settings, handlers, deps, deps.clock
    )


async def run(deps: NotificationsDeps) -> None:
    """Send what waited once it is due; find, now and then, what waits after a restart."""
    elapsed = RECOVER_EVERY_S

    async def sweep() -> None:
        nonlocal elapsed
        if elapsed >= RECOVER_EVERY_S:
            elapsed = 0.0
            await periodic.attempt(lambda: sweeps.recover(deps), "notifications_recovery")
            await periodic.attempt(lambda: sweeps.checks_lapsing(deps), "checks_lapsing")
        elapsed += deps.settings.notify_sweep_s
        await periodic.attempt(lambda: sweeps.send_due(deps), "notifications_due")

    await periodic.every(deps.settings.notify_sweep_s, sweep, "notifications_sweep")
