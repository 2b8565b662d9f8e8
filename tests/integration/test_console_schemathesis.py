"""The console's HTTP API against its own document: schemathesis (property-based) generates
requests from the OpenAPI document the console serves, valid and invalid, sends them over HTTP
to the console served by uvicorn as ``alongside up`` serves it, signed in as a coordinator of
a real organisation, with every service running behind it on the suite's nats-server, and
checks each answer against the document: no server error; every status, content type, header
and body as documented; authentication enforced; invalid requests refused, valid ones taken.

So that requests get past the first refusal to what lies behind it, each is of the
coordinator's organisation, each command has an Idempotency-Key of its own, and bodies keep
the two rules the schema cannot say (``map_body``). Reproducible: schemathesis's coverage
phase, then ``EXAMPLES`` property-based cases per operation and mode, with a fixed seed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import re
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import ValidationError
from schemathesis import APIOperation, Case

from alongside import services
from contracts import catalogue
from runtime import bus, topology
from runtime.access import ADMIN, SYSTEM_USER, AuthDir
from runtime.clock import SYSTEM
from runtime.credentials import Credentials
from runtime.settings import Settings
from services.console.app import create_app, serve
from services.console.bootstrap import bootstrap
from services.console.gate import ConsoleDeps
from services.console.orgs import issued_by
from services.console.sessions import COOKIE, CSRF_HEADER
from tests.conftest import CONSOLE_PASSWORD
from tests.support import free_port, register

pytestmark = pytest.mark.nats
AnyCase = Case[APIOperation[Any, Any, Any, Any]]

ORG = "org-fuzzed"
COMMANDS = "/api/orgs/{org}/commands/"
IDEMPOTENCY_KEY = "Idempotency-Key"
KEY = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
_keys = itertools.count()
EMAIL = "fuzz@example.org"
# Property-based cases per operation and mode (45 operations, about 3,100 cases of the
# coverage phase besides): about 30 s in all.
EXAMPLES = 10
# Stand-ins for the coordinator's session in the cases made, replaced by theirs when sent.
SESSION, CSRF = "coordinators-session", "coordinators-csrf-token"


def sign_in(url: str) -> tuple[str, str]:
    """A new session of the coordinator: its cookie and CSRF token."""
    response = httpx.post(f"{url}/api/session", json={"email": EMAIL, "password": CONSOLE_PASSWORD})
    response.raise_for_status()
    return response.cookies[COOKIE], str(response.json()["csrf_token"])


@dataclass(frozen=True)
class Served:
    url: str
    cookie: str
    csrf: str


@pytest.fixture(scope="module")
def served(
    provisioned: str, auth: AuthDir, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """Every service and the console, on their own event loop in a thread (the requests the
    test sends block), as ``alongside up`` runs them; a coordinator of ``ORG`` signed in."""
    folder = tmp_path_factory.mktemp("console")
    ready: Future[str] = Future()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def run() -> None:
        nc = await bus.connect(provisioned, "tests-fuzz", auth.credentials(ADMIN))
        system = await bus.connect(provisioned, "tests-fuzz-system", auth.credentials(SYSTEM_USER))
        own = await bus.connect(provisioned, "console", auth.credentials("console"))
        running = services.Running()
        serving: asyncio.Task[None] | None = None
        try:
            await register(nc, ORG)
            js = nc.jetstream()
            credentials = Credentials(
                await js.key_value(topology.CREDENTIALS_BUCKET), js, auth, system, SYSTEM
            )
            deps = await bootstrap(
                own, provisioned, Settings(), SYSTEM, issued_by(credentials, Path(folder))
            )
            await deps.accounts.put(EMAIL, "Fuzz", CONSOLE_PASSWORD, {ORG: "coordinator"})
            await services.start(
                provisioned,
                list(services.SERVICES),
                clock=SYSTEM,
                credentials=auth.credentials,
                running=running,
            )
            port = free_port()
            serving = asyncio.create_task(serve(create_app(deps), "127.0.0.1", port))
            url = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient() as http:
                for _ in range(200):
                    try:
                        await http.get(f"{url}/openapi.json")
                        break
                    except httpx.TransportError:
                        await asyncio.sleep(0.05)
            ready.set_result(url)
            await stop.wait()
        finally:
            if serving is not None:
                serving.cancel()
                await asyncio.gather(serving, return_exceptions=True)
                await deps.orgs.close()
            await running.stop()
            for connection in (own, system, nc):
                await connection.close()

    def main() -> None:
        try:
            loop.run_until_complete(run())
        except BaseException as error:
            if not ready.done():
                ready.set_exception(error)
            raise
        finally:
            loop.close()

    thread = threading.Thread(target=main, name="console-under-fuzz", daemon=True)
    thread.start()
    url = ready.result(timeout=60)
    yield Served(url, *sign_in(url))
    loop.call_soon_threadsafe(stop.set)
    thread.join(timeout=30)


def _document() -> dict[str, Any]:
    """The console's OpenAPI document, as its app makes it from the routes alone (nothing
    behind them is wired or called); the served one is checked to be the same."""
    unwired: dict[str, Any] = {field.name: None for field in dataclasses.fields(ConsoleDeps)}
    deps = ConsoleDeps(**{**unwired, "settings": Settings(), "clock": SYSTEM})
    return create_app(deps).openapi()


schema = schemathesis.openapi.from_dict(_document())
# Every request is of the coordinator's organisation: another's is refused before anything
# else (tested in test_console_api), and would hide what the document says of the rest.
schema.config.update(parameters={"path.org": ORG})


@schema.auth()
class Coordinator:
    """A coordinator's session on every request: its cookie and CSRF token (schemathesis also
    sends each request without them, and with wrong ones, expecting a 401 or 403). Cases are
    made before the console runs, so they carry stand-ins, each replaced when sent."""

    def get(self, case: AnyCase, context: schemathesis.AuthContext) -> tuple[str, str]:
        return SESSION, CSRF

    def set(self, case: AnyCase, data: tuple[str, str], context: schemathesis.AuthContext) -> None:
        case.cookies[COOKIE], case.headers[CSRF_HEADER] = data


@schema.hook
def map_body(context: schemathesis.HookContext, body: Any) -> Any:
    """Bodies made by the fuzzer keep two rules the schema does not say, so that intakes and
    supporters reach their service (else nearly all are refused for the first): a slot ends
    after it starts, and a contact has an email or a phone number."""
    if isinstance(body, dict):
        body = {name: map_body(context, value) for name, value in body.items()}
        if body.keys() >= {"day", "start", "end"}:
            body.update(_in_order(body["start"], body["end"]))
        contact = body.get("contact")
        if isinstance(contact, dict) and not contact.get("email") and not contact.get("phone"):
            body["contact"] = {**contact, "phone": "+64 9 000 0000"}
    elif isinstance(body, list):
        body = [map_body(context, value) for value in body]
    return body


def _in_order(start: Any, end: Any) -> dict[str, Any]:
    try:
        first, last = time.fromisoformat(start), time.fromisoformat(end)
    except (TypeError, ValueError):
        return {}  # not times: left as made
    if first == last:
        return {"start": "00:00", "end": "23:59"}
    return {"start": start, "end": end} if first < last else {"start": end, "end": start}


def test_the_document_tested_is_the_one_served(served: Served) -> None:
    assert httpx.get(f"{served.url}/openapi.json").json() == schema.raw_schema


@pytest.mark.parametrize(
    ("month", "status"),
    [
        ("0000-01", 422),
        ("0001-01", 422),
        ("9999-12", 422),  # as a new user tried them
        ("1900-01", 200),
        ("2999-12", 200),  # the first and last the document takes
    ],
)
def test_a_month_report_is_a_report_or_a_documented_refusal_never_a_500(
    served: Served, month: str, status: int
) -> None:
    answer = httpx.get(
        f"{served.url}/api/orgs/{ORG}/reports/{month}", cookies={COOKIE: served.cookie}
    )
    assert answer.status_code == status, answer.text
    documented = schema.raw_schema["paths"]["/api/orgs/{org}/reports/{month}"]["get"]
    content = documented["responses"][str(status)]["content"]
    assert answer.headers["content-type"] in content
    if status == 200:
        assert answer.json()["month"] == month
    else:
        assert answer.json()["errors"][0]["field"] == "month"


def refused_only_by_a_rule(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: AnyCase
) -> bool | None:
    """Schema-valid data is taken (schemathesis's ``positive_data_acceptance``), but for what
    the document says of a command: it may still be refused (422) for a rule its schema cannot
    say (an end after its start: its model's own validator), or by its service, for the
    organisation's state (no such case: the problem has the command's id). And a list's
    ``cursor`` is opaque: only one the list gave out is taken (400 otherwise). A request the
    document takes and a validator refuses otherwise is a failure."""
    meta = case.meta
    positive = meta is not None and meta.generation.mode.is_positive
    if positive and response.status_code == 422 and case.path.startswith(COMMANDS):
        said = response.json()
        reasons = [error["reason"] for error in said["errors"]]
        assert reasons, f"refused without a reason: {response.text}"
        if said["command_id"] is not None or only_by_its_validators(case):
            return None
    if positive and response.status_code == 400 and (case.query or {}).get("cursor"):
        assert "Cursor not from this list" in response.text, response.text
        return None
    accepted: bool | None = schemathesis.checks.positive_data_acceptance(ctx, response, case)
    return accepted


def only_by_its_validators(case: AnyCase) -> bool:
    """Whether the command's own model refuses the body only by its validators (the rules
    a schema cannot say), as the console refused it."""
    model = catalogue.COMMANDS[case.path.removeprefix(COMMANDS)]
    try:
        model.model_validate(case.body)
    except ValidationError as error:
        return all(e["type"] in ("value_error", "assertion_error") for e in error.errors())
    return False


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_agrees_with_the_document(case: AnyCase, served: Served) -> None:
    cookie, csrf = served.cookie, served.csrf
    if case.method == "DELETE" and case.path == "/api/session":
        cookie, csrf = sign_in(served.url)  # signing out ends a session of its own
    if case.cookies.get(COOKIE) == SESSION:
        case.cookies[COOKIE] = cookie
    if case.headers.get(CSRF_HEADER) == CSRF:
        case.headers[CSRF_HEADER] = csrf
    key = case.headers.get(IDEMPOTENCY_KEY)
    if key is not None and len(key) <= 64 and KEY.fullmatch(key):
        # Each a command of its own (a key used again is test_console_api's), so that it
        # reaches its service rather than being answered 409.
        case.headers[IDEMPOTENCY_KEY] = f"fuzz-{next(_keys)}"
    case.call_and_validate(
        base_url=served.url,
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
        additional_checks=[refused_only_by_a_rule],
    )
