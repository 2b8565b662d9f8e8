"""What goes over the wire: the organisation's events read back, commands sent as a client
would (the same envelope until answered), and the settling afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import nats
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from alongside import sample
from alongside.client import AlongsideClient, Unavailable
from bench.faults.shared import (
    CONSUMERS,
    ORG,
    OUTCOMES,
    RECEIVED,
    REQUEST_TIMEOUT_S,
    RETRYABLE,
    SEED,
    SOURCE,
    Options,
    say,
)
from contracts import subjects
from contracts.envelope import Command, wrap
from contracts.replies import CommandAccepted, CommandRejected
from contracts.rules import SupporterEligibilityDecided
from runtime import topology
from runtime.clock import SYSTEM


@dataclass(frozen=True)
class Seen:
    """One event as stored in EVENTS."""

    seq: int
    type: str
    id: str
    data: dict[str, Any]
    at: float  # perf_counter when this bench first read it
    stored_at: datetime  # when the server stored it


@dataclass
class EventLog:
    """The organisation's events, read from the stream in order; each poll reads what is new
    with a fresh ordered consumer starting after the last sequence read."""

    events: list[Seen] = field(default_factory=list)
    next_seq: int = 1

    async def poll(self, js: JetStreamContext) -> None:
        info = await js.stream_info(topology.EVENTS_STREAM)
        if info.state.last_seq < self.next_seq:
            return
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.next_seq
        )
        sub = await js.subscribe(subjects.events(ORG), ordered_consumer=True, config=config)
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=1.0)
                except nats.errors.TimeoutError:
                    return
                meta = msg.metadata
                if meta.sequence.stream >= self.next_seq:
                    envelope = json.loads(msg.data)
                    self.events.append(
                        Seen(
                            meta.sequence.stream,
                            envelope["type"],
                            envelope["id"],
                            envelope["data"],
                            time.perf_counter(),
                            meta.timestamp,
                        )
                    )
                    self.next_seq = meta.sequence.stream + 1
                if not meta.num_pending:
                    return
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def try_poll(self, js: JetStreamContext) -> None:
        """Poll, unless the server is not answering right now (a fault): next time."""
        try:
            await self.poll(js)
        except RETRYABLE as error:
            say(f"  (event read failed: {type(error).__name__}; again shortly)")

    def cases_with(self, *types: str) -> set[str]:
        return {str(e.data["case_id"]) for e in self.events if e.type in types}

    def outcome_times(self) -> dict[str, float]:
        first: dict[str, float] = {}
        for e in self.events:
            if e.type in OUTCOMES:
                first.setdefault(str(e.data["case_id"]), e.at)
        return first


@dataclass(frozen=True)
class Sent:
    reply: CommandAccepted | CommandRejected | None
    attempts: int
    # Replies that said to retry later (the service could not carry it out just then).
    retry_later: int = 0
    answered_at: datetime | None = None  # the wall clock when the last reply came


def says_retry(reply: CommandAccepted | CommandRejected) -> bool:
    """A refusal of the moment, naming only the id and asking for a retry (how a service
    said "not just now" before ``CommandUnavailable``, which ``submit`` takes as such too): a
    client sends the same envelope again."""
    return isinstance(reply, CommandRejected) and all(
        e.field == "id" and "retry" in e.reason for e in reply.errors
    )


def envelope_of(command: Command, command_id: str) -> bytes:
    return (
        wrap(command, org=ORG, source=SOURCE, id=command_id, time=SYSTEM())
        .model_dump_json()
        .encode()
    )


async def submit(client: AlongsideClient, command: Command, body: bytes, give_up_at: float) -> Sent:
    """Send one command until it is answered for good, every attempt with the same envelope:
    again after a timeout, no responders, or a reply that asks for a retry (counted here, so
    the client sends each once)."""
    attempts, retry_later, delay = 0, 0, 0.1
    reply: CommandAccepted | CommandRejected | None = None
    while True:
        attempts += 1
        try:
            reply = await client.send_raw(
                ORG,
                command.service,
                command.type_name,
                body,
                timeout=REQUEST_TIMEOUT_S,
                retry_for=0,
            )
            if not says_retry(reply):
                return Sent(reply, attempts, retry_later, SYSTEM())
            retry_later += 1
        except Unavailable:
            retry_later += 1
        except RETRYABLE:
            pass
        if time.monotonic() > give_up_at:
            return Sent(reply, attempts, retry_later)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def consumers_idle(js: JetStreamContext) -> bool:
    """Every service's durable consumer has delivered and seen acknowledged everything."""
    try:
        for spec in CONSUMERS:
            info = await js.consumer_info(spec.stream, spec.durable)
            if info.num_pending or info.num_ack_pending:
                return False
    except RETRYABLE:
        return False
    return True


