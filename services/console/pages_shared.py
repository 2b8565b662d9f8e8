"""What every console page uses: the templates, a page or a refusal rendered, the signed-in
check, the organisation's overview, and a form's command sent."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from fastapi.templating import Jinja2Templates
from nats.errors import Error as NatsError
from pydantic import ValidationError

from contracts import catalogue, subjects
from contracts.console import Problem
from contracts.envelope import Command
from contracts.records import ConsoleAccount, explanation
from contracts.replies import CommandRejected, FieldError, field_errors
from services.console import domain
from services.console.gate import ConsoleDeps, send_as, signed_in
from services.console.labels import plain_filter
from services.console.orgs import NoCredential
from services.console.overview import Overview
from services.console.sessions import Session

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.globals["explanation"] = explanation
templates.env.filters["plain"] = plain_filter
templates.env.filters["when"] = lambda at, zone: at.astimezone(zone).strftime("%a %d %b %Y, %H:%M")

# Each path parameter a page takes, and what it must look like.
_PATHS = {
    "org": re.compile(subjects.ORG_PATTERN),
    "case_id": re.compile(subjects.ID_PATTERN),
    "supporter_id": re.compile(subjects.ID_PATTERN),
    "type_name": re.compile(r"^[A-Za-z]{1,64}$"),
}
Page = Callable[[Request, ConsoleAccount, Session], Awaitable[Response]]


def render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    return templates.TemplateResponse(request, name, context, status_code=status)


def problem_page(
    request: Request, problem: Problem, org: str | None, account: ConsoleAccount | None
) -> Response:
    return render(
        request, "problem.html", problem.status, problem=problem, org=org, account=account
    )


def not_allowed(request: Request, account: ConsoleAccount, what: str) -> Response | None:
    """A refusal page if the account may not do ``what`` in the page's organisation."""
    refused = domain.refusal(account, request.path_params["org"], what)
    return None if refused is None else problem_page(request, refused, None, account)


def signed(deps: ConsoleDeps, handler: Page) -> Callable[[Request], Awaitable[Response]]:
    """Signed in, or sent to sign in and brought back."""

    async def signed(request: Request) -> Response:
        odd = [k for k, v in request.path_params.items() if not _PATHS[k].match(v)]
        if odd:
            missing = Problem(
                title="Not found", status=404, detail=f"{odd[0]} is not one this console knows"
            )
            return problem_page(request, missing, None, None)
        found = await signed_in(deps, request)
        if found is None:
            back = quote(request.url.path)
            return RedirectResponse(f"/sign-in?next={back}", status_code=303)
        session, account = found
        return await handler(request, account, session)

    return signed


async def overview_of(deps: ConsoleDeps, org: str) -> Overview | Problem:
    try:
        return await deps.orgs.overview(org)
    except NoCredential as missing:
        return Problem(title="Organisation not served here", status=503, detail=str(missing))
    except (NatsError, TimeoutError) as error:
        await deps.orgs.failed(org)
        unread = f"the lists could not be read ({type(error).__name__})"
        return domain.try_again(unread)


async def zone_of(deps: ConsoleDeps, org: str) -> ZoneInfo:
    found = await overview_of(deps, org)
    return found.zone if isinstance(found, Overview) else ZoneInfo("UTC")


async def send_command(
    deps: ConsoleDeps,
    org: str,
    type_name: str,
    body: dict[str, Any],
    account: ConsoleAccount,
    command_id: str | None = None,
) -> Problem | None:
    """The command from a form, validated by its own model (the API's field errors), sent
    as the organisation in the account's name (with ``command_id``, if the form gave one:
    sent twice, it takes effect once); the refusal, if any."""
    try:
        command: Command = catalogue.COMMANDS[type_name].model_validate(body)
    except ValidationError as error:
        errors = [FieldError(field=e.field, reason=e.reason) for e in field_errors(error)]
        return Problem(
            title=domain.REFUSED,
            status=422,
            errors=errors,
            detail="; ".join(f"{e.field}: {e.reason}" for e in errors),
        )
    reply = await send_as(deps, org, command, command_id, account)
    if isinstance(reply, Problem):
        return reply
    if isinstance(reply, CommandRejected):
        return domain.problem_of(reply)
    return None


def status_of(refused: Problem | None) -> int:
    """A page shown again with what its form's command met: 503 when it could not be done
    just now (the page says to try again), else 422 (what to change), 200 with nothing."""
    if refused is None:
        return 200
    return 503 if refused.status == 503 else 422


def csrf_refused() -> Problem:
    return Problem(
        title="Missing or wrong CSRF token",
        status=403,
        detail="the form was not sent from this session's page: reload it and send it again",
    )
