"""One run: a fresh server and fresh services, the supporters, the burst of intakes (and the
restart), and the state at quiet."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

from alongside.client import AlongsideClient
from alongside.console_demo import free_port
from bench import deployment, environment, register, settled, spawn, stop_all, wait_for_responder
from bench.fairness.clients import Answers, Sent, answerers, intakes, submit, supporter_commands
from bench.fairness.counting import analyse, log_warnings
from bench.fairness.follow import Follower, Observer
from bench.fairness.shared import (
    CASELOADS_PREFIX,
    CASELOADS_STREAM,
    ORG,
    RETRYABLE,
    SERVICES,
    SETUP_IN_FLIGHT,
    SOURCE,
    Options,
    Scenario,
    say,
    wall,
)
from bench.faults.traffic import consumers_idle
from contracts import subjects
from contracts.envelope import Command
from contracts.intake import SubmitIntake
from contracts.records import Caseload
from contracts.replies import CommandAccepted
from runtime import bus, topology
from runtime.access import ADMIN, SERVICE_NEEDS, AuthDir
from runtime.clock import SYSTEM
from runtime.embedded import EmbeddedNats
from runtime.store import keys


class Server(EmbeddedNats):
    """``EmbeddedNats`` with auth on a fixed port, which can be killed and started again on
    that port and store directory."""

    def send(self, sig: signal.Signals) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(sig)
            process.wait(timeout=30)
        self._process = None


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
    swept = (
        {} if options.sweep_interval_s is None else {"sweep_interval_s": options.sweep_interval_s}
    )
    settings = deployment(root, nats_url=server.url, log_level=options.log_level, **swept)
    admin = await bus.connect(server.url, "bench-fairness", auth.credentials(ADMIN))
    await topology.provision(admin.jetstream(), settings)
    await register(admin.jetstream(), ORG, settings=settings)
    for name in SERVICES:
        own = settings.model_copy(update={"nats_credentials": auth.credentials(name)})
        world.processes[name] = spawn(
            [sys.executable, "-m", "alongside.cli", "up", name],
            env=environment(own),
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
