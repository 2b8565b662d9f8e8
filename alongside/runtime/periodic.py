"""Background work that repeats: a sweep, a refresh."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from alongside.runtime.logging import get_logger

log = get_logger(__name__)


async def every(seconds: float, work: Callable[[], Awaitable[None]], what: str) -> None:
    """Run ``work`` now and then every ``seconds``; a failure is logged, never fatal."""
    while True:
        try:
            await work()
        except Exception as error:
            # The type only: an error's text may quote a record's contents.
            log.error(f"{what}_failed", error=type(error).__name__)
        await asyncio.sleep(seconds)
