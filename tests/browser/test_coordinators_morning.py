"""A coordinator's morning in a real browser (Debian's Chromium, through Playwright), against
every service on the suite's nats-server: what needs attention, a client found by name (with
the keyboard alone), her case's timeline read, a missing consent chased and recorded, a
session moved, a supporter suspended (asked first, naming what it does) and reinstated in one
click, and a list exported as a spreadsheet. Another organisation's coordinator finds none of
it. Every page on the way is checked with axe-core, as wide as a desktop and as a phone
(``support.Visits``).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser

from alongside.client import AlongsideClient
from contracts.intake import CLIENT_PARTY_ID, GiveConsent, Stage
from contracts.matching import AcceptProposal
from runtime.clock import ManualClock
from tests.browser.support import Visits, sign_in, tab_to
from tests.conftest import Start
from tests.integration.test_scheduling_service import active_match, after_meeting
from tests.support import AUCKLAND, accepted, intake, org_today, wait_for

pytestmark = pytest.mark.nats

NAME = "Mere Morning"


async def a_case_waiting_on_consent(client: AlongsideClient, org: str, clock: ManualClock) -> None:
    """C-8, Mere Morning's: she chose her supporter and consented; the other party has not."""
    command = intake("C-8", ["sm"])
    named = command.client.model_copy(update={"display_name": NAME})
    await accepted(client, org, command.model_copy(update={"client": named}))
    proposed = [
        p for p in await wait_for(client, org, "MatchProposed", 2) if p.data["case_id"] == "C-8"
    ]
    chosen = proposed[0].data["proposals"][0]["supporter_id"]
    await accepted(client, org, AcceptProposal(case_id="C-8", supporter_id=chosen))
    await wait_for(client, org, "SupportPersonNamed", 2)  # C-7's, then C-8's
    await accepted(
        client,
        org,
        GiveConsent(
            case_id="C-8", party_id=CLIENT_PARTY_ID, stages=[Stage.ENTRY], given_on=org_today(clock)
        ),
    )


