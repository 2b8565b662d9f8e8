"""A case's page and a supporter's: the record as its service shows it, and the actions
sent from the forms on it."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from contracts.console import Problem
from contracts.intake import CLIENT_PARTY_ID
from contracts.records import ConsoleAccount
from contracts.replies import CommandRejected
from contracts.views import CaseView, SupporterView, ViewCase, ViewSupporter
from services.console import domain, forms
from services.console.gate import ConsoleDeps, send_as
from services.console.overview import Overview
from services.console.pages_shared import (
    Page,
    csrf_refused,
    not_allowed,
    overview_of,
    problem_page,
    render,
    send_command,
    status_of,
    zone_of,
)
from services.console.sessions import Session

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


class RecordPages:
    def __init__(self, deps: ConsoleDeps) -> None:
        self.deps = deps

    async def case(
        self,
        request: Request,
        account: ConsoleAccount,
        session: Session,
        refused: Problem | None = None,
    ) -> Response:
        org, case_id = request.path_params["org"], request.path_params["case_id"]
        if (no := not_allowed(request, account, ViewCase.type_name)) is not None:
            return no
        reply = await send_as(self.deps, org, ViewCase(case_id=case_id), None, account)
        if not isinstance(reply, CaseView):
            return _unviewed(request, reply, org, account)
        zone = await zone_of(self.deps, org)
        parties = [CLIENT_PARTY_ID, *(p.party_id for p in reply.case.intake.other_parties)]
        return render(
            request,
            "case.html",
            status_of(refused),
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
        if (no := not_allowed(request, account, ViewSupporter.type_name)) is not None:
            return no
        viewing = ViewSupporter(supporter_id=supporter_id)
        reply = await send_as(self.deps, org, viewing, None, account)
        if not isinstance(reply, SupporterView):
            return _unviewed(request, reply, org, account)
        found = await overview_of(self.deps, org)  # read once: the zone and the coming sessions
        if isinstance(found, Overview):
            zone = found.zone
            upcoming = found.sessions_of(supporter_id, self.deps.clock(), UPCOMING_DAYS)
        else:
            zone, upcoming = ZoneInfo("UTC"), []
        return render(
            request,
            "supporter.html",
            status_of(refused),
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

    def acting(
        self, shown: Callable[..., Awaitable[Response]], allowed: frozenset[str], id_name: str
    ) -> Page:
        """A form on a case's (supporter's) page: sent as its command with the page's id,
        then the page again, saying what was done, or what was refused and why."""

        async def act(request: Request, account: ConsoleAccount, session: Session) -> Response:
            org, type_name = request.path_params["org"], request.path_params["type_name"]
            sent = await request.form()
            if not session.allows(str(sent.get("csrf_token", ""))):
                return problem_page(request, csrf_refused(), org, account)
            if type_name not in allowed:
                unknown = Problem(
                    title="No such action", status=404, detail=f"{type_name} is not sent from here"
                )
                return problem_page(request, unknown, org, account)
            if (no := not_allowed(request, account, type_name)) is not None:
                return no
            zone = await zone_of(self.deps, org)
            body: dict[str, Any] = {id_name: request.path_params[id_name]}
            for key in {k for k in sent if k != "csrf_token"}:
                values = [str(v) for v in sent.getlist(key) if str(v)]
                if key in _MANY:
                    body[key] = values
                elif values:
                    body[key] = _moment(values[0], zone) if key in _MOMENTS else values[0]
            outcome = await send_command(self.deps, org, type_name, body, account)
            if isinstance(outcome, Problem):
                return await shown(request, account, session, refused=outcome)
            url = f"{request.url.path.rsplit('/act/', 1)[0]}?done={type_name}"
            return RedirectResponse(url, status_code=303)

        return act


def _unviewed(request: Request, reply: Any, org: str, account: ConsoleAccount) -> Response:
    if isinstance(reply, CommandRejected):
        said = domain.problem_of(reply)
        return problem_page(
            request,
            said.model_copy(update={"status": 404, "title": "Not held here"}),
            org,
            account,
        )
    if isinstance(reply, Problem):
        return problem_page(request, reply, org, account)
    odd = Problem(title="Unexpected answer", status=502, detail=type(reply).__name__)
    return problem_page(request, odd, org, account)


def _moment(value: str, zone: ZoneInfo) -> str:
    """A browser's local date and time (``2026-12-01T18:00``) in the organisation's zone."""
    with contextlib.suppress(ValueError):
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            return moment.replace(tzinfo=zone).isoformat()
    return value  # as sent: the command's model says what is wrong with it
