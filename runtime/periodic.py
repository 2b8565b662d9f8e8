"""Background work that repeats: a sweep, a refresh."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from runtime.logging import get_logger

log = get_logger(__name__)

T = TypeVar("T")


def _stopping() -> bool:
    """This task was asked to stop. A library may turn the cancellation into an error of
    its own (a request timing out as it is cancelled): then it must not be swallowed, or a
    stopping service waits a whole sweep interval."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def every(seconds: float, work: Callable[[], Awaitable[None]], what: str) -> None:
    """Run ``work`` now and then every ``seconds``; a failure is logged, never fatal."""
    while True:
        try:
            await work()
        except Exception as error:
            if _stopping():
                raise asyncio.CancelledError from error
            # The type only: an error's text may quote a record's contents.
            log.error(f"{what}_failed", error=type(error).__name__)
        await asyncio.sleep(seconds)


async def each(items: Iterable[T], work: Callable[[T], Awaitable[object]], what: str) -> None:
    """``work`` on every item; one that fails is logged and skipped, never stopping the rest."""
    for item in items:
        try:
            await work(item)
        except Exception as error:
            if _stopping():
                raise asyncio.CancelledError from error
            log.error(f"{what}_failed", error=type(error).__name__)


async def attempt(work: Callable[[], Awaitable[object]], what: str) -> None:
    """``work`` once; a failure is logged, never raised."""
    await each([work], lambda job: job(), what)
