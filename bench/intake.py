"""Benchmark of the intake service over a real, embedded nats-server.

The server runs as ``alongside up`` ships it: operator-mode auth, the intake service
connected as its own user (allowed only what it needs), the benchmark as the operator,
and the organisation registered with its own events stream (``EVENTS-<org>``, sourced
from ``EVENTS``). Measures, in one run and on one server:
  - raw nats-py request/reply against a trivial echo responder (the floor);
  - raw JetStream publish, waiting for each ack (what every accepted command pays);
  - intake: request/reply latency of SubmitIntake one at a time (p50/p99), and
    accepted commands per second with 32 requests in flight;
each with ``sync_interval: always`` (the shipped setting) and again with the
NATS default, to show what the fsync costs. On each server intake is measured with
FastStream's metrics middleware on (as shipped) and off (``ALONGSIDE_METRICS=false``),
in four halves ordered on, off, off, on so that neither gains from going first or
last; the ``*_metrics_off`` figures and the ``metrics_cost_*`` ratios (on/off) are what
the middleware costs (our own counters are always on). Responders run in
their own processes. Permission violations the server logs, and the errors the intake
service logs, are counted (all should be 0). Fixed seed; the last line printed is one
JSON object.

    python -m bench.intake [--n 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import nats

from alongside import sample
from alongside.client import AlongsideClient
from bench import register
from contracts.envelope import wrap
from contracts.replies import CommandAccepted
from runtime import bus, topology
from runtime.access import ADMIN, SERVICE_NEEDS, AuthDir
from runtime.clock import SYSTEM
from runtime.embedded import EmbeddedNats
from runtime.logging import configure
from runtime.settings import Settings

SEED = 20261123
INTAKE = "alongside.bench.cmd.intake.SubmitIntake"
IN_FLIGHT = 32
# Intake phases on each server: metrics on, off, off, on (True: on).
METRICS_ABBA = (True, False, False, True)
ECHO = """
import asyncio, sys, nats
async def main():
    nc = await nats.connect(sys.argv[1], user_credentials=sys.argv[2])
    async def echo(msg): await msg.respond(msg.data)
    await nc.subscribe("bench.echo", cb=echo)
    await nc.flush(); print("ready", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(call: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    latencies = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        latencies.append((time.perf_counter() - start) * 1000)
    return latencies


def spawn(
    args: list[str], env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """A responder in its own process; its stderr (its logs) to ``log``, else dropped."""
    env = {**os.environ, **(env or {})}
    if log is None:
        return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    with log.open("ab") as stderr:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=stderr)


def count_lines(path: Path, needle: str) -> int:
    if not path.exists():
        return 0
    return sum(needle in line for line in path.read_text(errors="replace").splitlines())


async def wait_for_responder(nc: Any, subject: str, body: bytes) -> None:
    for _ in range(200):
        try:
            await nc.request(subject, body, timeout=1)
            return
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            await asyncio.sleep(0.05)
    raise RuntimeError(f"no responder on {subject}")


def suffix(metrics_on: bool) -> str:
    """What a figure's key ends with: nothing for the shipped setting (metrics on)."""
    return "" if metrics_on else "_metrics_off"


@dataclass
class Intake:
    """One setting's figures, pooled over its phases."""

    latencies: list[float] = field(default_factory=list)
    accepted: int = 0
    seconds: float = 0.0


async def intake_phase(
    nc: Any,
    url: str,
    auth: AuthDir,
    log: Path,
    metrics_on: bool,
    bodies: Iterator[bytes],
    n: int,
    tally: Intake,
) -> None:
    """Start the intake service, time ``n`` requests one at a time, then ``n`` with
    ``IN_FLIGHT`` in flight, and stop it."""
    service = spawn(
        [sys.executable, "-m", "alongside.cli", "up", "intake"],
        env={
            "ALONGSIDE_NATS_URL": url,
            "ALONGSIDE_NATS_CREDENTIALS": str(auth.credentials("intake")),
            "ALONGSIDE_LOG_LEVEL": "WARNING",
            "ALONGSIDE_METRICS": "true" if metrics_on else "false",
        },
        log=log,
    )
    try:
        client = AlongsideClient(nc, source="bench")
        await wait_for_responder(nc, INTAKE, next(bodies))

        async def one() -> None:
            reply = await client.send_raw("bench", "intake", "SubmitIntake", next(bodies))
            assert isinstance(reply, CommandAccepted), reply

        await timed(one, 100)  # warm up
        tally.latencies += await timed(one, n)

        queue = list(islice(bodies, n))

        async def worker(share: list[bytes]) -> None:
            for body in share:
                reply = await client.send_raw("bench", "intake", "SubmitIntake", body)
                assert isinstance(reply, CommandAccepted), reply

        start = time.perf_counter()
        await asyncio.gather(*(worker(queue[k::IN_FLIGHT]) for k in range(IN_FLIGHT)))
        tally.seconds += time.perf_counter() - start
        tally.accepted += len(queue)
    finally:
        service.terminate()
        service.wait()


async def measure(
    url: str, auth: AuthDir, logs: Path, n: int, phases: tuple[bool, ...]
) -> dict[str, float]:
    """Raw figures, then intake in ``phases`` (metrics on or off, each setting ``n``
    requests in all); the intake service's log for each setting in ``logs``."""
    nc = await bus.connect(url, "bench", auth.credentials(ADMIN))
    js = nc.jetstream()
    await topology.provision(js, Settings())
    await register(js, "bench")
    results: dict[str, float] = {}

    echo = spawn([sys.executable, "-c", ECHO, url, str(auth.credentials(ADMIN))])
    try:
        await wait_for_responder(nc, "bench.echo", b"x")
        body = b"x" * 600
        await timed(lambda: nc.request("bench.echo", body, timeout=5), 200)  # warm up
        raw = await timed(lambda: nc.request("bench.echo", body, timeout=5), n)
        results["raw_request_reply_p50_ms"] = percentile(raw, 0.50)
        results["raw_request_reply_p99_ms"] = percentile(raw, 0.99)
    finally:
        echo.terminate()

    await js.add_stream(name="BENCH", subjects=["bench.js.>"])
    payload = b"x" * 600
    start = time.perf_counter()
    for i in range(n):
        await js.publish("bench.js.a", payload, headers={"Nats-Msg-Id": f"m{i}"})
    results["raw_jetstream_publish_per_s"] = n / (time.perf_counter() - start)

    try:
        rng = random.Random(SEED)
        # Each phase: a first request, 100 to warm up, its share one at a time and in flight.
        count = sum(101 + 2 * (n // phases.count(m)) for m in phases)
        commands = [sample.intake(rng, f"c{i}") for i in range(count)]
        bodies = iter(
            [
                wrap(c, org="bench", source="bench", time=SYSTEM()).model_dump_json().encode()
                for c in commands
            ]
        )
        tallies: dict[bool, Intake] = {}
        for metrics_on in phases:
            share = n // phases.count(metrics_on)
            tally = tallies.setdefault(metrics_on, Intake())
            log = logs / f"intake{suffix(metrics_on)}.log"
            await intake_phase(nc, url, auth, log, metrics_on, bodies, share, tally)
        for metrics_on, tally in tallies.items():
            end = suffix(metrics_on)
            results[f"intake_p50_ms{end}"] = percentile(tally.latencies, 0.50)
            results[f"intake_p99_ms{end}"] = percentile(tally.latencies, 0.99)
            results[f"intake_mean_ms{end}"] = statistics.fmean(tally.latencies)
            results[f"intake_accepted_per_s{end}"] = tally.accepted / tally.seconds
    finally:
        await nc.close()
    return results


def metrics_cost(figures: dict[str, float]) -> dict[str, float]:
    """FastStream's metrics middleware, on/off: above 1 for latency, below 1 for
    throughput, is what it costs."""
    return {
        f"metrics_cost_{figure}_ratio": round(
            figures[f"intake_{key}"] / figures[f"intake_{key}_metrics_off"], 3
        )
        for figure, key in (("p50", "p50_ms"), ("p99", "p99_ms"), ("throughput", "accepted_per_s"))
    }


async def run(n: int) -> dict[str, Any]:
    figures: dict[str, dict[str, float]] = {}
    for label, sync_always in (("sync_always", True), ("nats_default", False)):
        with tempfile.TemporaryDirectory() as folder:
            state = Path(folder)
            auth = AuthDir.init(state / "auth", SERVICE_NEEDS, int(SYSTEM().timestamp()))
            with EmbeddedNats(state / "nats", sync_always=sync_always, auth=auth) as server:
                figures[label] = await measure(server.url, auth, state, n, METRICS_ABBA)
            figures[label]["permission_violations"] = count_lines(
                state / "nats" / "nats-server.log", "Violation"
            )
            for metrics_on in dict.fromkeys(METRICS_ABBA):
                end = suffix(metrics_on)
                figures[label][f"intake_nats_errors{end}"] = count_lines(
                    state / f"intake{end}.log", "nats_error"
                )
    shipped, default = figures["sync_always"], figures["nats_default"]
    return {
        "n": n,
        "seed": SEED,
        "auth": True,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        **{k: round(v, 3) for k, v in shipped.items()},
        "default_sync": {
            **{k: round(v, 3) for k, v in default.items()},
            **metrics_cost(default),
        },
        "sync_always_cost_ratio": round(
            default["intake_accepted_per_s"] / shipped["intake_accepted_per_s"], 2
        ),
        **metrics_cost(shipped),
    }


def main() -> None:
    configure("WARNING")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    result = asyncio.run(run(args.n))
    keys = (
        "intake_accepted_per_s", "intake_p50_ms", "intake_p99_ms",
        "raw_request_reply_p99_ms", "raw_jetstream_publish_per_s", "permission_violations",
        "intake_nats_errors",
    )  # fmt: skip
    off = [f"{k}_metrics_off" for k in keys if k.startswith("intake_")]
    costs = [f"metrics_cost_{figure}_ratio" for figure in ("p50", "p99", "throughput")]
    for label, figures in (
        ("sync_interval: always", result),
        ("NATS default", result["default_sync"]),
    ):
        print(f"{label:>22}: " + ", ".join(f"{k}={figures[k]}" for k in keys), file=sys.stderr)
        print(
            f"{'metrics off':>22}: " + ", ".join(f"{k}={figures[k]}" for k in off + costs),
            file=sys.stderr,
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
