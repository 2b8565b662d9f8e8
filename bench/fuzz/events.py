"""Fuzzing events: what each consumer's own checks say of them (replayed here), publishing them
into ``EVENTS``, and accounting for each afterwards (dead letters, advisories, logs)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections import Counter, defaultdict
from typing import Any

import nats
from nats.aio.client import Client as Nats
from nats.js.api import DeliverPolicy
from nats.js.errors import Error as JetStreamError
from pydantic import ValidationError

from bench.fuzz.fleet import Fleet
from bench.fuzz.shared import (
    CONSUMERS,
    DRAIN_TIMEOUT_S,
    EVENTS_IN_FLIGHT,
    HANDLED_EVENTS,
    Findings,
    Letter,
    Probe,
    every,
    letters_by_probe,
    say,
)
from contracts import subjects
from contracts.envelope import MAX_EVENT_BYTES, RawEnvelope
from runtime import bus, topology
from runtime.dispatch import Handlers
from runtime.settings import Settings


def consumer_oracle(probe: Probe, spec: topology.ConsumerSpec, handlers: Handlers[Any]) -> str:
    """What the server and ``runtime/consumer.on_message`` do with the probe before its
    handler, replayed here: ``not_sent`` (outside the consumer's filter), ``unroutable`` (no
    organisation), ``dead_letter``, ``ignore`` or ``handler``."""
    if not any(subjects.matches(f, probe.subject) for f in spec.filter_subjects):
        return "not_sent"
    try:
        org = subjects.org_of(probe.subject)
    except subjects.SubjectError:
        return "unroutable"
    try:
        if len(probe.body) > MAX_EVENT_BYTES:
            return "dead_letter"
        envelope = RawEnvelope.model_validate_json(probe.body)
    except (ValueError, ValidationError):
        return "dead_letter"
    except Exception as error:
        return f"raises {type(error).__name__}"
    if envelope.org != org or envelope.type != subjects.last_token(probe.subject):
        return "dead_letter"
    route = handlers.events.get(envelope.type)
    if route is None:
        return "ignore"
    try:
        route.model.model_validate(envelope.data)
    except ValidationError:
        return "dead_letter"
    except Exception as error:
        return f"raises {type(error).__name__}"
    return "handler"


async def publish_event(nc: Nats, probe: Probe) -> None:
    js = nc.jetstream()
    headers = {"Nats-Msg-Id": probe.msg_id or probe.fuzz_id, "Fuzz-Id": probe.fuzz_id}
    try:
        ack = await js.publish(probe.subject, probe.body, timeout=10.0, headers=headers)
    except nats.errors.MaxPayloadError:
        probe.status = "refused: over the server's max_payload"
    except JetStreamError as error:
        # The stream refuses what its limits do not allow: the publisher is told.
        description = str(getattr(error, "description", "") or error)
        refused = "exceeds maximum" in description
        probe.status = f"{'refused' if refused else 'publish_failed'}: {description[:80]}"
    except nats.errors.TimeoutError:
        probe.status = "publish_failed: timeout"
    else:
        probe.status = "published"
        probe.stream_seq = ack.seq
        probe.duplicate = bool(ack.duplicate)


async def send_events(nc: Nats, probes: list[Probe]) -> None:
    slots = asyncio.Semaphore(EVENTS_IN_FLIGHT)
    done = 0

    async def one(probe: Probe) -> None:
        nonlocal done
        async with slots:
            await publish_event(nc, probe)
            if probe.follows is not None:
                await publish_event(nc, probe.follows)
        done += 1
        if done % 500 == 0:
            say(f"events: {done} of {len(probes)} published")

    await asyncio.gather(*(one(p) for p in probes))


async def consumer_state(nc: Nats) -> dict[str, dict[str, int]]:
    js = nc.jetstream()
    states = {}
    for service, spec in CONSUMERS.items():
        info = await js.consumer_info(spec.stream, spec.durable)
        states[service] = {
            "num_pending": info.num_pending or 0,
            "num_ack_pending": info.num_ack_pending or 0,
            "num_redelivered": info.num_redelivered or 0,
        }
    return states


async def drain(nc: Nats) -> tuple[bool, dict[str, dict[str, int]], float]:
    """Wait until every durable consumer has nothing pending (twice in a row)."""
    started = time.perf_counter()
    calm = 0
    states = await consumer_state(nc)
    while time.perf_counter() - started < DRAIN_TIMEOUT_S:
        states = await consumer_state(nc)
        busy = sum(s["num_pending"] + s["num_ack_pending"] for s in states.values())
        calm = calm + 1 if busy == 0 else 0
        if calm >= 3:
            return True, states, time.perf_counter() - started
        await asyncio.sleep(1.0)
    return False, states, time.perf_counter() - started


async def dead_letters(nc: Nats, settings: Settings) -> list[Letter]:
    """Every dead letter in the stream (the fuzz's server holds nothing else)."""
    js = nc.jetstream()
    info = await js.stream_info(topology.DEADLETTER_STREAM)
    total = info.state.messages
    letters: list[Letter] = []
    if not total:
        return letters
    sealer = bus.DeadLetters(settings).sealer(js)
    sub = await js.subscribe(
        subjects.dead_letters("*"), ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    try:
        while len(letters) < total:
            try:
                msg = await sub.next_msg(timeout=5.0)
            except nats.errors.TimeoutError:
                break
            kept = RawEnvelope.model_validate_json(msg.data)
            data = await bus.read_dead_letter(sealer, kept)
            letters.append(
                Letter(
                    data.service,
                    data.reason,
                    data.headers.get("Fuzz-Id"),
                    data.headers.get("Nats-Msg-Id"),
                    data.subject,
                )
            )
    finally:
        await sub.unsubscribe()
    return letters


class Advisories:
    """The server's consumer advisories: messages that ran out of deliveries, or were
    terminated, by stream sequence."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self.exhausted: dict[int, set[str]] = defaultdict(set)
        self.sub: Any = None

    async def start(self, nc: Nats) -> None:
        async def seen(msg: Any) -> None:
            kind = msg.subject.split(".")[4]
            self.kinds[kind] += 1
            if kind in ("MAX_DELIVERIES", "MSG_TERMINATED"):
                advisory = json.loads(msg.data)
                self.exhausted[int(advisory["stream_seq"])].add(str(advisory["consumer"]))

        self.sub = await nc.subscribe("$JS.EVENT.ADVISORY.CONSUMER.>", cb=seen)


def legitimately_ignored(probe: Probe) -> bool:
    named = {probe.name, probe.envelope_type} - {None}
    return probe.envelope_ok and not named & HANDLED_EVENTS


def reason_kind(reason: str) -> str:
    """A dead letter's reason without its particulars: ``failed 5 times; last: KeyError``."""
    failed = re.match(r"^(failed \d+ times; last: [\w.]+)", reason)
    return failed.group(1) if failed else reason.split(":")[0][:60]


def judge_events(
    probes: list[Probe],
    letters: list[Letter],
    advisories: Advisories,
    logged: set[int],
    findings: Findings,
) -> dict[str, int]:
    kept = letters_by_probe(letters)
    counts: Counter[str] = Counter()
    for probe in every(probes):
        probe.dead_letters = kept.get(probe.fuzz_id, [])
        if probe.status != "published":
            refused = probe.status.startswith("refused")
            probe.outcome = "refused_at_publish" if refused else "publish_failed"
            counts[probe.outcome] += 1
            if not refused:
                findings.add(f"event not published ({probe.status})", probe)
            continue
        probe.outcome = account(probe, logged)
        counts[probe.outcome] += 1
        for key, failure in event_failures(probe, advisories, logged):
            counts[key] += 1
            findings.add(failure, probe)
    return dict(counts)


def account(probe: Probe, logged: set[int]) -> str:
    """How a published event is accounted for (see the package docstring)."""
    if probe.dead_letters:
        return "dead_lettered"
    if probe.stream_seq in logged:
        return "logged_unroutable"
    if probe.duplicate:
        return "deduplicated"
    if legitimately_ignored(probe):
        return "ignored"
    if probe.schema_valid:
        return "valid_handled"
    return "unaccounted_lax" if model_accepts(probe) else "unaccounted_model_rejects"


def model_accepts(probe: Probe) -> bool:
    """Every consumer's own checks let the event through (to its handler, or ignored)."""
    return not any(word in probe.oracle for word in ("dead_letter", "unroutable", "raises"))


def event_failures(probe: Probe, advisories: Advisories, logged: set[int]) -> list[tuple[str, str]]:
    failures = []
    by = {letter.service for letter in probe.dead_letters}
    missing = probe.expected_dead_letters - by
    if missing and not probe.duplicate:
        failures.append(
            ("missing_dead_letters", f"not dead-lettered by {','.join(sorted(missing))}")
        )
    if probe.stream_seq in advisories.exhausted and not by:
        failures.append(("exhausted_without_dead_letter", "ran out of deliveries, no dead letter"))
    if account(probe, logged).startswith("unaccounted"):
        lax = " (its pydantic model accepts it)" if model_accepts(probe) else ""
        failures.append(
            ("unaccounted", f"schema-invalid event neither dead-lettered nor ignored{lax}")
        )
    if probe.stream_seq in logged:
        failures.append(("unroutable", "logged as unroutable, kept in EVENTS only"))
    if probe.schema_valid and by:
        kinds = sorted({reason_kind(letter.reason) for letter in probe.dead_letters})
        failures.append(
            ("valid_dead_lettered", f"schema-valid event dead-lettered: {'; '.join(kinds)}")
        )
    return failures


def unroutable(fleet: Fleet) -> set[int]:
    """Stream sequences of the events a consumer logged as unroutable (no organisation)."""
    found = set()
    for paths in fleet.log_files.values():
        for path in paths:
            for line in path.read_text(errors="replace").splitlines():
                if '"unroutable_event"' in line:
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        found.add(int(json.loads(line)["stream_sequence"]))
    return found
