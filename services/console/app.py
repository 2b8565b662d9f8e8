"""The console's HTTP API: contract in (a command's own payload, at
``POST /api/orgs/{org}/commands/{Type}``), out through that organisation's own NATS
connection, the service's reply back; every refusal as problem details (RFC 9457).

Thin: who may send what is ``domain``, accounts and sessions are their own modules, and
commands travel exactly as the CLI's do (``runtime.asking``).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Mapping
from http import HTTPStatus
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, Header, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match, Route

from contracts import catalogue, views
from contracts.console import AccessLog, AccessLogEntry, Problem, SignedIn, SignIn
from contracts.envelope import Command, MessageId
from contracts.overview import DEFAULT_LIMIT, MonthReport, RulesHistory, Today
from contracts.records import ConsoleAccount
from contracts.replies import CommandRejected, CommandUnavailable, FieldError, plain_reason
from contracts.views import (
    CaseView,
    DecisionView,
    SupporterView,
    ViewCase,
    ViewDecision,
    ViewSupporter,
)
from runtime.logging import get_logger
from services.console import domain, lists
from services.console.api_lists import add_list_routes
from services.console.api_shared import IdPath, OrgPath, viewing
from services.console.api_shared import org_read as _org_read
from services.console.api_shared import problems as _problems
from services.console.api_timeline import add_timeline_routes
from services.console.edge import guard
from services.console.gate import (
    ConsoleDeps,
    end_session,
    problem,
    send_as,
    signed_in,
    signing_in,
    start_session,
)
from services.console.health import add_health
from services.console.overview_month import as_csv
from services.console.pages import add_pages
from services.console.people import add_people
from services.console.reference import Bodies, add_reference, document
from services.console.sessions import CSRF_HEADER, Session

log = get_logger(__name__)

# A month the reports can be computed for in any time zone (year 1 or 9999 cannot).
MonthPath = Annotated[
    str,
    PathParam(
        pattern=r"^(19|2[0-9])[0-9]{2}-(0[1-9]|1[0-2])$",
        description="YYYY-MM, from 1900-01 to 2999-12",
    ),
]
Limit = Annotated[int, Query(ge=1, le=1000)]
IdempotencyKey = Annotated[
    MessageId | None,
    Header(
        alias="Idempotency-Key",
        description="The command's id, so that sending it again (after a time-out or a 503) "
        "carries it out once: the same key with the same body is answered as the "
        "first time; with another body, 409.",
    ),
]


def create_app(deps: ConsoleDeps) -> FastAPI:
    app = FastAPI(
        title="Alongside",
        version=catalogue.VERSION,
        description="Every command of Alongside's services, sent as a signed-in person of "
        "one organisation; refusals are RFC 9457 problem details.",
        docs_url=None,
        redoc_url=None,  # /docs is served offline (``reference``)
    )
    app.openapi = document(app)  # type: ignore[method-assign]

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [FieldError(field=_place(e), reason=plain_reason(e)) for e in error.errors()]
        detail = "; ".join(f"{e.field}: {e.reason}" for e in errors)
        return problem(Problem(title="Invalid request", status=422, detail=detail, errors=errors))

    @app.exception_handler(HTTPException)
    async def refused(request: Request, error: HTTPException) -> JSONResponse:
        """Starlette's own refusals (no such route or method, a body that cannot be read)."""
        headers = dict(error.headers or {})
        if error.status_code == 405:  # every method of the path, not one route's alone
            headers["Allow"] = ", ".join(
                sorted(
                    {
                        method
                        for route in app.router.routes
                        if isinstance(route, Route)
                        and route.matches(request.scope)[0] is not Match.NONE
                        for method in route.methods or ()
                    }
                )
            )
        said = Problem(
            title=HTTPStatus(error.status_code).phrase,
            status=error.status_code,
            detail=str(error.detail),
        )
        return problem(said, headers)

    @app.exception_handler(Exception)
    async def failed(request: Request, error: Exception) -> JSONResponse:
        # Only the kind: an exception's text may hold what a person sent.
        log.error("console_failed", method=request.method, error=type(error).__name__)
        return problem(
            Problem(
                title="Internal Server Error",
                status=500,
                detail="the console failed to answer; it is logged",
            )
        )

    guard(app, deps.settings)  # headers, body size, origin, proxies: before anything else
    add_health(app, deps)  # /healthz, /readyz, /metrics
    _session_routes(app, deps)
    add_pages(app, deps)
    add_people(app, deps)  # people's own pages, behind their personal links
    add_reference(app)
    _view_routes(app, deps)
    _overview_routes(app, deps)
    add_timeline_routes(app, deps)
    add_list_routes(app, deps)
    bodies = Bodies(app)
    for model in catalogue.COMMANDS.values():
        if model in views.CONSOLE_ONLY:
            continue  # the console's own reads, never a person's
        _command_route(app, model, deps, bodies)
    return app


