"""The console's pages over HTTP, as a browser without scripts sends them: sign in, the day's
lists, the intake form with the API's field errors, a case and its actions, and nothing of
another organisation's."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from alongside.client import AlongsideClient
from services.console.app import create_app
from services.console.domain import NOT_JUST_NOW, NOT_JUST_NOW_DETAIL
from services.console.gate import ConsoleDeps
from services.console.sessions import CSRF_HEADER
from services.intake.handlers import handlers as intake_handlers
from tests.conftest import CONSOLE_PASSWORD, Start
from tests.flaky import flaky
from tests.support import MARKERS, marked_intake, marked_supporter, seen, wait_for

pytestmark = pytest.mark.nats

INTAKE = {
    "case_id": "C-1",
    "dispute.scheme": "tenancy",
    "dispute.stage": "entry",
    "dispute.summary": "Bond not returned",
    "client.display_name": "Mere Client",
    "client.contact.email": "mere@example.org",
    "client.birth_year": "1980",
    "client.languages": "en, mi",
    "client.methods": ["phone", "video"],
    "client.region": "auckland",
    "client.availability.0.day": "tue",
    "client.availability.0.start": "18:00",
    "client.availability.0.end": "20:00",
    "other_parties.0.party_id": "p1",
    "other_parties.0.kind": "organisation",
    "other_parties.0.name": "Harbour Housing Ltd",
    "other_parties.0.role": "respondent",
}


@pytest.fixture
async def browser(console_deps: ConsoleDeps) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(console_deps))
    async with httpx.AsyncClient(transport=transport, base_url="https://console") as http:
        yield http


async def signed_in(
    browser: httpx.AsyncClient, email: str, goto: str = "/", password: str = CONSOLE_PASSWORD
) -> httpx.Response:
    """Signed in from the sign-in page, as a browser does: its form carries a token."""
    token = csrf_of(await browser.get("/sign-in"))
    return await browser.post(
        "/sign-in", data={"email": email, "password": password, "next": goto, "csrf_token": token}
    )


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, "the page has no form with the session's token"
    return found.group(1)


async def test_a_coordinator_signs_in_sends_an_intake_from_the_form_and_sees_the_case(
    start: Start, browser: httpx.AsyncClient, client: AlongsideClient, org: str
) -> None:
    await start("intake")
    away = await browser.get(f"/orgs/{org}")
    assert (away.status_code, away.headers["location"]) == (303, f"/sign-in?next=/orgs/{org}")
    wrong = await signed_in(browser, "ana@example.org", password="no")
    assert wrong.status_code == 401
    assert "do not match an account" in wrong.text
    there = await signed_in(browser, "ana@example.org", f"/orgs/{org}")
    assert (there.status_code, there.headers["location"]) == (303, f"/orgs/{org}")

    today = await browser.get(f"/orgs/{org}")
    assert today.status_code == 200, today.text
    assert "Waiting for a supporter" in today.text
    form = await browser.get(f"/orgs/{org}/intake")
    csrf = csrf_of(form)
    assert (await browser.post(f"/orgs/{org}/intake", data=INTAKE)).status_code == 403

    broken = {**INTAKE, "csrf_token": csrf, "client.contact.email": "", "client.birth_year": "x"}
    refused = await browser.post(f"/orgs/{org}/intake", data=broken)
    assert refused.status_code == 422
    # The API's field errors, next to the fields, and what was typed is still there.
    assert "<strong>client.contact</strong>: Field required" in refused.text
    assert 'id="f-client-contact-email-error">Field required' in refused.text
    assert 'id="f-client-birth_year-error">Input should be a valid integer' in refused.text
    assert 'value="Mere Client"' in refused.text

    sent = await browser.post(f"/orgs/{org}/intake", data={**INTAKE, "csrf_token": csrf})
    assert sent.status_code == 303, sent.text
    assert sent.headers["location"] == f"/orgs/{org}/cases/C-1?done=SubmitIntake"
    [received] = await wait_for(client, org, "IntakeReceived")
    assert received.data["case_id"] == "C-1"
    case = await browser.get(sent.headers["location"])
    assert case.status_code == 200, case.text
    assert "Mere Client" in case.text
    assert "Done: SubmitIntake" in case.text
    consent = await browser.post(
        f"/orgs/{org}/cases/C-1/act/GiveConsent",
        data={
            "csrf_token": csrf,
            "party_id": "p1",
            "stages": ["entry"],
            "given_on": "2026-11-01",
        },
    )
    # No support person is named yet: the service refuses, and the page says why.
    assert consent.status_code == 422
    assert "GiveConsent refused" in consent.text
    [viewed, *_] = await wait_for(client, org, "CaseViewed")
    assert viewed.data["case_id"] == "C-1"  # every page view is in the access log


async def test_another_organisations_coordinator_sees_none_of_it(
    start: Start, browser: httpx.AsyncClient, org: str
) -> None:
    await start("intake")
    await signed_in(browser, "oli@example.org")
    for path in (
        f"/orgs/{org}",
        f"/orgs/{org}/cases/C-1",
        f"/orgs/{org}/intake",
        f"/orgs/{org}/reports",
        f"/orgs/{org}/rules",
    ):
        page = await browser.get(path)
        assert page.status_code == 403, path
        assert "Not your organisation" in page.text
    assert (await browser.get("/orgs/Not_An_Org")).status_code == 404


async def test_a_form_not_carried_out_just_now_says_to_try_again_not_what_to_fix(
    start: Start, browser: httpx.AsyncClient, client: AlongsideClient, org: str
) -> None:
    await start("intake")
    await signed_in(browser, "ana@example.org")
    csrf = csrf_of(await browser.get(f"/orgs/{org}/intake"))
    with flaky(intake_handlers, "SubmitIntake", fail=-1):
        busy = await browser.post(f"/orgs/{org}/intake", data={**INTAKE, "csrf_token": csrf})
    assert busy.status_code == 503
    assert NOT_JUST_NOW_DETAIL in busy.text  # a plain sentence, no field named
    assert NOT_JUST_NOW in busy.text
    assert "SubmitIntake refused" not in busy.text  # not a refusal
    assert 'value="Mere Client"' in busy.text  # what was typed, to send again
    sent = await browser.post(f"/orgs/{org}/intake", data={**INTAKE, "csrf_token": csrf})
    assert sent.status_code == 303, sent.text
    assert len(await wait_for(client, org, "IntakeReceived")) == 1


# Hardened as a public web app (issue 26) ---------------------------------------------------


async def test_signing_in_needs_the_sign_in_pages_own_token(browser: httpx.AsyncClient) -> None:
    """Login CSRF: another site's form cannot sign this browser in to an account of its
    choosing (the token is for the nonce in this browser's cookie)."""
    sent = {"email": "ana@example.org", "password": CONSOLE_PASSWORD, "next": "/"}
    page = await browser.get("/sign-in")
    assert "HttpOnly" in page.headers["set-cookie"]
    refused = await browser.post("/sign-in", data=sent)  # no token
    assert refused.status_code == 403
    assert "Sign in from this page" in refused.text
    assert not any(c.startswith("__Host-alongside_session") for c in browser.cookies)
    elsewhere = httpx.ASGITransport(app=browser._transport.app)  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=elsewhere, base_url="https://console") as attacker:
        theirs = csrf_of(await attacker.get("/sign-in"))  # a token for the attacker's nonce
    assert (await browser.post("/sign-in", data={**sent, "csrf_token": theirs})).status_code == 403
    own = csrf_of(refused)  # the page again, with a token for this browser's nonce
    signed = await browser.post("/sign-in", data={**sent, "csrf_token": own})
    assert signed.status_code == 303, signed.text
    assert (await browser.get("/")).status_code == 303  # home: to the one organisation


