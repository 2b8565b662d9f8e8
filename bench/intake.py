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
NATS default, to show what the fsync costs. On each server intake is measured in three
settings: as shipped (FastStream's metrics middleware on, tracing off); metrics off
(``ALONGSIDE_METRICS=false``); and tracing on (``ALONGSIDE_TRACING=otlp``, metrics on),
its spans exported by OTLP/HTTP in batches to a sink the benchmark runs on loopback
(every POST answered 200 and counted). Six halves, ordered shipped, metrics off,
tracing, tracing, metrics off, shipped, so that no setting gains from going first or
last. The ``*_metrics_off`` figures and the ``metrics_cost_*`` ratios (on/off) are what
the middleware costs (our own counters are always on); the ``*_tracing`` figures and
the ``tracing_cost_*`` ratios (on/off, metrics on in both) what tracing costs, with
``otlp_requests_received``, ``otlp_bytes_received`` and ``otlp_spans_received`` what the
sink got (the run fails if a tracing phase sent it nothing).
``intake_service_cpu_ms_per_command`` is the intake service's own CPU (user and system,
from ``/proc``) per timed command, and the ``*_cpu_ratio`` ratios compare it: less
disturbed than the timings by whatever else runs on the machine. Responders run in their
own processes. Permission violations the server logs, and the errors the intake
service logs, are counted (all should be 0). Fixed seed; the last line printed is one
JSON object.

    python -m bench.intake [--n 2000]
    python -m bench.intake --quick --n 60    # each setting once: a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import islice
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from alongside import sample
from alongside.client import AlongsideClient
from bench import (
    cpu_seconds,
    deployment,
    environment,
    last_lines,
    register,
    spawn,
    wait_for_responder,
)
from contracts import subjects
from contracts.envelope import wrap
from contracts.replies import CommandAccepted
from runtime import bus, topology
from runtime.access import ADMIN, SERVICE_NEEDS, AuthDir
from runtime.clock import SYSTEM
from runtime.embedded import EmbeddedNats
from runtime.logging import configure
from runtime.settings import Settings

SEED = 20261123
INTAKE = subjects.command("bench", "intake", "SubmitIntake", subjects.OPERATOR)
IN_FLIGHT = 32


@dataclass(frozen=True)
class Setting:
    """How the intake service runs in a phase; ``end`` is what its figures' keys end
    with (nothing for the shipped setting)."""

    end: str
    metrics: bool
    tracing: bool


SHIPPED = Setting("", metrics=True, tracing=False)
METRICS_OFF = Setting("_metrics_off", metrics=False, tracing=False)
TRACING = Setting("_tracing", metrics=True, tracing=True)
# Intake phases on each server: every setting's mean position is the same, so a linear
# drift cancels, and shipped against either other setting is ordered A, B, B, A.
PHASES = (SHIPPED, METRICS_OFF, TRACING, TRACING, METRICS_OFF, SHIPPED)
QUICK_PHASES = (SHIPPED, METRICS_OFF, TRACING)  # ``--quick``: half the service starts
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


def count_lines(path: Path, needle: str) -> int:
    if not path.exists():
        return 0
    return sum(needle in line for line in path.read_text(errors="replace").splitlines())


class OtlpSink:
    """An OTLP/HTTP collector that keeps nothing but counts: every POST (a batch of spans)
    is answered 200 with an empty body. Listens on a free loopback port, in a thread of
    its own; the bodies are kept, and decoded only after the phases (``spans``)."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        self.bodies: list[tuple[str, bytes]] = []  # (content-encoding, body)
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a collector would

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with sink._lock:
                    sink.requests += 1
                    sink.bytes += len(body)
                    sink.bodies.append((self.headers.get("Content-Encoding", ""), body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # one line per batch on our stderr otherwise

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        """What ``OTEL_EXPORTER_OTLP_ENDPOINT`` should be; the exporter adds ``/v1/traces``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def spans(self) -> int:
        """Spans in every batch received."""
        with self._lock:
            bodies = list(self.bodies)
        total = 0
        for encoding, body in bodies:
            if encoding in ("gzip", "deflate"):
                body = zlib.decompress(body, wbits=47)  # either header
            request = ExportTraceServiceRequest.FromString(body)
            total += sum(
                len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans
            )
        return total

    def __enter__(self) -> OtlpSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@dataclass
