"""Benchmark of the whole pipeline: from an intake command to the client's proposals, every
service in its own process as ``alongside up SERVICE`` runs it, offered intakes at rising
rates until the 99th percentile passes 50 ms.

A real nats-server (``sync_interval: always``, auth on); intake, rules, matching and
scheduling each in a process of its own with its own credential; 2,000 vetted supporters
(caseloads of up to 30, so the pool is not used up by the run). Then, step by step, intakes
offered open loop at a fixed rate (sent on a timetable, not one after another's answer) for
``--step-s`` seconds each. A client's latency runs from sending ``SubmitIntake`` to seeing
its outcome event (``MatchProposed``, or ``ClientWaitlisted`` when nobody fits), on a plain
subscription. A step holds when every intake was accepted and reached an outcome and the
p99 is at most 50 ms; the run stops at the first step that does not.

Synced writes per intake are counted from the server itself: the sum over every stream
(KV buckets included) of its last sequence, before and after a step, over the intakes of
the step; ``writes_by_stream`` says where. Consumer acks are not messages and are not
counted. The baseline in the same run: raw JetStream publishes of 600 bytes, pipelined 256
at a time, on the same server. Each service's CPU per intake comes from ``/proc``, and each
hop's median (``stage_p50_ms``: to ``IntakeReceived``, to ``MatchingPolicyDecided``, to the
outcome) from when the bench saw each event.

The last line is JSON: ``pipeline_sustained_intakes_per_s`` (0 if not even the first step
held), ``pipeline_p50_ms`` and ``pipeline_p99_ms`` at that rate, ``synced_writes_per_intake``,
``raw_jetstream_pipelined_publish_per_s``, and every step. Steps go on past the goal until
one loses an intake or its p99 passes 1 s: ``pipeline_max_intakes_per_s_p99_under_1s`` is
the highest rate the pipeline kept up with at all.

    python -m bench.pipeline [--supporters 2000] [--step-s 6] [--rates 25,50,100,...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import StreamConfig

from alongside import sample, services
from alongside.client import AlongsideClient
from bench import (
    cpu_seconds,
    deployment,
    environment,
    register,
    register_vetted,
    settled,
    spawn,
    wait_for_responder,
)
from bench.intake import percentile
from contracts import subjects
from contracts.envelope import RawEnvelope
from contracts.intake import IntakeReceived, SubmitIntake
from contracts.matching import ClientWaitlisted, MatchProposed
from contracts.replies import CommandAccepted
from contracts.rules import MatchingPolicyDecided, SupporterEligibilityDecided
from runtime import bus, topology
from runtime.access import ADMIN, SERVICE_NEEDS, AuthDir
from runtime.clock import SYSTEM
from runtime.embedded import EmbeddedNats
from runtime.settings import Settings

SEED = 20261129
ORG = "bench-pipeline"
# Every service a deployment runs, each in its own process (notifications among them: its
# consumer takes the same events, and the bench waits for every consumer to settle).
SERVICES = tuple(services.SERVICES)
P99_GOAL_MS = 50.0
# Steps go on past the goal, to show where the pipeline saturates: until one loses or
# refuses an intake, or its p99 passes this.
P99_SATURATED_MS = 1000.0
DRAIN_S = 15.0  # after a step, how long outcomes may still arrive
SETUP_IN_FLIGHT = 32


class Outcomes:
    """When each client's outcome was seen, from a plain subscription to the two events."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        # When each case's events on the way were seen: where the time goes.
        self.received: dict[str, float] = {}
        self.policy_decided: dict[str, float] = {}
        self.eligible: set[str] = set()
        self._moved = asyncio.Condition()

    async def on_intake_received(self, msg: Msg) -> None:
        at = time.perf_counter()
        data = IntakeReceived.model_validate(RawEnvelope.model_validate_json(msg.data).data)
        self.received.setdefault(data.case_id, at)

    async def on_policy_decided(self, msg: Msg) -> None:
        at = time.perf_counter()
        data = MatchingPolicyDecided.model_validate(RawEnvelope.model_validate_json(msg.data).data)
        self.policy_decided.setdefault(data.case_id, at)

    async def on_outcome(self, msg: Msg) -> None:
        at = time.perf_counter()
        envelope = RawEnvelope.model_validate_json(msg.data)
        model = MatchProposed if envelope.type == MatchProposed.type_name else ClientWaitlisted
        self.seen.setdefault(model.model_validate(envelope.data).case_id, at)
        await self._note()

    async def on_eligibility(self, msg: Msg) -> None:
        decided = SupporterEligibilityDecided.model_validate(
            RawEnvelope.model_validate_json(msg.data).data
        )
        if decided.eligible:
            self.eligible.add(decided.supporter_id)
            await self._note()

    async def _note(self) -> None:
        async with self._moved:
            self._moved.notify_all()

    async def until(self, ready: Callable[[], bool], timeout_s: float) -> None:
        """Until ``ready``, or the timeout (the caller counts what is missing)."""
        with contextlib.suppress(TimeoutError):
            async with self._moved:
                await asyncio.wait_for(self._moved.wait_for(ready), timeout_s)


