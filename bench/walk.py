"""The walk of one intake: which of our files, and how many calls between them, one
``SubmitIntake`` crosses on its way to the client's proposals (``MatchProposed``).

A real embedded nats-server (with the shipped auth, in a temporary folder with a master key
made for the run: nothing from ``~/.alongside``) and every service in this process
(``alongside.services.start``, as the tests and the demo start them; logs at INFO, as
shipped, to a temporary file), five vetted supporters registered and settled first; then ONE
client intake that gets proposals, traced with ``sys.setprofile`` (and
``threading.setprofile``) from just before it is sent until the services have settled again.

What counts
  - A *call*: a Python function of ours called (not a coroutine or generator resumed, not
    a comprehension), i.e. a function defined in a file under ``contracts/``, ``runtime/``
    or ``services/`` (never ``alongside/``, ``bench/``, tests or libraries).
  - *In the intake's context*: while ``CAUSE`` (the ContextVar the runtime sets to the
    envelope being handled: ``runtime.dispatch.CAUSE``, ``--cause`` names another) holds an
    envelope whose correlation (``correlationid``, else its own ``id``: the command's) is the
    intake command's id. Background sweeps and every other message do not count.
  - The *receipt* of each message on the walk counts too (``--no-receipt`` leaves it out):
    the calls made, before ``CAUSE`` is set and after it is reset, under the same outermost
    frame of ours (e.g. ``runtime/commands``' subscriber checking the command and counting
    the reply, ``runtime/consumer``'s reading and checking the envelope) as a call made in
    the intake's context. The sender's side (the client library, ``runtime/asking``) and a
    message no handler takes (``CAUSE`` never set for it) do not count.
  - *Up to the proposals*: the handling of the proposals event itself, and of anything it
    causes (through ``causationid``), is left out: that is the next walk. Side branches
    before it (an event the intake causes that the proposals do not descend from) count;
    the figures of the *causal path* alone (the handling of the envelopes the proposals
    event descends from, ``path``) are printed beside them, and the *steps* show each
    envelope handled, by which services, with its calls.
  - A call's *caller* is the nearest frame of ours below it on the stack (library frames in
    between, pydantic or FastStream, are skipped); a call with none (a subscriber called by
    FastStream, a task started with ``asyncio``) is an *entry*. An
    *edge* is a distinct (caller file, callee file) pair of different files; *cross-file
    calls* count every such call.
  - The *story* files are those under ``services/`` and ``contracts/`` plus the unit of
    work (``--unit-of-work``, ``runtime/store.py`` by default); the rest of ``runtime/`` is
    plumbing (logging, metrics, tracing, clock, vault, bus ...). Story figures count the
    calls in story files and the edges with both ends in them; ``collapsed`` edges take the
    nearest story frame as the caller, skipping plumbing in between.

Fixed seed (supporters, intake, command id); the same code gives the same figures run after
run. The last line printed with ``--json`` is one JSON object. To measure a commit rather
than the working tree: ``git archive REV | tar -x -C DIR``, copy this file to ``DIR/bench/``
and run it from ``DIR`` (the current directory's packages come first on ``sys.path``; the
table's files are those of the packages imported, whatever their folder).

    python -m bench.walk [--json] [--edges] [--no-receipt] [--unit-of-work runtime/store.py]
                         [--cause runtime.dispatch:CAUSE] [--seed N] [--supporters 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dis
import importlib
import inspect
import json
import os
import pkgutil
import random
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date
from datetime import time as daytime
from pathlib import Path
from types import CodeType, FrameType
from typing import Any, cast
from zoneinfo import ZoneInfo

SEED = 20261123
ORG = "walk"
CASE_ID = "c-walk"
PACKAGES = ("contracts", "runtime", "services")
STORY_PACKAGES = ("contracts", "services")
UNIT_OF_WORK = "runtime/store.py"
DEFAULT_CAUSE = "runtime.dispatch:CAUSE"
OUTCOME = "MatchProposed"
NO_OUTCOME = "ClientWaitlisted"  # what the intake must not get
# Comprehensions and generator expressions run as functions of their own in 3.11: not calls.
COMPREHENSIONS = frozenset({"<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>"})
RESUMABLE = inspect.CO_COROUTINE | inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR
TIMEOUT_S = 60.0


def find_cause(spec: str | None) -> ContextVar[Any]:
    """The ContextVar ``module:NAME`` names; by default ``runtime.dispatch:CAUSE``, else the
    one ContextVar named ``CAUSE`` in a module of ``runtime/`` (should it move)."""
    module_name, _, name = (spec or DEFAULT_CAUSE).partition(":")
    try:
        found = getattr(importlib.import_module(module_name), name or "CAUSE")
        if isinstance(found, ContextVar):
            return found
    except (ImportError, AttributeError):
        pass
    if spec is not None:
        raise SystemExit(f"--cause {spec}: no ContextVar there")
    import runtime

    candidates = {}
    for info in pkgutil.iter_modules(runtime.__path__):
        module = importlib.import_module(f"runtime.{info.name}")
        var = getattr(module, "CAUSE", None)
        if isinstance(var, ContextVar):
            candidates[id(var)] = var
    if len(candidates) != 1:
        raise SystemExit(f"{len(candidates)} ContextVars named CAUSE in runtime/: use --cause")
    return next(iter(candidates.values()))


class Files:
    """Which files are ours (relative paths, ``services/matching/handlers.py``), which of
    them tell the story, by a code object's file name; cached."""

    def __init__(self, unit_of_work: Iterable[str]) -> None:
        self.roots: dict[str, str] = {}  # absolute package dir + os.sep -> package name
        for package in PACKAGES:
            module = importlib.import_module(package)
            assert module.__file__ is not None
            self.roots[os.path.dirname(os.path.realpath(module.__file__)) + os.sep] = package
        self.unit_of_work = frozenset(unit_of_work)
        self._cache: dict[str, str | None] = {}

    def ours(self, filename: str) -> str | None:
        try:
            return self._cache[filename]
        except KeyError:
            pass
        found = None
        if filename.endswith(".py"):
            real = os.path.realpath(filename)
            for root, package in self.roots.items():
                if real.startswith(root):
                    found = f"{package}/{real[len(root) :]}".replace(os.sep, "/")
        self._cache[filename] = found
        return found

    def story(self, rel: str) -> bool:
        return rel.split("/", 1)[0] in STORY_PACKAGES or rel in self.unit_of_work


