"""A service's command handler made to fail, as during a server restart, for tests of what
its clients do with "not carried out just now" (``CommandUnavailable``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from runtime.dispatch import Handlers


class Flaked(Exception):
    """What the flaky handler raises (the service answers it as not carried out just now)."""


@dataclass
class Flaky:
    """How the handler has been called so far: each command id it was sent."""

    ids: list[str] = field(default_factory=list)


@contextmanager
def flaky(
    handlers: Handlers[Any], command_type: str, fail: int, after: bool = False
) -> Iterator[Flaky]:
    """``command_type``'s handler, in the running service, raises for its first ``fail``
    calls (``after``: once it has carried the command out, so only the reply is lost);
    ``fail=-1``: every call."""
    route = handlers.commands[command_type]
    calls = Flaky()

    async def handler(command: Any, received: Any, deps: Any) -> Any:
        calls.ids.append(received.envelope.id)
        failing = fail < 0 or len(calls.ids) <= fail
        if failing and not after:
            raise Flaked("NoStreamResponseError: nats: no response from stream")
        reply = await route.handler(command, received, deps)
        if failing:
            raise Flaked("NoStreamResponseError: nats: no response from stream")
        return reply

    handlers.commands[command_type] = dataclasses.replace(route, handler=handler)
    try:
        yield calls
    finally:
        handlers.commands[command_type] = route