def _session_routes(app: FastAPI, deps: ConsoleDeps) -> None:
    @app.post(
        "/api/session", response_model=SignedIn, responses=_problems(401, 429), tags=["session"]
    )
    async def sign_in(
        body: SignIn, request: Request, response: Response
    ) -> SignedIn | JSONResponse:
        """Sign in: the session is set as an HTTP-only cookie; keep ``csrf_token`` to send
        back in ``X-CSRF-Token`` with every request that changes something. It ends when
        signed out, after 30 minutes unused, or 8 hours after signing in."""
        account = await signing_in(deps, body.email, body.password, request)
        if isinstance(account, Problem):
            return problem(account)
        session = await start_session(deps, request, response, account)
        log.info("console_signed_in", account_id=account.account_id)
        return _signed_in(account, session)

    @app.get("/api/session", response_model=SignedIn, responses=_problems(401), tags=["session"])
    async def who(request: Request) -> SignedIn | JSONResponse:
        found = await signed_in(deps, request)
        if found is None:
            return problem(domain.NOT_SIGNED_IN)
        session, account = found
        return _signed_in(account, session)

    @app.delete("/api/session", status_code=204, responses=_problems(403), tags=["session"])
    async def sign_out(
        request: Request, csrf: Annotated[str | None, Header(alias=CSRF_HEADER)] = None
    ) -> Response:
        """Sign out: the session ends on the server, so a copy of its cookie opens nothing."""
        found = await signed_in(deps, request)
        if found is not None and not found[0].allows(csrf):
            return problem(_csrf_refused())
        response = Response(status_code=204)
        await end_session(deps, request, response, found[0] if found else None)
        return response


def _view_routes(app: FastAPI, deps: ConsoleDeps) -> None:
    async def viewed(request: Request, org: str, command: Command) -> Response:
        seen = await viewing(deps, request, org, command)
        return seen if isinstance(seen, Response) else JSONResponse(seen[0].model_dump(mode="json"))

    @app.get(
        "/api/orgs/{org}/access-log",
        response_model=AccessLog,
        responses=_problems(401, 403, 503),
        tags=["views"],
    )
    async def read_access_log(request: Request, org: OrgPath) -> Response:
        """Every view of the organisation's cases and supporters, oldest first: who, when,
        which (a supervisor's or an operator's)."""

        async def read() -> AccessLog:
            return AccessLog(org=org, entries=await deps.orgs.access_log(org))

        return await _org_read(deps, request, org, domain.ACCESS_LOG, read)

    @app.get(
        "/api/orgs/{org}/access-log.csv",
        responses={**_problems(401, 403, 503), 200: {"content": {"text/csv": {}}}},
        tags=["views"],
    )
    async def access_log_csv(request: Request, org: OrgPath) -> Response:
        """The access log as CSV, oldest first."""

        async def read() -> str:
            entries = await deps.orgs.access_log(org)
            return lists.as_csv(entries, tuple(AccessLogEntry.model_fields))

        return await _org_read(deps, request, org, domain.ACCESS_LOG, read)

    @app.get(
        "/api/orgs/{org}/cases/{case_id}",
        response_model=CaseView,
        responses=_problems(401, 403, 404, 503),
        tags=["views"],
    )
    async def view_case(request: Request, org: OrgPath, case_id: IdPath) -> Response:
        """The case as its services hold it now: the client, the dispute, each party's
        consent per stage, proposals with their explanations and hold ends, the schedule.
        Every view is recorded (``CaseViewed``: who, which case, when)."""
        return await viewed(request, org, ViewCase(case_id=case_id))

    @app.get(
        "/api/orgs/{org}/supporters/{supporter_id}",
        response_model=SupporterView,
        responses=_problems(401, 403, 404, 503),
        tags=["views"],
    )
    async def view_supporter(request: Request, org: OrgPath, supporter_id: IdPath) -> Response:
        """The supporter as their services hold them now: profile, vetting on file (kinds
        and dates, never what a record check said), eligibility and the day it lapses,
        caseload, supervision. Every view is recorded (``SupporterViewed``)."""
        return await viewed(request, org, ViewSupporter(supporter_id=supporter_id))

    @app.get(
        "/api/orgs/{org}/decisions/{decision_id}",
        response_model=DecisionView,
        responses=_problems(401, 403, 404, 503),
        tags=["views"],
    )
    async def view_decision(request: Request, org: OrgPath, decision_id: IdPath) -> Response:
        """Why a rules decision came out as it did (a supervisor's or an operator's): the
        ruleset, each fired rule with its reason, the hash of the facts. The id is on the
        decision's event. Every view is recorded (``DecisionViewed``)."""
        return await viewed(request, org, ViewDecision(decision_id=decision_id))


