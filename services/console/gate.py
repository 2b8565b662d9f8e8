"""Who is asking, and sending as whom: the signed-in account behind a request (its session
cookie), and a command sent as an organisation in that account's name, its answer limited to
what the account's role may read (``fields``). Shared by the API and the pages."""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from nats.errors import Error as NatsError

from contracts.console import Problem
from contracts.envelope import Command, new_id
from contracts.records import ConsoleAccount, PersonalLink, PersonContact
from contracts.replies import CommandUnavailable
from runtime.asking import AnyReply
from runtime.clock import Clock
from runtime.logging import get_logger
from runtime.settings import Settings
from runtime.store import RecordStore
from services.console import fields
from services.console.accounts import Accounts
from services.console.domain import try_again, unavailable
from services.console.orgs import PERSON_SOURCE, SOURCE, NoCredential, OrgConnections
from services.console.sessions import COOKIE, LASTS, Session, Sessions, secure_name
from services.console.throttle import SignInThrottle

log = get_logger(__name__)

PROBLEM = "application/problem+json"
# A command its service could not carry out just now is sent again (the same id) this many
# times in all, after the wait each reply asks for, while that ends within ``AGAIN_FOR_S``
# (a person waits for the answer); then a 503 with Retry-After.
ATTEMPTS = 3
AGAIN_FOR_S = 3.0


@dataclass(frozen=True)
class ConsoleDeps:
    accounts: Accounts
    sessions: Sessions
    orgs: OrgConnections
    settings: Settings
    clock: Clock
    throttle: SignInThrottle
    # People's personal links (read only: the console finds a link's organisation by the
    # token's hash; the notifications service decides what it opens). None: no people's pages.
    links: RecordStore[PersonalLink] | None = None
    # How each person may be contacted (read only; the notifications service keeps it).
    contacts: RecordStore[PersonContact] | None = None


