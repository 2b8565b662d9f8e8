"""The console's pages over HTTP, as a browser without scripts sends them: sign in, the day's
lists, the intake form with the API's field errors, a case and its actions, and nothing of
another organisation's."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import httpx
import pytest

from alongside.client import AlongsideClient
from runtime.clock import ManualClock
from services.console.app import create_app
from services.console.domain import NOT_JUST_NOW, NOT_JUST_NOW_DETAIL
from services.console.gate import ConsoleDeps
from services.console.sessions import CSRF_HEADER
from services.intake.handlers import handlers as intake_handlers
from tests.conftest import CONSOLE_PASSWORD, Start
from tests.flaky import flaky
from tests.integration.test_scheduling_service import active_match, after_meeting
from tests.support import AUCKLAND, MARKERS, marked_intake, marked_supporter, seen, wait_for

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
    # Each named by its input's label, in plain words: never a path, a pattern or pydantic's.
    assert "<strong>Email</strong>: required: fill it in" in refused.text
    assert "<strong>Year of birth</strong>: must be a whole number" in refused.text
    assert 'id="f-client-contact-email-error">required: fill it in' in refused.text
    assert 'id="f-client-birth_year-error">must be a whole number' in refused.text
    assert "client.contact" not in refused.text.split('<form method="post"')[0]
    assert 'value="Mere Client"' in refused.text

    sent = await browser.post(f"/orgs/{org}/intake", data={**INTAKE, "csrf_token": csrf})
    assert sent.status_code == 303, sent.text
    assert sent.headers["location"] == f"/orgs/{org}/cases/C-1?done=SubmitIntake"
    [received] = await wait_for(client, org, "IntakeReceived")
    assert received.data["case_id"] == "C-1"
    case = await browser.get(sent.headers["location"])
    assert case.status_code == 200, case.text
    assert "Mere Client" in case.text
    assert "The intake was recorded: the case is open" in case.text
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
    assert "Not done: it was refused" in consent.text
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


# A form for every command a coordinator gives (issue 28) -----------------------------------


async def _case_page_signed_in(
    browser: httpx.AsyncClient, org: str, email: str = "ana@example.org"
) -> str:
    """Signed in, the intake C-1 sent from its form; the session's token."""
    await signed_in(browser, email)
    csrf = csrf_of(await browser.get(f"/orgs/{org}/intake"))
    sent = await browser.post(f"/orgs/{org}/intake", data={**INTAKE, "csrf_token": csrf})
    assert sent.status_code == 303, sent.text
    return csrf


def _hidden_fields(page: httpx.Response, action: str) -> dict[str, str]:
    """The hidden inputs of the page's form that posts to ``action``."""
    form = re.search(
        rf'<form method="post" action="{re.escape(action)}">(.*?)</form>', page.text, re.DOTALL
    )
    assert form, f"no form posting to {action}"
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form[1]))