class Intake:
    """One setting's figures, pooled over its phases."""

    latencies: list[float] = field(default_factory=list)
    accepted: int = 0
    seconds: float = 0.0
    # The service's CPU while timed (one at a time and in flight), and commands then.
    cpu_seconds: float = 0.0
    timed: int = 0


async def intake_phase(
    nc: Any,
    settings: Settings,
    auth: AuthDir,
    log: Path,
    setting: Setting,
    otlp_endpoint: str,
    bodies: Iterator[bytes],
    n: int,
    tally: Intake,
) -> None:
    """Start the intake service as ``setting`` says (spans, if traced, to
    ``otlp_endpoint``), time ``n`` requests one at a time, then ``n`` with ``IN_FLIGHT``
    in flight, and stop it (which exports the spans still queued)."""
    phase = settings.model_copy(
        update={
            "nats_credentials": auth.credentials("intake"),
            "metrics": setting.metrics,
            "tracing": "otlp" if setting.tracing else "off",
        }
    )
    traced = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint} if setting.tracing else {}
    env = environment(phase, **traced)
    service = spawn([sys.executable, "-m", "alongside.cli", "up", "intake"], env=env, log=log)
    try:
        client = AlongsideClient(nc, source="bench")
        try:
            await wait_for_responder(nc, INTAKE, next(bodies), service)
        except RuntimeError as error:
            raise RuntimeError(f"{error}; the end of its log:\n{last_lines(log)}") from None

        async def one() -> None:
            reply = await client.send_raw("bench", "intake", "SubmitIntake", next(bodies))
            assert isinstance(reply, CommandAccepted), reply

        await timed(one, 100)  # warm up
        cpu = cpu_seconds(service.pid)
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
        tally.cpu_seconds += cpu_seconds(service.pid) - cpu
        tally.timed += n + len(queue)
    finally:
        service.terminate()
        service.wait()


