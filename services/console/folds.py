"""How the console's folds are written: one small function per event type, registered by
decorating it with ``@folds.of(EventType)``; ``apply`` finds the event's own, and skips an
event no fold reads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from contracts.envelope import Event
from services.console.overview_state import OverviewState, utc

E = TypeVar("E", bound=Event)
Fold = Callable[[OverviewState, E, datetime], None]


class Folds:
    """Each event type's fold into an organisation's overview."""

    def __init__(self) -> None:
        self._by_type: dict[type[Event], Fold[Any]] = {}

    def of(self, kind: type[E]) -> Callable[[Fold[E]], Fold[E]]:
        """Registers the decorated function as how events of ``kind`` are taken in."""

        def register(fold: Fold[E]) -> Fold[E]:
            self._by_type[kind] = fold
            return fold

        return register

    def apply(self, kept: OverviewState, event: Event, at: datetime) -> None:
        """``event``, published at ``at``, taken into ``kept``; events in stream order."""
        fold = self._by_type.get(type(event))
        if fold is not None:
            fold(kept, event, utc(at))  # every time is kept in UTC (``overview_state``)

    @property
    def types(self) -> tuple[type[Event], ...]:
        """The event types read: any other is skipped unread."""
        return tuple(self._by_type)