async def written(admin: Client) -> dict[str, int]:
    """Every stream's last sequence: what the server has stored so far, by stream."""
    return {
        info.config.name or "": info.state.last_seq
        for info in await admin.jetstream().streams_info()
    }


async def raw_pipelined_publish_per_s(admin: Client, n: int = 20_000) -> float:
    js = admin.jetstream()
    await js.add_stream(StreamConfig(name="BENCHRAW", subjects=["benchraw.>"]))
    payload, window = b"x" * 600, 256
    started = time.perf_counter()
    for first in range(0, n, window):
        await asyncio.gather(
            *(js.publish("benchraw.a", payload) for _ in range(min(window, n - first)))
        )
    rate = n / (time.perf_counter() - started)
    await js.delete_stream("BENCHRAW")
    return rate


async def supporters(client: AlongsideClient, outcomes: Outcomes, count: int) -> None:
    """``count`` supporters registered and vetted (caseloads of up to 30, so the run does not
    use up the pool), waited for until the rules found them eligible and the services
    settled."""
    await register_vetted(client, ORG, count, cap=30, seed=SEED, in_flight=SETUP_IN_FLIGHT)
    await outcomes.until(lambda: len(outcomes.eligible) >= count * 0.9, 300)
    await settled(client.nc)


async def step(
    client: AlongsideClient,
    outcomes: Outcomes,
    admin: Client,
    rate: int,
    seconds: float,
    first: int,
    pids: dict[str, int],
) -> dict[str, Any]:
    """Intakes offered at ``rate`` a second for ``seconds``, open loop."""
    rng = random.Random(SEED + rate)
    count = int(rate * seconds)
    intakes: list[SubmitIntake] = [sample.intake(rng, f"c{first + i}") for i in range(count)]
    sent: dict[str, float] = {}
    refused: list[str] = []
    before, cpu_before = await written(admin), {s: cpu_seconds(p) for s, p in pids.items()}

    async def send(intake: SubmitIntake) -> None:
        sent[intake.case_id] = time.perf_counter()
        reply = await client.submit(ORG, intake)
        if not isinstance(reply, CommandAccepted):
            refused.append(intake.case_id)

    started, tasks = time.perf_counter(), []
    for i, intake in enumerate(intakes):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(intake)))
    offered_s = time.perf_counter() - started
    await asyncio.gather(*tasks)
    await outcomes.until(lambda: all(c in outcomes.seen for c in sent), DRAIN_S)
    after, cpu_after = await written(admin), {s: cpu_seconds(p) for s, p in pids.items()}
    latencies = [(outcomes.seen[c] - t) * 1000 for c, t in sent.items() if c in outcomes.seen]
    lost = count - len(latencies)
    writes = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    p99 = percentile(latencies, 0.99) if latencies else float("inf")

    def stage(start: dict[str, float], end: dict[str, float]) -> float | None:
        spans = [(end[c] - start[c]) * 1000 for c in sent if c in start and c in end]
        return round(statistics.median(spans), 2) if spans else None

    return {
        "offered_per_s": rate,
        "intakes": count,
        "achieved_send_per_s": round(count / offered_s, 1),
        "refused": len(refused),
        "lost": lost,
        "p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "p99_ms": round(p99, 2) if latencies else None,
        "max_ms": round(max(latencies), 2) if latencies else None,
        # Medians of each hop, from the command sent to each event seen: intake (command to
        # IntakeReceived), rules (to MatchingPolicyDecided), matching (to the outcome).
        "stage_p50_ms": {
            "intake": stage(sent, outcomes.received),
            "rules": stage(outcomes.received, outcomes.policy_decided),
            "matching": stage(outcomes.policy_decided, outcomes.seen),
        },
        "held": lost == 0 and not refused and p99 <= P99_GOAL_MS,
        "synced_writes_per_intake": round(sum(writes.values()) / count, 2),
        "writes_by_stream": {k: round(v / count, 2) for k, v in sorted(writes.items()) if v},
        "cpu_ms_per_intake": {
            s: round((cpu_after[s] - cpu_before[s]) * 1000 / count, 2) for s in pids
        },
    }


