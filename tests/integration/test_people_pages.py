"""People's pages behind their personal links, over HTTP as a browser without scripts sends
them, against a real nats-server, every service and a real SMTP server: the link comes in an
email, the page opens it, and each form's command reaches its service as the link's
organisation, once however often the form is sent. What does not open (unknown, tampered,
malformed, expired, turned off) is refused in plain words and changes nothing."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import datetime, time, timedelta

import httpx
import pytest

from alongside.client import AlongsideClient
from alongside.mailcatcher import Caught, MailCatcher
from contracts.intake import (
    CLIENT_PARTY_ID,
    Contact,
    GiveConsent,
    Stage,
    SubmitIntake,
    SupporterChanges,
    UpdateSupporter,
)
from contracts.matching import AcceptProposal
from contracts.notifications import (
    Channel,
    ChannelSettings,
    ConfigureNotifications,
    ContactPreferences,
    LinkOpened,
    OpenLink,
    Person,
    RevokeLinks,
    SetContactPreferences,
    Window,
)
from runtime.clock import ManualClock
from services.console.app import create_app
from services.console.gate import ConsoleDeps
from tests.conftest import Start
from tests.support import accepted, eligible, event_where, intake, org_today, seen, supporter

pytestmark = pytest.mark.nats

PAGES = "http://127.0.0.1:8000"
# A personal link in a message, wherever the pages are served.
LINK = re.compile(r"https?://[^/\s]+/p/([A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{22})")
NONCE = re.compile(r'name="nonce" value="([^"]+)"')
CLIENT_EMAIL = "rua@clients.example.org"
PARTY_EMAIL = "disputes@harbour.example.org"
SUPPORTER_EMAIL = "s1@peers.example.org"
# What a person's page never shows: a coordinator's navigation, ids, field paths.
NEVER = ("Needs attention", "Sign out", "data.", "case_id", "supporter_id", "org-")


@pytest.fixture
async def browser(console_deps: ConsoleDeps) -> AsyncIterator[httpx.AsyncClient]:
    """The console as a person's browser reaches it: at the address their links name, each
    form sent from the page itself (its Origin)."""
    transport = httpx.ASGITransport(app=create_app(console_deps))
    async with httpx.AsyncClient(
        transport=transport, base_url=PAGES, headers={"Origin": PAGES}
    ) as http:
        yield http


def reachable_intake(case_id: str) -> SubmitIntake:
    """An intake whose client and other party both agreed to be contacted by email."""
    command = intake(case_id, ["sm"])
    client = command.client.model_copy(
        update={"contact": Contact(email=CLIENT_EMAIL, may_contact=True)}
    )
    party = command.other_parties[0].model_copy(
        update={"contact": Contact(email=PARTY_EMAIL, may_contact=True)}
    )
    return command.model_copy(update={"client": client, "other_parties": [party]})


async def proposed(
    client: AlongsideClient,
    org: str,
    clock: ManualClock,
    catcher: MailCatcher,
    pages: str = PAGES,
) -> str:
    """Every service running, the organisation's email set up, a supporter (who may be
    emailed) proposed to client ``c1``; the client's link from their email."""
    settings = ChannelSettings(
        from_address="support@peers.example.org", smtp_url=catcher.url, pages_url=pages
    )
    await accepted(client, org, ConfigureNotifications(settings=settings))
    await supporter(client, org, "s1", ["sm"], cap=2, today=org_today(clock))
    contact = Contact(email=SUPPORTER_EMAIL, may_contact=True)
    changes = SupporterChanges(contact=contact)
    await accepted(client, org, UpdateSupporter(supporter_id="s1", changes=changes))
    await eligible(client, org, 1)
    await accepted(client, org, reachable_intake("c1"))
    return token_of(await mail_to(catcher, CLIENT_EMAIL, "Your choice is ready"))


async def mail_to(
    catcher: MailCatcher, address: str, subject: str, nth: int = 1, timeout_s: float = 20
) -> Caught:
    """The ``nth`` message to ``address`` with that subject, once it has arrived."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        found = [
            m
            for m in catcher.received
            if address in m.rcpt_tos and str(m.message["Subject"]) == subject
        ]
        if len(found) >= nth:
            return found[nth - 1]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no message {nth} to {address} saying {subject!r}")
        await asyncio.sleep(0.05)


def text_of(mail: Caught) -> str:
    body = mail.message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def token_of(mail: Caught) -> str:
    found = LINK.search(text_of(mail))
    assert found, "the message carries the person's link"
    return found.group(1)


def said(page: httpx.Response) -> str:
    """The page's text with its line breaks and indents as single spaces, as it reads."""
    return " ".join(page.text.split())


