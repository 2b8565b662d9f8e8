"""The four services, each as ``alongside up <service>`` in its own process, restarted when one
dies or hangs; their memory and their logs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.aio.client import Client as Nats

from bench import environment, stop_all
from bench.fuzz.shared import HANG_AFTER_TIMEOUTS, HANG_LIMIT_S, say
from contracts import catalogue, subjects
from runtime.settings import Settings


@dataclass
class Crash:
    service: str
    returncode: int | None
    what: str  # "exited" or "hung"
    recent: list[str]
    log_tail: list[str]


class Fleet:
    """The four services as ``alongside up <service>`` processes, restarted when one dies."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        self.env = environment(settings)  # the fuzz's own deployment, as every process reads it
        self.logs = logs
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.log_files: dict[str, list[Path]] = defaultdict(list)
        self.crashes: list[Crash] = []
        self.recent: dict[str, deque[str]] = defaultdict(lambda: deque(maxlen=20))
        self.restarted: set[str] = set()

    def start(self, service: str) -> None:
        path = self.logs / f"{service}-{len(self.log_files[service])}.log"
        self.log_files[service].append(path)
        with path.open("wb") as log:
            self.processes[service] = subprocess.Popen(
                [str(Path(sys.executable).parent / "alongside"), "up", service],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def rss_mb(self, service: str) -> float:
        status = Path(f"/proc/{self.processes[service].pid}/status")
        with contextlib.suppress(OSError):
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def tail(self, service: str, lines: int = 25) -> list[str]:
        text = self.log_files[service][-1].read_text(errors="replace")
        return text.splitlines()[-lines:]

    def check(self) -> list[str]:
        """Restart every service whose process exited; return their names."""
        died = []
        for service, process in list(self.processes.items()):
            if process.poll() is not None:
                self.crashes.append(
                    Crash(
                        service,
                        process.returncode,
                        "exited",
                        list(self.recent[service]),
                        self.tail(service),
                    )
                )
                say(f"{service} exited with {process.returncode}; restarting")
                self.restarted.add(service)
                self.start(service)
                died.append(service)
        return died

    def kill(self, service: str) -> None:
        process = self.processes[service]
        self.crashes.append(
            Crash(service, None, "hung", list(self.recent[service]), self.tail(service))
        )
        process.kill()
        process.wait()
        self.restarted.add(service)
        self.start(service)

    def stop(self) -> None:
        stop_all(self.processes.values(), timeout=15)


async def answering(nc: Nats, service: str, limit_s: float) -> bool:
    """The service answers its readiness probe (a command it does not have)."""
    probe = subjects.command("readiness-probe", service, "Ping", subjects.OPERATOR)
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        try:
            await nc.request(probe, b"", timeout=1.0)
            return True
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            await asyncio.sleep(0.1)
    return False


class Gate:
    """Stops sending to a service that stopped answering until it answers again (or is
    killed and restarted after ``HANG_LIMIT_S``)."""

    def __init__(self, nc: Nats, fleet: Fleet) -> None:
        self.nc = nc
        self.fleet = fleet
        self.open: dict[str, asyncio.Event] = {}
        self.timeouts: Counter[str] = Counter()
        self.tasks: set[asyncio.Task[None]] = set()
        for service in catalogue_services():
            self.open[service] = asyncio.Event()
            self.open[service].set()

    async def wait(self, service: str) -> None:
        await self.open[service].wait()

    def answered(self, service: str) -> None:
        self.timeouts[service] = 0

    def timed_out(self, service: str) -> None:
        self.timeouts[service] += 1
        if self.timeouts[service] >= HANG_AFTER_TIMEOUTS and self.open[service].is_set():
            self.open[service].clear()
            task = asyncio.create_task(self._recover(service))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _recover(self, service: str) -> None:
        say(
            f"{service}: {HANG_AFTER_TIMEOUTS} requests in a row unanswered; checking that it "
            f"still answers (up to {HANG_LIMIT_S:.0f} s)"
        )
        if not await answering(self.nc, service, HANG_LIMIT_S):
            say(f"{service} is hung; killing and restarting it")
            self.fleet.kill(service)
            await answering(self.nc, service, 60.0)
        self.timeouts[service] = 0
        self.open[service].set()


def catalogue_services() -> list[str]:
    return sorted({c.service for c in catalogue.COMMANDS.values()})


async def watch(fleet: Fleet, stop: asyncio.Event) -> None:
    while not stop.is_set():
        fleet.check()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


LOG_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*)$")


LOG_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')
OUR_CODE = ("/runtime/", "/services/", "/contracts/", "/alongside/")


def log_errors(fleet: Fleet) -> dict[str, list[tuple[str, int]]]:
    """Each service's error-level log lines and exceptions (with the deepest frame of our
    code in their traceback), counted by kind."""
    found: dict[str, list[tuple[str, int]]] = {}
    for service, paths in fleet.log_files.items():
        kinds: Counter[str] = Counter()
        for path in paths:
            frames: list[str] = []
            for line in path.read_text(errors="replace").splitlines():
                frame = LOG_FRAME.search(line)
                if frame and any(part in frame.group(1) for part in OUR_CODE):
                    where = frame.group(1).split("/")[-2:]
                    frames.append(f"{'/'.join(where)}:{frame.group(3)}:{frame.group(2)}")
                kind = _log_kind(line)
                if kind:
                    at = f" at {frames[-1]}" if frames and kind.startswith("exception") else ""
                    kinds[kind + at] += 1
                    frames = [] if kind.startswith("exception") else frames
        found[service] = kinds.most_common(30)
    return found


def _log_kind(line: str) -> str | None:
    try:
        entry = json.loads(line)
    except ValueError:
        match = LOG_EXCEPTION.match(line.strip())
        return f"exception: {match.group(1)[:200]}" if match else None
    if not isinstance(entry, dict) or entry.get("level") not in ("error", "critical"):
        return None
    detail = entry.get("error") or entry.get("detail") or entry.get("reason") or ""
    return f"{entry.get('level')}: {entry.get('event')} {str(detail)[:160]}".strip()


def rss(fleet: Fleet) -> dict[str, float]:
    return {s: round(fleet.rss_mb(s), 1) for s in catalogue_services()}
