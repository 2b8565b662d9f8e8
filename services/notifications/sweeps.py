"""Notifications' work on the clock: send what waited and is due now, and find what
waits after a restart."""

from __future__ import annotations

from contracts.rules import Kind
from runtime import metrics, periodic
from runtime.logging import get_logger
from services.notifications import plans
from services.notifications.gathering import NotificationsDeps
from services.notifications.sending import attempt, deliver

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


async def checks_lapsing(deps: NotificationsDeps) -> int:
    """Tell each supporter whose vetting lapses within ``check_lapsing_days``, once per lapse
    date (a message already planned is not planned again); returns how many are within the
    window. Decisions are made long before a lapse, so this looks at them again as the days
    pass, not only when one is made."""
    told = 0
    now = deps.clock()
    for org, supporter_id in await deps.decisions.subjects(Kind.ELIGIBILITY):
        decision, _ = await deps.decisions.get(org, Kind.ELIGIBILITY, supporter_id)
        if decision is None or decision.lapses_on is None:
            continue
        today = await deps.policies.today(org, now)
        for plan in plans.check_lapsing(
            supporter_id, decision.lapses_on, today, deps.settings.check_lapsing_days
        ):
            await deliver(org, plan, deps)
            told += 1
    return told
