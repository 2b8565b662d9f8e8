"""Benchmark of sealing people's data at rest, on the storage path alone, against a baseline
measured in the same run.

A real nats-server (``sync_interval: always``, as shipped) and the ``cases`` bucket as
provisioned. The same seeded case records (``alongside/sample.py``: 13 outermost marked
paths each) are written and read one at a time, as intake does, by a ``RecordStore``
without a sealer (the baseline: what storage cost before sealing) and one with the
shipped sealer:

  - ``create``: a new case; sealed, its client is new, so their key is made first (a
    direct get that finds none, then a publish to ``KEYS``, fsynced);
  - ``update``: the same case written again; sealed, with the key the vault keeps;
  - ``load``: the case read back and opened.

Rounds alternate the plain and the sealed store, on distinct ids, so drift in the
machine falls on both. Per figure: wall time per operation (median of rounds) and this
process's CPU per operation; ratios sealed / plain. Also the key's making on its own
(``Vault.key_or_new`` for new people) and sealing without I/O (``Sealer`` on a dict).
The last line is JSON.

    python -m bench.sealing [--n 500] [--rounds 5]
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
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from alongside import sample
from bench import deployment
from contracts.intake import Stage
from contracts.records import CaseRecord
from runtime import bus, topology
from runtime.embedded import EmbeddedNats
from runtime.store import RecordStore
from runtime.vault import Vault, sealer_of

SEED = 20261129
ORG = "bench"
NOW = datetime(2026, 11, 29, 9, tzinfo=UTC)


def case(i: int, prefix: str) -> CaseRecord:
    intake = sample.intake(random.Random(SEED + i), f"{prefix}{i}")
    return CaseRecord(
        case_id=f"{prefix}{i}", intake=intake, stage=Stage.ENTRY, opened_at=NOW, updated_at=NOW
    )


async def timed(n: int, step: Callable[[int], Awaitable[None]]) -> tuple[float, float]:
    """Wall and CPU milliseconds per call of ``step(0..n-1)``, one at a time."""
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        await step(i)
    return ((time.perf_counter() - wall) * 1000 / n, (time.process_time() - cpu) * 1000 / n)


async def one_round(
    n: int, r: int, plain: RecordStore[CaseRecord], sealed: RecordStore[CaseRecord]
) -> dict[str, tuple[float, float]]:
    figures: dict[str, tuple[float, float]] = {}
    for name, store in (("plain", plain), ("sealed", sealed)):
        prefix = f"{name}-r{r}-"
        records = [case(i, prefix) for i in range(n)]
        revisions: dict[int, int] = {}

        async def create(
            i: int,
            store: RecordStore[CaseRecord] = store,
            records: list[CaseRecord] = records,
            revisions: dict[int, int] = revisions,
        ) -> None:
            written = await store.save(ORG, records[i].case_id, store.stored(records[i]), 0)
            assert isinstance(written, int), "a fresh key"
            revisions[i] = written

        async def update(
            i: int,
            store: RecordStore[CaseRecord] = store,
            records: list[CaseRecord] = records,
            revisions: dict[int, int] = revisions,
        ) -> None:
            changed = records[i].model_copy(update={"stage": Stage.EARLY_RESOLUTION})
            written = await store.save(ORG, records[i].case_id, store.stored(changed), revisions[i])
            assert isinstance(written, int), "one writer per record"
            revisions[i] = written

        async def load(
            i: int, store: RecordStore[CaseRecord] = store, records: list[CaseRecord] = records
        ) -> None:
            stored, _ = await store.load(ORG, records[i].case_id)
            assert stored is not None
            assert stored.record.intake == records[i].intake

        for step, fn in (("create", create), ("update", update), ("load", load)):
            figures[f"{name}_{step}"] = await timed(n, fn)
    return figures


async def keys_alone(n: int, vault: Vault) -> tuple[float, float]:
    async def make(i: int) -> None:
        await vault.key_or_new(ORG, "client", f"key-only-{i}", fresh=True)

    return await timed(n, make)


async def sealing_alone(n: int, vault: Vault) -> tuple[float, float]:
    sealer = sealer_of(vault, topology.CASES_BUCKET)
    record = case(0, "in-memory-").model_dump(mode="json")
    await vault.key_or_new(ORG, "client", "in-memory")

    async def seal_and_open(_: int) -> None:
        sealed = await sealer.seal(ORG, "in-memory", json.loads(json.dumps(record)))
        await sealer.open(ORG, "in-memory", sealed)

    return await timed(n, seal_and_open)


async def run(n: int, rounds: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as state, EmbeddedNats(Path(state) / "nats") as server:
        settings = deployment(Path(state))
        nc = await bus.connect(server.url, "bench-sealing")
        js = nc.jetstream()
        await topology.provision(js, settings)
        vault = Vault.of(js, settings)
        kv = await js.key_value(topology.CASES_BUCKET)
        plain = RecordStore(kv, CaseRecord)
        sealed = RecordStore(kv, CaseRecord, sealer_of(vault, topology.CASES_BUCKET))
        await one_round(20, -1, plain, sealed)  # warm up: connections, caches, JIT-free
        per_round = [await one_round(n, r, plain, sealed) for r in range(rounds)]
        key_making = await keys_alone(n, vault)
        in_memory = await sealing_alone(n * 4, vault)
        await nc.close()

    def median(name: str, index: int) -> float:
        return statistics.median(r[name][index] for r in per_round)

    figures: dict[str, object] = {
        "seed": SEED,
        "n_per_round": n,
        "rounds": rounds,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
    }
    for step in ("create", "update", "load"):
        for unit, index in (("ms", 0), ("cpu_ms", 1)):
            base, cost = median(f"plain_{step}", index), median(f"sealed_{step}", index)
            figures[f"plain_{step}_{unit}"] = round(base, 3)
            figures[f"sealed_{step}_{unit}"] = round(cost, 3)
            figures[f"{step}_{unit}_ratio"] = round(cost / base, 2)
    figures["new_key_ms"], figures["new_key_cpu_ms"] = (round(x, 3) for x in key_making)
    figures["seal_and_open_in_memory_ms"] = round(in_memory[0], 3)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="cases per store per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    figures = asyncio.run(run(args.n, args.rounds))
    print(
        f"create x{figures['create_ms_ratio']}, update x{figures['update_ms_ratio']}, "
        f"load x{figures['load_ms_ratio']} (wall, sealed / plain); a new key "
        f"{figures['new_key_ms']} ms",
        file=sys.stderr,
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
