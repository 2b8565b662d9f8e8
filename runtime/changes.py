"""What a decision returns: a record's new state and the events it announces, a removal,
"gather again", or a refusal.

Pure values, no I/O: every service's domain decides with these, and ``runtime.unit``
commits them.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel

from contracts.envelope import Event
from contracts.replies import FieldError

R = TypeVar("R", bound=BaseModel)


@dataclass(frozen=True)
class Change(Generic[R]):
    """A record's new state and the events it announces (at ``at``: default, the commit)."""

    record: R
    events: Sequence[Event] = ()
    at: datetime | None = None


@dataclass(frozen=True)
class Removal:
    """The record goes (an erasure): ``first`` (repeatable) is done before it is removed,
    then the events are announced."""

    events: Sequence[Event]
    first: Callable[[], Awaitable[None]] | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class Stale:
    """What was gathered for the decision no longer fits the record as it now stands
    (another supporter, a place that opened): gather again, then decide."""

    why: str


def command_field(name: str) -> str:
    """Where a command's field is, as every refusal names it: in the message's ``data``."""
    return f"data.{name}"


class Refused(Exception):
    """A command that cannot apply to the record as it stands; answered naming each field
    of the command (``data.<field>``, as the edge's validation names them)."""

    def __init__(self, field: str, reason: str) -> None:
        self.errors = [FieldError(field=command_field(field), reason=reason)]
        super().__init__(f"{self.errors[0].field}: {reason}")

    @classmethod
    def each(cls, errors: Sequence[FieldError]) -> Refused:
        """Refused for errors already named: fields of the command, or rules
        (``rules.<kind>.<rule>``)."""
        refused = cls.__new__(cls)
        refused.errors = list(errors)
        Exception.__init__(refused, "; ".join(f"{e.field}: {e.reason}" for e in errors))
        return refused


class NotYet(Exception):
    """What an event announces is not readable here yet (a replica behind, a write still on
    its way): the consumer redelivers the event after a while instead of acknowledging it,
    and dead-letters it with the reason if it never becomes readable."""


T = TypeVar("T")


def on_record(found: T | None, what: str) -> T:
    """What an event names, as read; ``NotYet`` when it is not on record. Every publisher
    stores before it announces, so that is a replica behind (looked at again later), or an
    event about something that never existed (dead-lettered with this reason after the
    retries), never a reason to act."""
    if found is None:
        raise NotYet(f"no {what} on record")
    return found


class Contended(NotYet):
    """A record kept changing under every retry (many replicas, one busy record): the event
    is looked at again later, like state not yet readable, rather than failing loudly."""


async def backoff(attempt: int) -> None:
    """A short, jittered pause before retrying a compare-and-set, so that replicas racing
    for one record stop colliding in step."""
    await asyncio.sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 6)))
