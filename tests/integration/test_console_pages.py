"""The console's pages over HTTP, as a browser without scripts sends them: sign in, the day's
lists, the intake form with the API's field errors, a case and its actions, and nothing of
another organisation's."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from alongside.client import AlongsideClient
from services.console.app import create_app
from services.console.domain import NOT_JUST_NOW, NOT_JUST_NOW_DETAIL
from services.console.gate import ConsoleDeps
from services.intake.handlers import handlers as intake_handlers
from tests.conftest import CONSOLE_PASSWORD, Start
from tests.flaky import flaky
from tests.support import wait_for

pytestmark = pytest.mark.nats

INTAKE = {
    "case_id": "C-1", "dispute.scheme": "tenancy", "dispute.stage": "entry",
    "dispute.summary": "Bond not returned", "client.display_name": "Mere Client",
    "client.contact.email": "mere@example.org", "client.birth_year": "1980",
    "client.languages": "en, mi", "client.methods": ["phone", "video"],
    "client.region": "auckland", "client.availability.0.day": "tue",
    "client.availability.0.start": "18:00", "client.availability.0.end": "20:00",
    "other_parties.0.party_id": "p1", "other_parties.0.kind": "organisation",
    "other_parties.0.name": "Harbour Housing Ltd", "other_parties.0.role": "respondent",
}  # fmt: skip


@pytest.fixture
async def browser(console_deps: ConsoleDeps) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(console_deps))
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as http:
        yield http


async def signed_in(browser: httpx.AsyncClient, email: str, goto: str = "/") -> httpx.Response:
    return await browser.post("/sign-in", data={"email": email, "password": CONSOLE_PASSWORD,
                                                "next": goto})  # fmt: skip


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
    wrong = await browser.post("/sign-in", data={"email": "ana@example.org", "password": "no"})
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
    consent = await browser.post(f"/orgs/{org}/cases/C-1/act/GiveConsent", data={
        "csrf_token": csrf, "party_id": "p1", "stages": ["entry"], "given_on": "2026-11-01",
    })  # fmt: skip
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
    for path in (f"/orgs/{org}", f"/orgs/{org}/cases/C-1", f"/orgs/{org}/intake",
                 f"/orgs/{org}/reports", f"/orgs/{org}/rules"):  # fmt: skip
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