async def test_consent_is_withdrawn_and_recorded_again_in_one_click_and_the_stage_moves(
    start: Start, browser: httpx.AsyncClient, client: AlongsideClient, org: str
) -> None:
    await start("intake")
    csrf = await _case_page_signed_in(browser, org)
    act = f"/orgs/{org}/cases/C-1/act/"
    named = await browser.post(
        f"{act}NameSupportPerson",
        data={
            "csrf_token": csrf,
            "support_person.kind": "friend",
            "support_person.display_name": "Hemi Friend",
            "support_person.contact.phone": "021 555 0102",
        },
    )
    assert named.status_code == 303, named.text
    given = {
        "csrf_token": csrf,
        "party_id": "client",
        "stages": ["entry"],
        "given_on": "2026-11-01",
    }
    assert (await browser.post(f"{act}GiveConsent", data=given)).status_code == 303
    await wait_for(client, org, "ConsentGiven")

    withdrawn = await browser.post(
        f"{act}WithdrawConsent",
        data={"csrf_token": csrf, "party_id": "client", "withdrawn_on": "2026-11-02"},
    )
    assert withdrawn.status_code == 303, withdrawn.text
    assert withdrawn.headers["location"].endswith("?done=WithdrawConsent&party_id=client")
    await wait_for(client, org, "ConsentWithdrawn")
    page = await browser.get(withdrawn.headers["location"])
    assert "The consent of the client was withdrawn" in page.text
    assert "WithdrawConsent" not in page.text.split("<h1>", 1)[1].split("</section>", 1)[0]
    again = _hidden_fields(page, f"{act}GiveConsent")
    assert (again["party_id"], again["stages"]) == ("client", "entry")
    sent_again = await browser.post(f"{act}GiveConsent", data=again)
    assert sent_again.status_code == 303, sent_again.text
    assert len(await wait_for(client, org, "ConsentGiven", 2)) == 2

    moved = await browser.post(
        f"{act}ChangeCaseStage", data={"csrf_token": csrf, "stage": "investigation"}
    )
    assert moved.status_code == 303, moved.text
    [changed] = await wait_for(client, org, "CaseStageChanged")
    assert changed.data["to_stage"] == "investigation"
    assert (
        "The case moved to the stage: Investigation"
        in (await browser.get(moved.headers["location"])).text
    )
    refused = await browser.post(f"{act}ChangeCaseStage", data={"csrf_token": csrf, "stage": "x"})
    assert refused.status_code == 422
    assert "<strong>Stage</strong>:" in refused.text  # the field as the form names it


async def test_suspending_a_supporter_is_asked_first_and_reinstating_is_one_click(
    start: Start, browser: httpx.AsyncClient, client: AlongsideClient, org: str
) -> None:
    await start("intake")
    await signed_in(browser, "ana@example.org")
    csrf = csrf_of(await browser.get(f"/orgs/{org}/intake"))
    sent = await browser.post(
        f"/api/orgs/{org}/commands/RegisterSupporter",
        json=json.loads(marked_supporter("s1").model_dump_json()),
        headers={CSRF_HEADER: csrf},
    )
    assert sent.status_code == 200, sent.text
    act = f"/orgs/{org}/supporters/s1/act/"
    suspend = {"csrf_token": csrf, "changes.suspended": "true"}

    asked = await browser.post(f"{act}UpdateSupporter", data=suspend)
    assert asked.status_code == 200, asked.text
    assert f"While suspended, {MARKERS['supporter_name']} is not proposed" in asked.text
    assert 'name="confirmed" value="yes"' in asked.text
    assert 'name="changes.suspended" value="true"' in asked.text
    assert f'href="/orgs/{org}/supporters/s1">Go back' in asked.text
    page = await browser.get(f"/orgs/{org}/supporters/s1")
    assert "<dt>Suspended</dt><dd>no</dd>" in page.text  # asking changed nothing
    assert await seen(client, org, "SupporterUpdated") == []

    done = await browser.post(f"{act}UpdateSupporter", data={**suspend, "confirmed": "yes"})
    assert done.status_code == 303, done.text
    [updated] = await wait_for(client, org, "SupporterUpdated")
    assert updated.data["suspended"] is True
    page = await browser.get(done.headers["location"])
    assert "<dt>Suspended</dt><dd>yes</dd>" in page.text
    assert "The supporter is suspended" in page.text
    reinstate = _hidden_fields(page, f"{act}UpdateSupporter")
    assert reinstate["changes.suspended"] == "false"
    back = await browser.post(f"{act}UpdateSupporter", data=reinstate)  # not asked: reversible
    assert back.status_code == 303, back.text
    [*_, reinstated] = await wait_for(client, org, "SupporterUpdated", 2)
    assert reinstated.data["suspended"] is False

    evidence = await browser.post(
        f"{act}RecordVettingEvidence",
        data={
            "csrf_token": csrf,
            "evidence.kind": "interview",
            "evidence.held_on": "2026-10-01",
            "evidence.passed": "true",
        },
    )
    assert evidence.status_code == 303, evidence.text
    [recorded] = await wait_for(client, org, "VettingEvidenceRecorded")
    assert recorded.data["kind"] == "interview"
    missing = await browser.post(
        f"{act}RecordVettingEvidence",
        data={"csrf_token": csrf, "evidence.kind": "recovery"},
    )
    assert missing.status_code == 422
    assert "<strong>In recovery since</strong>:" in missing.text


