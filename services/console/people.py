"""People's pages: what a person's personal link (``/p/<token>``, sent by the notifications
service) opens, with no account: a client's proposals to choose from, a party's consent, a
client offered to a supporter, sessions, and how each wants to be contacted.

Each request: at most ``http_person_requests_per_minute`` from one address (else 429); the
token's shape checked; the link found in the ``links`` bucket by the token's SHA-256 (which
tells its organisation); then ``OpenLink`` sent as that organisation, whose answer is what
the page shows, or the plain reason it does not open (unknown, expired, turned off). The
console decides nothing about a link: the notifications service does, every time.

A form posts to ``/p/<token>/act/<action>`` with a hidden random nonce; its command is made
from what the link opened (``people_forms``) with an id derived from the link, the action,
its target and the nonce, so a form sent twice is carried out once and answered the same.
There is no cookie to forge a request with: the token in the path is the secret, and the
edge refuses a change sent from another site's page (``edge.SameOrigin``), but for the
one-click unsubscribe a mail provider posts (RFC 8058). The token is never logged.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from nats.errors import Error as NatsError
from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException

from contracts.console import Problem
from contracts.envelope import Command
from contracts.notifications import (
    CheckCode,
    LinkOpened,
    OpenLink,
    PageSession,
    StopNonEssential,
    Token,
)
from contracts.records import PersonalLink
from contracts.replies import CommandAccepted, CommandRejected
from runtime import topology
from runtime.asking import AnyReply
from runtime.logging import get_logger
from services.console import people_words
from services.console.gate import ConsoleDeps, send_as_person
from services.console.pages_shared import render
from services.console.people_calendar import feed
from services.console.people_forms import (
    ACTIONS,
    CODE,
    NEEDS_CODE,
    NONCE,
    Action,
    NotYours,
    command_id,
    session_of,
)
from services.console.throttle import RequestsPerMinute

log = get_logger(__name__)

_TOKEN: TypeAdapter[str] = TypeAdapter(Token)
HEADINGS = {
    "choose_supporter": "Your peer support",
    "consent": "Your consent",
    "supporter_offer": "A client for you",
    "schedule": "Your sessions",
    "preferences": "How we contact you",
}
PAST_SHOWN = 10  # past sessions listed, the latest first


@dataclass(frozen=True)
class Refusal:
    """Why a page or an action did not go ahead, in words: a heading and its reasons."""

    title: str
    reasons: list[str] = field(default_factory=list)


NOT_KNOWN = Refusal(
    "This link does not work", ["This link does not work. Ask your coordinator for a new one."]
)
TOO_MANY = Refusal("Too many requests", ["Please wait a minute, then try again."])
NOT_NOW = Refusal("This page is not available just now", ["Please try again in a few minutes."])
STALE = Refusal("This form is out of date", ["Open your link again, and try once more."])
NOT_HERE = Refusal("There is nothing here", ["This page has nothing at this address."])


@dataclass(frozen=True)
class Arrived:
    token: str
    token_hash: str
    link: PersonalLink

    @property
    def base(self) -> str:
        return f"/p/{self.token}"


def add_people(app: FastAPI, deps: ConsoleDeps) -> None:
    people = People(deps)
    routes: list[tuple[str, str, Callable[..., Awaitable[Response]]]] = [
        ("/p/{token}", "GET", people.page),
        ("/p/{token}/act/{action}", "POST", people.act),
        ("/p/{token}/calendar.ics", "GET", people.calendar),
        ("/p/{token}/unsubscribe", "GET", people.unsubscribe_page),
        ("/p/{token}/unsubscribe", "POST", people.unsubscribe),
    ]
    for path, method, handler in routes:
        app.add_api_route(path, handler, methods=[method], include_in_schema=False)


def refused_page(
    request: Request, refusal: Refusal, status: int, headers: dict[str, str] | None = None
) -> Response:
    page = render(request, "person_refused.html", status, refusal=refusal)
    page.headers.update(headers or {})
    return page


def _well_formed(token: str) -> bool:
    try:
        _TOKEN.validate_python(token)
    except ValidationError:
        return False
    return True


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _reasons(reply: AnyReply | Problem) -> list[str]:
    """A refusal's reasons in words (a rule by its label), never a field's path."""
    if isinstance(reply, CommandRejected) and reply.errors:
        return [_sentence(e.label or e.reason) for e in reply.errors]
    return ["We could not do this just now. Please try again in a few minutes."]


async def _form(request: Request) -> dict[str, str]:
    """A form's fields, the first value of each (a file is not a value)."""
    try:
        sent = await request.form()
    except (HTTPException, ValueError, KeyError, AssertionError):  # not a form at all
        return {}
    return {k: v for k, v in sent.items() if isinstance(v, str)}


