"""``python -m bench.fairness``: the scenarios, as the package docstring says."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import bench.fairness
from alongside import sample
from bench.fairness.shared import QUICK, SCENARIOS, SEED, Options, Scenario, say
from bench.fairness.world import run_once
from runtime.embedded import server_binary
from runtime.logging import configure

KEY_FIGURES = (
    "false_waitlistings",
    "false_waitlistings_whole_window",
    "false_waitlisted_clients",
    "max_free_at_waitlisting",
    "taken_meanwhile",
    "taken_meanwhile_false",
    "order_inversions",
    "passed_over_clients",
    "still_waiting_with_free_places_at_quiet",
    "free_places_at_quiet",
    "waitlisted_at_quiet",
    "waitlistings",
    "accepted",
    "lost",
    "to_quiet_s",
    "wait_s_p50",
    "wait_s_max",
    "run_s",
)


def report(figures: dict[str, Any], margin: int) -> None:
    said = ", ".join(
        f"{k}={figures.get(k)}"
        for k in (
            "accepted",
            "lost",
            "proposals",
            "waitlistings",
            "false_waitlistings",
            f"false_waitlistings_over_{margin}",
            "false_waitlistings_whole_window",
            "false_waitlistings_as_seen_live",
            "max_free_at_waitlisting",
            "taken_meanwhile",
            "taken_meanwhile_false",
            "order_inversions",
            "passed_over_clients",
            "waitlisted_at_quiet",
            "still_waiting_with_free_places_at_quiet",
            "free_places_at_quiet",
            "to_quiet_s",
            "wait_s_p50",
            "wait_s_max",
            "caseload_updates_missed",
            "events_in_final_wait",
            "run_s",
        )
    )
    say(f"  {said}")
    for what, n in list(figures.get("log_warnings", {}).items())[:8]:
        say(f"    logged {n} x {what}")


def parse(argv: list[str] | None = None) -> tuple[list[Scenario], int, Options, bool]:
    parser = argparse.ArgumentParser(description=bench.fairness.__doc__.splitlines()[0])
    add = parser.add_argument
    add("--scenarios", default=",".join(SCENARIOS), help="of: " + ", ".join(SCENARIOS))
    add("--runs", type=int, default=1, help="runs of each scenario")
    add("--quick", action="store_true", help="30 supporters and 90 intakes a scenario")
    add("--supporters", type=int, help="instead of the scenario's")
    add("--intakes", type=int, help="instead of the scenario's")
    add("--in-flight", type=int, default=20)
    add("--answer-delay-s", type=float, default=0.5)
    add("--answer-share", type=float, default=0.5, help="clients who accept (0 to 1)")
    add("--restart-at", type=float, default=1 / 3, help="share of intakes accepted first")
    add(
        "--restart-on",
        choices=("accepted", "outcomes"),
        default="accepted",
        help="what --restart-at counts: intakes accepted, or clients with an outcome event",
    )
    add("--cap", type=int, help="each supporter's places, instead of the scenario's")
    add("--down-s", type=float, default=1.5, help="the server stays down")
    add("--restart-signal", choices=("kill", "term"), default="kill")
    add("--quiet-s", type=float, default=10.0)
    add("--final-wait-s", type=float, default=20.0)
    add("--window-s", type=float, default=1.0)
    add("--margin", type=int, default=20)
    add("--log-level", default="INFO", help="the services' ALONGSIDE_LOG_LEVEL")
    add("--sweep-interval-s", help="the services' ALONGSIDE_SWEEP_INTERVAL_S (default: shipped)")
    add("--keep", type=Path, help="copy the services' and the server's logs here")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    sizes: dict[str, int] = dict(QUICK) if args.quick else {}
    sizes.update(
        {
            k: v
            for k, v in (
                ("supporters", args.supporters),
                ("intakes", args.intakes),
                ("cap", args.cap),
            )
            if v
        }
    )
    scenarios = [Scenario(**{**SCENARIOS[n].__dict__, **sizes}) for n in names]
    options = Options(
        in_flight=args.in_flight,
        answer_delay_s=args.answer_delay_s,
        answer_share=args.answer_share,
        restart_at=args.restart_at,
        restart_on=args.restart_on,
        down_s=args.down_s,
        restart_signal=args.restart_signal,
        quiet_s=args.quiet_s,
        final_wait_s=args.final_wait_s,
        window_s=args.window_s,
        margin=args.margin,
        log_level=args.log_level,
        sweep_interval_s=args.sweep_interval_s,
        keep=args.keep,
    )
    return scenarios, args.runs, options, args.quick


async def run(scenarios: list[Scenario], runs: int, options: Options) -> list[dict[str, Any]]:
    done = []
    for scenario in scenarios:
        for n in range(1, runs + 1):
            figures = await run_once(scenario, options, n)
            report(figures, options.margin)
            done.append(figures)
    return done


def main() -> None:
    scenarios, runs, options, quick = parse()
    configure("WARNING")  # the bench's own library logs to stderr: stdout is the JSON line
    say(f"nats-server {server_binary()}; code from {Path(sample.__file__).parents[1]}")
    start = time.perf_counter()
    done = asyncio.run(run(scenarios, runs, options))
    by_scenario: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for figures in done:
        for key in KEY_FIGURES:
            by_scenario[figures["scenario"]][key].append(figures.get(key))
    result = {
        "scenarios": {name: dict(of) for name, of in by_scenario.items()},
        "runs": done,
        "sizes": {
            s.name: {
                "supporters": s.supporters,
                "cap": s.cap,
                "intakes": s.intakes,
                "restart": s.restart,
            }
            for s in scenarios
        },
        "quick": quick,
        "seed": SEED,
        "options": {**options.__dict__, "keep": None},
        "elapsed_s": round(time.perf_counter() - start, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
    }
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
