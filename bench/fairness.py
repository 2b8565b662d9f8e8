"""Fairness benchmark (issue 25): nobody is told to wait while a place that fits them is free,
and nobody waiting is passed over by a later client with the same needs.

Black-box, over real processes, as ``bench/pipeline.py`` runs them: a real nats-server from
the wheel (``sync_interval: always``, operator-mode auth), intake, rules, matching and
scheduling each in a process of its own (``alongside up SERVICE``, its own credential, the
shipped settings: the services' sweeps run hourly, so during a run a waitlisted client is
offered again only because an event said a place freed up). The bench connects as the
operator (``admin``). Each scenario runs on a fresh server and fresh services:

  scarce          100 supporters x 5 places (500), 300 intakes, 20 in flight;
  scarce_restart  the same, and the nats-server is killed (SIGKILL; ``--restart-signal
                  term`` for SIGTERM) once a third of the intakes are accepted, and started
                  again ``--down-s`` (1.5 s) later on the same port and store directory;
  ample_restart   100 supporters x 30 places (3,000: a place for everyone), 300 intakes,
                  the same restart.

``--quick``: 30 supporters and 90 intakes (same caps). Seed fixed: every run of a scenario
has the same population; runs differ only by timing.

The population: every supporter fits every client. Supporters are ``alongside.sample``'s
with every method, no affiliations (so no conflict of interest with any client's other
party), cleared for youth work, speaking ``en``, and vetting that passes (a recovery of
1,000 days: every supporter is decided eligible before the burst). Clients are
``sample.intake``'s speaking ``en``, adults, with no ``must`` preference and no safety
concern (nothing rules a method out). So every client has the same needs, and "a place that
fits" is any free slot of any supporter decided eligible during setup. Scores still differ
(lived experience, region): they choose among fitting supporters, not whether one fits.

Clients answer as a client would: half of them (``--answer-share`` 0.5, chosen by the seed),
on seeing their ``MatchProposed`` (the bench follows the events), accept its first proposal
``--answer-delay-s`` (0.5 s) later (``AcceptProposal``, the same envelope again after a
timeout). That keeps one slot for good and frees the other two holds: places free up all
through the run, and waiting clients should get them at once. The other half keep their
proposals (each holds a slot: 3 a client) to the end. Why half: 150 answering clients keep
150 places and 150 silent ones hold 450, 600 wanted of 500, so places run out near the end
and some waiting is legitimate (no slot free), while places keep freeing up before that.
With every client answering (``--answer-share 1``), 300 clients never use up 500 places
(300 kept, the rest held only for the answer's half second); with none (``0``, as in the
issue, it seems: about 166 clients hold every place) no place frees up once taken.

``--restart-on outcomes`` counts ``--restart-at`` in clients with an outcome event instead
of intakes accepted (intake answers a burst far quicker than matching works through it);
``--supporters``, ``--cap`` and ``--intakes`` change a scenario's sizes.

What is followed, live, in the bench process: every message of the organisation's events
(``EVENTS``) and every update of the ``caseloads`` bucket (its stream ``KV_caseloads``, key
``<org>.<supporter_id>``, value a ``contracts.records.Caseload`` with its holds), each by an
ordered consumer made again from the next sequence when it stalls (after the restart).
Each message keeps the server's timestamp, and the two streams are merged by it (a caseload
update first on a tie): that is the order things were stored on the one server. A slot is
free when it is below the supporter's cap and held by no case (a hold counts until its end,
3 days: none ends during a run). ``free places`` at a moment = the sum, over the supporters
eligible at setup, of ``max(cap - holds, 0)`` as the caseloads stood then. A caseload update
the followers missed (the bucket keeps 5 revisions a key) is counted in
``caseload_updates_missed`` (should be 0).

Definitions (per run):

  false_waitlistings
      ``ClientWaitlisted`` events (any constraint) stored at a moment when free places > 0.
      ``_over_20``: free places > 20 at that moment (a margin for a place freed just as the
      decision was made). ``_whole_window``: free places > 0 throughout the ``--window-s``
      (1 s) before the event (the decision was made within it). ``max_free_at_waitlisting``:
      the most free places at any waitlisting. ``_as_seen_live``: free places > 0 as the
      bench's live followers last saw the caseloads when they read the event (what the issue
      measured; lags a little). ``false_waitlisted_clients``: distinct clients.
  taken_meanwhile, taken_meanwhile_false
      waitlistings with constraint ``taken-meanwhile`` (every candidate's slot was gone when
      matching tried to hold it), and of those the ones with free places > 0.
  order_inversions
      pairs of clients (A, B), A's ``IntakeReceived`` stored before B's (same needs: every
      pair here), such that B got a ``MatchProposed`` while A was waitlisted: A's latest
      outcome event (``MatchProposed`` or ``ClientWaitlisted``) before B's proposal is a
      ``ClientWaitlisted`` (so A's next ``MatchProposed``, if any, comes after). Each pair
      counted once. ``passed_over_clients``: distinct A's; ``overtaking_clients``: distinct
      B's.
  still_waiting_with_free_places_at_quiet
      at quiet (below), clients whose ``matches`` record (``CaseMatch.status``) is
      ``waitlisted`` while the ``caseloads`` bucket, read then, shows free places > 0 (0 when
      no place is free). ``free_places_at_quiet`` and ``supporters_with_free_at_quiet`` say
      how many and where; ``waitlisted_at_quiet`` counts waiting clients either way.
  quiet
      after the burst (every intake answered) and the restart: no new event for
      ``--quiet-s`` (10 s), no client answer pending, every service's durable consumer idle;
      then a final wait of ``--final-wait-s`` (20 s) before reading the buckets. ``to_quiet_s``:
      from the end of the burst to the last event stored before quiet. ``events_in_final_wait``
      counts events that came during the final wait (should be 0).
  accepted, lost
      intakes answered ``CommandAccepted`` (each retried with the same envelope after a
      timeout or a "retry later", up to 120 s); accepted intakes with no outcome event at all.
  wait_s_p50, wait_s_max
      for clients waitlisted and later proposed: from the first ``ClientWaitlisted`` of a
      spell to the next ``MatchProposed`` (server timestamps).

Progress and each run's figures go to stderr (with the warnings and errors the services
logged, by event name); the last line on stdout is one JSON object: every run's figures,
and per scenario each key figure as a list over its runs.

    python -m bench.fairness                        # the three scenarios, one run each
    python -m bench.fairness --quick                # smaller, about a minute a scenario
    python -m bench.fairness --runs 3 --scenarios scarce,ample_restart --keep /tmp/fair
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from alongside import sample
from alongside.client import AlongsideClient, Unavailable
from alongside.console_demo import free_port
from bench import register, settled
from bench.faults import consumers_idle, says_retry
from bench.intake import spawn, stop_all, wait_for_responder
from contracts import subjects
from contracts.envelope import Command, wrap
from contracts.intake import IntakeReceived, Method, Recovery, SubmitIntake
from contracts.matching import AcceptProposal, ClientWaitlisted, MatchProposed
from contracts.records import Caseload
from contracts.replies import CommandAccepted, CommandRejected
from contracts.rules import SupporterEligibilityDecided
from runtime import bus, topology
from runtime.access import ADMIN, SERVICE_NEEDS, AuthDir
from runtime.clock import SYSTEM
from runtime.embedded import EmbeddedNats, server_binary
from runtime.logging import configure
from runtime.settings import Settings
from runtime.store import keys

SEED = 20261130
ORG = "bench-fairness"
SOURCE = "bench/fairness"
SERVICES = ("intake", "rules", "matching", "scheduling")
PROPOSED, WAITLISTED = MatchProposed.type_name, ClientWaitlisted.type_name
RECEIVED, ELIGIBILITY = IntakeReceived.type_name, SupporterEligibilityDecided.type_name
TAKEN_MEANWHILE = "taken-meanwhile"
CASELOADS_STREAM = f"KV_{topology.CASELOADS_BUCKET}"
CASELOADS_PREFIX = f"$KV.{topology.CASELOADS_BUCKET}."
SETUP_IN_FLIGHT = 32
COMMAND_DEADLINE_S = 120.0
REQUEST_TIMEOUT_S = 5.0
RETRYABLE = (nats.errors.Error, TimeoutError, OSError, ValidationError, Unavailable)


def wall() -> float:
    """The wall clock (Unix seconds): what the server's timestamps are compared with."""
    return SYSTEM().timestamp()