class People:
    def __init__(self, deps: ConsoleDeps) -> None:
        self.deps = deps
        self.throttle = RequestsPerMinute(deps.clock, deps.settings.http_person_requests_per_minute)

    async def _arrive(self, request: Request, token: str) -> Arrived | Response:
        """Throttled, well formed and a link we hold: which, and whose; else a refusal."""
        address = request.client.host if request.client else "unknown"
        wait = self.throttle.wait(address)
        if wait is not None:
            log.info("person_page_throttled")
            again = str(int(wait.total_seconds()) + 1)
            return refused_page(request, TOO_MANY, 429, {"Retry-After": again})
        if not _well_formed(token):
            return refused_page(request, NOT_KNOWN, 404)
        token_hash = hashlib.sha256(token.encode()).hexdigest()
        if self.deps.links is None:
            return refused_page(request, NOT_NOW, 503)
        try:
            stored, _ = await self.deps.links.load(topology.LINKS_SCOPE, token_hash)
        except (NatsError, TimeoutError) as error:
            log.warning("person_link_unread", error=type(error).__name__)
            return refused_page(request, NOT_NOW, 503)
        if stored is None:
            return refused_page(request, NOT_KNOWN, 404)
        return Arrived(token, token_hash, stored.record)

    async def _send(
        self, arrived: Arrived, command: Command, command_id: str | None = None
    ) -> AnyReply | Problem:
        link = arrived.link
        return await send_as_person(self.deps, link.org, command, command_id, link.purpose)

    async def _open(self, request: Request, arrived: Arrived, action: str) -> LinkOpened | Response:
        """What the link opens now, as the notifications service says (each use logged
        there by ``action``); else its plain reason, on a page of its own."""
        reply = await self._send(arrived, OpenLink(token=arrived.token, action=action))
        if isinstance(reply, LinkOpened):
            return reply
        if not isinstance(reply, CommandRejected) or not reply.errors:
            return refused_page(request, NOT_NOW, 503)
        reason = reply.errors[0].reason
        gone = "expired" in reason or "turned off" in reason
        title = "This link no longer works" if gone else NOT_KNOWN.title
        return refused_page(request, Refusal(title, [reason]), 410 if gone else 404)

    def _page(
        self,
        request: Request,
        arrived: Arrived,
        opened: LinkOpened,
        status: int = 200,
        said: str | None = None,
        refused: Refusal | None = None,
    ) -> Response:
        zone, now = ZoneInfo(opened.time_zone), self.deps.clock()
        coming = [s for s in opened.sessions if s.end > now]
        past = [s for s in reversed(opened.sessions) if s.end <= now][:PAST_SHOWN]
        webcal = request.url.replace(scheme="webcal", path=f"{arrived.base}/calendar.ics")
        return render(
            request,
            "person_page.html",
            status,
            opened=opened,
            heading=heading(opened),
            zone=zone,
            now=now,
            nonce=secrets.token_urlsafe(16),
            base=arrived.base,
            words=people_words,
            said=said,
            refused=refused,
            coming=coming,
            past=past,
            acts=lambda s: session_actions(s, opened, now),
            webcal=str(webcal.replace(query="")),
        )

    async def page(self, request: Request, token: str) -> Response:
        arrived = await self._arrive(request, token)
        if isinstance(arrived, Response):
            return arrived
        opened = await self._open(request, arrived, "view")
        if isinstance(opened, Response):
            return opened
        done = ACTIONS.get(request.query_params.get("done", ""))
        return self._page(request, arrived, opened, said=done.done if done else None)

    async def act(self, request: Request, token: str, action: str) -> Response:
        """A form's action: its command sent (after a confirmation, or a one-time code,
        where the action asks for one), then the page again saying what was done."""
        arrived = await self._arrive(request, token)
        if isinstance(arrived, Response):
            return arrived
        chosen = ACTIONS.get(action)
        if chosen is None:
            return refused_page(request, NOT_HERE, 404)
        form = await _form(request)
        nonce = form.get("nonce", "")
        if not NONCE.fullmatch(nonce):
            return refused_page(request, STALE, 400)
        opened = await self._open(request, arrived, action)
        if isinstance(opened, Response):
            return opened
        today = self.deps.clock().astimezone(ZoneInfo(opened.time_zone)).date()
        try:
            command = chosen.make(opened, form, token, today)
        except NotYours as why:
            refused = Refusal(chosen.not_done, [str(why)])
            return self._page(request, arrived, opened, 422, refused=refused)
        if chosen.confirm is not None and form.get("confirmed") != "yes":
            return self._confirm(request, arrived, opened, chosen, form)
        if action in NEEDS_CODE and not opened.code_checked:
            wrong = await self._code_checked(arrived, form, nonce)
            if wrong is not None:
                refused = Refusal(chosen.not_done, wrong)
                return self._page(request, arrived, opened, 422, refused=refused)
        target = form.get(chosen.target, "") if chosen.target else ""
        sent_id = command_id(arrived.token_hash, action, target, nonce)
        reply = await self._send(arrived, command, sent_id)
        if isinstance(reply, CommandAccepted):
            return RedirectResponse(f"{arrived.base}?done={action}", status_code=303)
        status = 503 if isinstance(reply, Problem) else 422
        refused = Refusal(chosen.not_done, _reasons(reply))
        return self._page(request, arrived, opened, status, refused=refused)

    async def _code_checked(
        self, arrived: Arrived, form: dict[str, str], nonce: str
    ) -> list[str] | None:
        """None if the code typed is the one sent (used up by the check); else why not."""
        code = form.get("code", "").replace(" ", "")
        if not CODE.fullmatch(code):
            return ["Type the 6-digit code we sent you. If you have none, ask for one first."]
        checking = CheckCode(token=arrived.token, code=code)
        reply = await self._send(
            arrived, checking, command_id(arrived.token_hash, "check_code", "", nonce)
        )
        return None if isinstance(reply, CommandAccepted) else _reasons(reply)

    def _confirm(
        self,
        request: Request,
        arrived: Arrived,
        opened: LinkOpened,
        chosen: Action,
        form: dict[str, str],
    ) -> Response:
        """Asked first: what the action does, in words; nothing is sent until confirmed."""
        about = None
        if chosen.target == "session":
            session = session_of(opened, form)
            zone = ZoneInfo(opened.time_zone)
            about = (
                f"{people_words.session_kind(session)}: {people_words.when(session.start, zone)}"
            )
        # Only what the form's command is made from goes on (nothing else sent is echoed).
        kept = [(k, form.get(k, "")) for k in ("nonce", chosen.target) if k]
        return render(
            request,
            "person_confirm.html",
            confirm=chosen.confirm,
            about=about,
            fields=kept,
            action=request.url.path,
            back=arrived.base,
        )

    async def calendar(self, request: Request, token: str) -> Response:
        """A supporter's sessions as a calendar feed (a file, or subscribed to)."""
        arrived = await self._arrive(request, token)
        if isinstance(arrived, Response):
            return arrived
        opened = await self._open(request, arrived, "calendar")
        if isinstance(opened, Response):
            return opened
        if opened.person.kind != "supporter":
            return refused_page(request, NOT_HERE, 404)
        body = feed(opened.sessions, ZoneInfo(opened.time_zone), self.deps.clock())
        return Response(
            body,
            media_type="text/calendar; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="peer-support.ics"'},
        )

    async def unsubscribe_page(self, request: Request, token: str) -> Response:
        arrived = await self._arrive(request, token)
        if isinstance(arrived, Response):
            return arrived
        nonce = secrets.token_urlsafe(16)
        return render(request, "person_unsubscribe.html", base=arrived.base, nonce=nonce)

    async def unsubscribe(self, request: Request, token: str) -> Response:
        """RFC 8058's one click (``List-Unsubscribe=One-Click``, from a mail provider, no
        Origin), or the button of the page above: only essential messages from now on."""
        arrived = await self._arrive(request, token)
        if isinstance(arrived, Response):
            return arrived
        nonce = (await _form(request)).get("nonce", "")
        if not NONCE.fullmatch(nonce):
            # A mail provider's retries of one click, on one day, count once.
            nonce = f"one-click-{self.deps.clock().astimezone(UTC):%Y%m%d}"
        sent_id = command_id(arrived.token_hash, "unsubscribe", "", nonce)
        reply = await self._send(arrived, StopNonEssential(token=token), sent_id)
        if isinstance(reply, CommandAccepted):
            return render(request, "person_unsubscribed.html")
        if isinstance(reply, CommandRejected) and reply.errors:
            gone = "turned off" in reply.errors[0].reason
            refusal = Refusal(NOT_KNOWN.title, [reply.errors[0].reason])
            return refused_page(request, refusal, 410 if gone else 404)
        return refused_page(request, NOT_NOW, 503)


def heading(opened: LinkOpened) -> str:
    if opened.purpose == "choose_supporter" and opened.offers:
        return "Choose your supporter"
    return HEADINGS[opened.purpose]


def session_actions(
    session: PageSession, opened: LinkOpened, now: datetime
) -> list[tuple[str, str]]:
    """The forms a session offers this person now: (action, button)."""
    acts: list[tuple[str, str]] = []
    if opened.person.kind == "party":
        return acts
    coming = session.start > now
    if (
        session.kind == "initial_meeting"
        and session.status == "proposed"
        and not session.confirmed
        and coming
    ):
        acts.append(("confirm_meeting", "Confirm this meeting"))
    # A first meeting only suggested is confirmed (or left to the coordinator), not cancelled.
    if coming and session.status == "booked":
        acts.append(("cancel_session", "Cancel this session"))
    if opened.person.kind == "supporter" and not coming and session.status == "booked":
        acts.append(("record_attendance", "It took place"))
    return acts