async def test_only_a_supervisor_sees_export_and_erasure_and_erasing_is_asked_first(
    start: Start, browser: httpx.AsyncClient, client: AlongsideClient, org: str
) -> None:
    await start("intake")
    csrf = await _case_page_signed_in(browser, org)
    act = f"/orgs/{org}/cases/C-1/act/"
    case = await browser.get(f"/orgs/{org}/cases/C-1")
    assert "Erase the client" not in case.text
    assert f'action="/orgs/{org}/export"' not in case.text
    refused = await browser.post(f"{act}EraseClient", data={"csrf_token": csrf, "confirmed": "yes"})
    assert refused.status_code == 403
    assert "Needs a supervisor" in refused.text
    exported = await browser.post(
        f"/orgs/{org}/export", data={"csrf_token": csrf, "person": "client", "subject_id": "C-1"}
    )
    assert exported.status_code == 403

    await browser.post("/sign-out", data={"csrf_token": csrf})
    await signed_in(browser, "sam@example.org")
    case = await browser.get(f"/orgs/{org}/cases/C-1")
    csrf = csrf_of(case)
    assert "Erase the client" in case.text
    exported = await browser.post(
        f"/orgs/{org}/export", data={"csrf_token": csrf, "person": "client", "subject_id": "C-1"}
    )
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-disposition"] == (
        'attachment; filename="alongside-client-C-1.json"'
    )
    assert exported.json()["subject_id"] == "C-1"

    asked = await browser.post(f"{act}EraseClient", data={"csrf_token": csrf})
    assert asked.status_code == 200, asked.text
    assert "Erasing Mere Client&#39;s case destroys their personal data for good" in asked.text
    assert "This cannot be undone." in asked.text
    assert await seen(client, org, "ClientErased") == []
    erased = await browser.post(f"{act}EraseClient", data={"csrf_token": csrf, "confirmed": "yes"})
    assert erased.status_code == 303, erased.text
    assert erased.headers["location"] == f"/orgs/{org}/done?done=EraseClient"
    await wait_for(client, org, "ClientErased")
    said = await browser.get(erased.headers["location"])
    assert "erased for good" in said.text


async def test_sessions_are_cancelled_booked_again_and_moved_and_a_group_set_up_from_pages(
    start: Start,
    browser: httpx.AsyncClient,
    client: AlongsideClient,
    org: str,
    clock: ManualClock,
) -> None:
    await start()
    supporter_id = await active_match(client, org, clock)
    *_, scheduled = await after_meeting(client, org, clock)
    first, second = scheduled.data["session_ids"][:2]
    starts = [datetime.fromisoformat(s) for s in scheduled.data["starts"][:2]]
    await signed_in(browser, "ana@example.org")
    case = await browser.get(f"/orgs/{org}/cases/c1")
    assert case.status_code == 200, case.text
    csrf = csrf_of(case)
    act = f"/orgs/{org}/cases/c1/act/"

    cancel = {"csrf_token": csrf, "session_id": first, "by": "client"}
    asked = await browser.post(f"{act}CancelSession", data=cancel)
    assert asked.status_code == 200, asked.text
    assert "Cancelling the session means it will not happen" in asked.text
    cancelled = await browser.post(f"{act}CancelSession", data={**cancel, "confirmed": "yes"})
    assert cancelled.status_code == 303, cancelled.text
    await wait_for(client, org, "SessionCancelled")
    page = await browser.get(cancelled.headers["location"])
    assert "The session was cancelled." in page.text
    again = _hidden_fields(page, f"{act}BookSession")
    assert datetime.fromisoformat(again["start"]) == starts[0]
    booked = await browser.post(f"{act}BookSession", data=again)
    assert booked.status_code == 303, booked.text
    [*_, extra] = await wait_for(client, org, "SessionBooked", 2)
    assert datetime.fromisoformat(extra.data["start"]) == starts[0]

    later = (starts[1] + timedelta(hours=1)).astimezone(AUCKLAND).replace(second=0, microsecond=0)
    moved = await browser.post(
        f"{act}RescheduleSession",
        data={"csrf_token": csrf, "session_id": second, "start": f"{later:%Y-%m-%dT%H:%M}"},
    )
    assert moved.status_code == 303, moved.text
    [rescheduled] = await wait_for(client, org, "SessionRescheduled")
    assert datetime.fromisoformat(rescheduled.data["start"]) == later

    groups = await browser.get(f"/orgs/{org}/groups")
    assert groups.status_code == 200, groups.text
    tomorrow = (clock() + timedelta(days=1)).astimezone(AUCKLAND)
    created = await browser.post(
        f"/orgs/{org}/groups/act/CreateGroupSession",
        data={
            "csrf_token": csrf,
            "group_id": "g1",
            "facilitator_id": supporter_id,
            "start": f"{tomorrow:%Y-%m-%dT%H:%M}",
            "minutes": "90",
            "method": "phone",
            "capacity": "6",
        },
    )
    assert created.status_code == 303, created.text
    [group] = await wait_for(client, org, "GroupSessionCreated")
    assert group.data["capacity"] == 6
    said = await browser.get(created.headers["location"])
    assert "The group session g1 was set up." in said.text
    listed = said.text.split('id="coming-groups"')[1]  # the groups page lists it, coming
    assert "<td>g1</td>" in listed
    assert "<td>0 of 6</td>" in listed


