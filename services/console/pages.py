"""The console's pages: server-rendered HTML and plain forms (no script needed), over the
same reads and commands as the API, sent the same way (``gate``).

A page that changes something posts a form carrying the session's CSRF token; the answer is
a redirect back to the page (POST, redirect, GET), or the page again with the service's
refusal, each field named as the API names it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from nats.errors import Error as NatsError
from pydantic import ValidationError

from contracts import catalogue, subjects
from contracts.console import Problem
from contracts.envelope import Command
from contracts.intake import CLIENT_PARTY_ID
from contracts.overview import MonthReport
from contracts.records import ConsoleAccount, explanation
from contracts.replies import CommandRejected, FieldError, field_errors
from contracts.views import (
    CaseView,
    DecisionView,
    SupporterView,
    ViewCase,
    ViewDecision,
    ViewSupporter,
)
from services.console import domain, forms
from services.console.gate import (
    ConsoleDeps,
    cookie_name,
    delete_cookie,
    end_session,
    send_as,
    set_cookie,
    signed_in,
    signing_in,
    start_session,
)
from services.console.orgs import NoCredential
from services.console.overview import Overview
from services.console.sessions import SIGN_IN_COOKIE, Session

SIGN_IN_LASTS_S = 3600  # a sign-in page's token: an hour to fill it in

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["explanation"] = explanation
templates.env.filters["when"] = lambda at, zone: at.astimezone(zone).strftime("%a %d %b %Y, %H:%M")

# Each path parameter a page takes, and what it must look like.
_PATHS = {
    "org": re.compile(subjects.ORG_PATTERN),
    "case_id": re.compile(subjects.ID_PATTERN),
    "supporter_id": re.compile(subjects.ID_PATTERN),
    "type_name": re.compile(r"^[A-Za-z]{1,64}$"),
}
Page = Callable[[Request, ConsoleAccount, Session], Awaitable[Response]]

# What a case's and a supporter's pages may send, with the id from the page's path.
CASE_ACTIONS = frozenset(
    {
        "AcceptProposal",
        "DeclineProposals",
        "ChangeSupporter",
        "RefuseService",
        "GiveConsent",
        "WithdrawConsent",
        "ConfirmMeeting",
        "ProposeMeetingTime",
        "GoAhead",
        "BookSession",
        "CancelSession",
        "RecordAttendance",
        "ChangeCaseStage",
        "ResumeMatch",
    }
)
SUPPORTER_ACTIONS = frozenset({"RecordSupervisionAttendance"})
UPCOMING_DAYS = 14  # a supporter's sessions shown ahead
# Form fields that carry several values, and those that are moments in the org's time zone.
_MANY = frozenset({"stages", "purposes"})
_MOMENTS = frozenset({"start", "first_session"})


def add_pages(app: FastAPI, deps: ConsoleDeps) -> None:
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    pages = Pages(deps)
    for path, method, handler in [
        ("/", "GET", pages.home),
        ("/orgs/{org}", "GET", pages.today),
        ("/orgs/{org}/reports", "GET", pages.reports),
        ("/orgs/{org}/rules", "GET", pages.rules),
        # Before /supporters/{supporter_id}: "new" is a valid id.
        ("/orgs/{org}/intake", "GET", pages.form_page(forms.INTAKE)),
        ("/orgs/{org}/intake", "POST", pages.form_sent(forms.INTAKE)),
        ("/orgs/{org}/supporters/new", "GET", pages.form_page(forms.SUPPORTER)),
        ("/orgs/{org}/supporters/new", "POST", pages.form_sent(forms.SUPPORTER)),
        ("/orgs/{org}/cases/{case_id}", "GET", pages.case),
        (
            "/orgs/{org}/cases/{case_id}/act/{type_name}",
            "POST",
            pages.acting(pages.case, CASE_ACTIONS, "case_id"),
        ),
        ("/orgs/{org}/supporters/{supporter_id}", "GET", pages.supporter),
        (
            "/orgs/{org}/supporters/{supporter_id}/act/{type_name}",
            "POST",
            pages.acting(pages.supporter, SUPPORTER_ACTIONS, "supporter_id"),
        ),
    ]:
        app.add_api_route(path, pages.signed(handler), methods=[method], include_in_schema=False)
    app.add_api_route("/sign-in", pages.sign_in_page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/sign-in", pages.sign_in, methods=["POST"], include_in_schema=False)
    app.add_api_route("/sign-out", pages.sign_out, methods=["POST"], include_in_schema=False)


# Where a form's command leads once accepted.
_THEN = {
    "SubmitIntake": "/orgs/{org}/cases/{case_id}?done=SubmitIntake",
    "RegisterSupporter": "/orgs/{org}/supporters/{supporter_id}?done=RegisterSupporter",
}


class Pages:
    def __init__(self, deps: ConsoleDeps) -> None:
        self.deps = deps

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        return templates.TemplateResponse(request, name, context, status_code=status)

    def refused(
        self, request: Request, problem: Problem, org: str | None, account: ConsoleAccount | None
    ) -> Response:
        return self.render(
            request, "problem.html", problem.status, problem=problem, org=org, account=account
        )

    def signed(self, handler: Page) -> Callable[[Request], Awaitable[Response]]:
        """Signed in, or sent to sign in and brought back."""

        async def signed(request: Request) -> Response:
            odd = [k for k, v in request.path_params.items() if not _PATHS[k].match(v)]
            if odd:
                missing = Problem(
                    title="Not found", status=404, detail=f"{odd[0]} is not one this console knows"
                )
                return self.refused(request, missing, None, None)
            found = await signed_in(self.deps, request)
            if found is None:
                back = quote(request.url.path)
                return RedirectResponse(f"/sign-in?next={back}", status_code=303)
            session, account = found
            return await handler(request, account, session)

        return signed

    def refusal(self, request: Request, account: ConsoleAccount, what: str) -> Response | None:
        """A refusal page if the account may not do ``what`` in the page's organisation."""
        refused = domain.refusal(account, request.path_params["org"], what)
        return None if refused is None else self.refused(request, refused, None, account)

    async def overview(self, org: str) -> Overview | Problem:
        try:
            return await self.deps.orgs.overview(org)
        except NoCredential as missing:
            return Problem(title="Organisation not served here", status=503, detail=str(missing))
        except (NatsError, TimeoutError) as error:
            await self.deps.orgs.failed(org)
            unread = f"the lists could not be read ({type(error).__name__})"
            return domain.try_again(unread)

    async def zone(self, org: str) -> ZoneInfo:
        found = await self.overview(org)
        return found.zone if isinstance(found, Overview) else ZoneInfo("UTC")

    # Signing in ------------------------------------------------------------------------

    async def sign_in_page(self, request: Request, next: str = "/") -> Response:
        return self.sign_in_form(request, same_site(next), None, "")

    def sign_in_form(
        self, request: Request, goto: str, problem: Problem | None, email: str
    ) -> Response:
        """The sign-in page, its form carrying a token for the nonce in the browser's cookie
        (login CSRF: no other site can sign this browser in to an account of its own)."""
        sessions, name = self.deps.sessions, cookie_name(self.deps, request, SIGN_IN_COOKIE)
        nonce = sessions.sign_in_nonce(request.cookies.get(name))
        response = self.render(
            request,
            "sign_in.html",
            problem.status if problem else 200,
            next=goto,
            problem=problem,
            email=email,
            token=sessions.sign_in_token(nonce),
        )
        set_cookie(self.deps, request, response, SIGN_IN_COOKIE, nonce, SIGN_IN_LASTS_S)
        return response

    async def sign_in(self, request: Request) -> Response:
        sent = await request.form()
        email, password = str(sent.get("email", "")), str(sent.get("password", ""))
        goto = same_site(str(sent.get("next", "/")))
        nonce = request.cookies.get(cookie_name(self.deps, request, SIGN_IN_COOKIE))
        if not self.deps.sessions.sign_in_allows(nonce, str(sent.get("csrf_token", ""))):
            stale = Problem(
                title="Sign in from this page",
                status=403,
                detail="the sign-in form was not this console's, or it expired: sign in again",
            )
            return self.sign_in_form(request, goto, stale, email)
        account = await signing_in(self.deps, email, password, request)
        if isinstance(account, Problem):
            return self.sign_in_form(request, goto, account, email)
        response = RedirectResponse(goto, status_code=303)
        await start_session(self.deps, request, response, account)
        delete_cookie(self.deps, request, response, SIGN_IN_COOKIE)
        return response

    async def sign_out(self, request: Request) -> Response:
        found = await signed_in(self.deps, request)
        sent = await request.form()
        if found is not None and not found[0].allows(str(sent.get("csrf_token", ""))):
            return self.refused(request, _csrf(), None, None)
        response = RedirectResponse("/sign-in", status_code=303)
        await end_session(self.deps, request, response, found[0] if found else None)
        return response

    # Today, reports, rules -------------------------------------------------------------

    async def home(self, request: Request, account: ConsoleAccount, session: Session) -> Response:
        if len(account.roles) == 1:
            return RedirectResponse(f"/orgs/{next(iter(account.roles))}", status_code=303)
        return self.render(request, "orgs.html", account=account, session=session, org=None)

    async def _overview_page(
        self,
        request: Request,
        account: ConsoleAccount,
        session: Session,
        template: str,
        context: Callable[[Overview], dict[str, Any]],
    ) -> Response:
        org = request.path_params["org"]
        if (no := self.refusal(request, account, domain.OVERVIEW)) is not None:
            return no
        found = await self.overview(org)
        if isinstance(found, Problem):
            return self.refused(request, found, org, account)
        return self.render(
            request,
            template,
            org=org,
            account=account,
            session=session,
            zone=found.zone,
            **context(found),
        )

    async def today(self, request: Request, account: ConsoleAccount, session: Session) -> Response:
        now = self.deps.clock()
        return await self._overview_page(
            request, account, session, "today.html", lambda found: {"today": found.today(now, 50)}
        )

    async def reports(
        self, request: Request, account: ConsoleAccount, session: Session
    ) -> Response:
        now = self.deps.clock()

        def context(found: Overview) -> dict[str, Any]:
            months = found.months(now)[-12:]
            every = [found.month(month, now) for month in months]
            chosen = request.query_params.get("month", months[-1])
            report = every[months.index(chosen)] if chosen in months else every[-1]
            return {"months": months, "report": report, "charts": _charts(every)}

        return await self._overview_page(request, account, session, "reports.html", context)

    async def rules(self, request: Request, account: ConsoleAccount, session: Session) -> Response:
        """Live rulesets and their history; for a supervisor, why a decision was made."""
        org, asked = request.path_params["org"], request.query_params.get("decision", "")
        may_explain = domain.refusal(account, org, ViewDecision.type_name) is None
        explained: DecisionView | None = None
        refused: Problem | None = None
        if asked and may_explain:
            outcome = await self._explain(org, asked, account)
            explained, refused = (
                (outcome, None) if isinstance(outcome, DecisionView) else (None, outcome)
            )
        return await self._overview_page(
            request,
            account,
            session,
            "rules.html",
            lambda found: {
                "rules": found.rules(),
                "may_explain": may_explain,
                "asked": asked,
                "explained": explained,
                "refused": refused,
            },
        )

    async def _explain(
        self, org: str, decision_id: str, account: ConsoleAccount
    ) -> DecisionView | Problem:
        try:
            asking = ViewDecision(decision_id=decision_id)
        except ValidationError as error:
            errors = [FieldError(field=e.field, reason=e.reason) for e in field_errors(error)]
            return Problem(
                title="Not a decision id", status=422, errors=errors, detail=errors[0].reason
            )
        reply = await send_as(self.deps, org, asking, None, account)
        if isinstance(reply, DecisionView | Problem):
            return reply
        if isinstance(reply, CommandRejected):
            return domain.problem_of(reply)
        return Problem(title="Unexpected answer", status=502, detail=type(reply).__name__)

    # A case and a supporter ------------------------------------------------------------

    async def case(
        self,
        request: Request,
        account: ConsoleAccount,
        session: Session,
        refused: Problem | None = None,
    ) -> Response:
        org, case_id = request.path_params["org"], request.path_params["case_id"]
        if (no := self.refusal(request, account, ViewCase.type_name)) is not None:
            return no
        reply = await send_as(self.deps, org, ViewCase(case_id=case_id), None, account)
        if not isinstance(reply, CaseView):
            return self._unviewed(request, reply, org, account)
        zone = await self.zone(org)
        parties = [CLIENT_PARTY_ID, *(p.party_id for p in reply.case.intake.other_parties)]
        return self.render(
            request,
            "case.html",
            _status(refused),
            org=org,
            account=account,
            session=session,
            view=reply,
            zone=zone,
            parties=parties,
            stages=forms.STAGES,
            methods=forms.METHODS,
            refused=refused,
            done=request.query_params.get("done"),
            today=self.deps.clock().astimezone(zone).date(),
            now=self.deps.clock(),
        )

    async def supporter(
        self,
        request: Request,
        account: ConsoleAccount,
        session: Session,
        refused: Problem | None = None,
    ) -> Response:
        org, supporter_id = request.path_params["org"], request.path_params["supporter_id"]
        if (no := self.refusal(request, account, ViewSupporter.type_name)) is not None:
            return no
        viewing = ViewSupporter(supporter_id=supporter_id)
        reply = await send_as(self.deps, org, viewing, None, account)
        if not isinstance(reply, SupporterView):
            return self._unviewed(request, reply, org, account)
        found = await self.overview(org)  # read once: the zone and the coming sessions
        if isinstance(found, Overview):
            zone = found.zone
            upcoming = found.sessions_of(supporter_id, self.deps.clock(), UPCOMING_DAYS)
        else:
            zone, upcoming = ZoneInfo("UTC"), []
        return self.render(
            request,
            "supporter.html",
            _status(refused),
            org=org,
            account=account,
            session=session,
            view=reply,
            refused=refused,
            zone=zone,
            done=request.query_params.get("done"),
            upcoming=upcoming,
            days=UPCOMING_DAYS,
        )

    def _unviewed(
        self, request: Request, reply: Any, org: str, account: ConsoleAccount
    ) -> Response:
        if isinstance(reply, CommandRejected):
            said = domain.problem_of(reply)
            return self.refused(
                request,
                said.model_copy(update={"status": 404, "title": "Not held here"}),
                org,
                account,
            )
        if isinstance(reply, Problem):
            return self.refused(request, reply, org, account)
        odd = Problem(title="Unexpected answer", status=502, detail=type(reply).__name__)
        return self.refused(request, odd, org, account)

    def acting(
        self, shown: Callable[..., Awaitable[Response]], allowed: frozenset[str], id_name: str
    ) -> Page:
        """A form on a case's (supporter's) page: sent as its command with the page's id,
        then the page again, saying what was done, or what was refused and why."""

        async def act(request: Request, account: ConsoleAccount, session: Session) -> Response:
            org, type_name = request.path_params["org"], request.path_params["type_name"]
            sent = await request.form()
            if not session.allows(str(sent.get("csrf_token", ""))):
                return self.refused(request, _csrf(), org, account)
            if type_name not in allowed:
                unknown = Problem(
                    title="No such action", status=404, detail=f"{type_name} is not sent from here"
                )
                return self.refused(request, unknown, org, account)
            if (no := self.refusal(request, account, type_name)) is not None:
                return no
            zone = await self.zone(org)
            body: dict[str, Any] = {id_name: request.path_params[id_name]}
            for key in {k for k in sent if k != "csrf_token"}:
                values = [str(v) for v in sent.getlist(key) if str(v)]
                if key in _MANY:
                    body[key] = values
                elif values:
                    body[key] = _moment(values[0], zone) if key in _MOMENTS else values[0]
            outcome = await _command(self.deps, org, type_name, body, account)
            if isinstance(outcome, Problem):
                return await shown(request, account, session, refused=outcome)
            url = f"{request.url.path.rsplit('/act/', 1)[0]}?done={type_name}"
            return RedirectResponse(url, status_code=303)

        return act

    # Forms -----------------------------------------------------------------------------

    def form_page(self, form: forms.Form) -> Page:
        async def show(request: Request, account: ConsoleAccount, session: Session) -> Response:
            if (no := self.refusal(request, account, form.command_type)) is not None:
                return no
            return self.render(
                request,
                "form.html",
                org=request.path_params["org"],
                account=account,
                session=session,
                form=form,
                values={},
                errors={},
                refused=None,
            )

        return show

    def form_sent(self, form: forms.Form) -> Page:
        async def sent(request: Request, account: ConsoleAccount, session: Session) -> Response:
            org = request.path_params["org"]
            if (no := self.refusal(request, account, form.command_type)) is not None:
                return no
            fields = await request.form()
            if not session.allows(str(fields.get("csrf_token", ""))):
                return self.refused(request, _csrf(), org, account)
            body = forms.body_of(form, {k: [str(v) for v in fields.getlist(k)] for k in fields})
            outcome = await _command(self.deps, org, form.command_type, body, account)
            if isinstance(outcome, Problem):
                return self.render(
                    request,
                    "form.html",
                    _status(outcome),
                    org=org,
                    account=account,
                    session=session,
                    form=form,
                    values=forms.values_of(body),
                    refused=outcome,
                    errors=forms.errors_by_input(form, outcome.errors),
                )
            return RedirectResponse(
                _THEN[form.command_type].format(org=org, **body), status_code=303
            )

        return sent


