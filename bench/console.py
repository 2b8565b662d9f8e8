"""Benchmark of the console's HTTP API: a command through it against the same command sent
straight over NATS (the default); or, with ``--lists``, its lists and search read for a
large organisation. Each with its baseline measured in the same run.

A real nats-server (``sync_interval: always``, auth on) and the intake service in this
process, as ``alongside up`` runs them; the console served by uvicorn on a loopback port,
its organisation connection with the organisation's own credential.

Commands (the default). One at a time (the latency a coordinator's click sees), alternating
rounds:

  - ``nats``: ``SubmitIntake`` sent as the CLI sends it (an envelope, request/reply), with
    the organisation's credential;
  - ``http``: the same command's payload posted to ``/api/orgs/{org}/commands/SubmitIntake``
    by a signed-in coordinator (session cookie, CSRF token, ``Idempotency-Key``), over a
    kept-alive HTTP connection (``httpx``).

Every command is a new case (same seeded records in both paths). Per path: p50 and p99 in
ms over all rounds, and the ratio http / nats.

Lists (``--lists``; issue #28: p95 at or under 100 ms at 10,000 cases and 2,000
supporters). A year of the organisation's events (``bench.console_pages.history``) published
into ``EVENTS``, and a sealed case or supporter record in intake's buckets for every id in
them (``alongside/sample.py``), which the search reads its names from (``ReadDirectory``).
Then: ``fold_s``, the first list read (the stream replayed into the fold); ``index_s``, the
first search (every name read from intake); the process's resident memory before and after
them; and warm reads, one at a time, p50, p95 and p99 in ms: cases filtered and a second
page, supporters filtered, proposals unanswered, search by a name, a phone's last 7 digits
and a reference's start (the query varied per read from a seeded list), attention, the
cases page. The baseline: the sign-in page (a template, no data); each path's p50 as a
ratio to it. ``worst_p95_ms`` and ``p95_within_100ms`` say whether the issue's bound holds.

The last line is JSON.

    python -m bench.console [--n 300] [--rounds 3]
    python -m bench.console --lists [--cases 10000] [--supporters 2000] [--n 100]
    python -m bench.console --lists --cases 300 --supporters 60 --n 3    # quick
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from nats.aio.client import Client
from nats.js import JetStreamContext

from alongside import sample, services
from alongside.client import AlongsideClient
from bench import console_pages, console_serving, deployment, register
from contracts.records import CaseRecord, SupporterRecord
from contracts.replies import CommandAccepted
from runtime import bus, topology
from runtime.access import ADMIN, SERVICE_NEEDS, SYSTEM_USER, AuthDir
from runtime.clock import SYSTEM
from runtime.credentials import Credentials
from runtime.embedded import EmbeddedNats
from runtime.settings import Settings
from runtime.store import R, RecordStore, bound_store
from runtime.vault import Vault

SEED = 20261129
ORG = "bench"
PASSWORD = "a long benchmark password"
LARGE = console_pages.ORG  # the organisation whose events ``history`` makes
WINDOW = 256  # writes in flight while seeding
BOUND_MS = 100.0  # issue #28: p95 of a filtered page or a search


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


async def run(mode: Callable[..., Any], *args: Any) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder)
        auth = AuthDir.init(state / "auth", SERVICE_NEEDS, int(SYSTEM().timestamp()))
        settings = deployment(state, log_level="ERROR")
        with EmbeddedNats(state / "nats", auth=auth) as server:
            figures: dict[str, object] = await mode(server.url, auth, state, settings, *args)
            return figures


@contextlib.asynccontextmanager
async def deployed(
    url: str, auth: AuthDir, settings: Settings, org: str
) -> AsyncIterator[tuple[Client, Credentials]]:
    """The streams and buckets, ``org`` registered, the intake service running; the
    operator's connection and the credentials it issues."""
    admin = await bus.connect(url, "bench-admin", auth.credentials(ADMIN))
    system = await bus.connect(url, "bench-system", auth.credentials(SYSTEM_USER))
    await topology.provision(admin.jetstream(), settings)
    await register(admin.jetstream(), org, settings=settings)
    running = await services.start(url, ["intake"], settings, credentials=auth.credentials)
    try:
        kv = await admin.jetstream().key_value(topology.CREDENTIALS_BUCKET)
        yield admin, Credentials(kv, admin.jetstream(), auth, system, SYSTEM)
    finally:
        await running.stop()
        await system.close()
        await admin.close()


