"""The console in a real browser (Debian's Chromium, headless, driven by Playwright), served
over HTTP by uvicorn as ``alongside up`` serves it, against every service on the suite's
nats-server: a coordinator's whole journey from registering a supporter to the first meeting,
another organisation's coordinator seeing none of it, and axe-core finding no serious or
critical accessibility violation on any page on the way, as wide as a desktop's window and
as a phone's (375 px, where no page may scroll sideways).

Needs ``chromium`` (``apt-get install chromium``) and axe-core (``npm ci --prefix
tests/browser``); ``.ci/run`` installs both and sets ``ALONGSIDE_REQUIRE_BROWSER`` so that,
there, their absence fails instead of skipping.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from playwright.async_api import Browser

from alongside import sample
from alongside.client import AlongsideClient
from runtime.clock import ManualClock
from services.console.labels import plain
from tests.browser.support import Visits, reload_until, sign_in
from tests.conftest import Start
from tests.support import AUCKLAND, accepted, eligible, org_today, wait_for

pytestmark = pytest.mark.nats


async def test_a_coordinators_whole_journey_in_a_browser_and_another_org_sees_none_of_it(
    start: Start,
    console_url: str,
    browser: Browser,
    client: AlongsideClient,
    org: str,
    other_org: str,
    clock: ManualClock,
) -> None:
    await start()
    visits = Visits()
    page = await visits.open(browser)

    await page.goto(f"{console_url}/orgs/{org}")
    assert "/sign-in" in page.url
    await visits.check(page, "sign-in")
    await sign_in(page, "ana@example.org")
    await page.wait_for_url(f"{console_url}/orgs/{org}")

    # A supporter, registered from the form; vetted as intake's evidence arrives.
    await page.click("a:text('Register a supporter')")
    for field, value in {
        "supporter_id": "S-1",
        "profile-display_name": "Tama Supporter",
        "profile-contact-email": "tama@example.org",
        "profile-birth_year": "1975",
        "profile-languages": "en",
        "profile-lived_experience": "tenancy_dispute",
        "profile-region": "auckland",
        "profile-caseload_cap": "3",
        "profile-availability-0-start": "17:00",
        "profile-availability-0-end": "21:00",
    }.items():
        await page.fill(f"#f-{field}", value)
    await page.select_option("#f-profile-availability-0-day", "tue")
    await page.check("input[name='profile.methods'][value='phone']")
    await visits.check(page, "supporter-form")
    await page.click("button:text('Register a supporter')")
    await page.wait_for_url(f"**/orgs/{org}/supporters/S-1?done=RegisterSupporter")
    for evidence in sample.vetting(random.Random(1), "S-1", org_today(clock)):
        await accepted(client, org, evidence)
    await eligible(client, org, 1)
    await page.reload()
    await reload_until(page, "Eligible: <strong>yes</strong>")
    await visits.check(page, "supporter")

    # An intake from the form: first with a mistake, said at the field, then whole.
    await page.click("a:text('New intake')")
    for field, value in {
        "case_id": "C-1",
        "dispute-scheme": "tenancy",
        "dispute-summary": "Bond not returned",
        "client-display_name": "Mere Client",
        "client-contact-email": "mere@example.org",
        "client-birth_year": "1980",
        "client-languages": "en",
        "client-region": "auckland",
        "client-lived_experience_preference-values": "tenancy_dispute",
        "client-availability-0-start": "18:00",
        "client-availability-0-end": "20:00",
        "other_parties-0-party_id": "p1",
        "other_parties-0-name": "Harbour Housing Ltd",
    }.items():
        await page.fill(f"#f-{field}", value)
    await page.select_option("#f-client-availability-0-day", "tue")
    await page.click("button:text('New intake')")  # no way to meet chosen
    assert await page.text_content("#f-client-methods-error") == "required: fill it in"
    await visits.check(page, "intake-form-refused")
    await page.check("input[name='client.methods'][value='phone']")
    await page.click("button:text('New intake')")
    await page.wait_for_url(f"**/orgs/{org}/cases/C-1?done=SubmitIntake")

    # The proposal, explained; the client's choice recorded on their behalf.
    await reload_until(page, "Proposed supporters")
    assert "has been through tenancy dispute" in await page.content()
    await visits.check(page, "case-proposed")
    await page.click("button:text('Record the client')")
    await page.wait_for_url("**?done=AcceptProposal")
    assert "recorded on their behalf by Ana" in await page.content()

    # Both parties consent to the support person: the match is active, a first meeting offered.
    for party in ("client", "p1"):
        await page.select_option("#consent-party", party)
        await page.click("button:text('Record consent')")
        await page.wait_for_url("**?done=GiveConsent&party_id=*")
    await reload_until(page, f"<strong>{plain('active', 'match_status')}</strong>")
    await reload_until(page, plain("initial_meeting", "session_kind"))
    await visits.check(page, "case-active")

    # Both confirm the first meeting; after it is held, the client goes ahead.
    for side in ("client", "supporter"):
        await page.select_option("#confirm-by", side)
        await page.click("button:text-is('Confirm')")
        await page.wait_for_url("**?done=ConfirmMeeting&by=*")
    clock.set(clock() + timedelta(days=10))  # the meeting is within the week after next
    await page.reload()  # a session lasts a working day: signed in again, then back here
    await sign_in(page, "ana@example.org")
    await page.wait_for_url(f"**/orgs/{org}/cases/C-1")
    await page.click("button:text-is('Record')")
    await page.wait_for_url("**?done=RecordAttendance")
    await page.click("button:text('goes ahead')")
    await page.wait_for_url("**?done=GoAhead")
    assert plain("going_ahead", "schedule_status") in await page.content()
    await visits.check(page, "case-going-ahead")
    # Ending the service is asked about first, naming what it ends; going back changes nothing.
    await page.click("button:text('The client refuses the service')")
    assert "ends it" in (await page.text_content(".consequence") or "")
    await visits.check(page, "confirm")
    await page.click("a:text('Go back')")
    await page.wait_for_url(f"**/orgs/{org}/cases/C-1")
    await page.click("a:text('S-1')")
    assert plain("regular", "session_kind") in (
        await page.text_content("section:has(#sessions)") or ""
    )
    await visits.check(page, "supporter-with-sessions")
    await page.go_back()

    # A session too soon: the boundaries refuse it, and the page says which and why.
    soon = (clock() + timedelta(hours=2)).astimezone(AUCKLAND)
    await page.fill("#book-start", f"{soon:%Y-%m-%dT%H:%M}")
    await page.click("button:text-is('Book')")
    refusal = await page.text_content(".problem")
    assert refusal is not None
    assert "Not done: it was refused" in refusal
    assert "More than weekly without agreement:" in refusal  # each rule by its label, and why
    assert "rules.boundaries" not in refusal  # never its code

    await page.click("a:text('Group sessions')")
    await visits.check(page, "groups")
    await page.click("a:text('Today')")
    await visits.check(page, "today")
    await page.click("a:text('Reports')")
    assert "Intakes" in await page.content()
    await visits.check(page, "reports")
    await page.click("a:text('Rules')")
    await visits.check(page, "rules")

    # Another organisation's coordinator: refused the case, and none of it in their lists.
    other = await visits.open(browser)
    await other.goto(f"{console_url}/sign-in")
    await sign_in(other, "oli@example.org")
    await other.wait_for_url(f"{console_url}/orgs/{other_org}")
    assert "C-1" not in await other.content()
    assert "S-1" not in await other.content()
    refused = await other.goto(f"{console_url}/orgs/{org}/cases/C-1")
    assert refused is not None
    assert refused.status == 403
    assert "Mere Client" not in await other.content()
    await visits.check(other, "refused")

    [viewed, *_] = await wait_for(client, org, "CaseViewed")
    assert viewed.data["viewed_by"].startswith("alongside/console/")
    assert len(visits.checked) == 14
    visits.tally("whole-journey")
    assert visits.violations == []
    assert visits.blocked == []  # every page works under the Content-Security-Policy
    assert not visits.too_wide, "\n".join(visits.too_wide)  # none scrolls sideways on a phone