def problem(found: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    """Problem details as HTTP; a 503 says when to try again."""
    if found.retry_after_s is not None:
        headers = {"Retry-After": str(found.retry_after_s), **(headers or {})}
    return JSONResponse(
        found.model_dump(mode="json"), status_code=found.status, media_type=PROBLEM, headers=headers
    )


async def signing_in(
    deps: ConsoleDeps, email: str, password: str, request: Request
) -> ConsoleAccount | Problem:
    """The account, if the password is right and this email and address are not waiting
    after too many wrong ones (``throttle``); else why not."""
    address = request.client.host if request.client else "unknown"
    wait = deps.throttle.wait(email, address)
    if wait is not None:
        log.info("console_sign_in_throttled")
        seconds = int(wait.total_seconds()) + 1
        return Problem(
            title="Too many wrong passwords",
            status=429,
            detail=f"try again in {seconds} seconds",
            retry_after_s=seconds,
        )
    account = await deps.accounts.signing_in(email, password)
    if account is None:
        deps.throttle.failed(email, address)
        log.info("console_sign_in_refused")
        return Problem(
            title="Not signed in",
            status=401,
            detail="that email and password do not match an account",
        )
    deps.throttle.succeeded(email, address)
    return account


def secure(deps: ConsoleDeps, request: Request) -> bool:
    """Whether this request's cookies are Secure: as set (``http_secure_cookies``), else
    always but over plain HTTP to a loopback address (development on one's own machine)."""
    if deps.settings.http_secure_cookies is not None:
        return deps.settings.http_secure_cookies
    return not (request.url.scheme == "http" and _loopback(request.url.hostname or ""))


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def cookie_name(deps: ConsoleDeps, request: Request, name: str = COOKIE) -> str:
    return secure_name(name, secure(deps, request))


def set_cookie(
    deps: ConsoleDeps, request: Request, response: Response, name: str, value: str, max_age: int
) -> None:
    """HTTP-only, same-site strict, for the whole site; Secure as ``secure`` says."""
    response.set_cookie(
        cookie_name(deps, request, name),
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure(deps, request),
    )


def delete_cookie(deps: ConsoleDeps, request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        cookie_name(deps, request, name),
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure(deps, request),
    )


async def start_session(
    deps: ConsoleDeps, request: Request, response: Response, account: ConsoleAccount
) -> Session:
    """A new session for the account, its cookie set on ``response``; a session the browser
    held before ends (a session id is never carried over a sign-in)."""
    before = await deps.sessions.read(request.cookies.get(cookie_name(deps, request)))
    if before is not None:
        await deps.sessions.end(before)
    value, session = await deps.sessions.start(account.account_id)
    set_cookie(deps, request, response, COOKIE, value, int(LASTS.total_seconds()))
    return session


async def end_session(
    deps: ConsoleDeps, request: Request, response: Response, session: Session | None
) -> None:
    """Signed out: the session ends on the server (a copy of the cookie opens nothing), and
    the browser forgets the cookie."""
    if session is not None:
        await deps.sessions.end(session)
        log.info("console_signed_out", account_id=session.account_id)
    delete_cookie(deps, request, response, COOKIE)


async def signed_in(deps: ConsoleDeps, request: Request) -> tuple[Session, ConsoleAccount] | None:
    session = await deps.sessions.read(request.cookies.get(cookie_name(deps, request)))
    if session is None:
        return None
    account = await deps.accounts.get(session.account_id)
    # A disabled account's sessions end with it.
    return (session, account) if account and account.status == "active" else None


async def send_as(
    deps: ConsoleDeps,
    org: str,
    command: Command,
    command_id: str | None,
    account: ConsoleAccount,
) -> AnyReply | Problem:
    """The command sent as ``org``, in the account's name (its source), and the service's
    reply, limited to what the account's role there may read (``fields``); problem details
    when it could not be sent, was not answered, or could not be carried out just now even
    when sent again (with the same id: ``command_id``, else one made here, so it takes
    effect once)."""
    source = f"{SOURCE}/{account.account_id}"
    reply = await _send(deps, org, command, command_id, source, {"account_id": account.account_id})
    if isinstance(reply, Problem):
        return reply
    limited: AnyReply | Problem = fields.limited(reply, account.roles.get(org))
    return limited


async def send_as_person(
    deps: ConsoleDeps, org: str, command: Command, command_id: str | None, purpose: str
) -> AnyReply | Problem:
    """The command sent as ``org`` for a person acting through their own link (no account:
    the source says it came from a person's page, and for which purpose), sent again as
    ``send_as`` does. The reply is what the link already allows them to see."""
    source = f"{PERSON_SOURCE}/{purpose}"
    return await _send(deps, org, command, command_id, source, {"purpose": purpose})


async def _send(
    deps: ConsoleDeps,
    org: str,
    command: Command,
    command_id: str | None,
    source: str,
    said: dict[str, str],
) -> AnyReply | Problem:
    """The one way the console sends a command (``said``: who, for the log, never a
    person's data)."""
    command_id = command_id or new_id()
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + AGAIN_FOR_S
    attempt = 0
    while True:
        attempt += 1
        try:
            asking = await deps.orgs.asking(org)
            reply = await asking.any(org, command, command_id, source=source)
        except NoCredential as missing:
            return Problem(title="Organisation not served here", status=503, detail=str(missing))
        except (NatsError, TimeoutError) as error:
            log.warning(
                "console_command_unanswered",
                org=org,
                command_type=command.type_name,
                error=type(error).__name__,
            )
            await deps.orgs.failed(org)
            return try_again(f"{command.service} did not answer", command_id)
        log.info(
            "console_command", org=org, command_type=command.type_name, status=reply.status, **said
        )
        if not isinstance(reply, CommandUnavailable):
            return reply
        wait = reply.retry_after_s
        if attempt == ATTEMPTS or loop.time() + wait > give_up_at:
            return unavailable(reply)
        await asyncio.sleep(wait)
