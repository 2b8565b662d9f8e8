"""Benchmarks: each a script with a fixed seed whose last line is one JSON object."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx
from nats.aio.client import Client
from nats.js import JetStreamContext

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


async def register(js: JetStreamContext, *orgs: str) -> None:
    """Register the organisations a benchmark uses, as an operator would."""
    for org in orgs:
        await registry.register(js, org, f"Benchmark {org}", Settings(), SYSTEM)


def master_key_env(folder: Path) -> dict[str, str]:
    """What a service process started by a benchmark needs to seal people's data: the
    deployment's master key, made in ``folder`` and shared by every process started so."""
    path = folder / "master.key"
    load_master_key(path, create=True)
    return {"ALONGSIDE_MASTER_KEY_FILE": str(path)}


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