def nonce_of(page: httpx.Response) -> str:
    found = NONCE.search(page.text)
    assert found, "the page has a form"
    return found.group(1)


def plain_page(page: httpx.Response, org: str) -> None:
    """A person's page: nothing of the coordinators', nor the organisation's name."""
    for never in (*NEVER, org, "Test organisation"):
        assert never not in page.text, never
    assert "<title>" in said(page)
    assert "· Peer support</title>" in said(page)


async def count(client: AlongsideClient, org: str, event_type: str) -> int:
    return len(await seen(client, org, event_type))


async def test_a_client_chooses_from_their_page_once_however_often_the_form_is_sent(
    start: Start,
    browser: httpx.AsyncClient,
    client: AlongsideClient,
    org: str,
    clock: ManualClock,
    catcher: MailCatcher,
) -> None:
    await start()
    token = await proposed(client, org, clock, catcher)

    page = await browser.get(f"/p/{token}")
    assert page.status_code == 200, page.text
    plain_page(page, org)
    assert "Choose your supporter" in said(page)
    assert "Speaks Samoan" in said(page)  # a language by its name, never its code
    assert "Meets what you asked for: speaks your language" in said(page)
    assert "Keeps a place for you until" in said(page)
    assert "Cache-Control" in page.headers
    assert page.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    nonce = nonce_of(page)

    # A supporter not offered is refused by the page and nothing is sent.
    other = await browser.post(
        f"/p/{token}/act/choose", data={"nonce": nonce, "supporter": "s-elsewhere"}
    )
    assert other.status_code == 422
    assert "not one we suggested to you" in said(other)
    assert await count(client, org, "ProposalAccepted") == 0

    # Refusing the service is asked first, in words; nothing is sent until confirmed.
    asked = await browser.post(f"/p/{token}/act/refuse_service", data={"nonce": nonce})
    assert asked.status_code == 200
    assert "Do you want to stop peer support?" in said(asked)
    assert 'name="confirmed" value="yes"' in asked.text
    plain_page(asked, org)

    form = {"nonce": nonce, "supporter": "s1"}
    chose = await browser.post(f"/p/{token}/act/choose", data=form)
    assert (chose.status_code, chose.headers["location"]) == (303, f"/p/{token}?done=choose")
    again = await browser.post(f"/p/{token}/act/choose", data=form)  # a replay: the same form
    assert (again.status_code, again.headers["location"]) == (303, f"/p/{token}?done=choose")
    chosen = await event_where(client, org, "ProposalAccepted", lambda d: True)
    assert chosen.data["supporter_id"] == "s1"
    await asyncio.sleep(0.5)
    assert await count(client, org, "ProposalAccepted") == 1, "one choice, however often sent"
    assert await count(client, org, "ServiceRefused") == 0
    used = await seen(client, org, "LinkUsed")  # the access log: each use, never the token
    assert {"view", "choose"} <= {e.data["action"] for e in used}
    assert all(token not in e.model_dump_json() for e in used)

    done = await browser.get(chose.headers["location"])
    assert "Done: you chose your supporter" in said(done)
    assert "We are waiting for everyone to agree" in said(done)
    assert "Ask for a different supporter" in said(done)
    plain_page(done, org)

    # The supporter hears at their own address, with a link of their own.
    offered = await mail_to(catcher, SUPPORTER_EMAIL, "Someone has chosen you as their supporter")
    assert token_of(offered) != token