# Commands: HTTP against NATS ------------------------------------------------------------


async def measure(
    url: str, auth: AuthDir, state: Path, settings: Settings, n: int, rounds: int
) -> dict[str, object]:
    timings: dict[str, list[float]] = {"nats": [], "http": []}
    async with deployed(url, auth, settings, ORG) as (admin, credentials):
        org_creds = state / "org.creds"
        org_creds.write_text((await credentials.issue(ORG, "integration", "bench-cli")).text)
        as_org = await bus.connect(url, "bench-org", org_creds)
        cli = AlongsideClient(as_org, source="bench/cli", sender="bench-cli")
        try:
            async with console_serving(url, auth, state, settings, admin, credentials, ORG) as h:
                await commands(cli, h, n, rounds, timings)
        finally:
            await as_org.close()
    figures: dict[str, object] = {
        "seed": SEED,
        "n_per_round": n,
        "rounds": rounds,
        "machine": machine(),
    }
    for name, values in timings.items():
        figures[f"{name}_p50_ms"] = round(statistics.median(values), 3)
        figures[f"{name}_p99_ms"] = round(percentile(values, 0.99), 3)
    figures["http_to_nats_p50_ratio"] = round(
        statistics.median(timings["http"]) / statistics.median(timings["nats"]), 2
    )
    figures["http_to_nats_p99_ratio"] = round(
        percentile(timings["http"], 0.99) / percentile(timings["nats"], 0.99), 2
    )
    return figures


async def commands(
    cli: AlongsideClient,
    http: httpx.AsyncClient,
    n: int,
    rounds: int,
    timings: dict[str, list[float]],
) -> None:
    rng = random.Random(SEED)
    count = iter(range(10**9))

    async def by_nats() -> None:
        reply = await cli.submit(ORG, sample.intake(rng, f"n{next(count)}"))
        assert isinstance(reply, CommandAccepted), reply

    async def by_http() -> None:
        i = next(count)
        body = json.loads(sample.intake(rng, f"h{i}").model_dump_json())
        response = await http.post(
            f"/api/orgs/{ORG}/commands/SubmitIntake",
            json=body,
            headers={"Idempotency-Key": f"bench-{i}"},
        )
        assert response.status_code == 200, response.text

    for _ in range(30):  # warm up both paths
        await by_nats()
        await by_http()
    for _ in range(rounds):
        for name, send in (("nats", by_nats), ("http", by_http)):
            for _ in range(n):
                started = time.perf_counter()
                await send()
                timings[name].append((time.perf_counter() - started) * 1000)


# Lists and search at size -----------------------------------------------------------------


async def measure_lists(
    url: str, auth: AuthDir, state: Path, settings: Settings, cases: int, supporters: int, n: int
) -> dict[str, object]:
    async with deployed(url, auth, settings, LARGE) as (admin, credentials):
        started = time.perf_counter()
        events, queries = await seeded(admin.jetstream(), settings, cases, supporters)
        seed_s = time.perf_counter() - started
        gc.collect()  # the seeding's garbage, not the console's
        async with console_serving(url, auth, state, settings, admin, credentials, LARGE) as h:
            figures = await first_reads(h)
            timings, totals = await warm_reads(h, await read_paths(h, queries, n), n)
    figures = {
        "seed": SEED,
        "cases": cases,
        "supporters": supporters,
        "events": events,
        "reads_per_path": n,
        "seed_s": round(seed_s, 1),
        "machine": machine(),
        **figures,
        "totals": totals,
    }
    return {**figures, **lists_figures(timings)}


