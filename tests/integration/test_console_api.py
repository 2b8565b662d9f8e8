"""The console's HTTP API against the real server: a signed-in coordinator sends an
organisation's commands as that organisation; everything else is refused with problem
details, and the server itself refuses the organisation's connection anything else."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.aio.client import Client
from nats.errors import Error as NatsError

from alongside.client import AlongsideClient
from contracts import subjects
from runtime import bus, topology
from runtime.access import AuthDir
from runtime.clock import SYSTEM, ManualClock
from runtime.credentials import Credentials
from runtime.settings import Settings
from services.console.accounts import Accounts, account_id
from services.console.app import create_app
from services.console.bootstrap import bootstrap
from services.console.gate import ConsoleDeps
from services.console.orgs import issued_by
from services.console.sessions import COOKIE, CSRF_HEADER
from services.intake.handlers import handlers as intake_handlers
from tests.conftest import CONSOLE_PASSWORD, Start
from tests.flaky import flaky
from tests.support import (
    AUCKLAND,
    MARKERS,
    eligible,
    intake,
    marked_record_check,
    marked_supporter,
    org_today,
    supporter,
    wait_for,
)

pytestmark = pytest.mark.nats
PASSWORD = CONSOLE_PASSWORD


@pytest.fixture
async def console(console_deps: ConsoleDeps) -> AsyncIterator[httpx.AsyncClient]:
    """The console's API, called as a script would (``console_deps`` has its people)."""
    transport = httpx.ASGITransport(app=create_app(console_deps))
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as http:
        http.headers["Accept"] = "application/json"
        yield http


