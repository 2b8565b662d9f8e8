"""The API's lists: cases, supporters and unanswered proposals of one organisation with
their filters and sort orders, a search by reference, name, email or phone, and what needs
the signed-in coordinator's attention across their organisations. Every list is read a
page at a time with ``cursor`` (``lists``), and as CSV whole."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Query, Request, Response
from nats.errors import Error as NatsError

from contracts.lists import (
    LIST_LIMIT,
    LIST_LIMIT_MAX,
    Attention,
    CaseRow,
    CasesPage,
    ProposalRow,
    ProposalsPage,
    SearchResults,
    SupporterRow,
    SupportersPage,
)
from services.console import domain, lists
from services.console.api_shared import OrgPath, answered, org_read, problems
from services.console.gate import ConsoleDeps, problem, signed_in
from services.console.lists import (
    CaseFilters,
    SupporterFilters,
)

Cursor = Annotated[
    str | None,
    Query(
        max_length=400,
        description="The next_cursor of the page before; leave it out for the first page.",
    ),
]
Limit = Annotated[int, Query(ge=1, le=LIST_LIMIT_MAX, description="Rows in a page")]
Days = Annotated[int, Query(ge=0, le=3650)]

CASE_COLUMNS = tuple(CaseRow.model_fields)
SUPPORTER_COLUMNS = tuple(SupporterRow.model_fields)
PROPOSAL_COLUMNS = tuple(ProposalRow.model_fields)


def add_list_routes(app: FastAPI, deps: ConsoleDeps) -> None:
    _case_routes(app, deps)
    _supporter_routes(app, deps)
    _proposal_routes(app, deps)
    _search_routes(app, deps)


def _case_routes(app: FastAPI, deps: ConsoleDeps) -> None:
    @app.get(
        "/api/orgs/{org}/cases",
        response_model=CasesPage,
        responses=problems(400, 401, 403, 503),
        tags=["lists"],
    )
    async def cases(
        request: Request,
        org: OrgPath,
        filters: Annotated[CaseFilters, Query()],
        cursor: Cursor = None,
        limit: Limit = LIST_LIMIT,
    ) -> Response:
        """The organisation's cases, by when they were opened (``sort=-opened``: newest
        first; ``since``: by when they entered their state). Filters: the dispute's stage,
        the case's state, and what it waits on (a supporter, the client's choice, a
        party's consent, the first meeting, a coordinator's review). Ids, stages and dates
        only."""
        listing = lists.listing("cases", **filters.model_dump())

        async def read() -> CasesPage:
            rows = lists.case_rows(await deps.orgs.overview(org), filters)
            page = lists.paged(rows, listing, cursor, limit)
            return CasesPage(
                org=org, total=page.total, items=page.items, next_cursor=page.next_cursor
            )

        return await org_read(deps, request, org, domain.OVERVIEW, read)

    @app.get(
        "/api/orgs/{org}/cases.csv",
        responses={**problems(401, 403, 503), 200: {"content": {"text/csv": {}}}},
        tags=["lists"],
    )
    async def cases_csv(
        request: Request, org: OrgPath, filters: Annotated[CaseFilters, Query()]
    ) -> Response:
        """Every case the same filters list, as CSV."""

        async def read() -> str:
            return lists.as_csv(
                lists.every(lists.case_rows(await deps.orgs.overview(org), filters)), CASE_COLUMNS
            )

        return await org_read(deps, request, org, domain.OVERVIEW, read)


def _supporter_routes(app: FastAPI, deps: ConsoleDeps) -> None:
    @app.get(
        "/api/orgs/{org}/supporters",
        response_model=SupportersPage,
        responses=problems(400, 401, 403, 503),
        tags=["lists"],
    )
    async def supporters(
        request: Request,
        org: OrgPath,
        filters: Annotated[SupporterFilters, Query()],
        cursor: Cursor = None,
        limit: Limit = LIST_LIMIT,
    ) -> Response:
        """The organisation's supporters, by when they registered (``sort=lapses``: whose
        vetting lapses first; ``room``: the most places free first). Filters: eligibility,
        vetting lapsing within N days, a free place, supervision overdue, suspended."""
        listing = lists.listing("supporters", **filters.model_dump())

        async def read() -> SupportersPage:
            overview = await deps.orgs.overview(org)
            rows = lists.supporter_rows(overview, filters, deps.clock())
            page = lists.paged(rows, listing, cursor, limit)
            return SupportersPage(
                org=org, total=page.total, items=page.items, next_cursor=page.next_cursor
            )

        return await org_read(deps, request, org, domain.OVERVIEW, read)

    @app.get(
        "/api/orgs/{org}/supporters.csv",
        responses={**problems(401, 403, 503), 200: {"content": {"text/csv": {}}}},
        tags=["lists"],
    )
    async def supporters_csv(
        request: Request, org: OrgPath, filters: Annotated[SupporterFilters, Query()]
    ) -> Response:
        """Every supporter the same filters list, as CSV."""

        async def read() -> str:
            overview = await deps.orgs.overview(org)
            return lists.as_csv(
                lists.every(lists.supporter_rows(overview, filters, deps.clock())),
                SUPPORTER_COLUMNS,
            )

        return await org_read(deps, request, org, domain.OVERVIEW, read)


def _proposal_routes(app: FastAPI, deps: ConsoleDeps) -> None:
    @app.get(
        "/api/orgs/{org}/proposals",
        response_model=ProposalsPage,
        responses=problems(400, 401, 403, 503),
        tags=["lists"],
    )
    async def proposals(
        request: Request,
        org: OrgPath,
        unanswered_days: Days = 0,
        cursor: Cursor = None,
        limit: Limit = LIST_LIMIT,
    ) -> Response:
        """Proposals the client has not answered for at least ``unanswered_days`` days,
        the oldest first."""
        listing = lists.listing("proposals", unanswered_days=unanswered_days)

        async def read() -> ProposalsPage:
            overview = await deps.orgs.overview(org)
            rows = lists.proposal_rows(overview, unanswered_days, deps.clock())
            page = lists.paged(rows, listing, cursor, limit)
            return ProposalsPage(
                org=org, total=page.total, items=page.items, next_cursor=page.next_cursor
            )

        return await org_read(deps, request, org, domain.OVERVIEW, read)

    @app.get(
        "/api/orgs/{org}/proposals.csv",
        responses={**problems(401, 403, 503), 200: {"content": {"text/csv": {}}}},
        tags=["lists"],
    )
    async def proposals_csv(request: Request, org: OrgPath, unanswered_days: Days = 0) -> Response:
        """Every proposal the same filter lists, as CSV."""

        async def read() -> str:
            overview = await deps.orgs.overview(org)
            return lists.as_csv(
                lists.every(lists.proposal_rows(overview, unanswered_days, deps.clock())),
                PROPOSAL_COLUMNS,
            )

        return await org_read(deps, request, org, domain.OVERVIEW, read)


def _search_routes(app: FastAPI, deps: ConsoleDeps) -> None:
    @app.get(
        "/api/orgs/{org}/search",
        response_model=SearchResults,
        responses=problems(400, 401, 403, 503),
        tags=["lists"],
    )
    async def search(
        request: Request,
        org: OrgPath,
        q: Annotated[str, Query(min_length=1, max_length=200, description="What to find")],
        cursor: Cursor = None,
        limit: Limit = LIST_LIMIT,
    ) -> Response:
        """Clients (by their case) and supporters whose reference starts with ``q``, or
        whose name, email or phone matches every word of it (the start of a word of a
        name, of an email, or of any ending of a phone number). Answers with names: the
        search index is kept in the console's memory only."""
        listing = lists.listing("search", q=q)

        async def read() -> SearchResults:
            index = await deps.orgs.search_index(org)
            page = lists.paged(lists.found_rows(index, q), listing, cursor, limit)
            return SearchResults(
                org=org, total=page.total, items=page.items, next_cursor=page.next_cursor
            )

        return await org_read(deps, request, org, "ViewCase", read)

    @app.get(
        "/api/attention",
        response_model=Attention,
        responses=problems(400, 401, 503),
        tags=["lists"],
    )
    async def attention(
        request: Request, cursor: Cursor = None, limit: Limit = LIST_LIMIT
    ) -> Response:
        """What needs the signed-in coordinator now, in every organisation they work in,
        the most overdue first: matches paused for review, places held that end within a
        day, consents missing for three days, first meetings within two days and not
        confirmed, clients waiting over two weeks, supervision overdue, vetting lapsing
        within two weeks."""
        found = await signed_in(deps, request)
        if found is None:
            return problem(domain.NOT_SIGNED_IN)
        account, now = found[1], deps.clock()
        orgs = sorted(account.roles)

        async def read() -> Attention:
            rows = []
            for org in orgs:
                try:
                    overview = await deps.orgs.overview(org)
                except (NatsError, TimeoutError):
                    await deps.orgs.failed(org)  # its connection is made again next time
                    raise
                rows += lists.attention(overview, now)
            page = lists.paged(rows, lists.listing("attention", orgs=orgs), cursor, limit)
            return Attention(
                as_of=now, total=page.total, items=page.items, next_cursor=page.next_cursor
            )

        return await answered(deps, orgs[0] if orgs else "", "attention", read)
