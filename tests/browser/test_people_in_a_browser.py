"""People's pages in a real browser (Debian's Chromium, headless, through Playwright), served
by uvicorn as ``alongside up`` serves the console, every service behind it and a real SMTP
server in front of each person: a client chooses a supporter, another party consents with
the one-time code their email brings, and the supporter accepts the client, confirms the
first meeting and downloads their calendar. Each page is checked with axe-core as wide as a
desktop's window and as a phone's (375 px: nothing scrolls sideways), and each form is
reached and sent from the keyboard. Screenshots: ``person-*.png``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from alongside.client import AlongsideClient
from alongside.mailcatcher import MailCatcher
from contracts.intake import CLIENT_PARTY_ID, GiveConsent, Stage
from contracts.matching import AcceptProposal
from runtime.clock import ManualClock
from tests.browser.support import Visits, tab_to
from tests.conftest import Start
from tests.integration.test_people_pages import (
    CLIENT_EMAIL,
    PARTY_EMAIL,
    SUPPORTER_EMAIL,
    mail_to,
    proposed,
    text_of,
    token_of,
)
from tests.support import accepted, event_where, org_today, wait_for

pytestmark = pytest.mark.nats


async def press(page: Page, form_action: str) -> None:
    """The form's button reached with Tab and sent with Enter, as from a keyboard."""
    await tab_to(page, f"form[action$='/act/{form_action}'] button")
    async with page.expect_navigation():
        await page.keyboard.press("Enter")


def finished(visits: Visits, journey: str) -> None:
    visits.tally(journey)
    assert visits.violations == [], visits.violations
    assert visits.too_wide == [], visits.too_wide
    assert visits.blocked == [], visits.blocked


async def test_a_client_chooses_their_supporter_in_a_browser(
    start: Start,
    console_url: str,
    browser: Browser,
    client: AlongsideClient,
    org: str,
    clock: ManualClock,
    catcher: MailCatcher,
) -> None:
    await start()
    token = await proposed(client, org, clock, catcher, pages=console_url)
    visits = Visits()
    page = await visits.open(browser)

    await page.goto(f"{console_url}/p/{token}")
    assert await page.title() == "Choose your supporter · Peer support"
    await visits.check(page, "person-choose")
    text = await page.inner_text("main")
    assert org not in text
    assert "Speaks Samoan" in text

    await press(page, "choose")
    assert page.url.endswith("?done=choose")
    assert "Done: you chose your supporter" in await page.inner_text("main")
    await visits.check(page, "person-chosen")
    await event_where(client, org, "ProposalAccepted", lambda d: d["case_id"] == "c1")

    # Asking for a different supporter asks first, in words, and sends nothing until sure.
    await press(page, "change_supporter")
    assert "Do you want a different supporter?" in await page.inner_text("main")
    await visits.check(page, "person-confirm")
    await page.click("a:text('Go back, change nothing')")
    await page.wait_for_url(f"{console_url}/p/{token}")

    await page.goto(f"{console_url}/p/not-a-link")
    assert "This link does not work" in await page.inner_text("main")
    await visits.check(page, "person-refused")
    finished(visits, "people-client")


async def test_a_party_consents_with_the_code_from_their_email_in_a_browser(
    start: Start,
    console_url: str,
    browser: Browser,
    client: AlongsideClient,
    org: str,
    clock: ManualClock,
    catcher: MailCatcher,
) -> None:
    await start()
    await proposed(client, org, clock, catcher, pages=console_url)
    await accepted(client, org, AcceptProposal(case_id="c1", supporter_id="s1"))
    token = token_of(await mail_to(catcher, PARTY_EMAIL, "Please give your answer"))
    visits = Visits()
    page = await visits.open(browser)

    await page.goto(f"{console_url}/p/{token}")
    await visits.check(page, "person-consent")
    await press(page, "send_code")
    code = re.search(
        r"Your code is ([0-9]{6})", text_of(await mail_to(catcher, PARTY_EMAIL, "Your code"))
    )
    assert code is not None

    # A wrong code: said plainly, nothing recorded.
    await page.fill("#code", f"{(int(code.group(1)) + 1) % 10**6:06d}")
    await page.click("button:text('Give my consent')")
    assert "That code is not right" in await page.inner_text("main")
    await visits.check(page, "person-consent-wrong-code")

    await tab_to(page, "#code")
    await page.keyboard.type(code.group(1))
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    assert "Done: your consent is recorded" in await page.inner_text("main")
    await visits.check(page, "person-consented")
    await event_where(client, org, "ConsentGiven", lambda d: d["party_id"] == "respondent")

    # The client, on their own page, sets how we contact them.
    mine = token_of(await mail_to(catcher, CLIENT_EMAIL, "Your choice is ready"))
    await page.goto(f"{console_url}/p/{mine}")
    await page.fill("#quiet-from", "21:00")
    await page.fill("#quiet-to", "07:30")
    await page.check("input[name='essential_only']")
    await press(page, "preferences")
    assert "Done: your choices about how we contact you are saved" in await page.inner_text("main")
    await visits.check(page, "person-preferences")
    finished(visits, "people-party")


async def test_the_supporter_accepts_confirms_and_downloads_their_calendar_in_a_browser(
    tmp_path: Path,
    start: Start,
    console_url: str,
    browser: Browser,
    client: AlongsideClient,
    org: str,
    clock: ManualClock,
    catcher: MailCatcher,
) -> None:
    await start()
    await proposed(client, org, clock, catcher, pages=console_url)
    await accepted(client, org, AcceptProposal(case_id="c1", supporter_id="s1"))
    token = token_of(
        await mail_to(catcher, SUPPORTER_EMAIL, "Someone has chosen you as their supporter")
    )
    visits = Visits()
    page = await visits.open(browser)

    await page.goto(f"{console_url}/p/{token}")
    await visits.check(page, "person-offer")
    await press(page, "accept_client")
    assert "Done: thank you for agreeing to support them" in await page.inner_text("main")
    await event_where(client, org, "SupporterAgreed", lambda d: d["case_id"] == "c1")

    for party in (CLIENT_PARTY_ID, "respondent"):
        consent = GiveConsent(
            case_id="c1", party_id=party, stages=[Stage.ENTRY], given_on=org_today(clock)
        )
        await accepted(client, org, consent)
    [offered] = await wait_for(client, org, "InitialMeetingProposed")
    schedule = token_of(await mail_to(catcher, SUPPORTER_EMAIL, "A time for your first meeting"))
    await page.goto(f"{console_url}/p/{schedule}")
    await visits.check(page, "person-sessions")
    await press(page, "confirm_meeting")
    assert "Done: you confirmed the first meeting" in await page.inner_text("main")
    assert "You confirmed it; waiting for the other side" in await page.inner_text("main")

    async with page.expect_download() as downloading:
        await page.click("a:text('Add to your calendar')")
    download = await downloading.value
    assert download.suggested_filename == "peer-support.ics"
    saved = tmp_path / "peer-support.ics"
    await download.save_as(saved)
    feed = saved.read_text()
    assert f"UID:c1-{offered.data['session_id']}@alongside" in feed
    assert "Peer support: first meeting" in feed
    finished(visits, "people-supporter")