async def measure(
    settings: Settings,
    auth: AuthDir,
    state: Path,
    supporter_count: int,
    rates: list[int],
    step_s: float,
) -> dict[str, Any]:
    assert settings.nats_url is not None
    admin = await bus.connect(settings.nats_url, "bench-admin", auth.credentials(ADMIN))
    await topology.provision(admin.jetstream(), settings)
    await register(admin.jetstream(), ORG, settings=settings)
    raw = await raw_pipelined_publish_per_s(admin)
    processes = {
        name: spawn(
            [sys.executable, "-m", "alongside.cli", "up", name],
            env=environment(
                settings.model_copy(update={"nats_credentials": auth.credentials(name)})
            ),
            log=state / f"{name}.log",
        )
        for name in SERVICES
    }
    outcomes = await following(admin)
    client = AlongsideClient(admin, source="bench/pipeline")
    try:
        probe = subjects.command(ORG, "intake", "SubmitIntake", subjects.OPERATOR)
        await wait_for_responder(admin, probe, b"{}", processes["intake"])
        await supporters(client, outcomes, supporter_count)
        pids = {name: process.pid for name, process in processes.items()}
        steps = await rising(client, outcomes, admin, rates, step_s, pids)
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(timeout=30)
        await admin.close()
    return {
        **sustained(steps),
        "raw_jetstream_pipelined_publish_per_s": round(raw),
        "pipeline_max_intakes_per_s_p99_under_1s": max_coping(steps),
        "supporters": supporter_count,
        "step_s": step_s,
        "seed": SEED,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "steps": steps,
    }


async def following(admin: Client) -> Outcomes:
    """``Outcomes`` subscribed to the organisation's outcomes, eligibility decisions,
    intakes received and matching policies."""
    outcomes = Outcomes()
    for event in (MatchProposed, ClientWaitlisted):
        await admin.subscribe(subjects.event(ORG, event.type_name), cb=outcomes.on_outcome)
    for model, take in (
        (SupporterEligibilityDecided, outcomes.on_eligibility),
        (IntakeReceived, outcomes.on_intake_received),
        (MatchingPolicyDecided, outcomes.on_policy_decided),
    ):
        await admin.subscribe(subjects.event(ORG, model.type_name), cb=take)
    return outcomes


async def rising(
    client: AlongsideClient,
    outcomes: Outcomes,
    admin: Client,
    rates: list[int],
    step_s: float,
    pids: dict[str, int],
) -> list[dict[str, Any]]:
    """A step at each rate in turn, until one loses or refuses an intake or its p99 passes
    ``P99_SATURATED_MS``."""
    steps: list[dict[str, Any]] = []
    first = 0
    for rate in rates:
        result = await step(client, outcomes, admin, rate, step_s, first, pids)
        first += result["intakes"]
        steps.append(result)
        print(
            f"{rate}/s: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, lost "
            f"{result['lost']}, {result['synced_writes_per_intake']} writes/intake, "
            f"hops {result['stage_p50_ms']}, cpu {result['cpu_ms_per_intake']}",
            file=sys.stderr,
        )
        if not coping(result):
            break
    return steps


def coping(step: dict[str, Any]) -> bool:
    """The pipeline kept up at all: nothing lost or refused, the p99 under a second."""
    return not step["lost"] and not step["refused"] and step["p99_ms"] <= P99_SATURATED_MS


def sustained(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures at the highest step that held (zero and none if not even the first)."""
    held = [s for s in steps if s["held"]]
    if not held:
        return {
            "pipeline_sustained_intakes_per_s": 0,
            "pipeline_p50_ms": None,
            "pipeline_p99_ms": None,
            "synced_writes_per_intake": steps[0]["synced_writes_per_intake"],
        }
    best = held[-1]
    return {
        "pipeline_sustained_intakes_per_s": best["offered_per_s"],
        "pipeline_p50_ms": best["p50_ms"],
        "pipeline_p99_ms": best["p99_ms"],
        "synced_writes_per_intake": best["synced_writes_per_intake"],
    }


def max_coping(steps: list[dict[str, Any]]) -> int:
    """The highest rate the pipeline kept up with at all (0: none)."""
    kept = [s for s in steps if coping(s)]
    return int(kept[-1]["offered_per_s"]) if kept else 0


async def run(supporters: int, rates: list[int], step_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder)
        auth = AuthDir.init(state / "auth", SERVICE_NEEDS, int(SYSTEM().timestamp()))
        with EmbeddedNats(state / "nats", auth=auth) as server:
            settings = deployment(state, nats_url=server.url, log_level="WARNING")
            return await measure(settings, auth, state, supporters, rates, step_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supporters", type=int, default=2000)
    parser.add_argument("--step-s", type=float, default=6.0)
    parser.add_argument("--rates", default="5,10,15,20,25,35,50,75,100,150,200,300,400,500,600")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    figures = asyncio.run(run(args.supporters, rates, args.step_s))
    print(
        f"sustained {figures['pipeline_sustained_intakes_per_s']} intakes/s (p99 "
        f"{figures['pipeline_p99_ms']} ms); {figures['synced_writes_per_intake']} synced "
        f"writes an intake; raw pipelined publish "
        f"{figures['raw_jetstream_pipelined_publish_per_s']}/s",
        file=sys.stderr,
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