async def test_signing_out_ends_the_session_and_a_copy_of_its_cookie_opens_no_page(
    start: Start, browser: httpx.AsyncClient, client: AlongsideClient, org: str
) -> None:
    await start("intake")
    await signed_in(browser, "ana@example.org")
    form = await browser.get(f"/orgs/{org}/intake")
    csrf = csrf_of(form)
    copied = dict(browser.cookies)
    out = await browser.post("/sign-out", data={"csrf_token": csrf})
    assert (out.status_code, out.headers["location"]) == (303, "/sign-in")
    transport = httpx.ASGITransport(app=browser._transport.app)  # type: ignore[attr-defined]
    async with httpx.AsyncClient(
        transport=transport, base_url="https://console", cookies=copied
    ) as replayed:
        for path in (f"/orgs/{org}", f"/orgs/{org}/intake", f"/orgs/{org}/cases/C-1"):
            away = await replayed.get(path)
            assert (away.status_code, away.headers["location"]) == (303, f"/sign-in?next={path}"), (
                path
            )
        sent = await replayed.post(f"/orgs/{org}/intake", data={**INTAKE, "csrf_token": csrf})
        assert sent.status_code == 303
        assert sent.headers["location"].startswith("/sign-in")
    assert await seen(client, org, "IntakeReceived") == []


