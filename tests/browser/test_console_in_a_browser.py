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

import asyncio
import os
import random
import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright

from alongside import sample
from alongside.client import AlongsideClient
from runtime.clock import ManualClock
from services.console.app import create_app, serve
from services.console.gate import ConsoleDeps
from tests.conftest import CONSOLE_PASSWORD, Start
from tests.support import AUCKLAND, accepted, eligible, free_port, org_today, wait_for

pytestmark = pytest.mark.nats

HERE = Path(__file__).parent
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = os.environ.get("ALONGSIDE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(
    os.environ.get("ALONGSIDE_SCREENSHOTS", HERE.parents[1] / "build" / "screenshots")
)


PHONE_WIDTH = 375
# The page's width past the window, and the innermost elements reaching past its right edge.
WIDER_THAN_THE_WINDOW = """() => {
  const root = document.documentElement;
  if (root.scrollWidth <= window.innerWidth) return [];
  const out = [...document.querySelectorAll('body *')].filter(e => {
    const r = e.getBoundingClientRect();
    return r.right > window.innerWidth + 1 && ![...e.children].some(
      c => c.getBoundingClientRect().right > window.innerWidth + 1);
  });
  return [`${root.scrollWidth}px`, ...out.slice(0, 4).map(
    e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + ' "' +
      (e.textContent || '').trim().slice(0, 30) + '"')];
}"""


@pytest.fixture
def needs_a_browser() -> None:
    missing = [
        what
        for what, there in (("chromium", Path(CHROMIUM).exists()), ("axe-core", AXE.exists()))
        if not there
    ]
    if missing:
        why = f"{' and '.join(missing)} not installed (apt-get install chromium; npm ci --prefix tests/browser)"
        if os.environ.get("ALONGSIDE_REQUIRE_BROWSER"):
            pytest.fail(why)
        # The quick start needs only Python: without a browser this test cannot run, so it
        # skips there; .ci/run installs both and requires it.
        pytest.skip(why)


@pytest.fixture
async def console_url(console_deps: ConsoleDeps, needs_a_browser: None) -> AsyncIterator[str]:
    port = free_port()
    serving = asyncio.create_task(serve(create_app(console_deps), "127.0.0.1", port))
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as http:
        for _ in range(100):
            try:
                await http.get(f"{url}/sign-in")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    yield url
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving


@pytest.fixture
async def browser(needs_a_browser: None) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        # Playwright's own flags keep it offline (no sandbox as root, no background traffic).
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        await launched.close()


class Visits:
    """Each page seen: checked with axe-core, and photographed for docs/."""

    def __init__(self) -> None:
        self.violations: list[str] = []
        self.checked: list[str] = []
        self.blocked: list[str] = []  # what the console's Content-Security-Policy refused
        self.too_wide: list[str] = []  # pages that scroll sideways on a phone
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    async def open(self, browser: Browser) -> Page:
        """A page of a new browser context, with axe-core in every document (an init script,
        which the console's Content-Security-Policy does not apply to: it allows no inline
        script, so ``add_script_tag`` would be refused)."""
        context = await browser.new_context()
        await context.add_init_script(path=str(AXE))
        page = await context.new_page()
        page.on(
            "console",
            lambda message: (
                self.blocked.append(message.text)
                if "Content Security Policy" in message.text
                else None
            ),
        )
        return page

    async def check(self, page: Page, name: str) -> None:
        await self.axe(page, name)
        self.checked.append(name)
        await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        await self.on_a_phone(page, name)

    async def axe(self, page: Page, name: str) -> None:
        found: dict[str, Any] = await page.evaluate(
            "() => axe.run(document, {resultTypes: ['violations']})"
        )
        assert found["passes"], f"axe-core checked nothing on {name}"
        for violation in found["violations"]:
            if violation["impact"] in ("serious", "critical"):
                targets = [node["target"] for node in violation["nodes"]][:3]
                self.violations.append(
                    f"{name}: {violation['id']} ({violation['impact']}) "
                    f"{violation['help']} at {targets}"
                )

    async def on_a_phone(self, page: Page, name: str) -> None:
        """The same page 375 px wide (a small phone) scrolls only down, never sideways; what
        pokes out is named. The window's size is put back after."""
        size = page.viewport_size
        await page.set_viewport_size({"width": PHONE_WIDTH, "height": 800})
        wider: list[str] = await page.evaluate(WIDER_THAN_THE_WINDOW)
        if wider:
            self.too_wide.append(f"{name}: {', '.join(wider)}")
        await self.axe(page, f"{name} on a phone")
        await page.screenshot(path=str(SCREENSHOTS / f"{name}-phone.png"), full_page=True)
        if size is not None:
            await page.set_viewport_size(size)


async def sign_in(page: Page, email: str) -> None:
    """On the sign-in page: sign in, and be taken where the page was asked for."""
    assert "/sign-in" in page.url
    await page.fill("#email", email)
    await page.fill("#password", CONSOLE_PASSWORD)
    await page.click("button:text('Sign in')")


async def reload_until(page: Page, text: str, timeout_s: float = 20) -> None:
    """The page again until it says ``text``: services answer at their own pace."""
    for _ in range(int(timeout_s * 4)):
        if text in await page.content():
            return
        await asyncio.sleep(0.25)
        await page.reload()
    raise AssertionError(f"{page.url} never said {text!r}")


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
    assert await page.text_content("#f-client-methods-error") == "Field required"
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
        await page.wait_for_url("**?done=GiveConsent")
    await reload_until(page, "<strong>active</strong>")
    await reload_until(page, "initial_meeting")
    await visits.check(page, "case-active")

    # Both confirm the first meeting; after it is held, the client goes ahead.
    for side in ("client", "supporter"):
        await page.select_option("#confirm-by", side)
        await page.click("button:text-is('Confirm')")
        await page.wait_for_url("**?done=ConfirmMeeting")
    clock.set(clock() + timedelta(days=10))  # the meeting is within the week after next
    await page.reload()  # a session lasts a working day: signed in again, then back here
    await sign_in(page, "ana@example.org")
    await page.wait_for_url(f"**/orgs/{org}/cases/C-1")
    await page.click("button:text-is('Record')")
    await page.wait_for_url("**?done=RecordAttendance")
    await page.click("button:text('goes ahead')")
    await page.wait_for_url("**?done=GoAhead")
    assert "going_ahead" in await page.content()
    await visits.check(page, "case-going-ahead")
    await page.click("a:text('S-1')")
    assert "regular" in (await page.text_content("section:has(#sessions)") or "")
    await visits.check(page, "supporter-with-sessions")
    await page.go_back()

    # A session too soon: the boundaries refuse it, and the page says which and why.
    soon = (clock() + timedelta(hours=2)).astimezone(AUCKLAND)
    await page.fill("#book-start", f"{soon:%Y-%m-%dT%H:%M}")
    await page.click("button:text-is('Book')")
    refusal = await page.text_content(".problem")
    assert refusal is not None
    assert "BookSession refused" in refusal
    assert "rules.boundaries.more-than-weekly-without-agreement:" in refusal  # each rule, why

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
    assert len(visits.checked) == 12
    assert visits.violations == []
    assert visits.blocked == []  # every page works under the Content-Security-Policy
    assert not visits.too_wide, "\n".join(visits.too_wide)  # none scrolls sideways on a phone
