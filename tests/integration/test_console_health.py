"""The console answers /healthz, /readyz and /metrics as the services do, its counters from
zero; and a service's counters start at zero too, so a dashboard shows 0, not no data."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest
from nats.aio.client import Client
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from runtime import bus, metrics, topology
from runtime.access import AuthDir
from runtime.clock import SYSTEM
from services.console.accounts import Accounts
from services.console.app import create_app
from services.console.gate import ConsoleDeps
from services.console.health import kind_of
from tests.conftest import Start


async def client_of(deps: ConsoleDeps) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(deps))
    return httpx.AsyncClient(transport=transport, base_url="https://console")


@pytest.fixture
async def console(console_deps: ConsoleDeps) -> AsyncIterator[httpx.AsyncClient]:
    async with await client_of(console_deps) as http:
        yield http


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


async def test_the_console_is_live_and_ready_while_it_reaches_nats(
    console: httpx.AsyncClient,
) -> None:
    for path in ("/healthz", "/readyz"):
        answered = await console.get(path)
        assert answered.status_code == 204, (path, answered.text)


async def test_without_nats_the_console_is_not_live_nor_ready_and_says_why(
    console_deps: ConsoleDeps, provisioned: str, auth: AuthDir
) -> None:
    gone = await bus.connect(provisioned, "console", auth.credentials("console"))
    kv = await gone.jetstream().key_value(topology.CONSOLE_ACCOUNTS_BUCKET)
    await gone.close()
    cut_off = dataclasses.replace(console_deps, accounts=Accounts(kv, SYSTEM))
    async with await client_of(cut_off) as http:
        live, ready = await http.get("/healthz"), await http.get("/readyz")
    assert (live.status_code, ready.status_code) == (500, 503)
    assert ready.text.startswith("console: NATS out of reach")


async def test_the_consoles_counters_start_at_zero_and_count_each_request(
    console: httpx.AsyncClient,
) -> None:
    before = samples((await console.get("/metrics")).text, "alongside_console_requests_total")
    assert len(before) == len(metrics.CONSOLE_KINDS) * len(metrics.STATUS_CLASSES)
    session_4xx = (("kind", "session"), ("status", "4xx"))

    assert (await console.get("/api/session")).status_code == 401  # not signed in
    after = samples((await console.get("/metrics")).text, "alongside_console_requests_total")

    assert after[session_4xx] == before[session_4xx] + 1
    # The probes are not requests of the console's users: never counted.
    assert sum(after.values()) == sum(before.values()) + 1


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/api/orgs/acme/commands/SubmitIntake", "command"),
        ("/api/orgs/acme/cases/c1", "read"),
        ("/api/session", "session"),
        ("/sign-in", "session"),
        ("/orgs/acme", "page"),
        ("/", "page"),
        ("/readyz", None),
    ],
)
def test_requests_are_counted_by_kind(path: str, kind: str | None) -> None:
    assert kind_of(path) == kind


async def test_a_services_counters_start_at_zero_for_what_it_answers(
    start: Start, nc: Client, org: str
) -> None:
    await start("intake")
    text = metrics_text()

    # Made at zero (the suite's other tests may have counted some since, in this process).
    commands = samples(text, "alongside_commands_total")
    for command_type in ("SubmitIntake", "EraseSupporter", "unknown"):
        for outcome in ("accepted", "rejected", "failed"):
            assert (("outcome", outcome), ("service", "intake"), ("type", command_type)) in commands
    assert not any(("service", "console") in labels for labels in commands)  # answers none
    letters = samples(text, "alongside_dead_letters_total")
    assert letters[(("org", org), ("service", "intake"))] == 0  # registered before it started
    finds = samples(text, "alongside_reconciliation_finds_total")
    assert (("service", "intake"), ("what", "outboxes_finished")) in finds


def metrics_text() -> str:
    return generate_latest(metrics.REGISTRY).decode()
