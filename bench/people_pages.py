"""Benchmark of people's pages behind personal links (``GET /p/<token>``) with 10,000 open
links, at a fixed concurrency; issue: p95 at or under 100 ms.

A real nats-server (``sync_interval: always``, auth on), every service in this process
(``alongside.services.start``, each with its own credential) and the console served by
uvicorn on a loopback port (``bench.console_serving``), as ``alongside up`` runs them. The
HTTP requests come from a process of their own (``Browser``: ``httpx``, no cookie, each form
with the page's Origin), as a person's browser is never in the served process: a client in
its event loop would add its own work to every request's wait. The console's throttle per
address (``http_person_requests_per_minute``, 60 as shipped) is raised for the bench: every
request comes from 127.0.0.1. The services' and the console's logs are kept at INFO, as
shipped, in a file.

Seeding: ``--supporters`` supporters registered and vetted, ``--cases`` client intakes
(``alongside/sample.py``) through the services, so that matching proposes supporters to
most; a third of the clients with proposals choose their first supporter, and half of those
go on (the supporter agrees, both parties consent) to a match, and a first meeting where
scheduling finds a time. Then ``--links`` personal links are written into the ``links``
bucket (``_links.<sha256(token)>``), each token minted with
``services.notifications.links.mint`` and the secret the service derives from the
deployment's master key, so each signature checks: a mix of purposes, each bound to a
person seeded (``MIX``): a client's choice of supporter, a party's consent, a supporter's
schedule and a client offered to them, a client's schedule. The tokens are random, as the
service makes them; ``--seed`` fixes the people, the purposes and which links are requested.

Measured, ``--concurrency`` requests in flight, each path ``--requests`` times in ``ROUNDS``
rounds, the paths in turn (ms: p50, p95, p99; requests a second; CPU ms a request of the
served process, the browser process and nats-server):

  - with the first 100 links written: ``lookup_100_links`` and ``pages_100_links``;
  - with every link written: ``signin`` (the sign-in page: HTTP and a template, no NATS),
    ``healthz`` (HTTP and one KV read), ``lookup`` (the console's link lookup alone: one KV
    read of ``_links.<hash>``, no HTTP), ``open_link`` (``OpenLink`` sent from this process
    as the console sends it, with the credential it holds for the organisation: the link
    checked, its use logged as ``LinkUsed``, the page's reads; no HTTP), ``pages``
    (``GET /p/<token>``: both, and HTTP and rendering) and ``pages_same_100`` (the requests
    of ``pages_100_links`` again: only the bucket has grown);
  - ``pages_one_at_a_time``: a quarter as many pages, one in flight (nothing queued);
  - ``writes``: ``POST /p/<token>/act/preferences`` (``SetContactPreferences``), ``--writes``
    of them, each with the nonce of its page (fetched beforehand), each answered 303.

The same requests (which link, in which order) for ``lookup``, ``open_link`` and ``pages``.
The last line is JSON: every path's figures, ``pages_p95_ms``, ``target_met`` (at or under
100 ms), the shares of the pages' p95 that the lookup and ``OpenLink`` alone take, and the
ratio of the same requests' p95 with every link written to that with 100.

    python -m bench.people_pages [--links 10000] [--requests 2000] [--writes 200]
        [--concurrency 8] [--cases 300] [--supporters 200] [--seed 20261208]
    python -m bench.people_pages --quick      # CI: a check that it runs, not figures
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.kv import KeyValue

from alongside import sample, services
from alongside.client import AlongsideClient
from bench import (
    console_serving,
    cpu_seconds,
    deployment,
    inherited,
    register,
    register_vetted,
    settled,
)
from bench.console import machine, percentile
from contracts import subjects
from contracts.envelope import Command, RawEnvelope
from contracts.intake import CLIENT_PARTY_ID, GiveConsent, Stage
from contracts.matching import AcceptClient, AcceptProposal, MatchProposed
from contracts.notifications import LinkOpened, OpenLink, Person
from contracts.records import PersonalLink
from contracts.replies import CommandAccepted
from contracts.scheduling import InitialMeetingProposed
from runtime import bus, topology
from runtime.access import ADMIN, SERVICE_NEEDS, SYSTEM_USER, AuthDir
from runtime.asking import Asking
from runtime.clock import SYSTEM
from runtime.credentials import Credentials
from runtime.embedded import EmbeddedNats
from runtime.logging import configure
from runtime.settings import Settings
from runtime.store import RecordStore
from runtime.vault import load_master_key
from services.notifications import links
from services.notifications.handlers import PERSON_SOURCE

SEED = 20261208
CHECKOUT = Path(__file__).resolve().parents[1]
ORG = "bench-people"
TARGET_P95_MS = 100.0
SMALL = 100  # links in the first measurement
# The console's throttle per address, raised: every request of the bench is from 127.0.0.1.
PERSON_REQUESTS_PER_MINUTE = 1_000_000_000
ROUNDS = 4  # each path's requests in this many rounds, the paths alternating
IN_FLIGHT = 32  # commands in flight while seeding
WINDOW = 256  # links written at a time
CAP = 6  # each supporter's caseload: room for the proposals' holds
LINK_DAYS = 14
PARTY_ID = "respondent"  # the other party of every sampled intake
ZONE = ZoneInfo("Pacific/Auckland")  # the organisations' time zone as shipped
NONCE = re.compile(r'name="nonce" value="([^"]+)"')
# The links' purposes, by weight: (weight, who, purpose).
MIX = (
    (40, "client", "choose_supporter"),
    (25, "party", "consent"),
    (15, "supporter", "schedule"),
    (10, "supporter", "supporter_offer"),
    (10, "client", "schedule"),
)


@dataclass
class Seeded:
    """Who the services know: every case, the supporters last proposed to each client, the
    cases whose client chose (and whom), and those with a first meeting proposed."""

    cases: list[str]
    proposed: dict[str, list[str]] = field(default_factory=dict)
    chosen: dict[str, str] = field(default_factory=dict)
    meetings: set[str] = field(default_factory=set)

    def on_proposed(self, msg: Msg) -> None:
        data = MatchProposed.model_validate(RawEnvelope.model_validate_json(msg.data).data)
        self.proposed[data.case_id] = [p.supporter_id for p in data.proposals]

    def on_meeting(self, msg: Msg) -> None:
        data = InitialMeetingProposed.model_validate(RawEnvelope.model_validate_json(msg.data).data)
        self.meetings.add(data.case_id)


@dataclass(frozen=True)
class Link:
    token: str
    token_hash: str
    record: PersonalLink


# Seeding ----------------------------------------------------------------------------------


async def accepted_all(client: AlongsideClient, commands: Sequence[Command]) -> None:
    """Each command sent and accepted, ``IN_FLIGHT`` at a time."""
    queue = iter(commands)

    async def worker() -> None:
        for command in queue:
            reply = await client.submit(ORG, command)
            assert isinstance(reply, CommandAccepted), reply

    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))


async def seed_people(
    client: AlongsideClient, admin: Client, cases: int, supporters: int, seed: int
) -> Seeded:
    """Supporters vetted, intakes proposed to, some clients' choices and first meetings, all
    through the services, settled after each step."""
    rng = random.Random(seed)
    seeded = Seeded(cases=[f"c{i}" for i in range(cases)])
    subscriptions = [
        await admin.subscribe(
            subjects.event(ORG, MatchProposed.type_name), cb=_sync(seeded.on_proposed)
        ),
        await admin.subscribe(
            subjects.event(ORG, InitialMeetingProposed.type_name), cb=_sync(seeded.on_meeting)
        ),
    ]
    await register_vetted(client, ORG, supporters, cap=CAP, seed=seed, in_flight=IN_FLIGHT)
    await settled(admin)
    await accepted_all(client, [sample.intake(rng, case_id) for case_id in seeded.cases])
    await settled(admin)
    with_proposals = sorted(seeded.proposed, key=lambda c: int(c[1:]))
    seeded.chosen = {c: seeded.proposed[c][0] for c in with_proposals[::3] if seeded.proposed[c]}
    await accepted_all(
        client, [AcceptProposal(case_id=c, supporter_id=s) for c, s in seeded.chosen.items()]
    )
    await settled(admin)
    today = SYSTEM().astimezone(ZONE).date()
    going_on = list(seeded.chosen.items())[::2]
    await accepted_all(client, [AcceptClient(case_id=c, supporter_id=s) for c, s in going_on])
    await accepted_all(
        client,
        [
            GiveConsent(case_id=c, party_id=party, stages=[Stage.ENTRY], given_on=today)
            for c, _ in going_on
            for party in (CLIENT_PARTY_ID, PARTY_ID)
        ],
    )
    await settled(admin)
    for subscription in subscriptions:
        await subscription.unsubscribe()
    return seeded


def _sync(take: Callable[[Msg], None]) -> Callable[[Msg], Awaitable[None]]:
    async def callback(msg: Msg) -> None:
        take(msg)

    return callback


def planned(seeded: Seeded, count: int, seed: int) -> list[tuple[Person, str | None, str]]:
    """``count`` links to mint, by ``MIX``: each (person, case bound to, purpose)."""
    rng = random.Random(seed + 1)
    with_proposals = sorted(seeded.proposed)
    holders = sorted({s for proposals in seeded.proposed.values() for s in proposals})
    chosen = sorted(seeded.chosen.items())
    weights = [weight for weight, _, _ in MIX]
    plan: list[tuple[Person, str | None, str]] = []
    while len(plan) < count:
        _, who, purpose = rng.choices(MIX, weights)[0]
        if purpose == "consent":
            case = rng.choice(seeded.cases)
            plan.append((Person(kind="party", case_id=case, party_id=PARTY_ID), case, purpose))
        elif who == "supporter" and purpose == "schedule" and holders:
            supporter = rng.choice(holders)
            plan.append((Person(kind="supporter", supporter_id=supporter), None, purpose))
        elif who == "supporter" and chosen:
            case, supporter = rng.choice(chosen)
            plan.append((Person(kind="supporter", supporter_id=supporter), case, purpose))
        elif purpose == "schedule" and chosen:
            case = rng.choice(chosen)[0]
            plan.append((Person(kind="client", case_id=case), case, purpose))
        else:
            case = rng.choice(with_proposals or seeded.cases)
            plan.append((Person(kind="client", case_id=case), case, "choose_supporter"))
    return plan


def minted(secret: bytes, plan: Sequence[tuple[Person, str | None, str]]) -> list[Link]:
    """A token for each, minted as the notifications service mints one when it sends."""
    now = SYSTEM()
    ends = now + timedelta(days=LINK_DAYS)
    made = []
    for person, case_id, purpose in plan:
        token, token_hash = links.mint(secret, person.key, case_id, purpose, ends)
        record = PersonalLink.model_validate(
            {
                "org": ORG,
                "link_ref": links.ref_of(token_hash),
                "person": person,
                "person_key": person.key,
                "case_id": case_id,
                "purpose": purpose,
                "expires_at": ends,
                "created_at": now,
            }
        )
        made.append(Link(token, token_hash, record))
    return made


async def write_links(kv: KeyValue, made: Sequence[Link]) -> None:
    """Into the ``links`` bucket as the service writes them, ``WINDOW`` at a time."""
    store = RecordStore(kv, PersonalLink)
    for first in range(0, len(made), WINDOW):
        saved = await asyncio.gather(
            *(
                store.save(topology.LINKS_SCOPE, link.token_hash, store.stored(link.record), 0)
                for link in made[first : first + WINDOW]
            )
        )
        assert all(isinstance(revision, int) for revision in saved), saved


# Measuring --------------------------------------------------------------------------------


@dataclass
class Timings:
    """A path's requests: each one's ms, the wall seconds of its rounds, and the CPU seconds
    used by this process (the console and the services, and the bench's NATS requests), by
    the browser process (``Browser``) and by nats-server."""

    ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    cpu_s: float = 0.0
    browser_cpu_s: float = 0.0
    server_cpu_s: float = 0.0

    def figures(self) -> dict[str, float]:
        n = len(self.ms)
        return {
            "n": n,
            "p50_ms": round(statistics.median(self.ms), 2),
            "p95_ms": round(percentile(self.ms, 0.95), 2),
            "p99_ms": round(percentile(self.ms, 0.99), 2),
            "per_s": round(n / self.seconds, 1),
            "cpu_ms": round(self.cpu_s * 1000 / n, 2),
            "browser_cpu_ms": round(self.browser_cpu_s * 1000 / n, 2),
            "nats_server_cpu_ms": round(self.server_cpu_s * 1000 / n, 2),
        }


class Browser:
    """People's browsers: HTTP requests sent from a process of their own (``python -m
    bench.people_pages --browser URL``), never from the served process's event loop, where
    the client's own work would hold up the console and the services. Each ``run`` is a
    batch of requests (``concurrency`` in flight), answered with each one's ms."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, base: str) -> Browser:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.people_pages",
            "--browser",
            base,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=inherited(),
            cwd=CHECKOUT,
            limit=2**24,
        )
        return cls(process)

    async def run(
        self,
        method: str,
        urls: Sequence[str],
        status: int,
        concurrency: int,
        forms: Sequence[dict[str, str]] | None = None,
    ) -> tuple[list[float], float]:
        """Each request's ms, and the wall seconds of the batch."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        batch = {"method": method, "urls": urls, "status": status, "in_flight": concurrency}
        self.process.stdin.write(json.dumps({**batch, "forms": forms}).encode() + b"\n")
        await self.process.stdin.drain()
        answer = await self.process.stdout.readline()
        if not answer:
            raise RuntimeError(f"the browser process ended ({await self.process.wait()})")
        done: dict[str, Any] = json.loads(answer)
        return done["ms"], done["seconds"]

    async def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        await self.process.wait()


async def browse(base: str) -> None:
    """The browser process: batches of requests read from stdin, each answered on stdout
    with every request's ms (a request answered otherwise than expected ends it)."""
    loop = asyncio.get_running_loop()
    # A person's browser: no cookie, its forms sent from the page (its Origin).
    async with httpx.AsyncClient(base_url=base, headers={"Origin": base}, timeout=120) as http:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            ms, seconds = await requests(http, json.loads(line))
            print(json.dumps({"ms": ms, "seconds": seconds}), flush=True)


