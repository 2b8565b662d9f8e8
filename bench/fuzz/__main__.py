"""``python -m bench.fuzz``: one run, as the package docstring says."""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from nats.aio.client import Client as Nats

import bench.fuzz
from bench import deployment, register
from bench.fuzz.commands import judge_commands, send_command, send_commands
from bench.fuzz.events import Advisories, dead_letters, drain, judge_events, send_events, unroutable
from bench.fuzz.fleet import Fleet, Gate, answering, catalogue_services, log_errors, rss, watch
from bench.fuzz.journey import arrange, still_serving
from bench.fuzz.plan import build
from bench.fuzz.report import Ran, figures, write_report
from bench.fuzz.schemas import load_contracts
from bench.fuzz.shared import (
    ORG,
    OTHER_ORG,
    POOL,
    Contract,
    Findings,
    Probe,
    Real,
    on_live_records,
    say,
)
from runtime import bus, topology
from runtime.embedded import EmbeddedNats
from runtime.logging import configure
from runtime.settings import Settings

N = 10_000
# ``--quick``: every kind of hand-made input still goes (round robin), on fewer payloads; an
# event whose state is never readable is dead-lettered after 6 s of retries, not a minute.
QUICK_N, QUICK_POOL, QUICK_NOT_YET_DELAY_S = 400, 5, 0.1


async def fuzz(n: int, pool: int, state: Path, report: Path, **given: float) -> dict[str, Any]:
    """One run; ``given``: settings of the services besides the shipped ones."""
    started = time.perf_counter()
    contracts = load_contracts(state / "contracts")
    with EmbeddedNats(state / "nats") as server:
        # The fuzz's own deployment: its services, and what this process replays and reads of
        # theirs (dead letters, sealed records), share its master key and nothing of the
        # machine's own.
        settings = deployment(state, nats_url=server.url, log_level="WARNING", **given)
        nc = await bus.connect(server.url, "bench-fuzz")
        await topology.provision(nc.jetstream(), settings)
        # UNKNOWN_ORG stays unregistered.
        await register(nc.jetstream(), ORG, OTHER_ORG, settings=settings)
        fleet = Fleet(settings, state)
        for service in catalogue_services():
            fleet.start(service)
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch(fleet, stop))
        try:
            return await _run(nc, fleet, settings, contracts, n, pool, started, report)
        finally:
            stop.set()
            await watcher
            fleet.stop()
            await nc.close()


async def _run(
    nc: Nats,
    fleet: Fleet,
    settings: Settings,
    contracts: list[Contract],
    n: int,
    pool: int,
    started: float,
    report: Path,
) -> dict[str, Any]:
    await _answering(nc)
    real, arranged = await _arranged(nc, settings)
    plan = await build(contracts, real, n, settings, pool)
    gate = Gate(nc, fleet)
    advisories = Advisories()
    await advisories.start(nc)
    rss_start = rss(fleet)
    command_probes = [p for p in plan.probes if p.kind == "command"]
    event_probes = [p for p in plan.probes if p.kind == "event"]
    commands_s = await _commands(nc, command_probes, gate, fleet)
    rss_mid = rss(fleet)
    drained, consumers = await _events(nc, event_probes)
    letters = await dead_letters(nc, settings)
    serving = await still_serving(nc, settings)
    await asyncio.sleep(1.0)
    fleet.check()
    rss_end = rss(fleet)
    findings = Findings()
    command_counts = Counter(judge_commands(command_probes, letters, findings))
    logged = unroutable(fleet)
    event_counts = Counter(judge_events(event_probes, letters, advisories, logged, findings))
    errors = log_errors(fleet)
    ran = Ran(
        n,
        started,
        plan,
        fleet,
        arranged,
        command_probes,
        event_probes,
        command_counts,
        event_counts,
        letters,
        serving,
        drained,
        consumers,
        advisories,
        (rss_start, rss_mid, rss_end),
        commands_s,
    )
    result = figures(ran)
    write_report(report, result, findings, fleet, errors, plan)
    return result


async def _answering(nc: Nats) -> None:
    for service in catalogue_services():
        if not await answering(nc, service, 60.0):
            raise RuntimeError(f"{service} did not start")
    say("services answering; arranging real records")


async def _arranged(nc: Nats, settings: Settings) -> tuple[Real, bool]:
    try:
        return await arrange(nc, settings)
    except Exception as error:
        say(f"arranging failed ({type(error).__name__}: {error}); fuzzing without them")
        return Real(), False


async def _commands(nc: Nats, probes: list[Probe], gate: Gate, fleet: Fleet) -> float:
    """Every command probe; how long they took."""
    phase = time.perf_counter()
    # Absurd dates and zones on the arranged case first, in order, before the fuzz ends it.
    for probe in (p for p in probes if on_live_records(p)):
        await send_command(nc, probe, gate, fleet)
    await send_commands(nc, [p for p in probes if not on_live_records(p)], gate, fleet)
    seconds = time.perf_counter() - phase
    say(f"{len(probes)} command probes done in {seconds:.1f} s")
    return seconds


async def _events(nc: Nats, probes: list[Probe]) -> tuple[bool, dict[str, dict[str, int]]]:
    """Every event probe published, then the consumers drained: whether they were, and
    their state."""
    phase = time.perf_counter()
    await send_events(nc, probes)
    published_s = time.perf_counter() - phase
    say(f"{len(probes)} event probes published in {published_s:.1f} s; draining")
    drained, consumers, drain_s = await drain(nc)
    say(f"consumers drained: {drained} after {drain_s:.1f} s: {consumers}")
    return drained, consumers


def main() -> None:
    configure("ERROR")  # the checks replayed here would log every refusal
    parser = argparse.ArgumentParser(
        description=bench.fuzz.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, help=f"messages to send ({N:,}; --quick: {QUICK_N})")
    parser.add_argument(
        "--pool",
        type=int,
        help=f"schema-valid payloads generated per message type ({POOL}; --quick: {QUICK_POOL})",
    )
    parser.add_argument(
        "--not-yet-delay-s",
        type=float,
        help="the services' first wait before an event not readable yet comes again "
        f"(as shipped; --quick: {QUICK_NOT_YET_DELAY_S})",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: less of each")
    parser.add_argument(
        "--report",
        type=Path,
        default=Path(tempfile.gettempdir()) / "alongside-fuzz-report.json",
        help="where to write the details",
    )
    args = parser.parse_args()
    n = args.n if args.n is not None else QUICK_N if args.quick else N
    pool = args.pool if args.pool is not None else QUICK_POOL if args.quick else POOL
    delay = args.not_yet_delay_s
    if delay is None and args.quick:
        delay = QUICK_NOT_YET_DELAY_S
    given = {} if delay is None else {"not_yet_delay_s": delay}
    with tempfile.TemporaryDirectory(prefix="alongside-fuzz-") as state:
        result = asyncio.run(fuzz(n, pool, Path(state), args.report, **given))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
