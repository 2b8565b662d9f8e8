"""Wiring: the console's dependencies, and running it (``alongside up console``)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from nats.aio.client import Client

from contracts.records import PersonalLink, PersonContact
from runtime import bus, topology
from runtime.clock import Clock
from runtime.logging import get_logger
from runtime.settings import Settings
from runtime.store import RecordStore
from runtime.vault import load_master_key
from services.console.accounts import Accounts
from services.console.app import create_app, serve
from services.console.gate import ConsoleDeps
from services.console.orgs import CredentialFor, OrgConnections
from services.console.sessions import Sessions
from services.console.throttle import SignInThrottle

log = get_logger(__name__)


async def bootstrap(
    nc: Client, url: str, settings: Settings, clock: Clock, credential: CredentialFor
) -> ConsoleDeps:
    """``nc``: the console's own connection (its accounts); ``credential``: where each
    organisation's credential comes from, for the commands sent as it."""
    js = nc.jetstream()
    # Held in a bucket: every replica reads every session, and signing out ends one.
    held = await js.key_value(topology.CONSOLE_SESSIONS_BUCKET)
    idle = timedelta(seconds=settings.http_session_idle_s)
    return ConsoleDeps(
        accounts=Accounts(await js.key_value(topology.CONSOLE_ACCOUNTS_BUCKET), clock),
        sessions=Sessions(held, load_master_key(settings.master_key_path), clock, idle),
        orgs=OrgConnections(url, credential, clock, js),
        settings=settings,
        clock=clock,
        throttle=SignInThrottle(clock),
        links=RecordStore(await js.key_value(topology.LINKS_BUCKET), PersonalLink),
        contacts=RecordStore(await js.key_value(topology.CONTACTS_BUCKET), PersonContact),
    )


async def run(
    url: str,
    settings: Settings,
    clock: Clock,
    credential: CredentialFor,
    own_credential: Path | None,
) -> None:
    """Serve the console at ``settings.http_host:http_port`` until cancelled."""
    nc = await bus.connect(url, "alongside-console", own_credential)
    deps = await bootstrap(nc, url, settings, clock, credential)
    log.info("console_serving", url=f"http://{settings.http_host}:{settings.http_port}")
    try:
        await serve(create_app(deps), settings.http_host, settings.http_port)
    finally:
        await deps.orgs.close()
        await nc.close()