async def requests(http: httpx.AsyncClient, batch: dict[str, Any]) -> tuple[list[float], float]:
    """One batch, ``in_flight`` at a time: each request's ms, and the batch's seconds."""
    forms = batch["forms"] or [None] * len(batch["urls"])
    queue = iter(zip(batch["urls"], forms, strict=True))
    ms: list[float] = []

    async def worker() -> None:
        for url, form in queue:
            started = time.perf_counter()
            response = await http.request(batch["method"], url, data=form)
            ms.append((time.perf_counter() - started) * 1000)
            status = response.status_code
            assert status == batch["status"], (url, status, response.text[-600:])

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(batch["in_flight"])))
    return ms, time.perf_counter() - started


Batch = Callable[[Sequence[int], int, Timings], Awaitable[None]]


@dataclass
class Paths:
    """The paths measured, each a batch of requests on links (by index): HTTP from the
    browser process, NATS from this one, as the console sends."""

    made: list[Link]
    browser: Browser
    kv: KeyValue
    server_pid: int
    asking: Asking | None = None  # the console's own hop, once its credential is issued
    shown: dict[str, int] = field(default_factory=dict)

    def http(self, status: int, url: Callable[[Link], str]) -> Batch:
        async def batch(picks: Sequence[int], concurrency: int, into: Timings) -> None:
            urls = [url(self.made[i]) for i in picks]
            cpu, browser, server = self.cpu_now()
            ms, seconds = await self.browser.run("GET", urls, status, concurrency)
            self.add(into, ms, seconds, cpu, browser, server)

        return batch

    def nats(self, request: Callable[[Link], Awaitable[None]]) -> Batch:
        async def batch(picks: Sequence[int], concurrency: int, into: Timings) -> None:
            queue = iter(picks)
            ms: list[float] = []

            async def worker() -> None:
                for i in queue:
                    started = time.perf_counter()
                    await request(self.made[i])
                    ms.append((time.perf_counter() - started) * 1000)

            cpu, browser, server = self.cpu_now()
            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            self.add(into, ms, time.perf_counter() - started, cpu, browser, server)

        return batch

    def cpu_now(self) -> tuple[float, float, float]:
        return (
            time.process_time(),
            cpu_seconds(self.browser.process.pid),
            cpu_seconds(self.server_pid),
        )

    def add(
        self,
        into: Timings,
        ms: list[float],
        seconds: float,
        cpu: float,
        browser: float,
        server: float,
    ) -> None:
        now, browser_now, server_now = self.cpu_now()
        into.ms += ms
        into.seconds += seconds
        into.cpu_s += now - cpu
        into.browser_cpu_s += browser_now - browser
        into.server_cpu_s += server_now - server

    async def lookup(self, link: Link) -> None:
        entry = await self.kv.get(f"{topology.LINKS_SCOPE}.{link.token_hash}")
        assert entry.value, link.token_hash

    async def open_link(self, link: Link) -> None:
        assert self.asking is not None
        source = f"{PERSON_SOURCE}/{link.record.purpose}"
        opened = await self.asking.any(ORG, OpenLink(token=link.token), None, source)
        assert isinstance(opened, LinkOpened), opened
        for what, there in (  # what the pages had to show: they read what they read
            ("offers", bool(opened.offers)),
            ("consent", opened.consent is not None),
            ("offered", opened.offered is not None),
            ("sessions", bool(opened.sessions)),
        ):
            self.shown[what] = self.shown.get(what, 0) + there
        self.shown["opened"] = self.shown.get("opened", 0) + 1


