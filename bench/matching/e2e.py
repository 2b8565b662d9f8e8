"""Matching end to end over NATS: an intake's way to its proposals, and ``alongside import``,
through a real server and the real services."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import numpy as np
from nats.aio.client import Client
from nats.aio.msg import Msg

from alongside import sample
from alongside.client import AlongsideClient
from bench import deployment, environment, last_lines, register, register_vetted, settled, spawn
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
from runtime.settings import Settings

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


async def end_to_end(intakes: int, supporters: int = 300) -> dict[str, float]:
    """Intake accepted -> proposals published, over a real server and the real services."""
    with tempfile.TemporaryDirectory() as state, EmbeddedNats(Path(state)) as server:
        settings = deployment(Path(state), nats_url=server.url, log_level="WARNING")
        nc = await bus.connect(server.url, "bench")
        await topology.provision(nc.jetstream(), settings)
        await register(nc.jetstream(), ORG, settings=settings)
        services = spawn(
            [sys.executable, "-m", "alongside.cli", "up", "intake", "rules", "matching"],
            env=environment(settings),
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


@dataclass(frozen=True)
class ImportRun:
    """``alongside import`` as it ran: when it started (wall clock, for the services' batch
    times; and ``perf_counter``), when it exited, with what, and what it said."""

    started_wall: float
    started: float
    exited: float
    returncode: int | None
    said: str


async def import_end_to_end(intakes: int, supporters: int | None = None) -> dict[str, Any]:
    """``alongside import`` of ``intakes`` intakes, from starting the CLI to every client's
    outcome event, over a real server and the real services (``batch.assign`` timed)."""
    supporters = supporters or max(round(intakes * SUPPORTERS_PER_INTAKE), 50)
    with tempfile.TemporaryDirectory() as state, EmbeddedNats(Path(state)) as server:
        folder = Path(state)
        settings = deployment(folder, nats_url=server.url, log_level="WARNING")
        nc = await bus.connect(server.url, "bench")
        await topology.provision(nc.jetstream(), settings)
        await register(nc.jetstream(), IMPORT_ORG, settings=settings)
        times, log = folder / "batch-times.jsonl", folder / "services.log"
        services = spawn(
            [sys.executable, "-c", TIMED_UP, "up", "intake", "rules", "matching"],
            env=environment(settings, **{BATCH_TIMES: str(times)}),
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
            watch = await _watching(nc)
            times.unlink(missing_ok=True)  # only the import's calls
            ran = await _run_import(file, settings)
            await watch.until_outcomes(intakes, DRAIN_S)
            print(f"alongside import (exit {ran.returncode}): {ran.said[-400:]}", file=sys.stderr)
            figures = _import_figures(import_key(intakes), intakes, watch, ran, times, log)
            return {
                **figures,
                "import_intakes": intakes,
                "import_supporters": supporters,
                "import_supporters_eligible": eligible,
                "import_setup_s": setup_s,
            }
        finally:
            services.terminate()
            services.wait()
            await nc.close()


async def _watching(nc: Client) -> ImportWatch:
    """An ``ImportWatch`` subscribed to the import organisation's outcomes, policies and
    ``AssignBatch`` requests."""
    watch = ImportWatch()
    for model in (MatchProposed, ClientWaitlisted):
        await nc.subscribe(subjects.event(IMPORT_ORG, model.type_name), cb=watch.on_outcome)
    await nc.subscribe(
        subjects.event(IMPORT_ORG, MatchingPolicyDecided.type_name), cb=watch.on_policy
    )
    assigning = subjects.commands_of(AssignBatch.service, IMPORT_ORG, AssignBatch.type_name)
    await nc.subscribe(assigning, cb=watch.on_assign)
    await nc.flush()
    return watch


async def _run_import(file: Path, settings: Settings) -> ImportRun:
    """The real CLI in a subprocess, until it exits."""
    started_wall, started = SYSTEM().timestamp(), time.perf_counter()
    cli = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "alongside.cli",
        "import",
        str(file),
        "--org",
        IMPORT_ORG,
        env=environment(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await cli.communicate()
    said = (out + err).decode(errors="replace").strip()
    return ImportRun(started_wall, started, time.perf_counter(), cli.returncode, said)


def _import_figures(
    key: str, intakes: int, watch: ImportWatch, ran: ImportRun, times: Path, log: Path
) -> dict[str, Any]:
    """The import's figures (``<key>_...``), from what was watched, the services' batch
    times and their log."""
    started = ran.started
    kinds = [kind for _, kind in watch.outcomes.values()]
    lost = intakes - len(watch.outcomes)
    errors = _logged_errors(log)
    if lost or ran.returncode:
        print(last_lines(log), file=sys.stderr)
    arrivals = [at for at, _ in watch.outcomes.values()]
    first, last = min(arrivals, default=ran.exited), max(arrivals, default=ran.exited)
    in_import = _batch_calls(times, ran.started_wall, ran.started_wall + (last - started))
    return {
        f"{key}_s": None if lost else last - started,
        f"{key}_batch_s": sum(c[1] for c in in_import),
        f"{key}_batch_first_round_s": in_import[0][1] if in_import else None,
        f"{key}_batch_calls": len(in_import),
        f"{key}_proposed": kinds.count(MatchProposed.type_name),
        f"{key}_waitlisted": kinds.count(ClientWaitlisted.type_name),
        f"{key}_lost": lost,
        f"{key}_policies_decided_s": max(watch.policies.values(), default=started) - started,
        f"{key}_assign_requests": len(watch.assign_requests),
        f"{key}_assign_sent_s": max(watch.assign_requests, default=started) - started,
        f"{key}_first_outcome_s": first - started,
        f"{key}_cli_exit_s": ran.exited - started,
        f"{key}_cli_exit_code": ran.returncode,
        f"{key}_services_errors_logged": len(errors),
    }


def _batch_calls(times: Path, since: float, until: float) -> list[list[float]]:
    """The services' ``batch.assign`` calls (wall-clock start, seconds, requests) that began
    from ``since`` to ``until`` (wall clock)."""
    if not times.exists():
        return []
    calls = [json.loads(line) for line in times.read_text().splitlines()]
    return [c for c in calls if since <= c[0] <= until]


def _logged_errors(log: Path) -> list[str]:
    """The services' error-level log lines; the first five told on stderr."""
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
    return errors


async def _until_answering(client: AlongsideClient) -> None:
    probe = sample.supporter(random.Random(0), "probe")
    for _ in range(300):
        try:
            await client.submit("bench-probe", probe, timeout=1)
            return
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            await asyncio.sleep(0.1)
    raise RuntimeError("the services did not start")