@dataclass(frozen=True)
class Call:
    callee: str  # file
    function: str  # qualified name
    caller: str | None  # the nearest frame of ours below: its file
    story_caller: str | None  # the nearest story frame below: its file
    cause: str | None  # the envelope being handled (its id), None in a receipt
    root: int | None  # the outermost frame of ours, if it began while tracing


class Tracer:
    """A profile function for every thread: keeps the calls of ours made in the context of
    one correlation, and the receipts around them (module docstring)."""

    def __init__(self, files: Files, cause: ContextVar[Any], correlation: str) -> None:
        self.files = files
        self.cause = cause
        self.correlation = correlation
        self.active = False
        self.calls: list[Call] = []
        self.envelopes: dict[str, tuple[str, str | None]] = {}  # id -> type, causation id
        self.root_cause: dict[int, str] = {}  # root frame -> the first envelope under it
        # Outermost frames of ours that began while tracing, kept so that no id is reused.
        self._begun: dict[int, FrameType] = {}
        self._starts: dict[CodeType, int] = {}

    def _start_of(self, code: CodeType) -> int:
        """Where a coroutine or generator starts (its first ``RESUME``): a "call" event
        past it is a resumption."""
        try:
            return self._starts[code]
        except KeyError:
            pass
        offsets = [i.offset for i in dis.get_instructions(code) if i.opname == "RESUME"]
        self._starts[code] = start = offsets[0] if offsets else 0
        return start

    def profile(self, frame: FrameType, event: str, arg: object) -> None:
        if event != "call" or not self.active:
            return
        code = frame.f_code
        callee = self.files.ours(code.co_filename)
        if callee is None or code.co_name in COMPREHENSIONS:
            return
        if code.co_flags & RESUMABLE and frame.f_lasti > self._start_of(code):
            return  # a coroutine or generator resumed, not called
        caller, story_caller, root = self._below(frame)
        if root is frame:
            self._begun[id(frame)] = frame
        root_key = id(root) if self._begun.get(id(root)) is root else None
        envelope = self.cause.get()
        if envelope is None:
            if root_key is not None:
                self.calls.append(
                    Call(callee, code.co_qualname, caller, story_caller, None, root_key)
                )
            return
        if (getattr(envelope, "correlationid", None) or envelope.id) != self.correlation:
            return
        self.envelopes.setdefault(envelope.id, (envelope.type, envelope.causationid))
        if root_key is not None:
            self.root_cause.setdefault(root_key, envelope.id)
        self.calls.append(
            Call(callee, code.co_qualname, caller, story_caller, envelope.id, root_key)
        )

    def _below(self, frame: FrameType) -> tuple[str | None, str | None, FrameType]:
        """The files of the nearest frame of ours and nearest story frame below ``frame``,
        and the outermost frame of ours (``frame`` itself if there is none below)."""
        caller = story_caller = None
        root = frame
        back = frame.f_back
        while back is not None:
            rel = self.files.ours(back.f_code.co_filename)
            if rel is not None:
                root = back
                caller = caller or rel
                if story_caller is None and self.files.story(rel):
                    story_caller = rel
            back = back.f_back
        return caller, story_caller, root

    @contextlib.contextmanager
    def tracing(self) -> Iterator[None]:
        self.active = True
        sys.setprofile(self.profile)
        try:
            yield
        finally:
            sys.setprofile(None)
            self.active = False
            self._begun.clear()


