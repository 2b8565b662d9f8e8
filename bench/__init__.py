"""Benchmarks: each a script with a fixed seed whose last line is one JSON object, and each
its own deployment (``deployment``, ``environment``): nothing of the machine's own, its
ALONGSIDE_* variables or ``~/.alongside``, is read. ``.ci/benches`` runs each, quickly."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from alongside import sample
from alongside.client import AlongsideClient
from alongside.console_demo import free_port
from contracts.replies import CommandAccepted
from runtime import registry, topology
from runtime.access import AuthDir
from runtime.clock import SYSTEM
from runtime.credentials import Credentials
from runtime.settings import Settings
from runtime.vault import load_master_key
from services.console import bootstrap
from services.console.accounts import Accounts
from services.console.orgs import issued_by
from services.console.sessions import CSRF_HEADER

# The checkout's rules, which every bench's rules service reads: never a folder the machine's
# own deployment names (ALONGSIDE_RULES_DIR).
RULES = Path(__file__).resolve().parents[1] / "rules"


class _Given(Settings):
    """Settings from the arguments alone: no ALONGSIDE_* variable, .env file or secrets folder
    is read."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def deployment(state: Path, **given: Any) -> Settings:
    """A bench's own deployment in the folder ``state``: its settings, each as ``given`` or as
    shipped and none from the machine's own deployment (its ALONGSIDE_* variables, its
    ``~/.alongside``), and its master key, ``<state>/auth/master.key`` (where
    ``AuthDir.init(state / "auth")`` makes it too), made as ``alongside up`` makes it if it is
    not there yet."""
    settings = _Given(state_dir=state, **given)
    load_master_key(settings.master_key_path, create=True)
    return settings


def inherited() -> dict[str, str]:
    """This process's environment without the machine's own deployment (ALONGSIDE_*)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ALONGSIDE_")}


def environment(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a process a bench starts (``alongside up``, the CLI): every one of
    ``settings`` written out as that process reads it (``ALONGSIDE_<NAME>``; an unset one left
    unset), the checkout's rules and ``extra``, on ``inherited()``."""
    written = {
        f"ALONGSIDE_{name.upper()}": str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in settings.model_dump().items()
        if value is not None
    }
    return {**inherited(), **written, "ALONGSIDE_RULES_DIR": str(RULES), **extra}


async def register(js: JetStreamContext, *orgs: str, settings: Settings) -> None:
    """Register the organisations a benchmark uses, as an operator would, their streams made
    as the bench's deployment's ``settings`` say."""
    for org in orgs:
        await registry.register(js, org, f"Benchmark {org}", settings, SYSTEM)


# How long a responder (a service process) may take to answer after it starts.
START_TIMEOUT_S = 120.0


def spawn(
    args: list[str], env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """A responder in its own process; its stderr (its logs) to ``log``, else dropped. Its
    environment: ``env`` on this one's, less the machine's own deployment (``inherited``)."""
    env = {**inherited(), **(env or {})}
    if log is None:
        return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    with log.open("ab") as stderr:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=stderr)


def stop_all(processes: Iterable[subprocess.Popen[bytes]], timeout: float = 30) -> None:
    """Ask every process to end, then wait for each (killed if it takes longer)."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used so far (Linux: ``/proc``); NaN elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = stat.rsplit(")", 1)[1].split()  # from the state on: utime, stime are 11, 12
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def last_lines(path: Path, count: int = 20) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-count:])


async def wait_for_responder(
    nc: Any, subject: str, body: bytes, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Until ``subject`` answers. The intake service reads every record at start (to
    finish any outbox a crash left), so it takes longer the more earlier phases stored:
    wait as long as its ``process`` is alive, up to ``START_TIMEOUT_S``."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            await nc.request(subject, body, timeout=1)
            return
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            if process is not None and process.poll() is not None:
                raise RuntimeError(
                    f"the responder on {subject} exited ({process.returncode})"
                ) from None
            await asyncio.sleep(0.05)
    raise RuntimeError(f"no responder on {subject} within {START_TIMEOUT_S} s")


@contextlib.asynccontextmanager
async def console_serving(
    url: str,
    auth: AuthDir,
    state: Path,
    settings: Settings,
    admin: Client,
    credentials: Credentials,
    org: str,
) -> AsyncIterator[httpx.AsyncClient]:
    """The console served by uvicorn on a loopback port, as ``alongside up`` serves it (the
    organisation's own credential), and an HTTP client signed in as a coordinator of
    ``org`` (its CSRF token in every request's headers)."""
    accounts = Accounts(await admin.jetstream().key_value(topology.CONSOLE_ACCOUNTS_BUCKET), SYSTEM)
    password = "a long benchmark password"
    await accounts.put("bench@example.org", "Bench", password, {org: "coordinator"})
    port = free_port()
    served = settings.model_copy(update={"http_port": port})
    console = asyncio.create_task(
        bootstrap.run(
            url,
            served,
            SYSTEM,
            issued_by(credentials, state / "console"),
            auth.credentials("console"),
        )
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
            for _ in range(200):
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/sign-in")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
            signed = await http.post(
                "/api/session", json={"email": "bench@example.org", "password": password}
            )
            http.headers[CSRF_HEADER] = signed.json()["csrf_token"]
            yield http
    finally:
        console.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await console


async def register_vetted(
    client: AlongsideClient, org: str, count: int, cap: int, seed: int, in_flight: int = 32
) -> None:
    """``count`` supporters from ``alongside/sample.py`` (``s0``, ``s1`` ...; caseloads of up
    to ``cap``) registered and vetted, ``in_flight`` at a time. Not every one passes vetting:
    wait for the services (``settled``), not for a count."""
    rng, today = random.Random(seed), SYSTEM().date()
    people = []  # each supporter's commands, in order
    for n in range(count):
        command = sample.supporter(rng, f"s{n}")
        profile = command.profile.model_copy(update={"caseload_cap": cap})
        people.append(
            [command.model_copy(update={"profile": profile}), *sample.vetting(rng, f"s{n}", today)]
        )
    queue = iter(people)

    async def worker() -> None:
        for commands in queue:
            for command in commands:
                reply = await client.submit(org, command)
                assert isinstance(reply, CommandAccepted), reply

    await asyncio.gather(*(worker() for _ in range(in_flight)))


async def settled(
    nc: Client,
    consumers: Sequence[topology.ConsumerSpec] = topology.CONSUMERS,
    timeout_s: float = 600,
) -> None:
    """Until the services' consumers have taken in every event (two seconds with nothing
    pending): a bench measures its steps, not the backlog of its setup."""
    js, quiet = nc.jetstream(), 0
    for _ in range(int(timeout_s / 0.5)):
        infos = [await js.consumer_info(c.stream, c.durable) for c in consumers]
        quiet = 0 if any(i.num_pending or i.num_ack_pending for i in infos) else quiet + 1
        if quiet >= 4:
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"the services did not settle within {timeout_s} s")
