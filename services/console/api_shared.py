"""What the API's read routes share: the path parameters, the problem details each may answer
with (for the document), a view sent in the signed-in account's name, and a read of the
organisation's overview with its failures as problem details."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Path as PathParam
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from nats.errors import Error as NatsError
from pydantic import BaseModel

from contracts import subjects
from contracts.console import Problem
from contracts.envelope import Command
from contracts.records import ConsoleAccount
from contracts.replies import CommandRejected
from runtime.asking import AnyReply
from services.console import domain
from services.console.gate import PROBLEM, ConsoleDeps, problem, send_as, signed_in
from services.console.lists import BadCursor
from services.console.orgs import NoCredential

OrgPath = Annotated[str, PathParam(pattern=subjects.ORG_PATTERN)]
IdPath = Annotated[str, PathParam(pattern=subjects.ID_PATTERN)]

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Whole seconds to wait before sending the same request again (with the same "
        "Idempotency-Key: it takes effect once).",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Problem details for each status; a 429 or 503 may say when to try again."""
    return {
        status: {
            "model": Problem,
            "content": {PROBLEM: {}},
            **({"headers": _RETRY_AFTER} if status in (429, 503) else {}),
        }
        for status in statuses
    }


async def viewing(
    deps: ConsoleDeps, request: Request, org: str, command: Command
) -> tuple[AnyReply, ConsoleAccount] | Response:
    """A view (``ViewCase``...) sent in the signed-in account's name, so it is in the access
    log, and its answer with the account; or the refusal as problem details (what is not
    held here, or not the reader's to view: 404)."""
    found = await signed_in(deps, request)
    refused = domain.refusal(found[1] if found else None, org, command.type_name)
    if refused is not None:
        return problem(refused)
    assert found is not None
    reply = await send_as(deps, org, command, None, found[1])
    if isinstance(reply, CommandRejected):
        said = domain.problem_of(reply)
        return problem(said.model_copy(update={"status": 404, "title": "Not held here"}))
    if isinstance(reply, Problem):
        return problem(reply)
    return reply, found[1]


async def org_read(
    deps: ConsoleDeps,
    request: Request,
    org: str,
    what: str,
    read: Callable[[], Awaitable[BaseModel | str]],
) -> Response:
    """A read of the organisation as a whole, through its own connection."""
    found = await signed_in(deps, request)
    refused = domain.refusal(found[1] if found else None, org, what)
    if refused is not None:
        return problem(refused)
    return await answered(deps, org, what, read)


async def answered(
    deps: ConsoleDeps, org: str, what: str, read: Callable[[], Awaitable[BaseModel | str]]
) -> Response:
    """``read``'s answer (a string is CSV), or why it could not be read just now."""
    try:
        answer = await read()
    except BadCursor as wrong:
        return problem(Problem(title="Cursor not from this list", status=400, detail=str(wrong)))
    except NoCredential as missing:
        return problem(
            Problem(title="Organisation not served here", status=503, detail=str(missing))
        )
    except (NatsError, TimeoutError) as error:
        await deps.orgs.failed(org)
        unread = f"{what} could not be read ({type(error).__name__})"
        return problem(domain.try_again(unread))
    if isinstance(answer, str):
        return Response(answer, media_type="text/csv; charset=utf-8")
    return JSONResponse(answer.model_dump(mode="json"))