async def measure(
    settings: Settings, auth: AuthDir, logs: Path, n: int, phases: tuple[Setting, ...]
) -> dict[str, float]:
    """Raw figures, then intake in ``phases`` (each setting ``n`` requests in all); the
    intake service's log for each setting in ``logs``."""
    assert settings.nats_url is not None
    url = settings.nats_url
    nc = await bus.connect(url, "bench", auth.credentials(ADMIN))
    js = nc.jetstream()
    await topology.provision(js, settings)
    await register(js, "bench", settings=settings)
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
        count = sum(101 + 2 * (n // phases.count(s)) for s in phases)
        commands = [sample.intake(rng, f"c{i}") for i in range(count)]
        bodies = iter(
            [
                wrap(c, org="bench", source="bench", time=SYSTEM()).model_dump_json().encode()
                for c in commands
            ]
        )
        tallies: dict[Setting, Intake] = {}
        with OtlpSink() as sink:
            for setting in phases:
                share = n // phases.count(setting)
                tally = tallies.setdefault(setting, Intake())
                log = logs / f"intake{setting.end}.log"
                before = sink.requests
                await intake_phase(
                    nc, settings, auth, log, setting, sink.endpoint, bodies, share, tally
                )
                if setting.tracing and sink.requests == before:
                    raise RuntimeError(
                        f"tracing on, but the OTLP sink at {sink.endpoint} received nothing: "
                        f"nothing was traced (see {log})"
                    )
                if not setting.tracing and sink.requests != before:
                    raise RuntimeError("tracing off, but the OTLP sink received spans")
        if any(setting.tracing for setting in phases):
            results["otlp_requests_received"] = sink.requests
            results["otlp_bytes_received"] = sink.bytes
            results["otlp_spans_received"] = sink.spans()
        for setting, tally in tallies.items():
            end = setting.end
            results[f"intake_p50_ms{end}"] = percentile(tally.latencies, 0.50)
            results[f"intake_p99_ms{end}"] = percentile(tally.latencies, 0.99)
            results[f"intake_mean_ms{end}"] = statistics.fmean(tally.latencies)
            results[f"intake_accepted_per_s{end}"] = tally.accepted / tally.seconds
            # Less sensitive than the timings to whatever else the machine is doing.
            results[f"intake_service_cpu_ms_per_command{end}"] = (
                1000 * tally.cpu_seconds / tally.timed
            )
    finally:
        await nc.close()
    return results


def cost(
    figures: dict[str, float], name: str, on: str, off: str, throughput: str
) -> dict[str, float]:
    """One setting against another in the same run (keys ending ``on`` over ``off``):
    above 1 for latency and CPU, below 1 for throughput, is what the setting costs."""
    return {
        f"{name}_cost_{figure}_ratio": round(
            figures[f"intake_{key}{on}"] / figures[f"intake_{key}{off}"], 3
        )
        for figure, key in (
            ("p50", "p50_ms"),
            ("p99", "p99_ms"),
            (throughput, "accepted_per_s"),
            ("cpu", "service_cpu_ms_per_command"),
        )
    }


def metrics_cost(figures: dict[str, float]) -> dict[str, float]:
    """FastStream's metrics middleware, on/off."""
    return cost(figures, "metrics", "", "_metrics_off", "throughput")


def tracing_cost(figures: dict[str, float]) -> dict[str, float]:
    """Tracing on/off, FastStream's metrics middleware on in both."""
    return cost(figures, "tracing", "_tracing", "", "accepted_per_s")


async def run(n: int, phases: tuple[Setting, ...] = PHASES) -> dict[str, Any]:
    figures: dict[str, dict[str, float]] = {}
    for label, sync_always in (("sync_always", True), ("nats_default", False)):
        with tempfile.TemporaryDirectory() as folder:
            state = Path(folder)
            auth = AuthDir.init(state / "auth", SERVICE_NEEDS, int(SYSTEM().timestamp()))
            with EmbeddedNats(state / "nats", sync_always=sync_always, auth=auth) as server:
                settings = deployment(state, nats_url=server.url, log_level="WARNING")
                figures[label] = await measure(settings, auth, state, n, phases)
            figures[label]["permission_violations"] = count_lines(
                state / "nats" / "nats-server.log", "Violation"
            )
            for setting in dict.fromkeys(phases):
                end = setting.end
                figures[label][f"intake_nats_errors{end}"] = count_lines(
                    state / f"intake{end}.log", "nats_error"
                )
            # The SDK's own complaints: a batch it failed to send, spans it dropped.
            figures[label]["otlp_export_warnings"] = sum(
                count_lines(state / "intake_tracing.log", needle)
                for needle in ("Failed to export", "dropping", "Exception while exporting")
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
            **tracing_cost(default),
        },
        "sync_always_cost_ratio": round(
            default["intake_accepted_per_s"] / shipped["intake_accepted_per_s"], 2
        ),
        **metrics_cost(shipped),
        **tracing_cost(shipped),
    }


def main() -> None:
    configure("WARNING")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="each setting once, not twice")
    args = parser.parse_args()
    result = asyncio.run(run(args.n, QUICK_PHASES if args.quick else PHASES))
    keys = (
        "intake_accepted_per_s",
        "intake_p50_ms",
        "intake_p99_ms",
        "raw_request_reply_p99_ms",
        "raw_jetstream_publish_per_s",
        "permission_violations",
        "intake_nats_errors",
        "intake_service_cpu_ms_per_command",
    )
    off = [f"{k}_metrics_off" for k in keys if k.startswith("intake_")]
    costs = [f"metrics_cost_{figure}_ratio" for figure in ("p50", "p99", "throughput", "cpu")]
    traced = [f"{k}_tracing" for k in keys if k.startswith("intake_")] + [
        *(f"tracing_cost_{figure}_ratio" for figure in ("p50", "p99", "accepted_per_s", "cpu")),
        "otlp_requests_received",
        "otlp_bytes_received",
        "otlp_spans_received",
        "otlp_export_warnings",
    ]
    for label, figures in (
        ("sync_interval: always", result),
        ("NATS default", result["default_sync"]),
    ):
        print(f"{label:>22}: " + ", ".join(f"{k}={figures[k]}" for k in keys), file=sys.stderr)
        print(
            f"{'metrics off':>22}: " + ", ".join(f"{k}={figures[k]}" for k in off + costs),
            file=sys.stderr,
        )
        print(
            f"{'tracing on':>22}: " + ", ".join(f"{k}={figures[k]}" for k in traced),
            file=sys.stderr,
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
