"""The demo's console step: a coordinator signs in over HTTP and sends an intake, as a
browser or a script would (``urllib`` and a cookie jar; nothing else to install)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any
from urllib.parse import quote

from nats.aio.client import Client as Nats

from alongside import sample
from contracts import subjects
from contracts.envelope import RawEnvelope
from runtime import topology
from runtime.access import AuthDir
from runtime.clock import Clock
from runtime.credentials import Credentials
from runtime.settings import Settings
from services.console import bootstrap
from services.console.accounts import Accounts
from services.console.orgs import issued_by
from services.console.sessions import CSRF_HEADER

EMAIL = "coordinator@harbour.example"


class Browser:
    """Requests with a cookie jar, as a browser keeps the session cookie."""

    def __init__(self, base: str) -> None:
        self.base = base
        self._open = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    async def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )

        def send() -> tuple[int, Any]:
            try:
                with self._open.open(request, timeout=15) as response:
                    return response.status, json.loads(response.read() or b"null")
            except urllib.error.HTTPError as error:
                return error.code, json.loads(error.read() or b"null")

        return await asyncio.to_thread(send)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def show(
    say: Callable[[str], None],
    nc: Nats,
    url: str,
    auth: AuthDir,
    credentials: Credentials,
    state: Path,
    settings: Settings,
    clock: Clock,
    org: str,
    port: int | None,
    serving: bool | None = None,
) -> Callable[[], Any]:
    """Serve the console (on ``port``, or any free one), make a coordinator of ``org``, and
    send an intake through it; returns what stops the console. ``serving``: it goes on
    serving after the demo (`alongside demo --serve`); by default, when a port is given."""
    serving = port is not None if serving is None else serving
    password = secrets.token_urlsafe(12)
    accounts = Accounts(await nc.jetstream().key_value(topology.CONSOLE_ACCOUNTS_BUCKET), clock)
    await accounts.put(EMAIL, "Demo Coordinator", password, {org: "coordinator"})
    port = port or free_port()
    served = settings.model_copy(update={"http_port": port, "http_host": "127.0.0.1"})
    task = asyncio.create_task(
        bootstrap.run(
            url,
            served,
            clock,
            issued_by(credentials, state / "console"),
            auth.credentials("console"),
        )
    )
    browser = Browser(f"http://127.0.0.1:{port}")
    for _ in range(200):
        with contextlib.suppress(OSError):
            status, schema = await browser.call("GET", "/openapi.json")
            if status == 200:
                break
        await asyncio.sleep(0.05)
    commands = [p for p in schema["paths"] if "/commands/" in p]
    at = f" at http://127.0.0.1:{port}" if serving else ""  # else gone when the demo ends
    say(
        f"  the console's HTTP API{at}: {len(commands)} commands "
        f"(OpenAPI {schema['openapi']} at /openapi.json and /docs)"
    )

    status, signed = await browser.call(
        "POST", "/api/session", {"email": EMAIL, "password": password}
    )
    if status != 200:
        raise RuntimeError(f"the demo coordinator could not sign in: {status} {signed}")
    say(
        f"  {EMAIL} signs in (argon2id; an HTTP-only cookie for a session held on the "
        f"server, and a CSRF token), a coordinator of {org}"
    )
    headers = {CSRF_HEADER: signed["csrf_token"], "Idempotency-Key": "demo-http-intake"}
    intake = json.loads(sample.intake(random.Random(99), "case-http").model_dump_json())
    broken = {**intake, "client": {**intake["client"], "birth_year": 1850}}
    status, problem = await browser.call(
        "POST", f"/api/orgs/{org}/commands/SubmitIntake", broken, headers
    )
    say(
        f"  POST SubmitIntake with a wrong year of birth: {status} {problem['title']}: "
        f"{problem['detail']}"
    )
    path = f"/api/orgs/{org}/commands/SubmitIntake"
    status, reply = await browser.call("POST", path, intake, headers)
    again_status, again = await browser.call("POST", path, intake, headers)
    if status != 200 or again != reply:
        raise RuntimeError(f"the intake over HTTP was not accepted once: {reply} / {again}")
    say(
        f"  POST SubmitIntake case-http: {status} {reply['status']} (command {reply['command_id']}"
        f" from the Idempotency-Key); sent again: {again_status}, the same reply"
    )
    status, view = await browser.call("GET", f"/api/orgs/{org}/cases/case-http")
    last = await nc.jetstream().get_last_msg(
        topology.EVENTS_STREAM, subjects.event(org, "CaseViewed")
    )
    viewed = RawEnvelope.model_validate_json(last.data or b"")
    if status != 200 or viewed.data["command_id"] != view["command_id"]:
        raise RuntimeError(f"the case view was not answered and recorded: {status} {view}")
    parties = len(view["case"]["intake"]["other_parties"])
    say(
        f"  GET /api/orgs/{org}/cases/case-http: {status}, stage {view['case']['stage']}, "
        f"{parties} other part{'y' if parties == 1 else 'ies'}; recorded as {viewed.type} by "
        f"{viewed.data['viewed_by']}"
    )
    status, _ = await browser.call(
        "POST", "/api/orgs/other-org/commands/SubmitIntake", intake, headers
    )
    say(f"  the same for an organisation the account has no role in: {status}")
    status, today = await browser.call("GET", f"/api/orgs/{org}/today")
    if status != 200:
        raise RuntimeError(f"today's lists were not answered: {status} {today}")
    listed = ", ".join(
        f"{name.replace('_', ' ')} {count}" for name, count in today["counts"].items()
    )
    say(f"  GET /api/orgs/{org}/today (folded from {org}'s own events, ids only): {listed}")
    month = today["as_of"][:7]
    status, report = await browser.call("GET", f"/api/orgs/{org}/reports/{month}")
    first_s = (report["intake_to_first_proposal"]["median_hours"] or 0) * 3600
    say(
        f"  GET /api/orgs/{org}/reports/{month}: {report['intakes']} intakes, first proposal "
        f"after {first_s:.1f} s (median), acceptance rate {report['acceptance_rate']}, "
        f"waitlist {report['waitlist_size']}; every month as CSV at reports.csv"
    )
    await _lists(say, browser, org, intake["client"]["display_name"])
    if serving:
        say(
            f"  the console's pages (no script needed): http://127.0.0.1:{port}/orgs/{org} - "
            f"sign in as {EMAIL}, password {password}"
        )
    else:
        say(
            "  the console's pages (no script needed) stop with the demo: "
            "`alongside demo --serve` keeps them, with its data, and says where"
        )
    return task.cancel


async def _lists(say: Callable[[str], None], browser: Browser, org: str, name: str) -> None:
    """The lists a page at a time, and a search by a name the demo typed in."""
    status, page = await browser.call("GET", f"/api/orgs/{org}/cases?limit=5")
    if status != 200:
        raise RuntimeError(f"the cases were not listed: {status} {page}")
    pages = 1
    cursor = page["next_cursor"]
    while cursor:
        status, more = await browser.call("GET", f"/api/orgs/{org}/cases?limit=5&cursor={cursor}")
        pages, cursor = pages + 1, more["next_cursor"]
    states = sorted({row["state"] for row in page["items"]})
    say(
        f"  GET /api/orgs/{org}/cases?limit=5: {page['total']} cases in {pages} pages, each "
        f"page's cursor to the next (the first page's states: {', '.join(states)}); also "
        f"supporters, proposals, and CSV of each"
    )
    word = name.split()[0]
    status, found = await browser.call("GET", f"/api/orgs/{org}/search?q={quote(word)}")
    if status != 200 or not any(f["subject_id"] == "case-http" for f in found["items"]):
        raise RuntimeError(f"the search did not find case-http by its client's name: {found}")
    say(
        f"  GET /api/orgs/{org}/search?q={word}: {found['total']} found by name, "
        "case-http among them (names held in the console's memory only)"
    )
    status, attention = await browser.call("GET", "/api/attention")
    kinds = sorted({item["kind"].replace("_", " ") for item in attention["items"]})
    say(
        f"  GET /api/attention: {attention['total']} things need the coordinator "
        f"({', '.join(kinds) or 'nothing overdue'}), the most overdue first"
    )
