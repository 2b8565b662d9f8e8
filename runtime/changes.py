"""What a decision returns: a record's new state and the events it announces, or a refusal.

Pure values, no I/O: every service's domain decides with these, and ``store.Changer``
commits them.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from contracts.envelope import Event
from contracts.records import Record
from contracts.replies import FieldError

R = TypeVar("R", bound=Record)


@dataclass(frozen=True)
class Change(Generic[R]):
    """A record's new state and the events it announces."""

    record: R
    events: Sequence[Event]


class Refused(Exception):
    """A command that cannot apply to the record as it stands; answered naming each field."""

    def __init__(self, field: str, reason: str, *more: FieldError) -> None:
        self.errors = [FieldError(field=field, reason=reason), *more]
        super().__init__("; ".join(f"{e.field}: {e.reason}" for e in self.errors))

    @classmethod
    def each(cls, errors: Sequence[FieldError]) -> Refused:
        return cls(errors[0].field, errors[0].reason, *errors[1:])


class Regather(Exception):
    """A decision found that what was gathered for it no longer fits the record as it now
    stands (another supporter, a judgement of other facts): gather again, then decide."""


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
