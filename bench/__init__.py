"""Benchmarks: each a script with a fixed seed whose last line is one JSON object."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from nats.aio.client import Client
from nats.js import JetStreamContext

from alongside.console_demo import free_port
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
    url: str, auth: AuthDir, state: Path, settings: Settings, admin: Client,
    credentials: Credentials, org: str,
) -> AsyncIterator[httpx.AsyncClient]:  # fmt: skip
    """The console served by uvicorn on a loopback port, as ``alongside up`` serves it (the
    organisation's own credential), and an HTTP client signed in as a coordinator of
    ``org`` (its CSRF token in every request's headers)."""
    accounts = Accounts(await admin.jetstream().key_value(topology.CONSOLE_ACCOUNTS_BUCKET),
                        SYSTEM)  # fmt: skip
    password = "a long benchmark password"
    await accounts.put("bench@example.org", "Bench", password, {org: "coordinator"})
    port = free_port()
    served = settings.model_copy(update={"http_port": port})
    console = asyncio.create_task(bootstrap.run(url, served, SYSTEM,
                                                issued_by(credentials, state / "console"),
                                                auth.credentials("console")))  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
            for _ in range(200):
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/sign-in")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
            signed = await http.post("/api/session", json={"email": "bench@example.org",
                                                           "password": password})  # fmt: skip
            http.headers[CSRF_HEADER] = signed.json()["csrf_token"]
            yield http
    finally:
        console.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await console