async def test_a_party_consents_with_a_one_time_code_and_a_wrong_code_changes_nothing(
    start: Start,
    browser: httpx.AsyncClient,
    client: AlongsideClient,
    org: str,
    clock: ManualClock,
    catcher: MailCatcher,
) -> None:
    await start()
    await proposed(client, org, clock, catcher)
    await accepted(client, org, AcceptProposal(case_id="c1", supporter_id="s1"))
    token = token_of(await mail_to(catcher, PARTY_EMAIL, "Please give your answer"))

    page = await browser.get(f"/p/{token}")
    assert page.status_code == 200, page.text
    plain_page(page, org)
    assert "a trained peer supporter" in said(page)
    assert "for the first stage of the matter" in said(page)
    assert "You have not answered yet" in said(page)
    nonce = nonce_of(page)

    # Without a code, nothing is sent.
    none = await browser.post(f"/p/{token}/act/give_consent", data={"nonce": nonce})
    assert none.status_code == 422
    assert "Type the 6-digit code" in said(none)

    sent = await browser.post(f"/p/{token}/act/send_code", data={"nonce": nonce})
    assert (sent.status_code, sent.headers["location"]) == (303, f"/p/{token}?done=send_code")
    code_mail = await mail_to(catcher, PARTY_EMAIL, "Your code")
    code = re.search(r"Your code is ([0-9]{6})", text_of(code_mail))
    assert code is not None
    wrong = f"{(int(code.group(1)) + 1) % 10**6:06d}"
    page = await browser.get(sent.headers["location"])
    assert "Done: we sent you a code" in said(page)
    nonce = nonce_of(page)

    refused = await browser.post(
        f"/p/{token}/act/give_consent", data={"nonce": nonce, "code": wrong}
    )
    assert refused.status_code == 422
    assert "That code is not right" in said(refused)
    assert "data." not in said(refused)
    await asyncio.sleep(0.5)
    assert await count(client, org, "ConsentGiven") == 0, "a wrong code changes nothing"

    form = {"nonce": nonce, "code": code.group(1)}
    given = await browser.post(f"/p/{token}/act/give_consent", data=form)
    assert given.status_code == 303, given.text
    again = await browser.post(f"/p/{token}/act/give_consent", data=form)
    assert again.status_code == 303, again.text  # a replay is answered the same
    consent = await event_where(
        client, org, "ConsentGiven", lambda d: d["party_id"] == "respondent"
    )
    assert consent.data["stages"] == ["entry"]
    await asyncio.sleep(0.5)
    assert await count(client, org, "ConsentGiven") == 1

    page = await browser.get(given.headers["location"])
    assert "Done: your consent is recorded" in said(page)
    assert "You have given your consent for the first stage" in said(page)
    assert "If you withdraw your consent, the support stops at once" in said(page)

    # A code checked minutes ago still holds: withdrawing needs no other.
    assert "no code is needed" in said(page)
    withdrawn = await browser.post(
        f"/p/{token}/act/withdraw_consent", data={"nonce": nonce_of(page)}
    )
    assert withdrawn.status_code == 303, withdrawn.text
    await event_where(client, org, "ConsentWithdrawn", lambda d: d["party_id"] == "respondent")
    page = await browser.get(withdrawn.headers["location"])
    assert "Done: your consent is withdrawn, and the support has stopped" in said(page)