async def test_a_coordinators_morning_in_a_browser_and_another_org_finds_none_of_it(
    start: Start,
    console_url: str,
    browser: Browser,
    client: AlongsideClient,
    org: str,
    other_org: str,
    clock: ManualClock,
    tmp_path: Path,
) -> None:
    await start()
    supporter_id = await active_match(client, org, clock, "C-7")  # C-7: going ahead
    *_, scheduled = await after_meeting(client, org, clock, "C-7")
    await a_case_waiting_on_consent(client, org, clock)
    visits = Visits()
    page = await visits.open(browser)
    await page.goto(f"{console_url}/orgs/{org}")
    await sign_in(page, "ana@example.org")
    await page.wait_for_url(f"{console_url}/orgs/{org}")

    # What needs her first.
    await page.click("nav a:text-is('Needs attention')")
    assert "Needs your attention" in await page.content()
    await visits.check(page, "attention")

    # The client found by part of her name, with the keyboard alone; her case's timeline,
    # in plain words.
    await tab_to(page, "nav a[href$='/search']")
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"**/orgs/{org}/search")
    await tab_to(page, "#f-q")
    await page.keyboard.type("mere morn")
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"**/orgs/{org}/search?q=mere*")
    assert NAME in await page.content()
    await visits.check(page, "search")
    await tab_to(page, f"a[href='/orgs/{org}/cases/C-8']")
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"**/orgs/{org}/cases/C-8")
    timeline = await page.text_content("section:has(h2:text('What happened'))") or ""
    assert "consent" in timeline.lower()
    rows = await page.locator("section:has(h2:text('What happened')) tbody tr").count()
    assert rows >= 3  # the intake, the proposal, the choice, the client's consent...
    assert "rules." not in timeline  # words, never codes
    await visits.check(page, "case-timeline")

    # The missing consent chased: the other party said yes on the phone, recorded for them.
    await page.select_option("#consent-party", "respondent")
    await page.click("button:text('Record consent')")
    await page.wait_for_url("**/cases/C-8?done=GiveConsent*")
    assert "was recorded" in (await page.text_content(".done") or "")

    # C-7's last session moved two hours later (a day either way would be refused: nearer
    # than a week to the one before, or after the funded service ends).
    await page.click("nav a:text-is('Find')")
    await page.fill("#f-q", "C-7")
    await page.click("button:text-is('Find')")
    await page.click("a:text-is('C-7')")
    await page.wait_for_url(f"**/orgs/{org}/cases/C-7")
    last_id, last_start = scheduled.data["session_ids"][-1], scheduled.data["starts"][-1]
    moved_to = (datetime.fromisoformat(last_start) + timedelta(hours=2)).astimezone(AUCKLAND)
    await page.select_option("#move-session", last_id)
    await page.fill("#move-start", f"{moved_to:%Y-%m-%dT%H:%M}")
    await page.click("button:text('Move the session')")
    await page.wait_for_url("**/cases/C-7?done=RescheduleSession*")
    assert "The session was moved" in (await page.text_content(".done") or "")
    await wait_for(client, org, "SessionRescheduled")

    # Their supporter suspended: asked first, naming what it does; reinstated in one click.
    await page.click(f"a:text-is('{supporter_id}')")
    await page.wait_for_url(f"**/supporters/{supporter_id}")
    await page.click("button:text-is('Suspend')")
    consequence = await page.text_content(".consequence") or ""
    assert "not proposed to any client" in consequence
    await visits.check(page, "confirm-suspend")
    assert not await wait_for(client, org, "SupporterUpdated", 0)  # asking changed nothing
    await page.click("form button:text-is('Suspend')")
    await page.wait_for_url(f"**/supporters/{supporter_id}?done=UpdateSupporter*")
    [suspended] = await wait_for(client, org, "SupporterUpdated")
    assert suspended.data["suspended"] is True
    await page.click(".done button:text-is('Reinstate')")
    await page.wait_for_url(f"**/supporters/{supporter_id}?done=UpdateSupporter*")
    [_, reinstated] = await wait_for(client, org, "SupporterUpdated", 2)
    assert reinstated.data["suspended"] is False

    # The lists, filtered: C-7's and C-8's matches wait for her review since their supporter
    # was suspended (reinstating them does not resume them: she decides). As a spreadsheet.
    await page.click("nav a:text-is('Cases')")
    await page.select_option("#f-state", "paused")
    await page.click("button:text-is('Show')")
    assert "C-7" in await page.content()
    await visits.check(page, "cases")
    async with page.expect_download() as downloading:
        await page.click("a:text('Download the whole list')")
    saved = tmp_path / "cases.csv"
    await (await downloading.value).save_as(saved)
    table = list(csv.DictReader(io.StringIO(saved.read_text())))
    assert [(row["case_id"], row["state"], row["waits_on"]) for row in table] == [
        ("C-7", "paused", "review"),
        ("C-8", "paused", "review"),
    ]
    await page.click("nav a:text-is('Supporters')")
    await visits.check(page, "supporters")
    await page.click("nav a:text-is('Proposals')")
    await visits.check(page, "proposals")

    # Another organisation's coordinator finds none of it, and is refused its lists.
    other = await visits.open(browser)
    await other.goto(f"{console_url}/sign-in")
    await sign_in(other, "oli@example.org")
    await other.wait_for_url(f"{console_url}/orgs/{other_org}")
    await other.goto(f"{console_url}/orgs/{other_org}/search?q=mere")
    assert NAME not in await other.content()
    assert "No one was found" in await other.content()
    for path in ("search?q=mere", "cases", "supporters", "attention"):
        refused = await other.goto(f"{console_url}/orgs/{org}/{path}")
        assert refused is not None
        assert refused.status == 403, path
    exported = await other.request.get(f"{console_url}/api/orgs/{org}/cases.csv")
    assert exported.status == 403
    await other.goto(f"{console_url}/orgs/{other_org}/attention")
    assert "C-8" not in await other.content()

    assert len(visits.checked) == 7
    visits.tally("morning")
    assert visits.violations == []
    assert visits.blocked == []
    assert not visits.too_wide, "\n".join(visits.too_wide)