def _overview_routes(app: FastAPI, deps: ConsoleDeps) -> None:
    @app.get(
        "/api/orgs/{org}/today",
        response_model=Today,
        responses=_problems(401, 403, 503),
        tags=["overview"],
    )
    async def today(request: Request, org: OrgPath, limit: Limit = DEFAULT_LIMIT) -> Response:
        """The work lists, most urgent first: who waits and why, proposals awaiting the
        client's choice, consents missing and from whom, first meetings to confirm, this
        week's sessions, vetting lapsing within 30 days, supervision due. Ids and dates
        only; each list cut to ``limit`` rows (``counts`` has the whole lengths)."""

        async def read() -> Today:
            return (await deps.orgs.overview(org)).today(deps.clock(), limit)

        return await _org_read(deps, request, org, domain.OVERVIEW, read)

    @app.get(
        "/api/orgs/{org}/reports/{month}",
        response_model=MonthReport,
        responses=_problems(401, 403, 503),
        tags=["overview"],
    )
    async def month_report(request: Request, org: OrgPath, month: MonthPath) -> Response:
        """One month's figures (in the organisation's time zone): time to a first proposal
        and to an active match, answers to proposals, changes, refusals and drop-outs,
        sessions held and missed, supervision kept, the waitlist at the month's end."""

        async def read() -> MonthReport:
            return (await deps.orgs.overview(org)).month(month, deps.clock())

        return await _org_read(deps, request, org, domain.OVERVIEW, read)

    @app.get(
        "/api/orgs/{org}/reports.csv",
        responses={**_problems(401, 403, 503), 200: {"content": {"text/csv": {}}}},
        tags=["overview"],
    )
    async def reports_csv(request: Request, org: OrgPath) -> Response:
        """Every month's figures from the first intake to now, one row a month."""

        async def read() -> str:
            overview, now = await deps.orgs.overview(org), deps.clock()
            return as_csv([overview.month(month, now) for month in overview.months(now)])

        return await _org_read(deps, request, org, domain.OVERVIEW, read)

    @app.get(
        "/api/orgs/{org}/rules",
        response_model=RulesHistory,
        responses=_problems(401, 403, 503),
        tags=["overview"],
    )
    async def rules(request: Request, org: OrgPath) -> Response:
        """Each kind's live ruleset and every publication before it, newest first."""

        async def read() -> RulesHistory:
            return (await deps.orgs.overview(org)).rules()

        return await _org_read(deps, request, org, domain.OVERVIEW, read)


def _command_route(app: FastAPI, model: type[Command], deps: ConsoleDeps, bodies: Bodies) -> None:
    type_name = model.type_name
    path = f"/api/orgs/{{org}}/commands/{type_name}"
    # What a 200 carries: a rejection is a 4xx, and not carried out just now a 503.
    not_ok = (CommandRejected.type_name, CommandUnavailable.type_name)
    replies = [
        catalogue.REPLIES[name] for name in catalogue.REPLIES_TO[type_name] if name not in not_ok
    ]

    async def send(
        request: Request,
        org: OrgPath,
        command: Command,
        idempotency_key: IdempotencyKey = None,
        csrf: Annotated[str | None, Header(alias=CSRF_HEADER)] = None,
    ) -> Response:
        await bodies.check(request, path)  # as the document says it, not only as the model
        found = await signed_in(deps, request)
        account = found[1] if found else None
        refused = domain.refusal(account, org, type_name)
        if refused is not None:
            return problem(refused)
        assert found is not None
        if not found[0].allows(csrf):
            return problem(_csrf_refused())
        reply = await send_as(deps, org, command, idempotency_key, found[1])
        if isinstance(reply, Problem):
            return problem(reply)
        if isinstance(reply, CommandRejected):
            return problem(domain.problem_of(reply))
        return JSONResponse(reply.model_dump(mode="json"))

    # FastAPI reads the body's schema from the signature: this command's own model.
    signature = inspect.signature(send)
    send.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[
            p.replace(annotation=model) if p.name == "command" else p
            for p in signature.parameters.values()
        ]
    )
    app.add_api_route(
        path,
        send,
        methods=["POST"],
        name=type_name,
        summary=(model.__doc__ or type_name).split("\n")[0],
        tags=[model.service],
        response_model=replies[0] if len(replies) == 1 else None,
        responses=_problems(401, 403, 409, 422, 503),
    )


def _place(error: Mapping[str, Any]) -> str:
    """Where in the request: ``client.contact.email``, a parameter's name, or the body."""
    if error.get("type") == "json_invalid":  # at a character of the body, not a field
        return "body"
    return ".".join(str(p) for p in error["loc"][1:]) or str(error["loc"][0])


def _signed_in(account: ConsoleAccount, session: Session) -> SignedIn:
    return SignedIn(
        email=account.email,
        name=account.name,
        roles=account.roles,
        csrf_token=session.csrf_token,
        expires_at=session.expires_at,
    )


def _csrf_refused() -> Problem:
    return Problem(
        title="Missing or wrong CSRF token",
        status=403,
        detail=f"send the session's csrf_token in the {CSRF_HEADER} header",
    )


class _Embedded(uvicorn.Server):
    """Served inside a process that handles its own signals (``alongside up``, the demo):
    it stops when its task is cancelled, not by catching Ctrl-C itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(app: FastAPI, host: str, port: int) -> None:
    # No proxy_headers: forwarded headers are believed only from the configured proxies
    # (``edge``), never from whoever connects from 127.0.0.1 (uvicorn's default).
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        access_log=False,
        log_config=None,
        log_level="warning",
        proxy_headers=False,
        server_header=False,
    )
    await _Embedded(config).serve()
