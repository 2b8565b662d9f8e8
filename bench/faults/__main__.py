"""``python -m bench.faults``: each fault on a fresh world, as the package docstring says."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nats.aio.client import Client

import bench.faults
from alongside import sample
from alongside.client import AlongsideClient
from bench.faults.counting import count, dead_letters, diagnose, safety_nets, tell
from bench.faults.processes import World, build_world, connect, inject
from bench.faults.shared import FAULTS, SEED, SETTINGS, SOURCE, Options, say
from bench.faults.traffic import (
    EventLog,
    burst,
    eligible_count,
    envelope_of,
    register_supporters,
    settle,
    until_idle,
)
from contracts.replies import CommandAccepted
from runtime.embedded import server_binary


async def run_fault(fault: str, options: Options) -> dict[str, Any]:
    say(f"{fault}: starting")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"faults-{fault}-") as tmp:
        root = Path(tmp)
        world = await build_world(fault, root, options)
        nc: Client | None = None
        try:
            nc = await connect(world.url)
            figures = await exercise(fault, world, nc, options)
        finally:
            world.stop()
            if nc is not None:
                with contextlib.suppress(Exception):
                    await nc.close()
            if options.keep is not None:
                shutil.copytree(
                    root,
                    options.keep / fault,
                    dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("jetstream", "ports"),
                )
    figures[f"{fault}_run_s"] = round(time.perf_counter() - started, 1)
    return figures


async def exercise(fault: str, world: World, nc: Client, options: Options) -> dict[str, Any]:
    js = nc.jetstream()
    client = AlongsideClient(nc, source=SOURCE)
    log = EventLog()
    say(
        f"  services up in {max(world.notes.values()):.1f} s; registering "
        f"{options.supporters} supporters"
    )
    refused = await register_supporters(client, options.supporters, options.concurrency)
    await until_idle(js, timeout_s=120)
    await log.poll(js)
    eligible = eligible_count(log)
    say(
        f"  {eligible} supporters eligible ({refused} commands refused); burst of "
        f"{options.intakes} intakes"
    )
    rng = random.Random(SEED + 1)
    commands = []
    for i in range(options.intakes):
        command = sample.intake(rng, f"c{i:04d}")
        commands.append((command.case_id, command, envelope_of(command, f"cmd-c{i:04d}")))
    trigger = asyncio.Event()
    injector = asyncio.create_task(inject(fault, world, js, options, trigger))
    start = time.perf_counter()
    results = await burst(client, commands, options, trigger)
    ended = time.perf_counter()
    say(f"  burst answered in {ended - start:.1f} s")
    await injector
    accepted = {c for c, s in results.items() if isinstance(s.reply, CommandAccepted)}
    settled = await settle(js, log, accepted, ended, options)
    # Late duplicates (a redelivery after the ack wait) show up once the consumers are idle.
    await until_idle(js, timeout_s=options.grace_s, calm_s=options.setting("ack_wait_s"))
    await log.try_poll(js)
    figures, troubled, dups = count(fault, results, log, settled)
    letters = await dead_letters(js)
    figures[f"{fault}_dead_letters"] = sum(letters.values())
    swept = safety_nets(world.root)
    figures[f"{fault}_swept"] = sum(swept.values())
    figures[f"{fault}_burst_s"] = round(ended - start, 2)
    figures[f"{fault}_eligible_supporters"] = eligible
    figures.update(
        {
            f"{fault}_{k}": round(v, 2) if isinstance(v, float) else v
            for k, v in world.notes.items()
            if k in ("restart_ready_s", "healed_after_s", "killed_leader")
        }
    )
    say("  " + ", ".join(f"{k.removeprefix(fault + '_')}={v}" for k, v in figures.items()))
    tell(results, letters, swept, dups)
    if troubled:
        await diagnose(js, log, troubled, world.root)
    if options.keep is not None:
        with (world.root / "events.jsonl").open("w") as out:
            for e in log.events:
                out.write(json.dumps({"seq": e.seq, "type": e.type, "id": e.id, **e.data}) + "\n")
    return figures


# ``--quick``: a smoke run of one fault, well under a minute; options given too win.
QUICK = ("--faults", "kill_matching", "--intakes", "40", "--supporters", "30", "--grace", "5")


def parse(argv: list[str] | None = None) -> tuple[list[str], Options]:
    parser = argparse.ArgumentParser(description=bench.faults.__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="the same as " + " ".join(QUICK))
    add("--intakes", type=int, default=1000, help="intakes in each fault's burst")
    add("--faults", default=",".join(FAULTS), help="comma-separated: " + ", ".join(FAULTS))
    add("--supporters", type=int, help="default: 2 for every 5 intakes, at least 60")
    add("--concurrency", type=int, default=32, help="commands in flight")
    add("--kill-at", type=float, default=0.3, help="share of the burst answered before the fault")
    add("--down-s", type=float, default=1.5, help="a killed service or server stays down")
    add("--cluster-down-s", type=float, default=10.0, help="the killed leader stays down")
    add("--settle-timeout", type=float, default=120.0, help="settle deadline at the latest")
    add("--grace", type=float, default=30.0, help="after the settle deadline, until lost")
    add("--command-deadline", type=float, default=120.0, help="retry a command until then")
    add("--settle-s", default="5", help="the services' ALONGSIDE_SETTLE_S")
    add("--sweep-interval-s", default="5", help="the services' ALONGSIDE_SWEEP_INTERVAL_S")
    add("--log-level", default="INFO", help="the services' ALONGSIDE_LOG_LEVEL")
    add("--keep", type=Path, help="copy logs and events here, a folder a fault")
    args = parser.parse_args(argv)
    if args.quick:
        args = parser.parse_args([*QUICK, *(sys.argv[1:] if argv is None else argv)])
    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = sorted(set(faults) - set(FAULTS))
    if unknown:
        parser.error(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(FAULTS)}")
    return faults, Options(
        intakes=args.intakes,
        supporters=args.supporters or max(60, args.intakes * 2 // 5),
        concurrency=args.concurrency,
        kill_at=args.kill_at,
        down_s=args.down_s,
        cluster_down_s=args.cluster_down_s,
        settle_timeout_s=args.settle_timeout,
        grace_s=args.grace,
        command_deadline_s=args.command_deadline,
        keep=args.keep,
        settings={
            **SETTINGS,
            "ALONGSIDE_SETTLE_S": args.settle_s,
            "ALONGSIDE_SWEEP_INTERVAL_S": args.sweep_interval_s,
            "ALONGSIDE_LOG_LEVEL": args.log_level,
        },
    )


async def run(faults: list[str], options: Options) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for fault in faults:
        figures.update(await run_fault(fault, options))
    return figures


def totals(faults: list[str], figures: dict[str, Any]) -> Iterator[tuple[str, int]]:
    for what in ("lost", "duplicated", "stuck"):
        yield f"total_{what}", sum(int(figures[f"{fault}_{what}"]) for fault in faults)


def main() -> None:
    faults, options = parse()
    settings = options.settings
    say(
        "settings: "
        + " ".join(f"{k}={v}" for k, v in settings.items())
        + f"; nats-server {server_binary()}; faults {', '.join(faults)}"
    )
    start = time.perf_counter()
    figures = asyncio.run(run(faults, options))
    result: dict[str, Any] = {
        **figures,
        **dict(totals(faults, figures)),
        "seed": SEED,
        "intakes": options.intakes,
        "supporters": options.supporters,
        "concurrency": options.concurrency,
        "kill_at": options.kill_at,
        "settings": settings,
        "elapsed_s": round(time.perf_counter() - start, 1),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    say(
        f"total lost {result['total_lost']}, duplicated {result['total_duplicated']}, "
        f"stuck {result['total_stuck']} in {result['elapsed_s']} s"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