@dataclass
class Walk:
    """The calls that count, each with the envelope it is attributed to, and what they add
    up to."""

    attributed: list[tuple[Call, str]]
    steps: Counter[tuple[str, str]]  # (envelope type, services touched) -> calls
    receipt_calls: int
    left_out_after_outcome: int

    @property
    def calls(self) -> list[Call]:
        return [call for call, _ in self.attributed]

    def on_path(self, envelopes: set[str]) -> list[Call]:
        return [call for call, envelope_id in self.attributed if envelope_id in envelopes]


def lineage(envelope_id: str | None, envelopes: dict[str, tuple[str, str | None]]) -> list[str]:
    """The envelope and its causes, back to the first (the command), as far as known."""
    found: list[str] = []
    while envelope_id is not None and envelope_id in envelopes and envelope_id not in found:
        found.append(envelope_id)
        envelope_id = envelopes[envelope_id][1]
    return found


def walk_of(tracer: Tracer, receipt: bool) -> Walk:
    kept: list[tuple[Call, str]] = []
    left_out = receipts = 0
    for call in tracer.calls:
        if call.cause is not None:
            envelope_id = call.cause
        elif receipt and call.root in tracer.root_cause:
            envelope_id = tracer.root_cause[call.root]
        else:
            continue  # a root of ours that never saw the intake's context
        if any(tracer.envelopes[e][0] == OUTCOME for e in lineage(envelope_id, tracer.envelopes)):
            left_out += 1  # the proposals event handled, or something it caused
            continue
        receipts += call.cause is None
        kept.append((call, envelope_id))
    services_of: dict[object, set[str]] = defaultdict(set)
    for call, envelope_id in kept:
        if call.callee.startswith("services/"):
            services_of[call.root or envelope_id].add(package_of(call.callee))
    steps: Counter[tuple[str, str]] = Counter()
    for call, envelope_id in kept:
        touched = services_of.get(call.root or envelope_id) or {"-"}
        steps[(tracer.envelopes[envelope_id][0], ", ".join(sorted(touched)))] += 1
    return Walk(kept, steps, receipts, left_out)


def package_of(rel: str) -> str:
    """``services/matching`` for its files; ``runtime``, ``contracts`` for theirs."""
    parts = rel.split("/")
    return "/".join(parts[:2]) if parts[0] == "services" and len(parts) > 2 else parts[0]