async def _command(
    deps: ConsoleDeps, org: str, type_name: str, body: dict[str, Any], account: ConsoleAccount
) -> Problem | None:
    """The command from a form, validated by its own model (the API's field errors), sent
    as the organisation in the account's name; the refusal, if any."""
    try:
        command: Command = catalogue.COMMANDS[type_name].model_validate(body)
    except ValidationError as error:
        errors = [FieldError(field=e.field, reason=e.reason) for e in field_errors(error)]
        return Problem(
            title=f"{type_name} refused",
            status=422,
            errors=errors,
            detail="; ".join(f"{e.field}: {e.reason}" for e in errors),
        )
    reply = await send_as(deps, org, command, None, account)
    if isinstance(reply, Problem):
        return reply
    if isinstance(reply, CommandRejected):
        return domain.problem_of(reply)
    return None


def _status(refused: Problem | None) -> int:
    """A page shown again with what its form's command met: 503 when it could not be done
    just now (the page says to try again), else 422 (what to change), 200 with nothing."""
    if refused is None:
        return 200
    return 503 if refused.status == 503 else 422


def same_site(url: str) -> str:
    """Only a path on this site: a sign-in link cannot send anyone elsewhere."""
    # Not "//host" nor "/\\host": browsers take both for another site.
    return url if url.startswith("/") and url[1:2] not in ("/", "\\") else "/"


