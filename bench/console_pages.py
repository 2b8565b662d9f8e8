"""Benchmark of the console's lists, reports and pages for a large organisation: 20,000
supporters and 5,000 cases, a year of their events.

A real nats-server (``sync_interval: always``, auth on). The organisation's events are
published straight into ``EVENTS`` (seeded, the shapes the services publish: registrations,
vetting, eligibility with lapse days, supervision; intakes, consent, proposals, answers,
matches, first meetings, weekly sessions and attendance, waitlists), some 250,000 of them.
Then the console, served by uvicorn on a loopback port, with the organisation's own
credential:

  - ``fold_s``: the first read after start, which replays the whole stream into the fold;
    and the process's resident memory before and after it;
  - warm reads, one at a time, p50 and p99 in ms: the today lists as JSON and as the page,
    one month's report as JSON, the reports page (12 months, charts), the rules page;
  - the baseline, in the same run: the sign-in page (a template, no data).

The last line is JSON.

    python -m bench.console_pages [--supporters 20000] [--cases 5000] [--n 50]
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
from datetime import datetime, timedelta
from pathlib import Path

from nats.js import JetStreamContext

from bench import console_serving, deployment, register
from contracts.envelope import Event, wrap
from contracts.intake import (
    IntakeReceived,
    Method,
    Stage,
    SupporterRegistered,
    VettingEvidenceRecorded,
)
from contracts.matching import (
    ClientWaitlisted,
    MatchActivated,
    MatchProposed,
    ProposalAccepted,
    ProposalsDeclined,
    ProposedSupporter,
)
from contracts.rules import ConsentDecided, Kind, RulesetRef, SupporterEligibilityDecided
from contracts.scheduling import (
    InitialMeetingProposed,
    SessionAttended,
    SessionBooked,
    SessionsScheduled,
    SupervisionAttended,
    SupervisionScheduled,
)
from runtime import bus, topology
from runtime.access import ADMIN, SERVICE_NEEDS, SYSTEM_USER, AuthDir
from runtime.clock import SYSTEM
from runtime.credentials import Credentials
from runtime.embedded import EmbeddedNats
from runtime.settings import Settings

SEED = 20261129
ORG = "bench-large"
PASSWORD = "a long benchmark password"
YEAR = timedelta(days=365)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def history(supporters: int, cases: int, now: datetime) -> list[tuple[Event, datetime]]:
    """A year of one organisation's events, oldest first."""
    rng = random.Random(SEED)
    ref = RulesetRef(org=ORG, kind=Kind.ELIGIBILITY, version="1.0.0", content_hash="0" * 16)
    consent_ref = ref.model_copy(update={"kind": Kind.CONSENT})
    events: list[tuple[Event, datetime]] = []
    for n in range(supporters):
        sid, at = f"s{n}", now - YEAR + timedelta(seconds=rng.uniform(0, 300 * 86400))
        events.append(
            (SupporterRegistered(supporter_id=sid, region="auckland", caseload_cap=3), at)
        )
        for kind in ("record_check", "interview", "training"):
            events.append(
                (VettingEvidenceRecorded(supporter_id=sid, kind=kind, recorded_for=at.date()), at)
            )
        lapses = now.date() + timedelta(days=rng.randint(-30, 400))
        events.append(
            (
                SupporterEligibilityDecided(
                    supporter_id=sid, eligible=True, lapses_on=lapses, ruleset=ref
                ),
                at,
            )
        )
        for k, kind in enumerate(("supervision", "team_debrief")):
            start = now + timedelta(days=rng.uniform(-20, 20))
            events.append(
                (
                    SupervisionScheduled(
                        supporter_id=sid, session_id=f"v{k}-{sid}", kind=kind, start=start
                    ),
                    at,
                )
            )
            if start < now and rng.random() < 0.8:
                attended = SupervisionAttended(
                    supporter_id=sid, session_id=f"v{k}-{sid}", kind=kind, attended_on=start.date()
                )
                events.append((attended, start))
    for n in range(cases):
        cid, at = f"c{n}", now - YEAR + timedelta(seconds=rng.uniform(0, 360 * 86400))
        events.append(
            (
                IntakeReceived(
                    case_id=cid,
                    scheme="tenancy",
                    stage=Stage.ENTRY,
                    party_ids=["p1"],
                    has_other_support=False,
                ),
                at,
            )
        )
        events.append(
            (
                ConsentDecided(
                    case_id=cid,
                    stage="entry",
                    status="pending",
                    missing_party_ids=["client", "p1"],
                    ruleset=consent_ref,
                ),
                at,
            )
        )
        fate = rng.random()
        if fate < 0.15:
            events.append((ClientWaitlisted(case_id=cid, constraint="region"), at))
            continue
        chosen = [f"s{rng.randrange(supporters)}" for _ in range(3)]
        proposed = at + timedelta(seconds=rng.uniform(1, 30))
        events.append(
            (
                MatchProposed(
                    case_id=cid,
                    round=1,
                    proposals=[
                        ProposedSupporter(
                            supporter_id=s,
                            score=0.9,
                            matched_on=["languages"],
                            held_until=proposed + timedelta(hours=72),
                        )
                        for s in chosen
                    ],
                ),
                proposed,
            )
        )
        answered = proposed + timedelta(hours=rng.uniform(1, 70))
        if answered > now:
            continue  # still choosing
        if fate < 0.25:
            events.append((ProposalsDeclined(case_id=cid, supporter_ids=chosen), answered))
            continue
        events.append(
            (
                ProposalAccepted(
                    case_id=cid, supporter_id=chosen[0], released_supporter_ids=chosen[1:]
                ),
                answered,
            )
        )
        active = answered + timedelta(hours=rng.uniform(2, 96))
        consented = ConsentDecided(
            case_id=cid, stage="entry", status="active", missing_party_ids=[], ruleset=consent_ref
        )
        events.append((consented, active))
        events.append((MatchActivated(case_id=cid, supporter_id=chosen[0]), active))
        meeting = active + timedelta(days=3)
        events.append(
            (
                InitialMeetingProposed(
                    case_id=cid,
                    supporter_id=chosen[0],
                    session_id=f"{cid}-m",
                    start=meeting,
                    end=meeting + timedelta(hours=1),
                    method=Method.PHONE,
                    proposed_by="scheduling",
                ),
                active,
            )
        )
        events.append(
            (
                SessionBooked(
                    case_id=cid,
                    supporter_id=chosen[0],
                    session_id=f"{cid}-m",
                    kind="initial_meeting",
                    start=meeting,
                    end=meeting + timedelta(hours=1),
                    method=Method.PHONE,
                ),
                active + timedelta(hours=5),
            )
        )
        starts = [meeting + timedelta(weeks=k + 1) for k in range(12)]
        ids = [f"{cid}-{k}" for k in range(12)]
        events.append(
            (
                SessionsScheduled(
                    case_id=cid,
                    supporter_id=chosen[0],
                    session_ids=ids,
                    starts=starts,
                    weekday="Tuesday",
                    local_time="18:00",
                    time_zone="Pacific/Auckland",
                    service_ends_on=(starts[-1] + timedelta(days=1)).date(),
                ),
                meeting + timedelta(hours=1),
            )
        )
        for session_id, start in zip(ids, starts, strict=True):
            if start < now:
                outcome = rng.choices(
                    ["completed", "client_no_show", "supporter_no_show"], [0.9, 0.07, 0.03]
                )[0]
                events.append(
                    (SessionAttended(case_id=cid, session_id=session_id, outcome=outcome), start)
                )
    return sorted((e for e in events if e[1] <= now), key=lambda e: e[1])