def figures(calls: list[Call], keep: Any = None) -> dict[str, Any]:
    """Files, calls, edges and cross-file calls of ``calls``; with ``keep`` (a predicate on a
    file), only the calls in kept files and the edges with both ends kept, and the
    ``collapsed`` edges (the nearest story caller)."""
    chosen = [c for c in calls if keep is None or keep(c.callee)]
    by_file = Counter(c.callee for c in chosen)
    functions = {f: len({c.function for c in chosen if c.callee == f}) for f in by_file}
    edges: Counter[tuple[str, str]] = Counter()
    collapsed: Counter[tuple[str, str]] = Counter()
    for call in chosen:
        if call.caller not in (None, call.callee) and (keep is None or keep(call.caller)):
            edges[(call.caller, call.callee)] += 1
        if keep is not None and call.story_caller not in (None, call.callee):
            collapsed[(str(call.story_caller), call.callee)] += 1
    result: dict[str, Any] = {
        "files": len(by_file),
        "calls": len(chosen),
        "functions": sum(functions.values()),
        "edges": len(edges),
        "cross_file_calls": sum(edges.values()),
        "entries": sum(c.caller is None for c in chosen),
        "by_file": {f: [by_file[f], functions[f]] for f in sorted(by_file)},
        "edge_list": {f"{a} -> {b}": n for (a, b), n in sorted(edges.items())},
    }
    if keep is not None:
        result["collapsed_edges"] = len(collapsed)
        result["collapsed_cross_file_calls"] = sum(collapsed.values())
    return result


# The run: a server, the services, supporters, one intake.


def profile_of(supporter_id: str, rng: random.Random, today: date) -> list[Any]:
    """A supporter any intake of ``intake_of`` can have: English, phone and video, every
    evening, no affiliation; with complete vetting evidence."""
    from alongside import sample
    from contracts.intake import Method, Slot, Weekday

    command = sample.supporter(rng, supporter_id)
    profile = command.profile.model_copy(
        update={
            "languages": ["en"],
            "caseload_cap": 2,
            "methods": [Method.PHONE, Method.VIDEO],
            "availability": [Slot(day=d, start=daytime(17), end=daytime(21)) for d in Weekday],
            "affiliations": [],
        }
    )
    return [
        command.model_copy(update={"profile": profile}),
        *sample.vetting(rng, supporter_id, today),
    ]


def intake_of(rng: random.Random) -> Any:
    from alongside import sample
    from contracts.intake import Method, Preference, Slot, Weekday

    command = sample.intake(rng, CASE_ID)
    client = command.client.model_copy(
        update={
            "languages": ["en"],
            "methods": [Method.PHONE],
            "gender_preference": None,
            "lived_experience_preference": Preference(values=["tenancy_dispute"]),
            "safety_concerns": [],
            "birth_year": 1980,
            "availability": [
                Slot(day=d, start=daytime(18), end=daytime(20)) for d in (Weekday.TUE, Weekday.THU)
            ],
        }
    )
    parties = [p.model_copy(update={"name": "Walk Respondent Ltd"}) for p in command.other_parties]
    return command.model_copy(update={"client": client, "other_parties": parties})


