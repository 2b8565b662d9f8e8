"""Fuzzing commands: what the service's own first checks say of each (replayed here), sending
them by request/reply, and judging the replies."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any, cast

import nats
from nats.aio.client import Client as Nats
from nats.js.api import PubAck
from nats.js.errors import NotFoundError

from bench.fuzz.fleet import Fleet, Gate
from bench.fuzz.shared import (
    COMMANDS_IN_FLIGHT,
    HANDLERS,
    REPLY_TIMEOUT_S,
    Findings,
    Letter,
    Probe,
    every,
    letters_by_probe,
    say,
)
from contracts.replies import CommandRejected
from runtime import bus, commands, topology
from runtime.clock import SYSTEM
from runtime.settings import Settings


class KeepingJetStream:
    """Stands in for JetStream when ``receive`` runs here: keeps what it would publish."""

    def __init__(self) -> None:
        self.subjects: list[str] = []

    async def publish(
        self, subject: str, payload: bytes = b"", stream: str = "", **_: Any
    ) -> PubAck:
        if stream == topology.DEADLETTER_STREAM:  # not the key its sealing makes
            self.subjects.append(subject)
        return PubAck(stream=stream, seq=len(self.subjects))

    async def get_last_msg(self, *_: Any, **__: Any) -> Any:
        raise NotFoundError  # no key yet: the day's dead letters key is made (kept above)


async def command_oracle(probe: Probe, settings: Settings) -> str:
    """What the service's own first checks (``runtime/commands.receive``, run here on the
    same bytes) do with the probe: ``reject``, ``dead_letter`` (rejected and kept),
    ``handler`` (valid: its handler decides) or ``raises <error>``."""
    js = KeepingJetStream()
    try:
        received = await commands.receive(
            cast(Any, js),
            HANDLERS[probe.service],
            probe.subject,
            probe.body,
            {"Fuzz-Id": probe.fuzz_id},
            SYSTEM,
            bus.DeadLetters(settings),
        )
    except Exception as error:
        return f"raises {type(error).__name__}"
    if isinstance(received, CommandRejected):
        return "dead_letter" if js.subjects else "reject"
    return "handler"


def read_reply(probe: Probe, data: bytes) -> None:
    try:
        reply = json.loads(data)
        probe.status = str(reply["status"])
        if probe.status == "rejected":
            probe.errors = [
                (str(e.get("field", "")), str(e.get("reason", "")))
                for e in reply.get("errors") or []
            ]
        elif probe.status == "unavailable":
            probe.reason = str(reply.get("reason", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        probe.status = "bad_reply"


async def send_command(nc: Nats, probe: Probe, gate: Gate, fleet: Fleet) -> None:
    await gate.wait(probe.service)
    fleet.recent[probe.service].append(f"{probe.fuzz_id} {probe.recipe} {probe.subject}")
    started = time.perf_counter()
    try:
        response = await nc.request(
            probe.subject, probe.body, timeout=REPLY_TIMEOUT_S, headers={"Fuzz-Id": probe.fuzz_id}
        )
    except nats.errors.TimeoutError:
        probe.status = "no_reply"
        gate.timed_out(probe.service)
    except nats.errors.NoRespondersError:
        probe.status = "no_responders"
    except nats.errors.MaxPayloadError:
        probe.status = "too_big_to_send"
    else:
        gate.answered(probe.service)
        read_reply(probe, response.data)
    probe.seconds = time.perf_counter() - started


async def send_commands(nc: Nats, probes: list[Probe], gate: Gate, fleet: Fleet) -> None:
    slots = asyncio.Semaphore(COMMANDS_IN_FLIGHT)
    done = 0

    async def one(probe: Probe) -> None:
        nonlocal done
        async with slots:
            await send_command(nc, probe, gate, fleet)
            if probe.follows is not None:
                await send_command(nc, probe.follows, gate, fleet)
        done += 1
        if done % 500 == 0:
            say(f"commands: {done} of {len(probes)} sent")

    await asyncio.gather(*(one(p) for p in probes))


# What a command whose handler raised is answered with (``CommandUnavailable.reason``).
HANDLER_FAILED = commands.NOT_CARRIED_OUT
ANSWERED = ("accepted", "evaluated", "assigned")


def judge_commands(
    probes: list[Probe], letters: list[Letter], findings: Findings
) -> dict[str, int]:
    kept = letters_by_probe(letters)
    counts: Counter[str] = Counter()
    for probe in every(probes):
        probe.dead_letters = kept.get(probe.fuzz_id, [])
        counts[probe.status] += 1
        first = f" {probe.errors[0][0]}" if probe.errors else ""
        probe.outcome = f"{probe.status}{first}" + (" +dead-lettered" if probe.dead_letters else "")
        failure = command_failure(probe)
        if failure is not None:
            counts[failure[0]] += 1
            findings.add(failure[1], probe)
        if probe.oracle == "dead_letter" and not probe.dead_letters:
            counts["dead_letters_missing"] += 1
            findings.add("malformed command envelope not dead-lettered", probe)
    for probe in probes:
        second = probe.follows
        if second is not None and probe.status == "accepted" and second.status == "accepted":
            counts["duplicate_id_violations"] += 1
            findings.add("duplicate id with another payload accepted", second)
    return dict(counts)


def command_failure(probe: Probe) -> tuple[str, str] | None:
    """(counter, failure class) of a command that was not answered as it should be."""
    if probe.status in ("no_reply", "no_responders", "unsent"):
        return "unanswered", f"command unanswered ({probe.status})"
    if probe.status == "bad_reply":
        return "bad_reply", "command answered with an unknown reply"
    if probe.status == "rejected" and not all(f and r for f, r in probe.errors):
        return "rejected_without_field_or_reason", "rejection without a field or reason"
    if probe.status == "unavailable" and probe.reason == HANDLER_FAILED:
        return "handler_failed", "handler raised; answered unavailable"
    if probe.status == "unavailable" and not probe.reason:
        return "bad_reply", "command answered unavailable without a reason"
    if probe.status in ANSWERED and not probe.schema_valid:
        return "accepted_schema_invalid", "accepted although invalid for its exported schema"
    return None
