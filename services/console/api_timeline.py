"""A case's timeline: ``GET /api/orgs/{org}/cases/{case_id}/timeline`` (and ``.csv``), and the
same read for the case's page.

Reading a timeline is a view of the case: the case is viewed first, in the reader's name, so
the reading is in the access log (``CaseViewed``) and a case not held here is a 404; the
entries then come from the organisation's overview (``timeline``), each decision named only
to a reader who may read why it was made, who read the case only to one who may read the
access log.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from nats.errors import Error as NatsError

from contracts.records import ConsoleAccount
from contracts.timeline import CaseTimeline
from contracts.views import ViewCase, ViewDecision
from services.console import domain
from services.console.api_shared import IdPath, OrgPath, answered, problems, viewing
from services.console.gate import ConsoleDeps
from services.console.orgs import NoCredential
from services.console.timeline import as_csv


def add_timeline_routes(app: FastAPI, deps: ConsoleDeps) -> None:
    @app.get(
        "/api/orgs/{org}/cases/{case_id}/timeline",
        response_model=CaseTimeline,
        responses=problems(401, 403, 404, 503),
        tags=["views"],
    )
    async def case_timeline(request: Request, org: OrgPath, case_id: IdPath) -> Response:
        """Every event of the case, oldest first, in plain words: when, what, who (by role),
        and why where the event says. The rules decision behind an entry is named only to
        those who may read why it was made, a supervisor or an operator (at
        ``/api/orgs/{org}/decisions/{id}``). Reading it is a view of the case, recorded like
        every other (``CaseViewed``)."""
        return await _timeline(deps, request, org, case_id, csv=False)

    @app.get(
        "/api/orgs/{org}/cases/{case_id}/timeline.csv",
        responses={**problems(401, 403, 404, 503), 200: {"content": {"text/csv": {}}}},
        tags=["views"],
    )
    async def case_timeline_csv(request: Request, org: OrgPath, case_id: IdPath) -> Response:
        """The case's timeline, one row an entry (the same columns as the JSON's)."""
        return await _timeline(deps, request, org, case_id, csv=True)


async def _timeline(
    deps: ConsoleDeps, request: Request, org: str, case_id: str, *, csv: bool
) -> Response:
    seen = await viewing(deps, request, org, ViewCase(case_id=case_id))
    if isinstance(seen, Response):
        return seen
    account = seen[1]

    async def read() -> CaseTimeline | str:
        timeline = await _read(deps, org, case_id, account)
        return as_csv(timeline) if csv else timeline

    return await answered(deps, org, "the timeline", read)


async def _read(deps: ConsoleDeps, org: str, case_id: str, account: ConsoleAccount) -> CaseTimeline:
    overview = await deps.orgs.overview(org)
    return overview.timeline(
        case_id,
        reads_decisions=domain.refusal(account, org, ViewDecision.type_name) is None,
        reads_access_log=domain.refusal(account, org, domain.ACCESS_LOG) is None,
    )


async def timeline_shown(
    deps: ConsoleDeps, org: str, case_id: str, account: ConsoleAccount
) -> CaseTimeline | None:
    """The timeline for the case's page, which has viewed the case already; None if it could
    not be read just now (the page says so, and shows the rest)."""
    try:
        return await _read(deps, org, case_id, account)
    except NoCredential:
        return None
    except (NatsError, TimeoutError):
        await deps.orgs.failed(org)
        return None
