"""Benchmark of matching on the seeded synthetic population (services/matching/population.py).

  - one intake against 20,000 supporters: filters, scores, top 3 with explanations;
  - a batch of 5,000 clients against 20,000 supporters (min-cost flow over each
    client's best 20 candidates);
  - the batch objective against the exact optimum (scipy linear_sum_assignment
    over slot copies) on a sample small enough for it, and coverage against the
    most clients any assignment could serve there;
  - coverage of clients whose needs are scarce (a rare language), and the most
    proposals resting on one free slot.
  - end to end over NATS: an embedded nats-server, the services (intake, rules,
    matching) in one subprocess as ``alongside up`` runs them, 300 vetted
    supporters, then intakes one at a time: the time from intake's accepted reply
    to the client's MatchProposed (or ClientWaitlisted) event, which crosses
    intake -> rules (matching policy) -> matching (filters, holds, commit).
    The same run measures a bare request/reply on that server as the baseline.
The last line is JSON.

    python -m bench.matching [--e2e-intakes 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nats
import numpy as np
from scipy.optimize import linear_sum_assignment

from alongside import sample
from alongside.client import AlongsideClient
from bench import master_key_env, register
from bench.intake import spawn
from contracts import subjects
from contracts.replies import CommandAccepted
from runtime import bus, topology
from runtime.clock import SYSTEM
from runtime.embedded import EmbeddedNats
from runtime.logging import configure
from runtime.settings import Settings
from services.matching import batch, population
from services.matching.domain import SupporterIndex, candidates, propose, scores

SEED = 20261123
ORG = "bench"


def objective(
    index: SupporterIndex, request: batch.Request, position: int, candidate_count: int
) -> float:
    """The value the batch maximises for one client served by one supporter."""
    score = float(scores(index, request.policy)[position])
    bonus = batch.COVER + (batch.SCARCE if candidate_count <= batch.SCARCE_AT else 0)
    return bonus + round(score * batch.SCALE)


def exact_gap(rng: random.Random, clients: int, supporters: int) -> tuple[float, float, float]:
    """(gap to the exact optimum %, coverage vs feasible, score-only gap %) on a small sample."""
    rows = population.supporters(rng, supporters)
    index = SupporterIndex(rows)
    requests = [batch.Request(f"c{i}", population.client(rng)) for i in range(clients)]
    ours = batch.assign(index, requests)
    slots = np.array([i for i, row in enumerate(rows) for _ in range(max(row.free_slots, 0))])
    weight = np.zeros((clients, slots.size))
    for c, request in enumerate(requests):
        mask = candidates(index, request.policy)
        count = int(mask.sum())
        value = batch.COVER + (batch.SCARCE if count <= batch.SCARCE_AT else 0)
        weight[c] = np.where(
            mask[slots], value + np.round(scores(index, request.policy)[slots] * batch.SCALE), 0
        )
    r, c = linear_sum_assignment(weight, maximize=True)
    chosen = weight[r, c] > 0
    optimum = float(weight[r, c].sum())
    optimum_covered = int(chosen.sum())
    optimum_score = float(
        sum(
            float(scores(index, requests[i].policy)[slots[j]])
            for i, j in zip(r[chosen], c[chosen], strict=True)
        )
    )
    by_id = {q.client_id: q for q in requests}
    mine = sum(
        objective(index, by_id[cid], index.position[sid], ours.candidate_counts[cid])
        for cid, sid in ours.chosen.items()
    )
    my_score = sum(ours.scores.values())
    return (
        100 * (optimum - mine) / optimum,
        len(ours.chosen) / optimum_covered,
        100 * (optimum_score - my_score) / optimum_score if optimum_score else 0.0,
    )


async def end_to_end(intakes: int, supporters: int = 300) -> dict[str, float]:
    """Intake accepted -> proposals published, over a real server and the real services."""
    with tempfile.TemporaryDirectory() as state, EmbeddedNats(Path(state)) as server:
        nc = await bus.connect(server.url, "bench")
        await topology.provision(nc.jetstream(), Settings())
        await register(nc.jetstream(), ORG)
        services = spawn(
            [sys.executable, "-m", "alongside.cli", "up", "intake", "rules", "matching"],
            env={
                "ALONGSIDE_NATS_URL": server.url,
                "ALONGSIDE_LOG_LEVEL": "WARNING",
                **master_key_env(Path(state)),
            },
        )
        try:
            client = AlongsideClient(nc, source="bench")
            rng = random.Random(SEED)
            today = SYSTEM().date()
            await _until_answering(client)
            for n in range(supporters):
                supporter_id = f"s{n:04d}"
                for command in (sample.supporter(rng, supporter_id),
                                *sample.vetting(rng, supporter_id, today)):  # fmt: skip
                    assert isinstance(await client.submit(ORG, command), CommandAccepted)
            arrived: dict[str, float] = {}
            seen = asyncio.Event()

            async def on_outcome(msg: Any) -> None:
                arrived.setdefault(json.loads(msg.data)["data"]["case_id"], time.perf_counter())
                seen.set()

            for event in ("MatchProposed", "ClientWaitlisted"):
                await nc.subscribe(subjects.event(ORG, event), cb=on_outcome)
            latencies, baseline = [], []
            for i in range(intakes + 20):
                case_id = f"c{i:04d}"
                start = time.perf_counter()
                reply = await client.submit(ORG, sample.intake(rng, case_id))
                assert isinstance(reply, CommandAccepted), reply
                accepted_at = time.perf_counter()
                while case_id not in arrived:
                    seen.clear()
                    await asyncio.wait_for(seen.wait(), timeout=30)
                if i >= 20:  # the first ones warm up
                    latencies.append((arrived[case_id] - accepted_at) * 1000)
                    baseline.append((accepted_at - start) * 1000)
            return {
                "intake_to_proposals_p50_ms": float(np.percentile(latencies, 50)),
                "intake_to_proposals_p99_ms": float(np.percentile(latencies, 99)),
                "intake_accepted_p50_ms": float(np.percentile(baseline, 50)),
                "e2e_supporters": supporters,
                "e2e_intakes": intakes,
            }
        finally:
            services.terminate()
            services.wait()
            await nc.close()


async def _until_answering(client: AlongsideClient) -> None:
    probe = sample.supporter(random.Random(0), "probe")
    for _ in range(300):
        try:
            await client.submit("bench-probe", probe, timeout=1)
            return
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            await asyncio.sleep(0.1)
    raise RuntimeError("the services did not start")


def main() -> None:
    configure("WARNING")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--e2e-intakes", type=int, default=300)
    args = parser.parse_args()
    rng = random.Random(SEED)
    rows = population.supporters(rng, 20_000)
    start = time.perf_counter()
    index = SupporterIndex(rows)
    build_s = time.perf_counter() - start

    policies = [population.client(rng) for _ in range(1_000)]
    propose(index, policies[0], 3)
    latencies = []
    for policy in policies:
        t = time.perf_counter()
        propose(index, policy, 3)
        latencies.append((time.perf_counter() - t) * 1000)
    p95 = float(np.percentile(latencies, 95))

    requests = [batch.Request(f"c{i}", population.client(rng)) for i in range(5_000)]
    start = time.perf_counter()
    result = batch.assign(index, requests)
    batch_s = time.perf_counter() - start

    load: dict[str, int] = {}
    for supporter_id in result.chosen.values():
        load[supporter_id] = load.get(supporter_id, 0) + 1
    per_slot = max(load[s] / rows[index.position[s]].free_slots for s in load)
    scarce = [
        r
        for r in requests
        if population.is_scarce(r.policy) and result.candidate_counts[r.client_id] > 0
    ]
    scarce_coverage = sum(r.client_id in result.chosen for r in scarce) / max(len(scarce), 1)
    servable = sum(1 for r in requests if result.candidate_counts[r.client_id] > 0)

    gap, coverage, score_gap = exact_gap(random.Random(SEED + 1), clients=600, supporters=1_500)
    figures = {
        "seed": SEED,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "index_build_s": round(build_s, 3),
        "single_intake_p95_ms": round(p95, 3),
        "batch_5k_x_20k_s": round(batch_s, 3),
        "batch_served": len(result.chosen),
        "batch_servable": servable,
        "optimum_gap_pct": round(gap, 4),
        "optimum_score_gap_pct": round(score_gap, 3),
        "coverage_vs_feasible": round(coverage, 4),
        "scarce_needs_coverage": round(scarce_coverage, 4),
        "scarce_clients": len(scarce),
        "max_proposals_per_free_slot": round(per_slot, 3),
    }
    figures.update({k: round(v, 3) for k, v in asyncio.run(end_to_end(args.e2e_intakes)).items()})
    print(
        f"one intake p95 {p95:.3f} ms; batch 5k x 20k {batch_s:.2f} s; gap {gap:.4f} %; "
        f"coverage {coverage:.2%}; scarce {scarce_coverage:.2%}; max per slot {per_slot}; "
        f"intake to proposals p99 {figures['intake_to_proposals_p99_ms']} ms",
        file=sys.stderr,
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
