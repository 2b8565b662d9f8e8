"""A case's session reminders, kept as its schedule changes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from contracts.records import CaseSchedule
from runtime.clock import Clock
from runtime.state import Policies
from runtime.store import RecordStore, Stored
from services.scheduling.adapters import Reminders


def reminders_keeper(
    reminders: Reminders,
    policies: Policies,
    schedules: RecordStore[CaseSchedule],
    clock: Clock,
) -> Callable[[str, str, Stored[CaseSchedule]], Awaitable[None]]:
    """What a committed schedule change does besides its events: set or clear the reminders of
    the sessions it touched (run on every flush, so a crash in between is completed). It acts
    on the sessions as they stand now, so a late flush cannot revive a cancelled reminder."""

    async def keep_reminders(org: str, case_id: str, stored: Stored[CaseSchedule]) -> None:
        schedule = stored.record
        policy = await policies.get(org)
        now = clock()
        latest, _ = await schedules.load(org, case_id)
        current = latest.record if latest else schedule
        for session_id in schedule.touched:
            session = current.session(session_id)
            if session is not None and session.status == "booked":
                due = session.start - timedelta(hours=policy.reminder_hours)
                await reminders.set(org, case_id, session, due, now)
            else:
                await reminders.clear(org, session_id)

    return keep_reminders