async def test_the_supporter_accepts_confirms_the_first_meeting_and_gets_a_calendar(
    start: Start,
    browser: httpx.AsyncClient,
    client: AlongsideClient,
    org: str,
    clock: ManualClock,
    catcher: MailCatcher,
) -> None:
    await start()
    await proposed(client, org, clock, catcher)
    await accepted(client, org, AcceptProposal(case_id="c1", supporter_id="s1"))
    token = token_of(
        await mail_to(catcher, SUPPORTER_EMAIL, "Someone has chosen you as their supporter")
    )
    page = await browser.get(f"/p/{token}")
    assert page.status_code == 200, page.text
    plain_page(page, org)
    assert "A client chose you" in said(page)
    assert "Speaks</dt><dd>Samoan" in said(page)
    named = re.search(r"Yes, I can support ([^<]+)<", page.text)
    assert named is not None
    nonce = nonce_of(page)
    form = {"nonce": nonce}
    agreed = await browser.post(f"/p/{token}/act/accept_client", data=form)
    assert agreed.status_code == 303, agreed.text
    assert (await browser.post(f"/p/{token}/act/accept_client", data=form)).status_code == 303
    await event_where(client, org, "SupporterAgreed", lambda d: d["case_id"] == "c1")
    await asyncio.sleep(0.5)
    assert await count(client, org, "SupporterAgreed") == 1

    for party in (CLIENT_PARTY_ID, "respondent"):
        consent = GiveConsent(
            case_id="c1", party_id=party, stages=[Stage.ENTRY], given_on=org_today(clock)
        )
        await accepted(client, org, consent)
    proposed_meeting = await event_where(client, org, "InitialMeetingProposed", lambda d: True)
    meeting = proposed_meeting.data["session_id"]
    mine = token_of(await mail_to(catcher, SUPPORTER_EMAIL, "A time for your first meeting"))
    theirs = token_of(await mail_to(catcher, CLIENT_EMAIL, "A time for your first meeting"))

    page = await browser.get(f"/p/{mine}")
    assert "Confirm this meeting" in said(page)
    assert "Add to your calendar" in said(page)
    confirmed = await browser.post(
        f"/p/{mine}/act/confirm_meeting", data={"nonce": nonce_of(page), "session": meeting}
    )
    assert confirmed.status_code == 303, confirmed.text
    page = await browser.get(f"/p/{theirs}")
    assert "Confirm this meeting" in said(page)
    assert "Add to your calendar" not in said(page)  # a supporter's feed
    confirmed = await browser.post(
        f"/p/{theirs}/act/confirm_meeting", data={"nonce": nonce_of(page), "session": meeting}
    )
    assert confirmed.status_code == 303, confirmed.text
    booked = await event_where(client, org, "SessionBooked", lambda d: d["session_id"] == meeting)

    feed = await browser.get(f"/p/{mine}/calendar.ics")
    assert feed.status_code == 200
    assert feed.headers["content-type"].startswith("text/calendar")
    assert f"UID:c1-{meeting}@alongside" in feed.text
    assert "SUMMARY:Peer support: first meeting" in said(feed)
    assert named.group(1) not in feed.text  # a calendar names nobody
    assert (await browser.get(f"/p/{theirs}/calendar.ics")).status_code == 404

    # After the meeting, the supporter records that it took place.
    clock.set(datetime.fromisoformat(booked.data["end"]) + timedelta(minutes=5))
    page = await browser.get(f"/p/{mine}")
    held = await browser.post(
        f"/p/{mine}/act/record_attendance", data={"nonce": nonce_of(page), "session": meeting}
    )
    assert held.status_code == 303, held.text
    await event_where(client, org, "SessionAttended", lambda d: d["session_id"] == meeting)


async def test_links_that_do_not_open_are_refused_plainly_and_change_nothing(
    start: Start,
    browser: httpx.AsyncClient,
    client: AlongsideClient,
    org: str,
    clock: ManualClock,
    catcher: MailCatcher,
) -> None:
    await start()
    token = await proposed(client, org, clock, catcher)
    nonce = nonce_of(await browser.get(f"/p/{token}"))
    choose = {"nonce": nonce, "supporter": "s1"}

    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in (tampered, "not-a-token", token + "x", token.replace(".", "-")):
        page = await browser.get(f"/p/{bad}")
        assert page.status_code == 404, bad
        assert "This link does not work. Ask your coordinator for a new one." in said(page)
        plain_page(page, org)
        sent = await browser.post(f"/p/{bad}/act/choose", data=choose)
        assert sent.status_code == 404

    clock.advance(timedelta(days=15))
    expired = await browser.get(f"/p/{token}")
    assert expired.status_code == 410
    assert "This link has expired. Ask your coordinator for a new one." in said(expired)
    assert (await browser.post(f"/p/{token}/act/choose", data=choose)).status_code == 410
    clock.advance(timedelta(days=-15))

    await accepted(client, org, RevokeLinks(person=Person(kind="client", case_id="c1")))
    revoked = await browser.get(f"/p/{token}")
    assert revoked.status_code == 410
    assert "This link has been turned off" in said(revoked)
    assert (await browser.post(f"/p/{token}/act/choose", data=choose)).status_code == 410
    await asyncio.sleep(0.5)
    assert await count(client, org, "ProposalAccepted") == 0, "nothing changed"


