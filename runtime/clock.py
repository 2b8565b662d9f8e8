"""Time as an input. Every service, sweep, command sender and the demo take a ``Clock``;
this module is the only place that reads the wall clock (ruff's banned-api rule keeps it so).

A clock is called for the current instant (timezone-aware, UTC) and can be waited on:
``SystemClock`` sleeps, ``ManualClock`` simply moves, so a journey that "waits until the
meeting has started" runs in no time at any chosen day, hour and daylight-saving state.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def __call__(self) -> datetime:
        """The current instant, timezone-aware."""
        ...

    async def sleep_until(self, moment: datetime) -> None:
        """Return once ``moment`` has passed on this clock."""
        ...


class SystemClock:
    """The wall clock: what production runs on."""

    def __call__(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, moment: datetime) -> None:
        await asyncio.sleep(max((moment - self()).total_seconds(), 0.0))


class ManualClock:
    """A clock that stands still until moved: tests, and the demo at a chosen moment."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("a clock's time must carry its time zone")
        self._now = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("a clock's time must carry its time zone")
        self._now = moment.astimezone(UTC)

    def advance(self, by: timedelta) -> None:
        self._now += by

    async def sleep_until(self, moment: datetime) -> None:
        if moment > self._now:
            self._now = moment.astimezone(UTC)
        await asyncio.sleep(0)


SYSTEM = SystemClock()