async def eligible(client: Any, count: int) -> None:
    """Until ``count`` supporters have been decided eligible."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        decided = {
            e.data["supporter_id"]
            async for e in client.events(ORG, idle_s=0.2)
            if e.type == "SupporterEligibilityDecided" and e.data.get("eligible")
        }
        if len(decided) >= count:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"fewer than {count} supporters became eligible within {TIMEOUT_S} s")


@dataclass
class Run:
    outcome_id: str  # the proposals event's envelope id
    timings: dict[str, float] = field(default_factory=dict)


async def run(args: argparse.Namespace, tracer: Tracer, rng: random.Random) -> Run:
    """A fresh server and the services in this process, supporters settled; then the one
    intake, traced until the services settle again."""
    from alongside import services
    from alongside.client import AlongsideClient
    from bench import deployment, settled
    from contracts.replies import CommandAccepted
    from contracts.scheduling import SchedulingPolicy
    from runtime import bus, registry, topology
    from runtime.access import ADMIN, SERVICE_NEEDS, AuthDir
    from runtime.clock import SYSTEM
    from runtime.embedded import EmbeddedNats

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="alongside-walk-") as folder:
        state = Path(folder)
        auth = AuthDir.init(state / "auth", SERVICE_NEEDS, int(SYSTEM().timestamp()))
        # Everything explicit: nothing from ~/.alongside or ALONGSIDE_*; the checkout's rules;
        # a master key made for this run.
        settings = deployment(
            state,
            auth_dir=auth.path,
            master_key_file=auth.path / "master.key",
            log_level=args.log_level,
            metrics=True,
            tracing="off",
        )
        with EmbeddedNats(state / "nats", auth=auth) as server:
            nc = await bus.connect(server.url, "bench-walk", auth.credentials(ADMIN))
            await topology.provision(nc.jetstream(), settings)
            await registry.register(nc.jetstream(), ORG, "Walk benchmark", settings, SYSTEM)
            names = args.services or list(services.SERVICES)
            running = await services.start(
                server.url, names, settings, SYSTEM, credentials=auth.credentials
            )
            try:
                client = AlongsideClient(nc, source="bench/walk")
                today = SYSTEM().astimezone(ZoneInfo(SchedulingPolicy().time_zone)).date()
                for n in range(args.supporters):
                    for command in profile_of(f"s{n}", rng, today):
                        reply = await client.submit(ORG, command)
                        assert isinstance(reply, CommandAccepted), reply
                await eligible(client, args.supporters)
                await settled(nc, timeout_s=TIMEOUT_S)
                timings = {"setup_s": time.perf_counter() - started}
                outcome_id = await traced_intake(nc, client, tracer, intake_of(rng), timings)
                return Run(outcome_id, timings)
            finally:
                await running.stop()
                await nc.close()


async def traced_intake(
    nc: Any, client: Any, tracer: Tracer, intake: Any, timings: dict[str, float]
) -> str:
    """Submit the intake under the tracer; its proposals event's id once the services have
    settled after it."""
    from bench import settled
    from contracts import subjects
    from contracts.replies import CommandAccepted

    outcome: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def on_outcome(msg: Any) -> None:
        envelope = json.loads(msg.data)
        if envelope["data"].get("case_id") == CASE_ID and not outcome.done():
            outcome.set_result(envelope)

    for event in (OUTCOME, NO_OUTCOME):
        await nc.subscribe(subjects.event(ORG, event), cb=on_outcome)
    await nc.flush()
    walked = time.perf_counter()
    with tracer.tracing():
        reply = await client.submit(ORG, intake, command_id=tracer.correlation)
        assert isinstance(reply, CommandAccepted), reply
        envelope = await asyncio.wait_for(outcome, TIMEOUT_S)
        timings["intake_to_outcome_traced_s"] = time.perf_counter() - walked
        await settled(nc, timeout_s=TIMEOUT_S)
    timings["traced_s"] = time.perf_counter() - walked
    if envelope["type"] != OUTCOME:
        raise RuntimeError(f"the intake got {envelope['type']}, not {OUTCOME}: {envelope}")
    tracer.envelopes.setdefault(envelope["id"], (envelope["type"], envelope.get("causationid")))
    return str(envelope["id"])


def table(title: str, result: dict[str, Any]) -> list[str]:
    lines = [title]
    by_package: dict[str, list[str]] = defaultdict(list)
    for rel in result["by_file"]:
        by_package[package_of(rel)].append(rel)
    for package in sorted(by_package):
        files = by_package[package]
        calls = sum(result["by_file"][f][0] for f in files)
        lines.append(f"  {package}/  ({len(files)} files, {calls} calls)")
        for rel in files:
            count, functions = result["by_file"][rel]
            lines.append(f"    {rel:<44} {count:>6} calls  {functions:>4} functions")
    lines.append(summary(result))
    if "collapsed_edges" in result:
        lines.append(
            f"  collapsed (nearest story caller, plumbing skipped): {result['collapsed_edges']}"
            f" edges, {result['collapsed_cross_file_calls']} cross-file calls"
        )
    return lines


def summary(result: dict[str, Any]) -> str:
    return (
        f"  = {result['files']} files, {result['functions']} functions, {result['calls']} calls;"
        f" {result['edges']} edges between files, {result['cross_file_calls']} cross-file"
        f" calls; {result['entries']} entries from outside our files"
    )


FIGURES = ("files", "calls", "functions", "edges", "cross_file_calls", "entries")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.walk", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line last")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--supporters", type=int, default=5)
    parser.add_argument("--services", nargs="*", help="the services to start (default: all)")
    parser.add_argument(
        "--cause", help=f"module:NAME of the ContextVar of the envelope handled ({DEFAULT_CAUSE})"
    )
    parser.add_argument(
        "--unit-of-work",
        action="append",
        help=f"a story file outside services/ and contracts/, repeatable ({UNIT_OF_WORK})",
    )
    parser.add_argument("--no-receipt", action="store_true", help="count handlers' context only")
    parser.add_argument("--edges", action="store_true", help="list every edge between files")
    parser.add_argument("--log-level", default="INFO", help="the services' (logs go to a file)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from runtime.logging import configure

    unit_of_work = args.unit_of_work or [UNIT_OF_WORK]
    files = Files(unit_of_work)
    rng = random.Random(args.seed)
    tracer = Tracer(files, find_cause(args.cause), f"walk-{rng.getrandbits(64):016x}")
    # Threads started from now on are profiled too (the function does nothing until tracing).
    threading.setprofile(cast(Any, tracer.profile))
    try:
        with tempfile.TemporaryFile("w+") as logs:
            configure(args.log_level, json=True)
            try:
                with contextlib.redirect_stderr(logs):
                    done = asyncio.run(run(args, tracer, rng))
            except BaseException:
                logs.seek(0)
                warnings = [line for line in logs if '"level": "info"' not in line]
                print("".join(warnings[-30:]), file=sys.stderr, end="")
                raise
    finally:
        threading.setprofile(cast(Any, None))
    walk = walk_of(tracer, receipt=not args.no_receipt)
    everything = figures(walk.calls)
    story = figures(walk.calls, keep=files.story)
    chain = lineage(done.outcome_id, tracer.envelopes)[1:]  # its causes, the command last
    path = figures(walk.on_path(set(chain)))
    path_story = figures(walk.on_path(set(chain)), keep=files.story)
    report(args, unit_of_work, walk, everything, story)
    kinds = " <- ".join(tracer.envelopes[e][0] for e in [done.outcome_id, *chain])
    print(f"the causal path ({kinds}) alone, side branches left out:")
    print(summary(path))
    print(f"  story files: {summary(path_story).strip()}")
    if args.json:
        print(
            json.dumps(
                {
                    "bench": "walk",
                    "seed": args.seed,
                    "command_id": tracer.correlation,
                    "receipt": not args.no_receipt,
                    "unit_of_work": unit_of_work,
                    **{k: everything[k] for k in FIGURES},
                    **{f"story_{k}": story[k] for k in FIGURES},
                    "story_collapsed_edges": story["collapsed_edges"],
                    "story_collapsed_cross_file_calls": story["collapsed_cross_file_calls"],
                    "receipt_calls": walk.receipt_calls,
                    "left_out_after_outcome": walk.left_out_after_outcome,
                    "path": {k: path[k] for k in FIGURES},
                    "path_story": {k: path_story[k] for k in FIGURES},
                    "by_file": {f: n for f, (n, _) in everything["by_file"].items()},
                    "steps": {f"{k} -> {t}": n for (k, t), n in sorted(walk.steps.items())},
                    **{k: round(v, 2) for k, v in done.timings.items()},
                }
            )
        )
    return 0


def report(
    args: argparse.Namespace,
    unit_of_work: list[str],
    walk: Walk,
    everything: dict[str, Any],
    story: dict[str, Any],
) -> None:
    for line in table("(a)+(b) every file of ours on the walk:", everything):
        print(line)
    print()
    story_title = f"(c) story files (services/, contracts/, {', '.join(unit_of_work)}):"
    for line in table(story_title, story):
        print(line)
    missing = [f for f in unit_of_work if f not in everything["by_file"]]
    if missing:
        print(f"  note: not on the walk: {', '.join(missing)}")
    print()
    print("steps (envelope handled -> services touched: calls):")
    for (kind, touched), count in sorted(walk.steps.items(), key=lambda s: -s[1]):
        print(f"  {kind:<28} {touched:<40} {count:>6}")
    print(
        f"receipts: {walk.receipt_calls} calls outside a handler's context"
        f" ({'left out' if args.no_receipt else 'counted'});"
        f" left out, caused by {OUTCOME}: {walk.left_out_after_outcome} calls"
    )
    if args.edges:
        print("edges:")
        for edge, count in everything["edge_list"].items():
            print(f"  {edge:<80} {count:>6}")


if __name__ == "__main__":
    sys.exit(main())