async def sign_in(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    response = await http.post("/api/session", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    assert "httponly" in response.headers["set-cookie"].lower()
    return str(response.json()["csrf_token"])


def problem_of(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    found: dict[str, object] = response.json()
    assert found["status"] == status
    return found


async def test_a_coordinator_sends_an_intake_and_a_retry_with_its_key_is_answered_the_same(
    start: Start, console: httpx.AsyncClient, client: AlongsideClient, org: str, other_org: str
) -> None:
    await start("intake")
    body = json.loads(intake("c1", ["en"]).model_dump_json())
    url = f"/api/orgs/{org}/commands/SubmitIntake"

    problem_of(await console.post(url, json=body), 401)  # not signed in
    wrong = await console.post("/api/session", json={"email": "ana@example.org",
                                                     "password": "not it at all"})  # fmt: skip
    problem_of(wrong, 401)
    csrf = await sign_in(console, "ana@example.org")
    assert COOKIE in console.cookies
    problem_of(await console.post(url, json=body), 403)  # no CSRF token: refused

    headers = {CSRF_HEADER: csrf, "Idempotency-Key": "intake-c1"}
    broken = {**body, "client": {**body["client"], "contact": {"email": "not an email"}}}
    refused = problem_of(await console.post(url, json=broken, headers=headers), 422)
    assert [e["field"] for e in refused["errors"]] == ["client.contact.email"]  # type: ignore[attr-defined]

    accepted = await console.post(url, json=body, headers=headers)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"
    assert accepted.json()["command_id"] == "intake-c1"
    [received] = await wait_for(client, org, "IntakeReceived")
    assert received.data["case_id"] == "c1"
    again = await console.post(url, json=body, headers=headers)
    assert again.json() == accepted.json()  # the same command: the same reply, one effect
    other = {**body, "has_other_support": not body["has_other_support"]}
    reused = problem_of(await console.post(url, json=other, headers=headers), 409)
    assert reused["command_id"] == "intake-c1"

    problem_of(await console.post(f"/api/orgs/{other_org}/commands/SubmitIntake", json=body,
                                  headers={CSRF_HEADER: csrf}), 403)  # fmt: skip
    erase = await console.post(f"/api/orgs/{org}/commands/EraseClient",
                               json={"case_id": "c1"}, headers={CSRF_HEADER: csrf})  # fmt: skip
    assert "supervisor" in str(problem_of(erase, 403)["detail"])


async def test_not_carried_out_just_now_is_sent_again_then_answered_503_with_retry_after(
    start: Start, console: httpx.AsyncClient, client: AlongsideClient, org: str
) -> None:
    await start("intake")
    csrf = await sign_in(console, "ana@example.org")
    url = f"/api/orgs/{org}/commands/SubmitIntake"
    body = json.loads(intake("c1", ["en"]).model_dump_json())

    # Failing twice: the console sends it again itself, the same id, and it is carried out.
    with flaky(intake_handlers, "SubmitIntake", fail=2) as calls:
        sent = await console.post(url, json=body,
                                  headers={CSRF_HEADER: csrf, "Idempotency-Key": "intake-c1"})  # fmt: skip
    assert sent.status_code == 200, sent.text
    assert sent.json()["command_id"] == "intake-c1"
    assert calls.ids == ["intake-c1"] * 3
    assert len(await wait_for(client, org, "IntakeReceived")) == 1

    # Failing for longer: 503, when to try again, and the id to send it again with.
    other = json.loads(intake("c2", ["en"]).model_dump_json())
    with flaky(intake_handlers, "SubmitIntake", fail=-1) as calls:
        busy = await console.post(url, json=other, headers={CSRF_HEADER: csrf})
    said = problem_of(busy, 503)
    assert busy.headers["Retry-After"] == "1"
    assert said["retry_after_s"] == 1
    assert said["errors"] == []  # not a refusal: nothing to fix
    assert "Flaked" not in str(said["detail"])
    assert "NoStreamResponseError" not in busy.text
    assert len(calls.ids) == 3  # a couple of attempts within about 3 s
    assert set(calls.ids) == {said["command_id"]}  # one id made for them all
    again = await console.post(url, json=other, headers={
        CSRF_HEADER: csrf, "Idempotency-Key": str(said["command_id"])})  # fmt: skip
    assert again.status_code == 200, again.text
    assert again.json()["command_id"] == said["command_id"]
    assert len(await wait_for(client, org, "IntakeReceived", count=2)) == 2


async def test_a_supervisor_may_erase_and_a_signed_out_session_sends_nothing(
    start: Start, console: httpx.AsyncClient, client: AlongsideClient, org: str
) -> None:
    await start("intake")
    csrf = await sign_in(console, "sam@example.org")
    headers = {CSRF_HEADER: csrf}
    body = json.loads(intake("c1", ["en"]).model_dump_json())
    submitted = await console.post(f"/api/orgs/{org}/commands/SubmitIntake", json=body,
                                   headers=headers)  # fmt: skip
    assert submitted.status_code == 200, submitted.text
    erased = await console.post(f"/api/orgs/{org}/commands/EraseClient", json={"case_id": "c1"},
                                headers=headers)  # fmt: skip
    assert erased.status_code == 200, erased.text
    await wait_for(client, org, "ClientErased")
    who = await console.get("/api/session")
    assert who.json()["roles"] == {org: "supervisor"}

    assert (await console.delete("/api/session", headers=headers)).status_code == 204
    problem_of(await console.get("/api/session"), 401)
    problem_of(await console.post(f"/api/orgs/{org}/commands/SubmitIntake", json=body,
                                  headers=headers), 401)  # fmt: skip


async def test_the_console_sends_as_the_organisation_so_the_server_refuses_it_any_other(
    nc: Client, auth: AuthDir, credentials: Credentials, clock: ManualClock, provisioned: str,
    tmp_path: Path, org: str, other_org: str,
) -> None:  # fmt: skip
    own = await bus.connect(provisioned, "console", auth.credentials("console"))
    deps = await bootstrap(own, provisioned, Settings(), clock,
                           issued_by(credentials, tmp_path / "console"))  # fmt: skip
    try:
        asking = await deps.orgs.asking(org)
        # Were a page to get the organisation wrong, its connection could not reach another.
        with pytest.raises((NatsError, TimeoutError)):
            await asking.nc.request(subjects.command(other_org, "intake", "SubmitIntake"),
                                    b"{}", timeout=1.0)  # fmt: skip
        assert (tmp_path / "console" / f"{org}.creds").stat().st_mode & 0o077 == 0
    finally:
        await deps.orgs.close()
        await own.close()


async def test_a_case_is_viewed_whole_and_every_view_is_recorded(
    start: Start, console: httpx.AsyncClient, client: AlongsideClient, nc: Client, org: str
) -> None:
    await start("intake")
    csrf = await sign_in(console, "ana@example.org")
    body = json.loads(intake("c1", ["en"]).model_dump_json())
    sent = await console.post(f"/api/orgs/{org}/commands/SubmitIntake", json=body,
                              headers={CSRF_HEADER: csrf})  # fmt: skip
    assert sent.status_code == 200, sent.text

    viewed = await console.get(f"/api/orgs/{org}/cases/c1")
    assert viewed.status_code == 200, viewed.text
    case = viewed.json()["case"]
    assert case["intake"]["client"]["display_name"] == body["client"]["display_name"]
    assert (case["stage"], viewed.json()["matching"]) == ("entry", None)  # matching not run
    [recorded] = await wait_for(client, org, "CaseViewed")
    assert recorded.data["case_id"] == "c1"
    assert recorded.data["viewed_by"] == f"alongside/console/{account_id('ana@example.org')}"
    assert recorded.data["command_id"] == viewed.json()["command_id"]

    missing = problem_of(await console.get(f"/api/orgs/{org}/cases/c9"), 404)
    assert missing["errors"] == [{"field": "case_id", "reason": "no case c9 is held here"}]
    problem_of(await console.get(f"/api/orgs/{org}/access-log"), 403)  # a supervisor's
    assert (await console.delete("/api/session", headers={CSRF_HEADER: csrf})).status_code == 204
    await sign_in(console, "oli@example.org")  # a coordinator of the other organisation
    problem_of(await console.get(f"/api/orgs/{org}/cases/c1"), 403)
    accounts = Accounts(await nc.jetstream().key_value(topology.CONSOLE_ACCOUNTS_BUCKET), SYSTEM)
    await accounts.disable("oli@example.org")
    problem_of(await console.get("/api/session"), 401)  # the session ended with the account


async def test_a_revoked_credential_cuts_the_console_off_that_organisation_until_reissued(
    start: Start, console: httpx.AsyncClient, credentials: Credentials, tmp_path: Path, org: str
) -> None:
    await start("intake")
    csrf = await sign_in(console, "ana@example.org")
    url = f"/api/orgs/{org}/commands/SubmitIntake"

    async def submit(case_id: str) -> int:
        body = json.loads(intake(case_id, ["en"]).model_dump_json())
        return (await console.post(url, json=body, headers={CSRF_HEADER: csrf})).status_code

    assert await submit("c1") == 200
    await credentials.revoke(org, "console")  # the server drops the connection at once
    (tmp_path / "console" / f"{org}.creds").unlink()  # (issued again when next needed)
    outcomes = [await submit(f"c{n}") for n in range(2, 6)]
    assert outcomes[0] == 503  # the revoked connection: refused, not hung
    assert 200 in outcomes  # then a new credential, a new connection


async def test_a_supporter_is_viewed_with_their_vetting_by_kind_and_date_never_its_content(
    start: Start, console: httpx.AsyncClient, client: AlongsideClient, org: str
) -> None:
    await start("intake", "rules")
    csrf = await sign_in(console, "ana@example.org")
    headers = {CSRF_HEADER: csrf}
    today = org_today(SYSTEM)
    for command in (marked_supporter("s1"), marked_record_check("s1", today)):
        sent = await console.post(f"/api/orgs/{org}/commands/{command.type_name}",
                                  json=json.loads(command.model_dump_json()), headers=headers)  # fmt: skip
        assert sent.status_code == 200, sent.text
    await wait_for(client, org, "SupporterEligibilityDecided")

    viewed = await console.get(f"/api/orgs/{org}/supporters/s1")
    assert viewed.status_code == 200, viewed.text
    view = viewed.json()
    assert view["profile"]["display_name"] == MARKERS["supporter_name"]
    assert view["vetting"] == [{
        "kind": "record_check", "recorded_for": str(today - timedelta(days=10)),
        "valid_until": str(today + timedelta(days=700)),
    }]  # fmt: skip
    assert MARKERS["check_reference"] not in viewed.text  # what the check said stays held
    assert view["eligible"] is False  # one check alone does not make a supporter eligible
    [recorded] = await wait_for(client, org, "SupporterViewed")
    assert recorded.data["supporter_id"] == "s1"
    problem_of(await console.get(f"/api/orgs/{org}/supporters/s9"), 404)


async def test_a_supervisor_reads_who_saw_which_case_and_supporter(
    start: Start, console: httpx.AsyncClient, client: AlongsideClient, org: str
) -> None:
    await start("intake")
    csrf = await sign_in(console, "ana@example.org")
    for command in (intake("c1", ["en"]), marked_supporter("s1")):
        sent = await console.post(f"/api/orgs/{org}/commands/{command.type_name}",
                                  json=json.loads(command.model_dump_json()),
                                  headers={CSRF_HEADER: csrf})  # fmt: skip
        assert sent.status_code == 200, sent.text
    case = (await console.get(f"/api/orgs/{org}/cases/c1")).json()
    supporter = (await console.get(f"/api/orgs/{org}/supporters/s1")).json()
    await wait_for(client, org, "SupporterViewed")
    assert (await console.delete("/api/session", headers={CSRF_HEADER: csrf})).status_code == 204

    await sign_in(console, "sam@example.org")
    read = await console.get(f"/api/orgs/{org}/access-log")
    assert read.status_code == 200, read.text
    ana = f"alongside/console/{account_id('ana@example.org')}"
    assert [(e["viewed"], e["subject_id"], e["viewed_by"], e["command_id"])
            for e in read.json()["entries"]] == [
        ("case", "c1", ana, case["command_id"]),
        ("supporter", "s1", ana, supporter["command_id"]),
    ]  # fmt: skip


async def test_today_lists_who_waits_and_who_chooses_and_the_month_counts_the_answer(
    start: Start, console: httpx.AsyncClient, client: AlongsideClient, org: str
) -> None:
    await start("intake", "rules", "matching")
    for n in range(2):
        await supporter(client, org, f"s{n}", ["en"])
    await eligible(client, org, 2)
    csrf = await sign_in(console, "ana@example.org")
    for command in (intake("c-en", ["en"]), intake("c-rare", ["niu"])):
        sent = await console.post(f"/api/orgs/{org}/commands/SubmitIntake",
                                  json=json.loads(command.model_dump_json()),
                                  headers={CSRF_HEADER: csrf})  # fmt: skip
        assert sent.status_code == 200, sent.text
    [waitlisted] = await wait_for(client, org, "ClientWaitlisted")
    await wait_for(client, org, "MatchProposed")

    today = await until_listed(console, org, lambda t: t["counts"]["awaiting_choice"] == 1)
    [waiting] = today["waiting"]
    assert (waiting["case_id"], waiting["constraint"]) == ("c-rare", waitlisted.data["constraint"])
    assert waiting["since"] == waitlisted.time.isoformat().replace("+00:00", "Z")
    [choosing] = today["awaiting_choice"]
    assert choosing["case_id"] == "c-en"
    assert {h["supporter_id"] for h in choosing["holds"]} == {"s0", "s1"}
    assert choosing["first_hold_ends"] == min(h["held_until"] for h in choosing["holds"])
    assert MARKERS["client_name"] not in json.dumps(today)  # ids and dates, never names

    chosen = choosing["holds"][0]["supporter_id"]
    sent = await console.post(f"/api/orgs/{org}/commands/AcceptProposal",
                              json={"case_id": "c-en", "supporter_id": chosen},
                              headers={CSRF_HEADER: csrf})  # fmt: skip
    assert sent.status_code == 200, sent.text
    await until_listed(console, org, lambda t: t["counts"]["awaiting_choice"] == 0)

    month = f"{SYSTEM().astimezone(AUCKLAND):%Y-%m}"
    report = (await console.get(f"/api/orgs/{org}/reports/{month}")).json()
    assert (report["intakes"], report["proposals_accepted"]) == (2, 1)
    assert report["acceptance_rate"] == 1.0
    assert report["intake_to_first_proposal"]["cases"] == 1
    assert report["waitlist_size"] == 1  # c-rare, still waiting
    table = (await console.get(f"/api/orgs/{org}/reports.csv")).text.splitlines()
    assert table[0].startswith("org,month,time_zone,intakes,intake_to_first_proposal_cases")
    assert table[-1].startswith(f"{org},{month},Pacific/Auckland,2,1")
    problem_of(await console.get(f"/api/orgs/{org}/reports/2026-13"), 422)

    assert (await console.delete("/api/session", headers={CSRF_HEADER: csrf})).status_code == 204
    await sign_in(console, "oli@example.org")  # the other organisation's coordinator
    problem_of(await console.get(f"/api/orgs/{org}/today"), 403)
    problem_of(await console.get(f"/api/orgs/{org}/reports.csv"), 403)


async def until_listed(
    console: httpx.AsyncClient, org: str, ready: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Today's lists once ``ready``: each read has every event the stream held, but matching
    answers a command before its events are all copied to the organisation's stream."""
    for _ in range(100):
        read = await console.get(f"/api/orgs/{org}/today")
        assert read.status_code == 200, read.text
        today: dict[str, Any] = read.json()
        if ready(today):
            return today
        await asyncio.sleep(0.1)
    raise AssertionError(f"today's lists never got there: {today['counts']}")


async def test_a_supervisor_reads_why_a_decision_was_made_and_the_reading_is_logged(
    start: Start, console: httpx.AsyncClient, client: AlongsideClient, org: str
) -> None:
    await start("intake", "rules")
    await supporter(client, org, "s1", ["en"])
    decided = await wait_for(client, org, "SupporterEligibilityDecided")
    decision_id = decided[0].data["decision_id"]  # the first: ineligible, and why
    url = f"/api/orgs/{org}/decisions/{decision_id}"
    await sign_in(console, "ana@example.org")
    assert "supervisor" in str(problem_of(await console.get(url), 403)["detail"])

    await sign_in(console, "sam@example.org")
    read = await console.get(url)
    assert read.status_code == 200, read.text
    decision = read.json()["logged"]["decision"]
    assert (decision["kind"], decision["subject_id"]) == ("eligibility", "s1")
    assert decision["fired"], "an eligibility decision names the rules that fired"
    assert all(fired["reason"] for fired in decision["fired"])  # opened: why, in words
    problem_of(await console.get(f"/api/orgs/{org}/decisions/nosuchdecision"), 404)
    page = await console.get(f"/orgs/{org}/rules", params={"decision": decision_id})
    assert decision["fired"][0]["rule"] in page.text
    log = (await console.get(f"/api/orgs/{org}/access-log")).json()["entries"]
    assert [(e["viewed"], e["subject_id"]) for e in log] == [("decision", decision_id)] * 2


async def test_guessing_a_password_is_slowed_and_a_right_one_signs_in_after_the_wait(
    console: httpx.AsyncClient, clock: ManualClock
) -> None:
    def attempt(password: str) -> Awaitable[httpx.Response]:
        return console.post("/api/session", json={"email": "ana@example.org",
                                                  "password": password})  # fmt: skip

    for _ in range(5):
        problem_of(await attempt("a wrong guess"), 401)
    waiting = await attempt(PASSWORD)  # right, but too soon
    said = problem_of(waiting, 429)
    assert waiting.headers["Retry-After"] == "31"
    assert said["retry_after_s"] == 31
    clock.set(clock() + timedelta(seconds=31))
    assert (await attempt(PASSWORD)).status_code == 200
