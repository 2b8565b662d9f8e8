"""Notifications' work on the clock: send what waited and is due now, and find what
waits after a restart."""

from __future__ import annotations

from runtime import metrics, periodic
from runtime.logging import get_logger
from services.notifications.gathering import NotificationsDeps
from services.notifications.sending import attempt

log = get_logger(__name__)


async def send_due(deps: NotificationsDeps) -> int:
    """Attempt every waiting message that is due; returns how many."""
    due = deps.waiting.take_due(deps.clock())
    await periodic.each(due, lambda found: attempt(found[0], found[1], deps), "notification")
    return len(due)


async def recover(deps: NotificationsDeps) -> int:
    """Hold every kept message that still waits (at start, then now and then): what this
    replica or another left when it stopped. Also finishes outboxes a crash left."""
    finished = 0
    for unit in (deps.deliveries, deps.contacts, deps.channels):
        finished += await unit.flush_pending(settle_s=deps.settings.settle_s)
    if finished:
        metrics.RECONCILED.labels("notifications", "outboxes_finished").inc(finished)
    waiting = 0
    for org, _, stored, _ in await deps.deliveries.store.each("*"):
        if stored.record.status in ("queued", "deferred", "sending"):
            deps.waiting.keep(org, stored.record)
            waiting += 1
    log.info("notifications_recovered", waiting=waiting, outboxes=finished)
    return waiting