async def test_a_coordinator_sets_safe_contact_for_a_client_and_a_party_and_turns_links_off(
    start: Start, browser: httpx.AsyncClient, client: AlongsideClient, org: str
) -> None:
    await start("intake", "notifications")
    csrf = await _case_page_signed_in(browser, org)
    act = f"/orgs/{org}/cases/C-1/act/"
    page = await browser.get(f"/orgs/{org}/cases/C-1")
    assert "How we may contact the client" in page.text
    assert "They have not chosen yet" in page.text
    safe = {
        "csrf_token": csrf,
        "preferences.channel": "email",
        "preferences.do_not_contact": "true",
        "preferences.only_channel": "",
        "preferences.only_within.starts": "",
        "preferences.only_within.ends": "",
    }
    saved = await browser.post(f"{act}SetContactPreferences", data=safe)
    assert saved.status_code == 303, saved.text
    [chosen] = await wait_for(client, org, "ContactPreferencesSet")
    assert chosen.data["person"]["kind"] == "client"
    assert chosen.data["person"]["case_id"] == "C-1"
    assert chosen.data["by"] == "coordinator"
    shown = await browser.get(saved.headers["location"])
    assert "How we may contact them was saved" in shown.text
    assert re.search(r'name="preferences.do_not_contact" value="true" checked', shown.text)

    # The other party, within one window, by text only.
    party = {
        "csrf_token": csrf,
        "person.party_id": "p1",
        "preferences.channel": "sms",
        "preferences.only_channel": "sms",
        "preferences.only_within.starts": "10:00",
        "preferences.only_within.ends": "12:00",
    }
    assert (await browser.post(f"{act}SetContactPreferences", data=party)).status_code == 303
    chosen_for_party = await wait_for(client, org, "ContactPreferencesSet", 2)
    assert chosen_for_party[-1].data["person"]["party_id"] == "p1"
    half_a_window = {**party, "preferences.only_within.ends": ""}
    refused = await browser.post(f"{act}SetContactPreferences", data=half_a_window)
    assert refused.status_code == 422, refused.text

    asked = await browser.post(f"{act}RevokeLinks", data={"csrf_token": csrf})
    assert asked.status_code == 200
    assert "Turn off every link" in asked.text  # asked first
    revoked = await browser.post(f"{act}RevokeLinks", data={"csrf_token": csrf, "confirmed": "yes"})
    assert revoked.status_code == 303, revoked.text
    [gone] = await wait_for(client, org, "LinksRevoked")
    assert gone.data["person"]["case_id"] == "C-1"