def say(text: str) -> None:
    print(f"[fairness {SYSTEM():%H:%M:%S}] {text}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Scenario:
    name: str
    supporters: int
    cap: int
    intakes: int
    restart: bool


SCENARIOS = {
    "scarce": Scenario("scarce", 100, 5, 300, restart=False),
    "scarce_restart": Scenario("scarce_restart", 100, 5, 300, restart=True),
    "ample_restart": Scenario("ample_restart", 100, 30, 300, restart=True),
}
QUICK = {"supporters": 30, "intakes": 90}


@dataclass(frozen=True)
class Options:
    in_flight: int = 20
    answer_delay_s: float = 0.5
    answer_share: float = 0.5
    restart_at: float = 1 / 3
    restart_on: str = "accepted"  # or "outcomes": the share counts clients with an outcome
    down_s: float = 1.5
    restart_signal: str = "kill"
    quiet_s: float = 10.0
    final_wait_s: float = 20.0
    quiet_timeout_s: float = 300.0
    window_s: float = 1.0
    margin: int = 20
    log_level: str = "INFO"
    sweep_interval_s: str | None = None  # None: the shipped setting (hourly)
    keep: Path | None = None


# The server, restartable on the same port and store ---------------------------------------


class Server(EmbeddedNats):
    """``EmbeddedNats`` with auth on a fixed port, which can be killed and started again on
    that port and store directory."""

    def send(self, sig: signal.Signals) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(sig)
            process.wait(timeout=30)
        self._process = None


# The population -----------------------------------------------------------------------------


def supporter_commands(count: int, cap: int) -> list[list[Command]]:
    """Each supporter's commands, in order: registration (fitting every client) and vetting
    that passes."""
    rng, today = random.Random(SEED), SYSTEM().date()
    people: list[list[Command]] = []
    for n in range(count):
        supporter_id = f"s{n:03d}"
        command = sample.supporter(rng, supporter_id)
        profile = command.profile.model_copy(
            update={
                "caseload_cap": cap,
                "methods": list(Method),
                "affiliations": [],
                "youth_cleared": True,
                "languages": sorted({"en", *command.profile.languages}),
            }
        )
        vetting = []
        for item in sample.vetting(rng, supporter_id, today):
            if isinstance(item.evidence, Recovery):  # long enough for every supporter
                item = item.model_copy(
                    update={"evidence": Recovery(since=today - timedelta(days=1000))}
                )
            vetting.append(item)
        people.append([command.model_copy(update={"profile": profile}), *vetting])
    return people


def intakes(count: int) -> list[SubmitIntake]:
    """Clients every supporter fits: ``en``, adults, no ``must``, no safety concern."""
    rng = random.Random(SEED + 1)
    made = []
    for i in range(count):
        command = sample.intake(rng, f"c{i:04d}")
        client = command.client.model_copy(
            update={
                "languages": ["en"],
                "birth_year": min(command.client.birth_year, 1995),
                "gender_preference": None,
                "cultural_preference": None,
                "safety_concerns": [],
            }
        )
        made.append(command.model_copy(update={"client": client}))
    return made


def answerers(commands: Sequence[SubmitIntake], share: float) -> set[str]:
    """The clients who accept their first proposal: ``share`` of them, chosen by the seed."""
    rng = random.Random(SEED + 2)
    return {c.case_id for c in commands if rng.random() < share}


# Following the events and the caseloads ----------------------------------------------------


@dataclass(frozen=True)
class Event:
    seq: int
    at: float  # the server's timestamp (Unix seconds)
    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class CaseloadUpdate:
    seq: int
    at: float
    supporter_id: str
    taken: int  # slots held then (0: deleted)


class Follower:
    """Every message of ``subject`` in ``stream``, in order from the first: an ordered
    consumer, made again from the next sequence whenever it has said nothing for 3 s (the
    server may have restarted and taken it away)."""

    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        subject: str,
        take: Callable[[Msg], None],
        count_gaps: bool = False,
    ) -> None:
        self.js, self.stream, self.subject, self.take = js, stream, subject, take
        self.count_gaps = count_gaps
        self.next_seq = 1
        self.gaps = 0

    async def run(self) -> None:
        while True:
            sub = None
            try:
                config = ConsumerConfig(
                    deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.next_seq
                )
                sub = await self.js.subscribe(
                    self.subject, stream=self.stream, ordered_consumer=True, config=config
                )
                idle = 0
                while idle < 3:
                    try:
                        msg = await sub.next_msg(timeout=1.0)
                    except TimeoutError:
                        idle += 1
                        continue
                    idle = 0
                    seq = msg.metadata.sequence.stream
                    if seq < self.next_seq:
                        continue
                    if self.count_gaps and seq > self.next_seq:
                        self.gaps += seq - self.next_seq
                    self.next_seq = seq + 1
                    self.take(msg)
            except RETRYABLE:
                pass
            finally:
                if sub is not None:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
            await asyncio.sleep(0.2)


