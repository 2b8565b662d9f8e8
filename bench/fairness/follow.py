"""Following the events and the caseloads live: ordered consumers made again after a
restart, and what they saw."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from bench.fairness.shared import (
    CASELOADS_PREFIX,
    ELIGIBILITY,
    ORG,
    PROPOSED,
    RETRYABLE,
    WAITLISTED,
    CaseloadUpdate,
    Event,
    wall,
)
from contracts.records import Caseload


class Follower:
    """Every message of ``subject`` in ``stream``, in order from the first: an ordered
    consumer, made again from the next sequence whenever it has said nothing for 3 s (the
    server may have restarted and taken it away)."""

    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        subject: str,
        take: Callable[[Msg], None],
        count_gaps: bool = False,
    ) -> None:
        self.js, self.stream, self.subject, self.take = js, stream, subject, take
        self.count_gaps = count_gaps
        self.next_seq = 1
        self.gaps = 0

    async def run(self) -> None:
        while True:
            sub = None
            try:
                config = ConsumerConfig(
                    deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.next_seq
                )
                sub = await self.js.subscribe(
                    self.subject, stream=self.stream, ordered_consumer=True, config=config
                )
                idle = 0
                while idle < 3:
                    try:
                        msg = await sub.next_msg(timeout=1.0)
                    except TimeoutError:
                        idle += 1
                        continue
                    idle = 0
                    seq = msg.metadata.sequence.stream
                    if seq < self.next_seq:
                        continue
                    if self.count_gaps and seq > self.next_seq:
                        self.gaps += seq - self.next_seq
                    self.next_seq = seq + 1
                    self.take(msg)
            except RETRYABLE:
                pass
            finally:
                if sub is not None:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
            await asyncio.sleep(0.2)


class Observer:
    """What the followers saw, as it came: the events and caseload updates (with the
    server's timestamps), eligibility, and the caseloads as last seen (the live view)."""

    def __init__(self, caps: dict[str, int]) -> None:
        self.caps = caps  # supporter -> cap, of the supporters registered
        self.events: list[Event] = []
        self.outcomes: set[str] = set()  # clients with an outcome event
        # (how many clients with an outcome, the event to set then): ``--restart-on outcomes``
        self.restart_when: tuple[int, asyncio.Event] | None = None
        self.caseloads: list[CaseloadUpdate] = []
        self.eligible: dict[str, bool] = {}
        self.last_event_wall = wall()
        self.live: dict[str, int] = {}  # supporter -> slots taken, as last seen
        self.live_free_at_waitlisting: list[int] = []
        self.fitting: set[str] = set()  # fixed once setup is done
        self.on_proposed: Callable[[Event], None] | None = None

    def live_free(self) -> int:
        return sum(max(self.caps[s] - self.live.get(s, 0), 0) for s in self.fitting)

    def take_event(self, msg: Msg) -> None:
        envelope = json.loads(msg.data)
        event = Event(
            msg.metadata.sequence.stream,
            msg.metadata.timestamp.timestamp(),
            envelope["type"],
            envelope["data"],
        )
        self.events.append(event)
        self.last_event_wall = wall()
        if event.type in (PROPOSED, WAITLISTED):
            self.outcomes.add(str(event.data["case_id"]))
            if self.restart_when and len(self.outcomes) >= self.restart_when[0]:
                self.restart_when[1].set()
        if event.type == ELIGIBILITY:
            self.eligible[str(event.data["supporter_id"])] = bool(event.data["eligible"])
        elif event.type == WAITLISTED:
            self.live_free_at_waitlisting.append(self.live_free())
        elif event.type == PROPOSED and self.on_proposed is not None:
            self.on_proposed(event)

    def take_caseload(self, msg: Msg) -> None:
        key = msg.subject.removeprefix(CASELOADS_PREFIX)
        if not key.startswith(f"{ORG}."):
            return
        supporter_id = key.removeprefix(f"{ORG}.")
        operation = (msg.headers or {}).get("KV-Operation")
        caseload = None if operation or not msg.data else Caseload.model_validate_json(msg.data)
        at = msg.metadata.timestamp
        taken = caseload.taken(at) if caseload else 0
        self.caseloads.append(
            CaseloadUpdate(msg.metadata.sequence.stream, at.timestamp(), supporter_id, taken)
        )
        self.live[supporter_id] = taken
