"""The messages that wait (quiet hours, a channel down, an attempt a crash cut short), by
when they are due: kept in memory, so the sweep touches only what is due.

Each replica keeps what its own attempts left waiting, and reads every kept message once
when it starts and then hourly (``sweeps.recover``): a message another replica left when it
stopped is found there. An attempt is claimed by compare-and-set, so two replicas that
both hold a message send it once.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime

from contracts.records import Delivery
from services.notifications.deliveries import STALE_SENDING


@dataclass
class Waiting:
    _due: list[tuple[datetime, str, str]] = field(default_factory=list)
    _held: dict[tuple[str, str], datetime] = field(default_factory=dict)

    def keep(self, org: str, delivery: Delivery) -> None:
        """Hold a message until it is due, if it waits at all."""
        if delivery.status in ("queued", "deferred"):
            due = delivery.due_at
        elif delivery.status == "sending":
            due = delivery.updated_at + STALE_SENDING
        else:
            self._held.pop((org, delivery.message_id), None)
            return
        key = (org, delivery.message_id)
        if self._held.get(key) == due:
            return
        self._held[key] = due
        heapq.heappush(self._due, (due, org, delivery.message_id))

    def take_due(self, now: datetime) -> list[tuple[str, str]]:
        """Every message due by ``now`` (each once), no longer held."""
        taken = []
        while self._due and self._due[0][0] <= now:
            due, org, message_id = heapq.heappop(self._due)
            if self._held.get((org, message_id)) == due:  # else superseded by a later keep
                del self._held[(org, message_id)]
                taken.append((org, message_id))
        return taken

    def __len__(self) -> int:
        return len(self._held)