async def seeded(
    js: JetStreamContext, settings: Settings, cases: int, supporters: int
) -> tuple[int, dict[str, list[str]]]:
    """The history published and the records written, until the organisation's stream
    holds every event; how many, and the search's queries (the history itself is let go:
    the reads are measured without the bench's own objects in the heap)."""
    now = SYSTEM()
    events = console_pages.history(supporters, cases, now)
    await console_pages.publish(js, events)
    queries = await seed_records(js, settings, cases, supporters, now)
    await streamed(js, len(events))
    return len(events), queries


async def seed_records(
    js: JetStreamContext, settings: Settings, cases: int, supporters: int, now: datetime
) -> dict[str, list[str]]:
    """A sealed record in intake's buckets for every case and supporter of the history;
    what the search is asked, from them: name words, phones' last 7 digits, references'
    starts."""
    rng, vault = random.Random(SEED), Vault.of(js, settings)
    intakes = [sample.intake(rng, f"c{i}") for i in range(cases)]
    registered = [sample.supporter(rng, f"s{i}") for i in range(supporters)]
    case_records = {
        c.case_id: CaseRecord(
            case_id=c.case_id, intake=c, stage=c.dispute.stage, opened_at=now, updated_at=now
        )
        for c in intakes
    }
    supporter_records = {
        s.supporter_id: SupporterRecord(
            supporter_id=s.supporter_id, profile=s.profile, registered_at=now, updated_at=now
        )
        for s in registered
    }
    await save_all(await bound_store(js, topology.CASES_BUCKET, CaseRecord, vault), case_records)
    await save_all(
        await bound_store(js, topology.SUPPORTERS_BUCKET, SupporterRecord, vault),
        supporter_records,
    )
    names = [c.client.display_name for c in intakes] + [s.profile.display_name for s in registered]
    phones = [c.client.contact.phone or "" for c in intakes]
    ids = [*case_records, *supporter_records]
    pick = random.Random(SEED + 1)
    return {
        "name": [pick.choice(names).split()[0] for _ in range(64)],
        "phone": [pick.choice(phones)[-7:] for _ in range(64)],
        "reference": [pick.choice(ids)[:3] for _ in range(64)],
    }


async def save_all(store: RecordStore[R], records: dict[str, R]) -> None:
    items = list(records.items())
    for first in range(0, len(items), WINDOW):
        saved = await asyncio.gather(
            *(
                store.save(LARGE, key, store.stored(record), 0)
                for key, record in items[first : first + WINDOW]
            )
        )
        assert all(isinstance(revision, int) for revision in saved), saved


async def streamed(js: JetStreamContext, count: int) -> None:
    """Until the organisation's stream holds every event published (it sources them)."""
    stream = await js.stream_info(f"EVENTS-{LARGE}")
    while stream.state.messages < count:
        await asyncio.sleep(0.2)
        stream = await js.stream_info(f"EVENTS-{LARGE}")


async def first_reads(http: httpx.AsyncClient) -> dict[str, object]:
    """The fold (the first list read) and the search index (the first search), timed."""
    before_mb = console_pages.resident_mb()
    started = time.perf_counter()
    folded = await http.get(f"/api/orgs/{LARGE}/cases", params={"state": "waiting"})
    fold_s = time.perf_counter() - started
    assert folded.status_code == 200, folded.text[:300]
    folded_mb = console_pages.resident_mb()
    started = time.perf_counter()
    found = await http.get(f"/api/orgs/{LARGE}/search", params={"q": "c1"})
    index_s = time.perf_counter() - started
    assert found.status_code == 200, found.text[:300]
    assert found.json()["total"] > 0, "the search found nobody: were the records read?"
    return {
        "fold_s": round(fold_s, 2),
        "index_s": round(index_s, 2),
        "rss_before_mb": round(before_mb),
        "rss_after_fold_mb": round(folded_mb),
        "rss_after_index_mb": round(console_pages.resident_mb()),
    }