async def alternating(
    batches: dict[str, tuple[Batch, Sequence[int]]], concurrency: int
) -> dict[str, Timings]:
    """Every path warmed up, then each for all of its picks in ``ROUNDS`` rounds, the paths
    in turn within each round (so that a drift in the machine falls on all alike)."""
    for batch, picks in batches.values():
        await batch(picks[: 2 * concurrency], concurrency, Timings())
    gc.collect()
    timings = {name: Timings() for name in batches}
    for round_ in range(ROUNDS):
        for name, (batch, picks) in batches.items():
            size = -(-len(picks) // ROUNDS)
            chunk = picks[round_ * size : (round_ + 1) * size]
            if chunk:
                await batch(chunk, concurrency, timings[name])
    return timings


async def writes(
    paths: Paths, http: httpx.AsyncClient, picks: Sequence[int], concurrency: int, seed: int
) -> tuple[Timings, int]:
    """``POST /p/<token>/act/preferences`` for each of ``picks``, from the browser process,
    each answered 303; each page fetched first (here, not timed) for its form's nonce."""
    nonces: dict[int, str] = {}
    for i in sorted(set(picks)):
        page = await http.get(f"/p/{paths.made[i].token}")
        found = NONCE.search(page.text)
        assert found, page.text[:300]
        nonces[i] = found.group(1)
    rng = random.Random(seed + 2)
    chosen: dict[int, dict[str, str]] = {}  # one form a page: sent again, it is a replay
    for i in sorted(nonces):
        quiet = rng.random() < 0.5
        chosen[i] = {
            "nonce": nonces[i],
            "channel": "email",
            "quiet_from": "21:00" if quiet else "",
            "quiet_to": "07:30" if quiet else "",
        }
        if rng.random() < 0.3:
            chosen[i]["essential_only"] = "yes"
    forms = [chosen[i] for i in picks]
    urls = [f"/p/{paths.made[i].token}/act/preferences" for i in picks]
    gc.collect()
    timings = Timings()
    cpu, browser, server = paths.cpu_now()
    ms, seconds = await paths.browser.run("POST", urls, 303, concurrency, forms)
    paths.add(timings, ms, seconds, cpu, browser, server)
    return timings, len(ms)


# The run ----------------------------------------------------------------------------------


def say(text: str) -> None:
    """Progress, on the terminal (the services' logs go to their file)."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.__stderr__, flush=True)


async def measure(
    server: EmbeddedNats, auth: AuthDir, state: Path, settings: Settings, options: Any
) -> dict[str, Any]:
    url = server.url
    [ports] = (state / "nats" / "ports").glob("nats-server_*.ports")
    server_pid = int(ports.stem.split("_")[1])
    admin = await bus.connect(url, "bench-admin", auth.credentials(ADMIN))
    system = await bus.connect(url, "bench-system", auth.credentials(SYSTEM_USER))
    js = admin.jetstream()
    await topology.provision(js, settings)
    await register(js, ORG, settings=settings)
    running = await services.start(
        url, list(services.SERVICES), settings, credentials=auth.credentials
    )
    try:
        client = AlongsideClient(admin, source="bench/people-pages")
        started = time.perf_counter()
        seeded = await seed_people(client, admin, options.cases, options.supporters, options.seed)
        seed_s = time.perf_counter() - started
        say(f"seeded in {seed_s:.1f} s: {len(seeded.proposed)} clients with proposals")
        secret = links.secret_of(load_master_key(settings.master_key_path))
        made = minted(secret, planned(seeded, options.links, options.seed))
        credentials = Credentials(
            await js.key_value(topology.CREDENTIALS_BUCKET), js, auth, system, SYSTEM
        )
        async with console_serving(url, auth, state, settings, admin, credentials, ORG) as http:
            browser = await Browser.start(str(http.base_url).rstrip("/"))
            try:
                kv = await js.key_value(topology.LINKS_BUCKET)
                paths = Paths(made, browser, kv, server_pid)
                figures = await measured(paths, http, url, state, options)
            finally:
                await browser.stop()
    finally:
        await running.stop()
        await system.close()
        await admin.close()
    return {
        "seed": options.seed,
        "links": len(made),
        "cases": options.cases,
        "supporters": options.supporters,
        "concurrency": options.concurrency,
        "requests_per_path": options.requests,
        "machine": machine(),
        # Other work on the machine shows in every path alike: the load when the run ended.
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "seed_s": round(seed_s, 1),
        "seeded": {
            "cases_with_proposals": len(seeded.proposed),
            "cases_chosen": len(seeded.chosen),
            "cases_with_first_meeting": len(seeded.meetings),
        },
        "purposes": purposes(made),
        **figures,
    }


async def measured(
    paths: Paths, http: httpx.AsyncClient, url: str, state: Path, options: Any
) -> dict[str, Any]:
    """With the first ``SMALL`` links written, then with all: every path, then the writes."""
    made, concurrency = paths.made, options.concurrency
    rng = random.Random(options.seed + 3)
    small = min(SMALL, len(made))
    page = paths.http(200, lambda link: f"/p/{link.token}")
    lookup = paths.nats(paths.lookup)
    started = time.perf_counter()
    await write_links(paths.kv, made[:small])
    write_s = time.perf_counter() - started
    few_picks = [rng.randrange(small) for _ in range(options.requests)]
    few = await alternating(
        {"lookup": (lookup, few_picks), "pages": (page, few_picks)}, concurrency
    )
    say(f"{small} links: pages p95 {few['pages'].figures()['p95_ms']} ms")
    started = time.perf_counter()
    await write_links(paths.kv, made[small:])
    write_s += time.perf_counter() - started
    say(f"{len(made)} links written in {write_s:.1f} s")
    # OpenLink as the console sends it: on a connection of its own, with the credential the
    # console was issued for the organisation at its first page (the bench's deployment's).
    as_console = await bus.connect(url, "bench-as-console", state / "console" / f"{ORG}.creds")
    try:
        paths.asking = Asking(as_console, "bench/people-pages", SYSTEM, subjects.CONSOLE)
        picks = [rng.randrange(len(made)) for _ in range(options.requests)]
        many = await alternating(
            {
                "signin": (paths.http(200, lambda _: "/sign-in"), picks),
                "healthz": (paths.http(204, lambda _: "/healthz"), picks),
                "lookup": (lookup, picks),
                "open_link": (paths.nats(paths.open_link), picks),
                "pages": (page, picks),
                # The same requests as with 100 links written: only the bucket has grown.
                "pages_same_100": (page, few_picks),
            },
            concurrency,
        )
        say(f"{len(made)} links: pages p95 {many['pages'].figures()['p95_ms']} ms")
        serial = Timings()  # one at a time: the latency with nothing queued before it
        await page(picks[: max(1, len(picks) // 4)], 1, serial)
        targets = [rng.randrange(len(made)) for _ in range(options.writes)]
        wrote, posted = await writes(paths, http, targets, concurrency, options.seed)
    finally:
        await as_console.close()
    table = {
        "lookup_100_links": few["lookup"].figures(),
        "pages_100_links": few["pages"].figures(),
        **{name: timings.figures() for name, timings in many.items()},
        "pages_one_at_a_time": serial.figures(),
        "writes": wrote.figures(),
    }
    pages_p95, open_p95 = table["pages"]["p95_ms"], table["open_link"]["p95_ms"]
    return {
        "links_written_s": round(write_s, 1),
        "paths": table,
        "shown": paths.shown,
        "writes_answered_303": posted,
        "pages_p95_ms": pages_p95,
        "target_p95_ms": TARGET_P95_MS,
        "target_met": pages_p95 <= TARGET_P95_MS,
        "lookup_share_of_pages_p95": round(table["lookup"]["p95_ms"] / pages_p95, 2),
        "open_link_share_of_pages_p95": round(open_p95 / pages_p95, 2),
        "pages_p95_over_signin_p95": round(pages_p95 / table["signin"]["p95_ms"], 1),
        "pages_p95_all_over_100_links": round(
            table["pages_same_100"]["p95_ms"] / table["pages_100_links"]["p95_ms"], 2
        ),
        "lookup_p95_all_over_100_links": round(
            table["lookup"]["p95_ms"] / table["lookup_100_links"]["p95_ms"], 2
        ),
    }


def purposes(made: Sequence[Link]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for link in made:
        name = f"{link.record.person.kind} {link.record.purpose}"
        counted[name] = counted.get(name, 0) + 1
    return dict(sorted(counted.items()))


async def run(options: Any) -> dict[str, Any]:
    """A deployment of its own; the services' and the console's logs at INFO as shipped,
    into a file (the last of them shown if the run fails)."""
    configure("INFO", json=True)
    with tempfile.TemporaryDirectory() as folder, (Path(folder) / "logs").open("w+") as logs:
        state = Path(folder)
        auth = AuthDir.init(state / "auth", SERVICE_NEEDS, int(SYSTEM().timestamp()))
        settings = deployment(state, http_person_requests_per_minute=PERSON_REQUESTS_PER_MINUTE)
        try:
            with (
                contextlib.redirect_stderr(logs),
                EmbeddedNats(state / "nats", auth=auth) as server,
            ):
                return await measure(server, auth, state, settings, options)
        except BaseException:
            logs.seek(0)
            print("".join(logs.readlines()[-30:]), file=sys.stderr, end="")
            raise


ROWS = {
    "lookup_100_links": "link lookup alone (one KV read)",
    "pages_100_links": "GET /p/<token>",
    "signin": "sign-in page (HTTP and a template: the baseline)",
    "healthz": "/healthz (HTTP and one KV read)",
    "lookup": "link lookup alone (one KV read)",
    "open_link": "OpenLink over NATS, no HTTP",
    "pages": "GET /p/<token>",
    "pages_same_100": "GET /p/<token>, the requests of the 100-link run",
    "pages_one_at_a_time": "GET /p/<token>, one at a time",
    "writes": "POST /p/<token>/act/preferences",
}


def table(figures: dict[str, Any]) -> str:
    lines = [
        "| path | links | requests | p50 ms | p95 ms | p99 ms | requests/s "
        "| CPU ms a request: served process, browser, nats-server |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, label in ROWS.items():
        row = figures["paths"][name]
        count = min(SMALL, figures["links"]) if name.endswith("_100_links") else figures["links"]
        lines.append(
            f"| {label} | {count:,} | {row['n']:,} | {row['p50_ms']} | {row['p95_ms']} "
            f"| {row['p99_ms']} | {row['per_s']} "
            f"| {row['cpu_ms']}, {row['browser_cpu_ms']}, {row['nats_server_cpu_ms']} |"
        )
    lines.append(
        f"\nconcurrency {figures['concurrency']}; pages p95 {figures['pages_p95_ms']} ms "
        f"(target {TARGET_P95_MS:.0f}: met {figures['target_met']}); the lookup alone "
        f"{figures['lookup_share_of_pages_p95']:.0%} of it, OpenLink alone "
        f"{figures['open_link_share_of_pages_p95']:.0%}; the same requests' p95 with "
        f"{figures['links']:,} links over with {min(SMALL, figures['links'])}: "
        f"{figures['pages_p95_all_over_100_links']}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=10_000, help="open links written")
    parser.add_argument("--requests", type=int, default=2000, help="requests per path")
    parser.add_argument("--writes", type=int, default=200, help="preference forms posted")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--cases", type=int, default=300, help="client intakes seeded")
    parser.add_argument("--supporters", type=int, default=200, help="supporters seeded")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--quick", action="store_true", help="CI: small and short")
    parser.add_argument("--browser", metavar="URL", help=argparse.SUPPRESS)  # (``Browser``)
    options = parser.parse_args()
    if options.browser:
        asyncio.run(browse(options.browser))
        return
    if options.quick:
        options.links, options.requests, options.writes = 300, 40, 16
        options.cases, options.supporters = 30, 20
    figures = asyncio.run(run(options))
    print(table(figures), file=sys.stderr)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
