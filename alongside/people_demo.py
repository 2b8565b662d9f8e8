"""The demo's people: mail caught on loopback and kept, each organisation's channels, and
step 12, the whole loop without a coordinator's hand. A client's proposals arrive by
email and she chooses through her link; the other party's consent request arrives and
they consent with a one-time code; the supporter accepts and confirms the first meeting
through theirs; reminders go out. Each page is fetched and each form posted over HTTP,
as a browser would (``urllib``; the pages need no script)."""

from __future__ import annotations

import asyncio
import random
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from datetime import time
from email.message import EmailMessage
from pathlib import Path

from alongside import sample
from alongside.client import AlongsideClient
from alongside.mailcatcher import Caught, MailCatcher
from contracts.intake import Method, Slot, SubmitIntake, Weekday
from contracts.notifications import ChannelSettings, ConfigureNotifications
from contracts.replies import CommandAccepted
from runtime.clock import Clock

Say = Callable[[str], None]
LINK = re.compile(r"https?://[^\s/]+/p/([A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{22})")
CODE = re.compile(r"\b(\d{6})\b")
MAIL_WAIT_S = 30.0


def catcher(clock: Clock) -> MailCatcher:
    """The demo's mail catcher, keeping messages in ``./alongside-demo-mail/<when>``: the
    folder outlives the demo (its state is a temporary folder)."""
    folder = Path.cwd() / "alongside-demo-mail" / clock().strftime("%Y%m%d-%H%M%S")
    caught = MailCatcher(folder)
    caught.start()
    return caught


async def configure(client: AlongsideClient, orgs: Sequence[str], pages: str, say: Say) -> None:
    for org in orgs:
        # A plain sender: a lock screen shows it, so never the scheme's name.
        settings = ChannelSettings(
            from_address="hello@peersupport.example", from_name="Peer support", pages_url=pages
        )
        reply = await client.submit(org, ConfigureNotifications(settings=settings))
        if not isinstance(reply, CommandAccepted):
            raise RuntimeError(f"{org}'s notifications were not configured: {reply}")
    say(f"  {', '.join(orgs)}: messages come from 'Peer support'; people's pages at {pages}")


class Pages:
    """A person's browser: fetch a page, post its forms (with the Origin a browser sends)."""

    def __init__(self, base: str) -> None:
        self.base = base

    async def get(self, path: str) -> str:
        return await asyncio.to_thread(self._open, urllib.request.Request(self.base + path))

    async def post(self, path: str, form: dict[str, str]) -> str:
        request = urllib.request.Request(
            self.base + path,
            data=urllib.parse.urlencode(form).encode(),
            method="POST",
            headers={"Origin": self.base, "Content-Type": "application/x-www-form-urlencoded"},
        )
        return await asyncio.to_thread(self._open, request)

    def _open(self, request: urllib.request.Request) -> str:
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return str(response.read().decode())
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"{request.full_url.split('/p/')[0]}/p/…: {error.code}") from None

    async def act(self, token: str, action: str, page: str, **fields: str) -> str:
        """Post a form of ``page``, as its button would (its nonce from the page)."""
        nonce = re.search(
            rf'action="/p/{re.escape(token)}/act/{action}".*?name="nonce" value="([^"]+)"',
            page,
            re.S,
        )
        if nonce is None:
            raise RuntimeError(f"the page has no form to {action.replace('_', ' ')}")
        return await self.post(f"/p/{token}/act/{action}", {"nonce": nonce.group(1), **fields})


def _text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    return str(body.get_content()) if body is not None else ""