class Observer:
    """What the followers saw, as it came: the events and caseload updates (with the
    server's timestamps), eligibility, and the caseloads as last seen (the live view)."""

    def __init__(self, caps: dict[str, int]) -> None:
        self.caps = caps  # supporter -> cap, of the supporters registered
        self.events: list[Event] = []
        self.outcomes: set[str] = set()  # clients with an outcome event
        # (how many clients with an outcome, the event to set then): ``--restart-on outcomes``
        self.restart_when: tuple[int, asyncio.Event] | None = None
        self.caseloads: list[CaseloadUpdate] = []
        self.eligible: dict[str, bool] = {}
        self.last_event_wall = wall()
        self.live: dict[str, int] = {}  # supporter -> slots taken, as last seen
        self.live_free_at_waitlisting: list[int] = []
        self.fitting: set[str] = set()  # fixed once setup is done
        self.on_proposed: Callable[[Event], None] | None = None

    def live_free(self) -> int:
        return sum(max(self.caps[s] - self.live.get(s, 0), 0) for s in self.fitting)

    def take_event(self, msg: Msg) -> None:
        envelope = json.loads(msg.data)
        event = Event(
            msg.metadata.sequence.stream,
            msg.metadata.timestamp.timestamp(),
            envelope["type"],
            envelope["data"],
        )
        self.events.append(event)
        self.last_event_wall = wall()
        if event.type in (PROPOSED, WAITLISTED):
            self.outcomes.add(str(event.data["case_id"]))
            if self.restart_when and len(self.outcomes) >= self.restart_when[0]:
                self.restart_when[1].set()
        if event.type == ELIGIBILITY:
            self.eligible[str(event.data["supporter_id"])] = bool(event.data["eligible"])
        elif event.type == WAITLISTED:
            self.live_free_at_waitlisting.append(self.live_free())
        elif event.type == PROPOSED and self.on_proposed is not None:
            self.on_proposed(event)

    def take_caseload(self, msg: Msg) -> None:
        key = msg.subject.removeprefix(CASELOADS_PREFIX)
        if not key.startswith(f"{ORG}."):
            return
        supporter_id = key.removeprefix(f"{ORG}.")
        operation = (msg.headers or {}).get("KV-Operation")
        caseload = None if operation or not msg.data else Caseload.model_validate_json(msg.data)
        at = msg.metadata.timestamp
        taken = caseload.taken(at) if caseload else 0
        self.caseloads.append(
            CaseloadUpdate(msg.metadata.sequence.stream, at.timestamp(), supporter_id, taken)
        )
        self.live[supporter_id] = taken


