"""Who is asking, and sending as whom: the signed-in account behind a request, and a
command sent as an organisation in that account's name. Shared by the API and the pages."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import JSONResponse
from nats.errors import Error as NatsError

from contracts.console import Problem
from contracts.envelope import Command
from contracts.records import ConsoleAccount
from runtime.asking import AnyReply
from runtime.clock import Clock
from runtime.logging import get_logger
from runtime.settings import Settings
from services.console.accounts import Accounts
from services.console.domain import TRY_AGAIN
from services.console.orgs import SOURCE, NoCredential, OrgConnections
from services.console.sessions import COOKIE, Session, Sessions

log = get_logger(__name__)

PROBLEM = "application/problem+json"


@dataclass(frozen=True)
class ConsoleDeps:
    accounts: Accounts
    sessions: Sessions
    orgs: OrgConnections
    settings: Settings
    clock: Clock


def problem(found: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    """Problem details as HTTP; a 503 says when to try again."""
    if found.status == 503 and found.title == TRY_AGAIN:
        headers = {"Retry-After": "5", **(headers or {})}
    return JSONResponse(found.model_dump(mode="json"), status_code=found.status,
                        media_type=PROBLEM, headers=headers)  # fmt: skip


async def signed_in(deps: ConsoleDeps, request: Request) -> tuple[Session, ConsoleAccount] | None:
    session = deps.sessions.read(request.cookies.get(COOKIE))
    if session is None:
        return None
    account = await deps.accounts.get(session.account_id)
    # A disabled account's sessions end with it.
    return (session, account) if account and account.status == "active" else None


async def send_as(
    deps: ConsoleDeps, org: str, command: Command, command_id: str | None,
    account: ConsoleAccount,
) -> AnyReply | Problem:  # fmt: skip
    """The command sent as ``org``, in the account's name (its source), and the service's
    reply; problem details when it could not be sent or was not answered."""
    try:
        asking = await deps.orgs.asking(org)
        reply = await asking.any(org, command, command_id,
                                 source=f"{SOURCE}/{account.account_id}")  # fmt: skip
    except NoCredential as missing:
        return Problem(title="Organisation not served here", status=503, detail=str(missing))
    except (NatsError, TimeoutError) as error:
        log.warning("console_command_unanswered", org=org, command_type=command.type_name,
                    error=type(error).__name__)  # fmt: skip
        await deps.orgs.failed(org)
        return Problem(title=TRY_AGAIN, status=503,
                       detail=f"{command.service} did not answer")  # fmt: skip
    log.info("console_command", org=org, command_type=command.type_name, status=reply.status,
             account_id=account.account_id)  # fmt: skip
    return reply