def _moment(value: str, zone: ZoneInfo) -> str:
    """A browser's local date and time (``2026-12-01T18:00``) in the organisation's zone."""
    with contextlib.suppress(ValueError):
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            return moment.replace(tzinfo=zone).isoformat()
    return value  # as sent: the command's model says what is wrong with it


def _csrf() -> Problem:
    return Problem(
        title="Missing or wrong CSRF token",
        status=403,
        detail="the form was not sent from this session's page: reload it and send it again",
    )


def _charts(reports: list[MonthReport]) -> list[dict[str, Any]]:
    """Bars per month for the report page's charts (drawn as SVG in the template)."""

    def series(title: str, value: Callable[[MonthReport], float | None]) -> dict[str, Any]:
        points = [(r.month, value(r)) for r in reports]
        top = max((v for _, v in points if v is not None), default=0.0) or 1.0
        return {"title": title, "top": top, "points": points}

    return [
        series("Intakes", lambda r: r.intakes),
        series(
            "Median hours from intake to first proposal",
            lambda r: r.intake_to_first_proposal.median_hours,
        ),
        series(
            "Median hours from intake to an active match",
            lambda r: r.intake_to_active_match.median_hours,
        ),
        series("Acceptance rate", lambda r: r.acceptance_rate),
        series("Sessions held", lambda r: r.sessions_held),
        series("Waitlist at month end", lambda r: r.waitlist_size),
    ]