async def read_paths(
    http: httpx.AsyncClient, queries: dict[str, list[str]], n: int
) -> dict[str, list[str]]:
    """Each path measured, as the URL of each of its ``n`` reads."""
    api = f"/api/orgs/{LARGE}"
    first = (await http.get(f"{api}/cases?sort=-since")).json()
    assert first["next_cursor"], "too few cases for a second page"
    fixed = {
        "signin_page": "/sign-in",
        "cases_waiting": f"{api}/cases?state=waiting",
        "cases_since_page2": f"{api}/cases?sort=-since&cursor={first['next_cursor']}",
        "supporters_eligible_with_room": f"{api}/supporters?eligibility=eligible&with_room=true",
        "supporters_lapsing_30d": f"{api}/supporters?lapsing_within_days=30",
        "proposals_unanswered_2d": f"{api}/proposals?unanswered_days=2",
        "attention": "/api/attention",
        "cases_page": f"/orgs/{LARGE}/cases?state=waiting",
    }
    paths = {name: [path] * n for name, path in fixed.items()}
    for kind, words in queries.items():
        paths[f"search_{kind}"] = [f"{api}/search?q={words[i % len(words)]}" for i in range(n)]
    return paths


async def warm_reads(
    http: httpx.AsyncClient, paths: dict[str, list[str]], n: int
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Every path read three times to warm up, then ``n`` times each, one at a time, the
    paths in turn; the ms of each read, and the rows each path's last read found."""
    timings: dict[str, list[float]] = {name: [] for name in paths}
    totals: dict[str, int] = {}
    for i in range(3):
        for urls in paths.values():
            assert (await http.get(urls[i % n])).status_code == 200, urls[i % n]
    for i in range(n):
        for name, urls in paths.items():
            started = time.perf_counter()
            response = await http.get(urls[i])
            timings[name].append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (urls[i], response.text[:300])
            if response.headers["content-type"].startswith("application/json"):
                totals[name] = response.json().get("total", 0)
    return timings, totals


def lists_figures(timings: dict[str, list[float]]) -> dict[str, object]:
    base = statistics.median(timings["signin_page"])
    figures: dict[str, object] = {}
    for name, values in timings.items():
        figures[f"{name}_p50_ms"] = round(statistics.median(values), 2)
        figures[f"{name}_p95_ms"] = round(percentile(values, 0.95), 2)
        figures[f"{name}_p99_ms"] = round(percentile(values, 0.99), 2)
        if name != "signin_page":
            figures[f"{name}_to_signin_p50_ratio"] = round(statistics.median(values) / base, 1)
    worst = max(
        (name for name in timings if name != "signin_page"),
        key=lambda name: percentile(timings[name], 0.95),
    )
    figures["worst_p95_path"] = worst
    figures["worst_p95_ms"] = round(percentile(timings[worst], 0.95), 2)
    figures["p95_within_100ms"] = percentile(timings[worst], 0.95) <= BOUND_MS
    return figures


def summary(figures: dict[str, object]) -> str:
    p95s = ", ".join(
        f"{key.removesuffix('_p95_ms')} {value}"
        for key, value in figures.items()
        if key.endswith("_p95_ms") and key != "worst_p95_ms"
    )
    return (
        f"{figures['cases']} cases, {figures['supporters']} supporters: fold "
        f"{figures['fold_s']} s, index {figures['index_s']} s; p95 ms: {p95s}; worst "
        f"{figures['worst_p95_ms']} ms (within {BOUND_MS:.0f}: {figures['p95_within_100ms']})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n",
        type=int,
        help="commands per path per round (300); with --lists, reads per path (100)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lists", action="store_true", help="the lists and search at size")
    parser.add_argument("--cases", type=int, default=10_000, help="with --lists")
    parser.add_argument("--supporters", type=int, default=2_000, help="with --lists")
    args = parser.parse_args()
    if args.lists:
        n = args.n or 100
        figures = asyncio.run(run(measure_lists, args.cases, args.supporters, n))
        print(summary(figures), file=sys.stderr)
    else:
        figures = asyncio.run(run(measure, args.n or 300, args.rounds))
        print(
            f"p50 {figures['nats_p50_ms']} ms over NATS, {figures['http_p50_ms']} ms over "
            f"HTTP (x{figures['http_to_nats_p50_ratio']})",
            file=sys.stderr,
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