async def test_one_click_unsubscribe_works_without_origin_and_other_posts_need_this_site(
    start: Start,
    console_deps: ConsoleDeps,
    client: AlongsideClient,
    org: str,
    clock: ManualClock,
    catcher: MailCatcher,
) -> None:
    await start()
    token = await proposed(client, org, clock, catcher)
    mail = await mail_to(catcher, CLIENT_EMAIL, "Your choice is ready")
    assert f"/p/{token}/unsubscribe" in str(mail.message["List-Unsubscribe"])
    transport = httpx.ASGITransport(app=create_app(console_deps))
    async with httpx.AsyncClient(transport=transport, base_url=PAGES) as provider:
        # A mail provider's POST (RFC 8058): no Origin, no Referer, no cookie, no nonce.
        clicked = await provider.post(
            f"/p/{token}/unsubscribe",
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert clicked.status_code == 200, clicked.text
        assert "only send you what you must know" in said(clicked)
        set_by = await event_where(
            client, org, "ContactPreferencesSet", lambda d: d["person"]["case_id"] == "c1"
        )
        assert set_by.data["by"] == "person"
        # Sent from a webmail page: still only this one route is exempt.
        elsewhere = {"Origin": "https://mail.example.com", "Sec-Fetch-Site": "cross-site"}
        again = await provider.post(f"/p/{token}/unsubscribe", headers=elsewhere)
        assert again.status_code == 200
        forged = await provider.post(
            f"/p/{token}/act/choose",
            data={"nonce": "a" * 22, "supporter": "s1"},
            headers=elsewhere,
        )
        assert forged.status_code == 403
        shown = await provider.get(f"/p/{token}/unsubscribe")
        assert shown.status_code == 200
        assert 'method="post"' in shown.text
        assert "Only send me what I must know" in said(shown)
        page = await provider.get(f"/p/{token}")
        assert re.search(r'name="essential_only" value="yes"\s+checked', page.text)
    assert await count(client, org, "ProposalAccepted") == 0


async def test_contact_choices_are_saved_and_a_coordinators_safety_limits_kept(
    start: Start,
    browser: httpx.AsyncClient,
    client: AlongsideClient,
    org: str,
    clock: ManualClock,
    catcher: MailCatcher,
) -> None:
    await start()
    token = await proposed(client, org, clock, catcher)
    person = Person(kind="client", case_id="c1")
    limited = ContactPreferences(only_channel=Channel.EMAIL, time_zone="Pacific/Chatham")
    await accepted(client, org, SetContactPreferences(person=person, preferences=limited))
    page = await browser.get(f"/p/{token}")
    assert "only_channel" not in said(page)
    assert "Chatham" not in said(page)
    nonce = nonce_of(page)
    half = {"nonce": nonce, "channel": "email", "quiet_from": "21:00", "quiet_to": ""}
    refused = await browser.post(f"/p/{token}/act/preferences", data=half)
    assert refused.status_code == 422
    assert "Give both times for your quiet hours, or neither" in said(refused)
    chosen = {**half, "quiet_to": "07:30", "essential_only": "yes"}
    saved = await browser.post(f"/p/{token}/act/preferences", data=chosen)
    assert saved.status_code == 303, saved.text
    page = await browser.get(saved.headers["location"])
    assert "Done: your choices about how we contact you are saved" in said(page)
    assert 'value="21:00"' in page.text
    assert 'value="07:30"' in page.text
    [latest] = (await seen(client, org, "ContactPreferencesSet"))[-1:]
    assert latest.data["by"] == "person"
    # What the service holds: the person's choices, the coordinator's limits untouched.
    opened = await client.request(org, OpenLink(token=token))
    assert isinstance(opened, LinkOpened)
    assert opened.preferences == ContactPreferences(
        quiet_hours=Window(starts=time(21), ends=time(7, 30)),
        essential_only=True,
        only_channel=Channel.EMAIL,
        time_zone="Pacific/Chatham",
    )


async def test_too_many_requests_from_one_address_are_answered_429(
    browser: httpx.AsyncClient, console_deps: ConsoleDeps
) -> None:
    most = console_deps.settings.http_person_requests_per_minute
    for _ in range(most):
        assert (await browser.get("/p/not-a-token")).status_code == 404
    refused = await browser.get("/p/not-a-token")
    assert refused.status_code == 429
    assert "Please wait a minute, then try again." in said(refused)
    assert int(refused.headers["Retry-After"]) >= 1
    assert (await browser.get("/sign-in")).status_code == 200  # the console's other pages