async def mail_to(caught: MailCatcher, address: str, subject: str, since: int = 0) -> Caught:
    """The first message to ``address`` whose subject starts with ``subject``, waiting."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + MAIL_WAIT_S
    while loop.time() < give_up:
        for found in caught.received[since:]:
            if address in found.rcpt_tos and str(found.message["Subject"]).startswith(subject):
                return found
        await asyncio.sleep(0.1)
    raise RuntimeError(f"no message '{subject}' reached {address}")


def token_of(found: Caught) -> str:
    link = LINK.search(_text(found.message))
    if link is None:
        raise RuntimeError("the message carries no personal link")
    return link.group(1)


def _seen(found: Caught) -> str:
    return f"'{found.message['Subject']}' ({found.path.name})"


def _rua(case_id: str) -> SubmitIntake:
    """A client open to any way of meeting, free most days: a first meeting can be found."""
    story = sample.intake(random.Random(case_id), case_id, reachable=True)
    days = [Slot(day=day, start=time(9), end=time(21)) for day in Weekday]
    client = story.client.model_copy(
        update={
            "display_name": "Rua Tane",
            "languages": ["en"],
            "methods": list(Method),
            "gender_preference": None,
            "availability": days,
        }
    )
    return story.model_copy(update={"client": client})


async def show(
    say: Say, client: AlongsideClient, caught: MailCatcher, pages: str, org: str, clock: Clock
) -> None:
    browser = Pages(pages)
    case_id = "case-rua"
    since = len(caught.received)
    story = _rua(case_id)
    party = story.other_parties[0].contact
    respondent = party.email if party is not None else None
    reply = await client.submit(org, story)
    if not isinstance(reply, CommandAccepted):
        raise RuntimeError(f"Rua's intake was refused: {reply}")
    rua = f"{case_id}@clients.example.org"

    # 1. Her proposals arrive by email; she opens her link and chooses.
    proposals = await mail_to(caught, rua, "Your choice is ready", since)
    token = token_of(proposals)
    page = await browser.get(f"/p/{token}")
    offered = re.findall(r'name="supporter" value="([^"]+)"', page)
    if not offered:
        raise RuntimeError("Rua's page offers no supporter to choose")
    say(
        f"  Rua's proposals arrive by email: {_seen(proposals)}, with her personal link "
        f"(/p/<{len(token)} characters>, kept only as a hash); her page explains "
        f"{len(offered)} supporters in plain words"
    )
    supporter_id = offered[0]
    await browser.act(token, "choose", page, supporter=supporter_id)
    say("  she chooses one of them on her page (AcceptProposal, as a coordinator's would be)")

    # 2. The supporter hears, and agrees; every party is asked for consent.
    supporter = f"{supporter_id}@peers.example.org"
    offer = await mail_to(caught, supporter, "Someone has chosen you", since)
    offer_token = token_of(offer)
    await browser.act(offer_token, "accept_client", await browser.get(f"/p/{offer_token}"))
    say(f"  the supporter is told by email {_seen(offer)} and agrees on their page")
    for who, address in (("the other party", respondent), ("Rua", rua)):
        if address is None:
            raise RuntimeError("the other party has no address to be asked at")
        await _consent(say, browser, caught, who, address, since)

    # 3. Everyone agreed: a first meeting is proposed, with a calendar invitation.
    meeting = await mail_to(caught, supporter, "A time for your first meeting", since)
    invite = next(
        (p for p in meeting.message.walk() if p.get_content_type() == "text/calendar"), None
    )
    method = invite.get_param("method") if invite is not None else None
    say(
        f"  every party consented: the first meeting is proposed to both, {_seen(meeting)}, "
        f"with a calendar invitation (iTIP {method})"
    )
    for address in (supporter, rua):
        found = await mail_to(caught, address, "A time for your first meeting", since)
        link = token_of(found)
        page = await browser.get(f"/p/{link}")
        session = re.search(r'name="session" value="([^"]+)"', page)
        if session is None:
            raise RuntimeError("the meeting has nothing to confirm on the page")
        await browser.act(link, "confirm_meeting", page, session=session.group(1))
    booked = await mail_to(caught, supporter, "Your first meeting is booked", since)
    say(
        f"  the supporter and Rua confirm it through their links: booked, {_seen(booked)}, "
        "the invitation updated (same UID, a higher SEQUENCE)"
    )

    # 4. Reminders: the one for step 4's extra session went to both, a day ahead.
    reminders = [f for f in caught.received if str(f.message["Subject"]).startswith("Reminder:")]
    if not reminders:
        raise RuntimeError("no reminder went out")
    say(f"  reminders go out a day ahead: {len(reminders)} so far, e.g. {_seen(reminders[0])}")
    _nothing_told(caught)
    say(
        f"  {len(caught.received)} messages in all, each kept in {caught.folder}; none "
        "names the organisation, the scheme, the dispute or the other party (checked)"
    )


# What no message may say: the organisations, the schemes, the dispute, the other parties.
NEVER_TOLD = (
    "Harbour Ombudsman",
    "harbour-ombudsman",
    "Fair Work",
    "fair-work",
    "Ombudsman",
    "tribunal",
    *(scheme.replace("_", " ") for scheme in sample.SCHEMES),
    *sample.RESPONDENTS,
    "Dispute over",
)


def _nothing_told(caught: MailCatcher) -> None:
    for found in caught.received:
        message = found.message
        shown = f"{message['From']} {message['Subject']} {_text(message)}".lower()
        told = [word for word in NEVER_TOLD if word.lower() in shown]
        if told:
            raise RuntimeError(f"{found.path.name} says {', '.join(told)}")


async def _consent(
    say: Say, browser: Pages, caught: MailCatcher, who: str, address: str, since: int
) -> None:
    asked = await mail_to(caught, address, "Please give your answer", since)
    token = token_of(asked)
    page = await browser.get(f"/p/{token}")
    sent = len(caught.received)
    page = await browser.act(token, "send_code", page)
    code_mail = await mail_to(caught, address, "Your code", sent)
    code = CODE.search(_text(code_mail.message))
    if code is None:
        raise RuntimeError("the code message has no code")
    await browser.act(token, "give_consent", await browser.get(f"/p/{token}"), code=code.group(1))
    say(
        f"  {who} is asked by email {_seen(asked)}; on their page they ask for a one-time "
        f"code (sent to the same address) and give consent with it"
    )
