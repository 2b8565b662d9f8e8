"""Whose turn it is for an organisation's free places: a lock granted in the order clients
asked (``InTurn``), and the waitlist's retries running one at a time (``Turns``)."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from runtime.logging import get_logger

log = get_logger(__name__)


class InTurn:
    """A lock granted, whenever it is free, to the waiter who asked first (the smallest
    key), not to whoever came to the lock first: clients whose policies were decided out of
    order (the rules service handles events together) still take places in the order they
    asked."""

    def __init__(self) -> None:
        self._held = False
        self._owner: asyncio.Task[Any] | None = None
        self._waiting: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._arrivals = 0

    @contextlib.asynccontextmanager
    async def turn(self, key: datetime) -> AsyncIterator[None]:
        """The turn for ``key``; within a turn already held (a release made by a change the
        turn's holder commits), the same turn."""
        if self._held and self._owner is asyncio.current_task():
            yield
            return
        await self._acquire(key)
        self._owner = asyncio.current_task()
        try:
            yield
        finally:
            self._owner = None
            self._release()

    async def _acquire(self, key: datetime) -> None:
        if not self._held and not self._waiting:
            self._held = True
            return
        granted = asyncio.get_running_loop().create_future()
        self._arrivals += 1
        heapq.heappush(self._waiting, (key, self._arrivals, granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._release()  # the turn was handed over as this waiter was cancelled
            raise

    def _release(self) -> None:
        while self._waiting:
            _, _, granted = heapq.heappop(self._waiting)
            if not granted.done():  # a waiter cancelled meanwhile is passed over
                granted.set_result(None)  # the lock passes to it, still held
                return
        self._held = False


FIRST = datetime.min.replace(tzinfo=UTC)  # the waitlist's turn: before any new client


@dataclass
class Turns:
    """Whose turn it is for an organisation's free places.

    New clients' first offers and waitlist retries take places one at a time, in turn
    (``offering``): run together (events are handled a batch at a time), a later client's
    offer took a place an earlier waiting client was about to get. One waitlist retry runs at
    a time: a retry asked for while one runs makes it run once more, and the asker waits for
    that round (when it returns, the waiting have had their turn)."""

    locks: dict[str, InTurn] = field(default_factory=dict)
    running: dict[str, asyncio.Future[None]] = field(default_factory=dict)  # done when it ends
    again: set[str] = field(default_factory=set)
    background: set[asyncio.Task[None]] = field(default_factory=set)
    # The places opened (``LiveIndex.opened``) as of the start of the last waitlist round.
    served: dict[str, int] = field(default_factory=dict)

    def offering(self, org: str) -> InTurn:
        return self.locks.setdefault(org, InTurn())

    def later(self, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run ``work`` apart from the caller; a failure is logged (the next event or the
        sweep asks again)."""

        async def logged() -> None:
            try:
                await work
            except Exception as error:
                log.warning("background_failed", what=what, error=type(error).__name__)

        task = asyncio.get_running_loop().create_task(logged())
        self.background.add(task)  # held until done: the loop keeps only a weak reference
        task.add_done_callback(self.background.discard)