# Sending commands as a client would --------------------------------------------------------


@dataclass
class Sent:
    reply: CommandAccepted | CommandRejected | None = None
    attempts: int = 0


async def submit(client: AlongsideClient, command: Command) -> Sent:
    """One command until it is answered for good, every attempt the same envelope (same id):
    again after a timeout, no responders, or a reply that asks for a retry."""
    envelope = wrap(command, org=ORG, source=SOURCE, id=uuid.uuid4().hex, time=SYSTEM())
    body, headers = envelope.model_dump_json().encode(), bus.headers_of(envelope)
    sent, delay, give_up = Sent(), 0.1, time.monotonic() + COMMAND_DEADLINE_S
    while True:
        sent.attempts += 1
        try:
            sent.reply = await client.send_raw(
                ORG,
                command.service,
                command.type_name,
                body,
                REQUEST_TIMEOUT_S,
                headers,
                retry_for=0,
            )
            if not says_retry(sent.reply):
                return sent
        except RETRYABLE:
            pass
        if time.monotonic() > give_up:
            return sent
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


class Answers:
    """Each client accepts their first proposal ``delay_s`` after seeing it."""

    def __init__(self, client: AlongsideClient, delay_s: float, answering: set[str]) -> None:
        self.client, self.delay_s, self.answering = client, delay_s, answering
        self.accepted: set[str] = set()
        self.refused: Counter[str] = Counter()
        self.unanswered = 0
        self.sent = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self._asked: set[tuple[str, int]] = set()

    def on_proposed(self, event: Event) -> None:
        case_id, round_ = str(event.data["case_id"]), int(event.data["round"])
        if (
            case_id not in self.answering
            or case_id in self.accepted
            or (case_id, round_) in self._asked
        ):
            return
        self._asked.add((case_id, round_))
        supporter_id = str(event.data["proposals"][0]["supporter_id"])
        task = asyncio.create_task(self._accept(case_id, supporter_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _accept(self, case_id: str, supporter_id: str) -> None:
        await asyncio.sleep(self.delay_s)
        self.sent += 1
        sent = await submit(self.client, AcceptProposal(case_id=case_id, supporter_id=supporter_id))
        if isinstance(sent.reply, CommandAccepted):
            self.accepted.add(case_id)
        elif isinstance(sent.reply, CommandRejected):
            self.refused["; ".join(f"{e.field}: {e.reason}" for e in sent.reply.errors)] += 1
        else:
            self.unanswered += 1


# One run ------------------------------------------------------------------------------------


@dataclass
class World:
    root: Path
    server: Server
    auth: AuthDir
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def stop(self) -> None:
        stop_all(self.processes.values())
        self.server.stop()


async def start_world(root: Path, options: Options) -> tuple[World, Client]:
    auth = AuthDir.init(root / "auth", SERVICE_NEEDS, int(SYSTEM().timestamp()))
    server = Server(root / "nats", port=free_port(), auth=auth)
    await asyncio.to_thread(server.start)
    world = World(root, server, auth)
    admin = await bus.connect(server.url, "bench-fairness", auth.credentials(ADMIN))
    await topology.provision(admin.jetstream(), Settings())
    await register(admin.jetstream(), ORG)
    env = {
        "ALONGSIDE_NATS_URL": server.url,
        "ALONGSIDE_LOG_LEVEL": options.log_level,
        "ALONGSIDE_MASTER_KEY_FILE": str(auth.path / "master.key"),
    }
    if options.sweep_interval_s is not None:
        env["ALONGSIDE_SWEEP_INTERVAL_S"] = options.sweep_interval_s
    for name in SERVICES:
        world.processes[name] = spawn(
            [sys.executable, "-m", "alongside.cli", "up", name],
            env={**env, "ALONGSIDE_NATS_CREDENTIALS": str(auth.credentials(name))},
            log=root / f"{name}.log",
        )
    probe = subjects.command(ORG, "intake", "SubmitIntake", subjects.OPERATOR)
    await wait_for_responder(admin, probe, b"{}", world.processes["intake"])
    return world, admin


async def register_supporters(client: AlongsideClient, people: list[list[Command]]) -> None:
    queue = iter(people)

    async def worker() -> None:
        for commands in queue:
            for command in commands:
                sent = await submit(client, command)
                assert isinstance(sent.reply, CommandAccepted), sent.reply

    await asyncio.gather(*(worker() for _ in range(SETUP_IN_FLIGHT)))


async def until(ready: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout_s} s")
        await asyncio.sleep(0.2)


async def restart(
    world: World, options: Options, when: asyncio.Event, notes: dict[str, Any], observer: Observer
) -> None:
    await when.wait()
    notes["outcomes_at_restart"] = len(observer.outcomes)
    sig = signal.SIGKILL if options.restart_signal == "kill" else signal.SIGTERM
    notes["restart_at_wall"] = wall()
    await asyncio.to_thread(world.server.send, sig)
    say(f"  {sig.name} nats-server; started again in {options.down_s} s")
    await asyncio.sleep(options.down_s)
    await asyncio.to_thread(world.server.start, 30.0)
    notes["restarted_after_s"] = round(wall() - notes["restart_at_wall"], 2)


async def burst(
    client: AlongsideClient,
    commands: Sequence[SubmitIntake],
    options: Options,
    trigger: asyncio.Event | None,
) -> dict[str, Sent]:
    """Every intake, ``in_flight`` at a time; the trigger fires once ``restart_at`` of them
    are accepted."""
    results: dict[str, Sent] = {}
    queue = iter(commands)
    fire_at = max(1, int(len(commands) * options.restart_at))

    async def worker() -> None:
        for command in queue:
            results[command.case_id] = await submit(client, command)
            accepted = sum(isinstance(s.reply, CommandAccepted) for s in results.values())
            if trigger is not None and accepted >= fire_at:
                trigger.set()

    await asyncio.gather(*(worker() for _ in range(options.in_flight)))
    return results


async def until_quiet(
    js: JetStreamContext, observer: Observer, answers: Answers, options: Options
) -> bool:
    """No new event for ``quiet_s``, no answer pending, every durable consumer idle."""
    deadline = time.monotonic() + options.quiet_timeout_s
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        if (
            wall() - observer.last_event_wall >= options.quiet_s
            and not answers.tasks
            and await consumers_idle(js)
        ):
            return True
    return False


WATCHED = ("KV_supporters", "KV_decisions", CASELOADS_STREAM, "KV_matches")


async def consumers(js: JetStreamContext) -> dict[str, int]:
    """How many consumers each bucket matching watches has: the services' watches (and the
    bench's own follower on the caseloads), to see whether a watch outlived the restart."""
    found = {}
    for stream in WATCHED:
        with contextlib.suppress(*RETRYABLE):
            found[stream] = (await js.stream_info(stream)).state.consumer_count
    return found


async def at_quiet(js: JetStreamContext, observer: Observer) -> dict[str, Any]:
    """The ``matches`` statuses and the free places, read from the buckets now."""
    statuses: Counter[str] = Counter()
    matches = await js.key_value(topology.MATCHES_BUCKET)
    for name in await keys(matches, f"{ORG}.*"):
        with contextlib.suppress(nats.js.errors.KeyNotFoundError):
            entry = await matches.get(name)
            if entry.value:
                statuses[json.loads(entry.value)["record"]["status"]] += 1
    caseloads = await js.key_value(topology.CASELOADS_BUCKET)
    now, taken = SYSTEM(), {}
    for name in await keys(caseloads, f"{ORG}.*"):
        with contextlib.suppress(nats.js.errors.KeyNotFoundError):
            entry = await caseloads.get(name)
            if entry.value:
                taken[name.removeprefix(f"{ORG}.")] = Caseload.model_validate_json(
                    entry.value
                ).taken(now)
    free = {s: max(observer.caps[s] - taken.get(s, 0), 0) for s in observer.fitting}
    places = sum(free.values())
    return {
        "waitlisted_at_quiet": statuses["waitlisted"],
        "still_waiting_with_free_places_at_quiet": statuses["waitlisted"] if places else 0,
        "free_places_at_quiet": places,
        "supporters_with_free_at_quiet": sum(1 for n in free.values() if n),
        "statuses_at_quiet": dict(sorted(statuses.items())),
    }


async def run_once(scenario: Scenario, options: Options, run: int) -> dict[str, Any]:
    say(
        f"{scenario.name} run {run}: {scenario.supporters} supporters x {scenario.cap}, "
        f"{scenario.intakes} intakes, {options.in_flight} in flight"
        + (f", nats-server restart at {options.restart_at:.0%}" if scenario.restart else "")
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"fairness-{scenario.name}-") as folder:
        root = Path(folder)
        world, admin = await start_world(root, options)
        tasks: list[asyncio.Task[None]] = []
        try:
            figures = await exercise(scenario, options, world, admin, tasks)
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                await admin.close()
            world.stop()
            if options.keep is not None:
                shutil.copytree(
                    root,
                    options.keep / f"{scenario.name}-{run}",
                    dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("jetstream", "ports", "auth", "*.key"),
                )
        figures["log_warnings"] = log_warnings(root)
    figures["run_s"] = round(time.perf_counter() - started, 1)
    return {"scenario": scenario.name, "run": run, **figures}


async def exercise(
    scenario: Scenario,
    options: Options,
    world: World,
    admin: Client,
    tasks: list[asyncio.Task[None]],
) -> dict[str, Any]:
    js = admin.jetstream()
    client = AlongsideClient(admin, source=SOURCE)
    people = supporter_commands(scenario.supporters, scenario.cap)
    observer = Observer({f"s{n:03d}": scenario.cap for n in range(scenario.supporters)})
    events = Follower(js, topology.EVENTS_STREAM, subjects.events(ORG), observer.take_event)
    loads = Follower(
        js, CASELOADS_STREAM, f"{CASELOADS_PREFIX}{ORG}.>", observer.take_caseload, count_gaps=True
    )
    tasks += [asyncio.create_task(events.run()), asyncio.create_task(loads.run())]
    setup = time.perf_counter()
    await register_supporters(client, people)
    await until(
        lambda: sum(observer.eligible.values()) >= scenario.supporters,
        300,
        "every supporter decided eligible",
    )
    await settled(admin)
    observer.fitting = {s for s, eligible in observer.eligible.items() if eligible}
    watches_before = await consumers(js)
    setup_s = time.perf_counter() - setup
    say(f"  {len(observer.fitting)} supporters eligible in {setup_s:.1f} s; burst")
    commands = intakes(scenario.intakes)
    answering = answerers(commands, options.answer_share)
    answers = Answers(client, options.answer_delay_s, answering)
    observer.on_proposed = answers.on_proposed
    notes: dict[str, Any] = {}
    trigger = asyncio.Event() if scenario.restart else None
    restarting = None
    if trigger is not None:
        restarting = asyncio.create_task(restart(world, options, trigger, notes, observer))
        tasks.append(restarting)
    if trigger is not None and options.restart_on == "outcomes":
        observer.restart_when = (max(1, int(len(commands) * options.restart_at)), trigger)
    burst_start, burst_start_wall = time.perf_counter(), wall()
    results = await burst(
        client, commands, options, trigger if options.restart_on == "accepted" else None
    )
    burst_end, burst_end_wall = time.perf_counter(), wall()
    say(f"  burst answered in {burst_end - burst_start:.1f} s")
    if restarting is not None:
        await restarting
    quiet = await until_quiet(js, observer, answers, options)
    quiet_wall = wall()
    last_before_quiet = max((e.at for e in observer.events), default=burst_end_wall)
    events_before_wait = len(observer.events)
    await asyncio.sleep(options.final_wait_s)
    state = await at_quiet(js, observer)
    state["watch_consumers_before_burst"] = watches_before
    state["watch_consumers_at_quiet"] = await consumers(js)
    figures: dict[str, Any] = analyse(observer, results, commands, options)
    figures.update(state)
    figures.update(
        {
            "quiet_reached": quiet,
            "to_quiet_s": round(last_before_quiet - burst_end_wall, 2),
            "quiet_after_burst_s": round(quiet_wall - burst_end_wall, 1),
            "events_in_final_wait": len(observer.events) - events_before_wait,
            "answering_clients": len(answering),
            "answers_sent": answers.sent,
            "answers_accepted": len(answers.accepted),
            "answers_refused": sum(answers.refused.values()),
            "answers_unanswered": answers.unanswered,
            "caseload_updates": len(observer.caseloads),
            "caseload_updates_missed": loads.gaps,
            "eligible_supporters": len(observer.fitting),
            "places": scenario.cap * len(observer.fitting),
            "setup_s": round(setup_s, 1),
            "burst_s": round(burst_end - burst_start, 1),
        }
    )
    if "restart_at_wall" in notes:
        figures["restart_after_burst_start_s"] = round(
            notes["restart_at_wall"] - burst_start_wall, 2
        )
        figures["restarted_after_s"] = notes["restarted_after_s"]
        figures["outcomes_at_restart"] = notes["outcomes_at_restart"]
    if options.keep is not None:  # the timeline, for reading a case's story afterwards
        with (world.root / "timeline.jsonl").open("w") as out:
            for e in observer.events:
                out.write(json.dumps({"seq": e.seq, "at": e.at, "type": e.type, **e.data}) + "\n")
            for u in observer.caseloads:
                out.write(
                    json.dumps(
                        {
                            "seq": u.seq,
                            "at": u.at,
                            "type": "caseload",
                            "supporter_id": u.supporter_id,
                            "taken": u.taken,
                        }
                    )
                    + "\n"
                )
    for reason, n in answers.refused.most_common(3):
        say(f"    AcceptProposal refused {n} x: {reason[:160]}")
    return figures


# Counting -----------------------------------------------------------------------------------


class FreePlaces:
    """The free places of the fitting supporters, as caseload updates come, with their
    history (for the minimum over a window)."""

    def __init__(self, caps: dict[str, int], fitting: set[str]) -> None:
        self.caps, self.fitting = caps, fitting
        self.free = {s: caps[s] for s in fitting}
        self.now = sum(self.free.values())
        self.times: list[float] = [float("-inf")]
        self.values: list[int] = [self.now]

    def update(self, update: CaseloadUpdate) -> None:
        if update.supporter_id not in self.fitting:
            return
        free = max(self.caps[update.supporter_id] - update.taken, 0)
        self.now += free - self.free[update.supporter_id]
        self.free[update.supporter_id] = free
        self.times.append(update.at)
        self.values.append(self.now)

    def least_since(self, since: float) -> int:
        """The fewest free places from ``since`` to now."""
        first = max(bisect.bisect_right(self.times, since) - 1, 0)
        return min(self.values[first:])


def analyse(
    observer: Observer, results: dict[str, Sent], commands: Sequence[SubmitIntake], options: Options
) -> dict[str, Any]:
    ours = {c.case_id for c in commands}
    timeline: list[tuple[float, int, int, Event | CaseloadUpdate]] = [
        *((u.at, 0, u.seq, u) for u in observer.caseloads),
        *((e.at, 1, e.seq, e) for e in observer.events if e.data.get("case_id") in ours),
    ]
    timeline.sort(key=lambda item: item[:3])
    places = FreePlaces(observer.caps, observer.fitting)
    rank: dict[str, int] = {}  # case -> order of its IntakeReceived
    waiting: dict[str, float] = {}  # case -> when its current waitlist spell began
    outcomes: set[str] = set()
    false_at: list[int] = []  # free places at each waitlisting
    whole_window, taken_meanwhile, taken_false = 0, 0, 0
    false_clients: set[str] = set()
    pairs: set[tuple[str, str]] = set()
    waits: list[float] = []
    constraints: Counter[str] = Counter()
    proposals = 0
    for at, _, _, item in timeline:
        if isinstance(item, CaseloadUpdate):
            places.update(item)
            continue
        case_id = str(item.data["case_id"])
        if item.type == RECEIVED:
            rank.setdefault(case_id, len(rank))
        elif item.type == WAITLISTED:
            outcomes.add(case_id)
            constraint = str(item.data["constraint"])
            constraints[constraint] += 1
            false_at.append(places.now)
            if places.now > 0:
                false_clients.add(case_id)
            whole_window += places.least_since(at - options.window_s) > 0
            if constraint == TAKEN_MEANWHILE:
                taken_meanwhile += 1
                taken_false += places.now > 0
            waiting.setdefault(case_id, at)
        elif item.type == PROPOSED:
            outcomes.add(case_id)
            proposals += 1
            mine = rank.get(case_id, len(rank))
            pairs.update((a, case_id) for a in waiting if rank.get(a, -1) < mine)
            if case_id in waiting:
                waits.append(at - waiting.pop(case_id))
    accepted = {c for c, s in results.items() if isinstance(s.reply, CommandAccepted)}
    live = observer.live_free_at_waitlisting
    return {
        "intakes": len(commands),
        "accepted": len(accepted),
        "lost": len(accepted - outcomes),
        "intakes_refused": sum(isinstance(s.reply, CommandRejected) for s in results.values()),
        "intakes_unanswered": sum(s.reply is None for s in results.values()),
        "proposals": proposals,
        "waitlistings": len(false_at),
        "waitlistings_by_constraint": dict(constraints.most_common()),
        "false_waitlistings": sum(n > 0 for n in false_at),
        f"false_waitlistings_over_{options.margin}": sum(n > options.margin for n in false_at),
        "false_waitlistings_whole_window": whole_window,
        "false_waitlistings_as_seen_live": sum(n > 0 for n in live),
        "false_waitlisted_clients": len(false_clients),
        "max_free_at_waitlisting": max(false_at, default=0),
        "taken_meanwhile": taken_meanwhile,
        "taken_meanwhile_false": taken_false,
        "order_inversions": len(pairs),
        "passed_over_clients": len({a for a, _ in pairs}),
        "overtaking_clients": len({b for _, b in pairs}),
        "waitlisted_then_proposed": len(waits),
        "wait_s_p50": round(statistics.median(waits), 2) if waits else None,
        "wait_s_max": round(max(waits), 2) if waits else None,
    }


def log_warnings(root: Path) -> dict[str, int]:
    """Warnings and errors each service logged, by event name (``service: level event``)."""
    found: Counter[str] = Counter()
    for name in SERVICES:
        path = root / f"{name}.log"
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            with contextlib.suppress(ValueError):
                said = json.loads(line)
                level = said.get("level", "")
                if said.get("failure") == "malformed envelope" and name == "intake":
                    continue  # the bench's own probe (b"{}") that waits for intake to answer
                if level in ("warning", "error", "critical"):
                    found[f"{name}: {level} {said.get('event', '?')}"] += 1
    return dict(found.most_common())


# Main ---------------------------------------------------------------------------------------

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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