async def until_idle(js: JetStreamContext, timeout_s: float, calm_s: float = 1.0) -> bool:
    """Wait until the consumers stay idle for ``calm_s``; False at ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    calm_since: float | None = None
    while time.monotonic() < deadline:
        if await consumers_idle(js):
            calm_since = calm_since or time.monotonic()
            if time.monotonic() - calm_since >= calm_s:
                return True
        else:
            calm_since = None
        await asyncio.sleep(0.25)
    return False


async def register_supporters(client: AlongsideClient, count: int, concurrency: int) -> int:
    """Supporters with their vetting evidence, each supporter's commands in order. Returns
    how many commands were not accepted."""
    rng = random.Random(SEED)
    today = SYSTEM().date()
    plans = [
        [sample.supporter(rng, f"s{n:03d}"), *sample.vetting(rng, f"s{n:03d}", today)]
        for n in range(count)
    ]
    refused = 0
    gate = asyncio.Semaphore(concurrency)

    async def one(n: int, commands: list[Command]) -> None:
        nonlocal refused
        async with gate:
            for k, command in enumerate(commands):
                body = envelope_of(command, f"sup-s{n:03d}-{k}")
                sent = await submit(client, command, body, time.monotonic() + 60)
                refused += not isinstance(sent.reply, CommandAccepted)

    await asyncio.gather(*(one(n, commands) for n, commands in enumerate(plans)))
    return refused


def eligible_count(log: EventLog) -> int:
    latest: dict[str, bool] = {}
    for e in log.events:
        if e.type == SupporterEligibilityDecided.type_name:
            latest[str(e.data["supporter_id"])] = bool(e.data["eligible"])
    return sum(latest.values())


async def burst(
    client: AlongsideClient,
    commands: Sequence[tuple[str, Command, bytes]],
    options: Options,
    trigger: asyncio.Event,
) -> dict[str, Sent]:
    """Every intake, ``concurrency`` in flight; the trigger fires once ``kill_at`` of them
    are answered (so the fault comes mid-burst, whatever the concurrency)."""
    results: dict[str, Sent] = {}
    queue = iter(commands)
    fire_at = max(1, int(len(commands) * options.kill_at))

    async def worker() -> None:
        for case_id, command, body in queue:
            give_up = time.monotonic() + options.command_deadline_s
            results[case_id] = await submit(client, command, body, give_up)
            if len(results) >= fire_at:
                trigger.set()

    await asyncio.gather(*(worker() for _ in range(options.concurrency)))
    return results


@dataclass
class Settled:
    settle_s: float | None
    missing_at_deadline: set[str]
    intake_at_deadline: set[str]


async def settle(
    js: JetStreamContext, log: EventLog, accepted: set[str], ended: float, options: Options
) -> Settled:
    """Poll the events until every accepted case has an outcome, or the settle deadline
    (then the grace period). See the package docstring."""
    quiet_s = options.setting("settle_s") + 2 * options.setting("sweep_interval_s") + 2
    hard = ended + options.settle_timeout_s
    outcomes, progress = 0, time.perf_counter()
    while True:
        await log.try_poll(js)
        done = log.cases_with(*OUTCOMES)
        if len(done) > outcomes:
            outcomes, progress = len(done), time.perf_counter()
        missing = accepted - done
        now = time.perf_counter()
        if not missing:
            return Settled(max(log.outcome_times().values(), default=ended) - ended, set(), set())
        stalled = now - progress >= quiet_s and await consumers_idle(js)
        if stalled or now >= hard:
            break
        await asyncio.sleep(0.5)
    at_deadline = set(missing)
    with_intake = at_deadline & log.cases_with(RECEIVED)
    say(
        f"  settle deadline: {len(at_deadline)} accepted cases without an outcome "
        f"({len(with_intake)} with IntakeReceived); grace {options.grace_s} s"
    )
    grace_end = time.perf_counter() + options.grace_s
    while time.perf_counter() < grace_end and accepted - log.cases_with(*OUTCOMES):
        await asyncio.sleep(1.0)
        await log.try_poll(js)
    settled = None
    if not accepted - log.cases_with(*OUTCOMES):
        settled = max(log.outcome_times().values(), default=ended) - ended
    return Settled(settled, at_deadline, with_intake)
