"""Benchmark of rules evaluation: bare durable_rules vs our wrapper, in process and over NATS.

Same ruleset (the default eligibility ruleset, 11 rules), same seeded facts:
  - bare: durable_rules used as its documentation shows: the Host (background
    threads off), the same compiled conditions, each rule's action recording its
    id in the session state, then assert_fact + get_state + delete_state per fact;
  - in process: what the rules service does per fact: lease the live version,
    evaluate, and assemble the decision (outcome, fired rules with reasons);
  - request/reply: EvaluateRules to a rules service in its own process, 32 in flight;
  - peak RSS of this process after 200,000 in-process evaluations.
The last line printed is one JSON object.

    python -m bench.rules [--n 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats

from alongside.client import AlongsideClient
from bench import RULES, deployment, environment, register
from contracts.rules import EvaluateRules, Kind, RulesEvaluated
from runtime import bus, topology
from runtime.embedded import EmbeddedNats
from runtime.logging import configure
from runtime.settings import Settings
from services.rules import bundle, compiler
from services.rules.engine import EVERY_FACT, Engine, _QuietHost
from services.rules.live import LiveRulesets

SEED = 20261123


def _recorder(rule_id: str) -> Callable[[Any], None]:
    """durable_rules' way to learn which rules fired: each action writes into the state."""

    def record(c: Any) -> None:
        c.s.fired = [*(c.s.fired or []), rule_id]

    return record


def _seen(c: Any) -> None:
    c.s.seen = True


def facts(n: int) -> list[dict[str, Any]]:
    rng = random.Random(SEED)
    return [
        {
            "supporter_id": f"s{i}",
            "record_check_present": rng.random() < 0.95,
            "record_check_clear": rng.random() < 0.95,
            "record_check_days_left": rng.randint(-30, 700),
            "interview_passed": rng.random() < 0.9,
            "professional_references": rng.randint(0, 2),
            "personal_references": rng.randint(0, 2),
            "recovery_days": rng.randint(-1, 3000),
            "training_courses": rng.sample(
                ["peer_support_foundations", "trauma_informed"], k=rng.randint(0, 2)
            ),
            "days_since_supervision": rng.randint(0, 60),
            "caseload_room": rng.randint(-1, 3),
            "suspended": rng.random() < 0.05,
        }
        for i in range(n)
    ]


def bare_durable(ruleset: Any, sample: list[dict[str, Any]]) -> float:
    host = _QuietHost()
    flags = set().union(*(compiler.derived_flags(r.when) for r in ruleset.rules))
    definition: dict[str, Any] = {
        f"r{i}": {
            "all": [
                {"m": {"$and": [{compiler.DISCRIMINATOR: 1}, compiler.compile_condition(r.when)]}}
            ],
            "run": _recorder(r.id),
        }
        for i, r in enumerate(ruleset.rules)
    }
    definition[EVERY_FACT] = {"all": [{"m": {compiler.DISCRIMINATOR: 1}}], "run": _seen}
    host.register_rulesets({"bare": definition})
    start = time.perf_counter()
    for sid, fact in enumerate(sample):
        # The least any caller does: add the sid and discriminator (and the flags that
        # stand in for "lacks"), assert, read the fired rules, delete the session.
        payload = {
            **fact,
            **compiler.flags_of(fact, flags),
            compiler.DISCRIMINATOR: 1,
            "sid": str(sid),
        }
        host.assert_fact("bare", payload)
        host.get_state("bare", str(sid))
        host.delete_state("bare", str(sid))
    return len(sample) / (time.perf_counter() - start)


def in_process(live: LiveRulesets, sample: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    for fact in sample:
        with live.lease("bench", Kind.ELIGIBILITY) as loaded:
            loaded.decide(fact)
    return len(sample) / (time.perf_counter() - start)


def start_service(settings: Settings) -> subprocess.Popen[bytes]:
    """The rules service in its own process, as it runs in production."""
    return subprocess.Popen(
        [sys.executable, "-m", "alongside.cli", "up", "rules"],
        env=environment(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def request_reply(sample: list[dict[str, Any]], in_flight: int = 32) -> float:
    with tempfile.TemporaryDirectory() as state, EmbeddedNats(Path(state)) as server:
        settings = deployment(Path(state), nats_url=server.url, log_level="WARNING")
        nc = await bus.connect(server.url, "bench")
        await topology.provision(nc.jetstream(), settings)
        await register(nc.jetstream(), "bench", settings=settings)
        service = start_service(settings)
        client = AlongsideClient(nc, source="bench")
        try:
            for _ in range(200):
                try:
                    await client.request(
                        "bench", EvaluateRules(kind=Kind.ELIGIBILITY, facts=sample[0])
                    )
                    break
                except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                    await asyncio.sleep(0.05)

            async def worker(share: list[dict[str, Any]]) -> None:
                for fact in share:
                    reply = await client.request(
                        "bench", EvaluateRules(kind=Kind.ELIGIBILITY, facts=fact)
                    )
                    assert isinstance(reply, RulesEvaluated), reply

            start = time.perf_counter()
            await asyncio.gather(*(worker(sample[k::in_flight]) for k in range(in_flight)))
            return len(sample) / (time.perf_counter() - start)
        finally:
            service.terminate()
            service.wait()
            await nc.close()


def main() -> None:
    configure("WARNING")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--rr", type=int, default=5_000, help="evaluations over request/reply")
    args = parser.parse_args()
    ruleset = bundle.read_source(RULES, Kind.ELIGIBILITY).resolve()
    # A pool of distinct facts, cycled: memory then reflects the engine, not the sample.
    pool = facts(10_000)
    sample = [pool[i % len(pool)] for i in range(args.n)]
    live = LiveRulesets(Engine(), RULES)
    # Warm both paths, then alternate them so neither gets a cooler machine.
    bare_durable(ruleset, sample[:2000])
    in_process(live, sample[:2000])
    bare_runs, ours_runs = [], []
    rounds = 10
    size = len(sample) // rounds
    for k in range(rounds):
        chunk = sample[k * size : (k + 1) * size]
        bare_runs.append(bare_durable(ruleset, chunk))
        ours_runs.append(in_process(live, chunk))
    # Medians of alternating rounds: neither path gets the quieter moments of the machine.
    bare = statistics.median(bare_runs)
    ours = statistics.median(ours_runs)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    over_nats = asyncio.run(request_reply(pool[: args.rr]))
    result = {
        "n": args.n,
        "seed": SEED,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "bare_durable_evals_per_s": round(bare),
        "in_process_evals_per_s": round(ours),
        "in_process_to_bare_ratio": round(ours / bare, 3),
        "request_reply_evals_per_s": round(over_nats),
        "peak_rss_mb": round(peak_rss_mb, 1),
    }
    print(
        f"bare durable {bare:,.0f}/s, ours in process {ours:,.0f}/s ({ours / bare:.0%}), "
        f"over NATS {over_nats:,.0f}/s, peak RSS {peak_rss_mb:.1f} MB",
        file=sys.stderr,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