async def publish(js: JetStreamContext, events: list[tuple[Event, datetime]]) -> None:
    """Pipelined, a window at a time; each event as the services publish it."""
    window = 256
    for first in range(0, len(events), window):
        await asyncio.gather(
            *(
                bus.publish_event(js, wrap(event, org=ORG, source="bench", time=at))
                for event, at in events[first : first + window]
            )
        )


async def run(supporters: int, cases: int, n: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder)
        auth = AuthDir.init(state / "auth", SERVICE_NEEDS, int(SYSTEM().timestamp()))
        settings = deployment(state, log_level="ERROR")
        with EmbeddedNats(state / "nats", auth=auth) as server:
            return await measure(server.url, auth, state, settings, supporters, cases, n)


async def measure(
    url: str,
    auth: AuthDir,
    state: Path,
    settings: Settings,
    supporters: int,
    cases: int,
    n: int,
) -> dict[str, object]:
    admin = await bus.connect(url, "bench-admin", auth.credentials(ADMIN))
    system = await bus.connect(url, "bench-system", auth.credentials(SYSTEM_USER))
    await topology.provision(admin.jetstream(), settings)
    await register(admin.jetstream(), ORG, settings=settings)
    now = SYSTEM()
    events = history(supporters, cases, now)
    started = time.perf_counter()
    await publish(admin.jetstream(), events)
    publish_s = time.perf_counter() - started
    stream = await admin.jetstream().stream_info(f"EVENTS-{ORG}")
    while stream.state.messages < len(events):  # sourced into the organisation's stream
        await asyncio.sleep(0.2)
        stream = await admin.jetstream().stream_info(f"EVENTS-{ORG}")
    credentials = Credentials(
        await admin.jetstream().key_value(topology.CREDENTIALS_BUCKET),
        admin.jetstream(),
        auth,
        system,
        SYSTEM,
    )
    month = f"{now:%Y-%m}"
    paths = {
        "signin_page": "/sign-in",
        "today_json": f"/api/orgs/{ORG}/today",
        "today_page": f"/orgs/{ORG}",
        "report_json": f"/api/orgs/{ORG}/reports/{month}",
        "reports_page": f"/orgs/{ORG}/reports",
        "rules_page": f"/orgs/{ORG}/rules",
    }
    timings: dict[str, list[float]] = {name: [] for name in paths}
    try:
        async with console_serving(url, auth, state, settings, admin, credentials, ORG) as http:
            before_mb = resident_mb()
            started = time.perf_counter()
            first = await http.get(paths["today_json"])
            fold_s = time.perf_counter() - started
            assert first.status_code == 200, first.text
            after_mb = resident_mb()
            counts = first.json()["counts"]
            for _ in range(3):  # warm up every path
                for path in paths.values():
                    assert (await http.get(path)).status_code == 200, path
            for _ in range(n):
                for name, path in paths.items():
                    started = time.perf_counter()
                    response = await http.get(path)
                    timings[name].append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200, (path, response.text[:200])
    finally:
        await system.close()
        await admin.close()
    figures: dict[str, object] = {
        "seed": SEED,
        "supporters": supporters,
        "cases": cases,
        "events": len(events),
        "reads_per_path": n,
        "publish_events_per_s": round(len(events) / publish_s),
        "fold_s": round(fold_s, 2),
        "fold_events_per_s": round(len(events) / fold_s),
        "rss_before_fold_mb": round(before_mb),
        "rss_after_fold_mb": round(after_mb),
        "today_counts": counts,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
    }
    base = statistics.median(timings["signin_page"])
    for name, values in timings.items():
        figures[f"{name}_p50_ms"] = round(statistics.median(values), 2)
        figures[f"{name}_p99_ms"] = round(percentile(values, 0.99), 2)
        figures[f"{name}_max_ms"] = round(max(values), 2)
        if name != "signin_page":
            figures[f"{name}_to_signin_p50_ratio"] = round(statistics.median(values) / base, 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supporters", type=int, default=20_000)
    parser.add_argument("--cases", type=int, default=5_000)
    parser.add_argument("--n", type=int, default=50, help="warm reads per path")
    args = parser.parse_args()
    figures = asyncio.run(run(args.supporters, args.cases, args.n))
    print(
        f"{figures['events']} events folded in {figures['fold_s']} s; today page p50 "
        f"{figures['today_page_p50_ms']} ms, reports page p50 {figures['reports_page_p50_ms']}"
        f" ms (sign-in page {figures['signin_page_p50_ms']} ms)",
        file=sys.stderr,
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