async def test_a_form_sent_from_another_site_is_refused_even_with_the_token(
    start: Start, browser: httpx.AsyncClient, org: str
) -> None:
    await start("intake")
    await signed_in(browser, "ana@example.org")
    csrf = csrf_of(await browser.get(f"/orgs/{org}/intake"))
    for elsewhere in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        refused = await browser.post(
            f"/orgs/{org}/intake", data={**INTAKE, "csrf_token": csrf}, headers=elsewhere
        )
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["cache-control"] == "no-store"
    page = await browser.get(f"/orgs/{org}/intake")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    own = await browser.post(
        f"/orgs/{org}/intake",
        data={**INTAKE, "csrf_token": csrf},
        headers={"Origin": "https://console", "Sec-Fetch-Site": "same-origin"},
    )
    assert own.status_code == 303, own.text


async def test_each_role_sees_only_its_fields_on_the_pages(
    start: Start, browser: httpx.AsyncClient, org: str
) -> None:
    await start("intake")
    await signed_in(browser, "ana@example.org")
    csrf = csrf_of(await browser.get(f"/orgs/{org}/intake"))
    for command in (marked_intake("c1"), marked_supporter("s1")):  # sent as a script would
        sent = await browser.post(
            f"/api/orgs/{org}/commands/{command.type_name}",
            json=json.loads(command.model_dump_json()),
            headers={CSRF_HEADER: csrf},
        )
        assert sent.status_code == 200, sent.text
    withheld = [
        MARKERS[k] for k in ("safety", "summary", "preference", "other_factors", "lived", "culture")
    ]
    case = await browser.get(f"/orgs/{org}/cases/c1")
    supporter = await browser.get(f"/orgs/{org}/supporters/s1")
    for page in (case, supporter):
        assert page.status_code == 200, page.text
        assert not [m for m in withheld if m in page.text]
        assert "recorded, for a supervisor to read" in page.text
    assert MARKERS["client_name"] in case.text  # what a coordinator's work needs
    assert MARKERS["access"] in case.text
    assert "ask a supervisor before choosing how to contact the client" in case.text

    await browser.post("/sign-out", data={"csrf_token": csrf_of(case)})
    await signed_in(browser, "sam@example.org")
    case = await browser.get(f"/orgs/{org}/cases/c1")
    supporter = await browser.get(f"/orgs/{org}/supporters/s1")
    for marker in withheld[:4]:
        assert marker in case.text, marker
    for marker in withheld[4:]:
        assert marker in supporter.text, marker
    assert "for a supervisor to read" not in case.text + supporter.text


async def test_stored_and_reflected_text_is_escaped(
    start: Start, browser: httpx.AsyncClient, org: str
) -> None:
    await start("intake")
    script = '"><script>alert(1)</script>'
    await signed_in(browser, "ana@example.org")
    csrf = csrf_of(await browser.get(f"/orgs/{org}/intake"))
    stored = {
        **INTAKE,
        "csrf_token": csrf,
        "case_id": "C-9",
        "client.display_name": f"Mere {script}",
        "client.access_needs": "x",
    }
    refused = await browser.post(f"/orgs/{org}/intake", data=stored)  # shown again, as sent
    assert refused.status_code == 422
    sent = await browser.post(f"/orgs/{org}/intake", data={**stored, "client.access_needs": ""})
    assert sent.status_code == 303, sent.text
    case = await browser.get(sent.headers["location"])
    for page in (refused, case):
        assert "<script>alert" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    await browser.post("/sign-out", data={"csrf_token": csrf_of(case)})
    reflected = [
        await browser.get("/sign-in", params={"next": f"/{script}"}),
        await signed_in(browser, f"x{script}@example.org", password="wrong"),
    ]
    for page in reflected:
        assert "<script>alert" not in page.text, page.text
    assert "&lt;script&gt;" in reflected[1].text
