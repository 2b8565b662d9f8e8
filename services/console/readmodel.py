"""Each organisation's ``Overview``, kept by following its own events stream with the
console service's own credential (an ordered consumer from the first event: nothing is
stored, so any number of console replicas each keep their own).

A read waits until the fold has taken in every event the stream held when it was asked, so
a list is never older than the request (an event that has not yet been copied from
``EVENTS`` into the organisation's stream, some milliseconds, is not in it yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from contracts import catalogue, subjects
from contracts.envelope import RawEnvelope
from runtime.logging import get_logger
from services.console.overview import FOLDED, Overview

log = get_logger(__name__)

CATCH_UP_S = 30.0  # a first read replays the whole stream
_FOLDED = frozenset(model.type_name for model in FOLDED)


class Following:
    """One organisation's fold, kept up to date from its stream."""

    def __init__(self, org: str) -> None:
        self.org = org
        self.overview = Overview(org)
        self.applied = 0  # the stream sequence of the last event taken in
        self._moved = asyncio.Condition()
        self._sub: JetStreamContext.PushSubscription | None = None
        self._replayed = False

    async def start(self, js: JetStreamContext) -> None:
        self._sub = await js.subscribe(
            subjects.events(self.org),
            stream=subjects.org_events_stream(self.org),
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
            cb=self._take,
            pending_msgs_limit=-1,
        )

    async def _take(self, msg: Msg) -> None:
        type_name = msg.subject.rsplit(".", 1)[-1]
        if type_name in _FOLDED:
            try:
                envelope = RawEnvelope.model_validate_json(msg.data)
                event = catalogue.EVENTS[type_name].model_validate(envelope.data)
                self.overview.apply(event, envelope.time)
            except ValueError as error:  # not ours to dead-letter: the services did
                log.warning(
                    "console_event_unread",
                    org=self.org,
                    event_type=type_name,
                    error=type(error).__name__,
                )
        async with self._moved:
            self.applied = msg.metadata.sequence.stream
            self._moved.notify_all()

    async def current(self, js: JetStreamContext) -> Overview:
        """The fold with every event the stream holds now taken in."""
        info = await js.stream_info(subjects.org_events_stream(self.org))
        last = info.state.last_seq
        async with self._moved:
            await asyncio.wait_for(self._moved.wait_for(lambda: self.applied >= last), CATCH_UP_S)
        if not self._replayed:
            # A replayed fold is some millions of long-lived objects: left to the collector,
            # each full collection would scan them all again, a pause of a second on a large
            # organisation's request. Frozen, they are never scanned.
            gc.freeze()
            self._replayed = True
        return self.overview

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
