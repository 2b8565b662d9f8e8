"""The pages read from an organisation's overview: today's lists, the monthly reports and
the rules in force; and the list of organisations an account works for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from contracts.console import Problem
from contracts.overview import MonthReport
from contracts.records import ConsoleAccount
from contracts.replies import CommandRejected, FieldError, field_errors
from contracts.views import DecisionView, ViewDecision
from services.console import domain
from services.console.gate import ConsoleDeps, send_as
from services.console.overview import Overview
from services.console.pages_shared import not_allowed, overview_of, problem_page, render
from services.console.sessions import Session


class OverviewPages:
    def __init__(self, deps: ConsoleDeps) -> None:
        self.deps = deps

    async def home(self, request: Request, account: ConsoleAccount, session: Session) -> Response:
        if len(account.roles) == 1:
            return RedirectResponse(f"/orgs/{next(iter(account.roles))}", status_code=303)
        return render(request, "orgs.html", account=account, session=session, org=None)

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
            return {"months": months, "report": report, "charts": month_charts(every)}

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
                # A decision logged before labels names its rules by the live labels.
                "rule_labels": found.rules().labels,
                "may_explain": may_explain,
                "asked": asked,
                "explained": explained,
                "refused": refused,
            },
        )

    async def _overview_page(
        self,
        request: Request,
        account: ConsoleAccount,
        session: Session,
        template: str,
        context: Callable[[Overview], dict[str, Any]],
    ) -> Response:
        org = request.path_params["org"]
        if (no := not_allowed(request, account, domain.OVERVIEW)) is not None:
            return no
        found = await overview_of(self.deps, org)
        if isinstance(found, Problem):
            return problem_page(request, found, org, account)
        return render(
            request,
            template,
            org=org,
            account=account,
            session=session,
            zone=found.zone,
            **context(found),
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


def month_charts(reports: list[MonthReport]) -> list[dict[str, Any]]:
    """Bars per month for the report page's charts (drawn as SVG in the template), each with
    the unit of its axis; the page shows the same figures as a table too."""

    def series(
        title: str, unit: str, value: Callable[[MonthReport], float | None], scale: float = 1
    ) -> dict[str, Any]:
        points = [
            (r.month, None if (v := value(r)) is None else round(v * scale, 1)) for r in reports
        ]
        top = max((v for _, v in points if v is not None), default=0.0) or 1.0
        return {"title": title, "unit": unit, "top": top, "points": points}

    return [
        series("Intakes", "intakes", lambda r: r.intakes),
        series(
            "Median time from intake to first proposal",
            "hours",
            lambda r: r.intake_to_first_proposal.median_hours,
        ),
        series(
            "Median time from intake to an active match",
            "hours",
            lambda r: r.intake_to_active_match.median_hours,
        ),
        series("Proposals accepted", "% of answered", lambda r: r.acceptance_rate, 100),
        series("Sessions held", "sessions", lambda r: r.sessions_held),
        series("Waitlist at the month's end", "clients", lambda r: r.waitlist_size),
    ]
