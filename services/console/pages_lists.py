"""The pages that find work: cases, supporters and unanswered proposals with their filters
(plain GET forms, no script), a search, and what needs the coordinator's attention. Each is
read a page at a time (``lists``), with a link to the next page and to the whole list as
CSV (the API's)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar, get_args
from zoneinfo import ZoneInfo

from fastapi import Request, Response

from contracts.console import Problem
from contracts.lists import LIST_LIMIT, CaseState, WaitsOn
from contracts.records import ConsoleAccount
from services.console import bulk, domain, forms, lists
from services.console.gate import ConsoleDeps
from services.console.lists import (
    BadCursor,
    CaseFilters,
    CaseSort,
    Eligibility,
    SupporterFilters,
    SupporterSort,
)
from services.console.overview import Overview
from services.console.pages_shared import (
    csrf_refused,
    not_allowed,
    overview_of,
    problem_page,
    render,
    send_command,
)
from services.console.search import DirectoryUnread
from services.console.sessions import Session

# Each filter's choices, in the order a page offers them.
CASE_STATES: tuple[CaseState, ...] = get_args(CaseState)
WAITS_ON: tuple[WaitsOn, ...] = get_args(WaitsOn)
CASE_SORTS: tuple[CaseSort, ...] = get_args(CaseSort)
ELIGIBILITY: tuple[Eligibility, ...] = get_args(Eligibility)
SUPPORTER_SORTS: tuple[SupporterSort, ...] = get_args(SupporterSort)
YES_NO = ("true", "false")  # as the API takes them: one query string for both
Choice = TypeVar("Choice", bound=str)


class Unfit(ValueError):
    """A filter's value a page cannot use: said in plain words."""


@dataclass(frozen=True)
class Asked:
    """A page's query: its filters as sent (to show them again) and the cursor."""

    values: Mapping[str, str]
    cursor: str | None

    @classmethod
    def of(cls, request: Request) -> Asked:
        values = {k: v for k, v in request.query_params.items() if v and k != "cursor"}
        return cls(values, request.query_params.get("cursor") or None)

    def choice(self, name: str, choices: tuple[Choice, ...], said: str) -> Choice | None:
        """The value sent, as one of ``choices`` (typed as they are), or None if none."""
        value = self.values.get(name)
        if value is None:
            return None
        for choice in choices:
            if choice == value:
                return choice
        raise Unfit(f"{said}: choose one of the listed options")

    def yes_no(self, name: str, said: str) -> bool | None:
        value = self.choice(name, YES_NO, said)
        return None if value is None else value == "true"

    def days(self, name: str, said: str) -> int | None:
        value = self.values.get(name)
        if value is None:
            return None
        if not value.isdigit() or int(value) > 3650:
            raise Unfit(f"{said}: give a whole number of days, from 0 to 3650")
        return int(value)


class ListPages:
    def __init__(self, deps: ConsoleDeps) -> None:
        self.deps = deps

    async def cases(self, request: Request, account: ConsoleAccount, session: Session) -> Response:
        def rows(found: Overview, asked: Asked) -> list[tuple[lists.Key, lists.Made[Any]]]:
            filters = CaseFilters(
                stage=asked.choice("stage", (*forms.STAGES, "closed"), "Stage of the dispute"),
                state=asked.choice("state", CASE_STATES, "Where the case is"),
                waits_on=asked.choice("waits_on", WAITS_ON, "Waiting on"),
                sort=asked.choice("sort", CASE_SORTS, "Order") or "opened",
            )
            return lists.case_rows(found, filters)

        return await self._list(request, account, session, "cases.html", "cases", rows)

    async def supporters(
        self, request: Request, account: ConsoleAccount, session: Session
    ) -> Response:
        now = self.deps.clock()

        def rows(found: Overview, asked: Asked) -> list[tuple[lists.Key, lists.Made[Any]]]:
            filters = SupporterFilters(
                eligibility=asked.choice("eligibility", ELIGIBILITY, "Eligibility"),
                lapsing_within_days=asked.days("lapsing_within_days", "Vetting lapses within"),
                with_room=asked.yes_no("with_room", "A place free"),
                supervision_overdue=asked.yes_no("supervision_overdue", "Supervision overdue"),
                suspended=asked.yes_no("suspended", "Suspended"),
                sort=asked.choice("sort", SUPPORTER_SORTS, "Order") or "registered",
            )
            return lists.supporter_rows(found, filters, now)

        return await self._list(request, account, session, "supporters.html", "supporters", rows)

    async def proposals(
        self, request: Request, account: ConsoleAccount, session: Session
    ) -> Response:
        now = self.deps.clock()

        def rows(found: Overview, asked: Asked) -> list[tuple[lists.Key, lists.Made[Any]]]:
            days = asked.days("unanswered_days", "Unanswered for at least") or 0
            return lists.proposal_rows(found, days, now)

        return await self._list(request, account, session, "proposals.html", "proposals", rows)

    async def search(self, request: Request, account: ConsoleAccount, session: Session) -> Response:
        org = request.path_params["org"]
        if (no := not_allowed(request, account, "ViewCase")) is not None:
            return no
        asked = Asked.of(request)
        query = asked.values.get("q", "").strip()[:200]
        found: lists.Page[Any] | None = None
        unfit: str | None = None
        if query:
            try:
                index = await self.deps.orgs.search_index(org)
                rows = lists.found_rows(index, query)
                found = lists.paged(
                    rows, lists.listing("search", q=query), asked.cursor, LIST_LIMIT
                )
            except BadCursor as error:
                unfit = str(error)
            except (DirectoryUnread, TimeoutError, OSError) as error:
                said = domain.try_again(f"the search could not be read ({type(error).__name__})")
                return problem_page(request, said, org, account)
        return render(
            request,
            "search.html",
            org=org,
            account=account,
            session=session,
            query=query,
            found=found,
            unfit=unfit,
            asked=asked,
        )

    async def attention(
        self, request: Request, account: ConsoleAccount, session: Session
    ) -> Response:
        """What needs the signed-in person in each of their organisations."""
        org = request.path_params["org"]
        if (no := not_allowed(request, account, domain.OVERVIEW)) is not None:
            return no
        now, rows, zone = self.deps.clock(), [], ZoneInfo("UTC")
        for each in sorted(account.roles):
            overview = await overview_of(self.deps, each)
            if isinstance(overview, Problem):
                return problem_page(request, overview, org, account)
            rows += lists.attention(overview, now)
            if each == org:
                zone = overview.zone  # times as the page's organisation keeps them
        asked = Asked.of(request)
        try:
            listing = lists.listing("attention", orgs=sorted(account.roles))
            page = lists.paged(rows, listing, asked.cursor, LIST_LIMIT)
        except BadCursor as error:
            return problem_page(
                request,
                Problem(title="Cursor not from this list", status=400, detail=str(error)),
                org,
                account,
            )
        return render(
            request,
            "attention.html",
            org=org,
            account=account,
            session=session,
            page=page,
            asked=asked,
            zone=zone,
            now=now,
        )

    async def bulk(self, request: Request, account: ConsoleAccount, session: Session) -> Response:
        """One action on the cases chosen in the list (``bulk``), each case's outcome shown."""
        org, sent = request.path_params["org"], await request.form()
        if not session.allows(str(sent.get("csrf_token", ""))):
            return problem_page(request, csrf_refused(), org, account)
        action = next((a for a in bulk.BULK_ACTIONS if a == sent.get("action")), None)
        if action is None:
            unknown = Problem(title="Choose an action", status=400, detail="choose what to do")
            return problem_page(request, unknown, org, account)
        if (no := not_allowed(request, account, action)) is not None:
            return no
        found = await overview_of(self.deps, org)
        if isinstance(found, Problem):
            return problem_page(request, found, org, account)
        today = self.deps.clock().astimezone(found.zone).date()
        given_on = _day(str(sent.get("given_on", ""))) or today
        case_ids = [str(v) for v in sent.getlist("case_id")][: bulk.MOST]
        stage = str(sent.get("stage", ""))
        form_id = str(sent.get("bulk_id", ""))
        done = []
        for item in bulk.sendings(found, action, case_ids, stage, given_on):
            said = json.dumps([form_id, item.type_name, item.body], sort_keys=True)
            command_id = "bulk-" + hashlib.sha256(said.encode()).hexdigest()[:32]
            refused = await send_command(
                self.deps, org, item.type_name, item.body, account, command_id
            )
            done.append((item.case_id, item.what, bulk.outcome(refused)))
        return render(
            request,
            "bulk_done.html",
            org=org,
            account=account,
            session=session,
            done=done,
            chosen=len(case_ids),
        )

    async def _list(
        self,
        request: Request,
        account: ConsoleAccount,
        session: Session,
        template: str,
        name: str,
        rows: Callable[[Overview, Asked], list[tuple[lists.Key, lists.Made[Any]]]],
    ) -> Response:
        org = request.path_params["org"]
        if (no := not_allowed(request, account, domain.OVERVIEW)) is not None:
            return no
        found = await overview_of(self.deps, org)
        if isinstance(found, Problem):
            return problem_page(request, found, org, account)
        asked = Asked.of(request)
        page: lists.Page[Any] | None = None
        unfit: str | None = None
        try:
            listing = lists.listing(name, **asked.values)
            page = lists.paged(rows(found, asked), listing, asked.cursor, LIST_LIMIT)
        except (Unfit, BadCursor) as error:
            unfit = str(error)
        today = self.deps.clock().astimezone(found.zone).date()
        return render(
            request,
            template,
            400 if unfit else 200,
            today=today,
            bulk_id=secrets.token_urlsafe(12),  # a form sent twice acts once (``bulk``)
            org=org,
            account=account,
            session=session,
            zone=found.zone,
            page=page,
            unfit=unfit,
            asked=asked,
            stages=forms.STAGES,
            states=CASE_STATES,
            waits=WAITS_ON,
            eligibility=ELIGIBILITY,
            now=self.deps.clock(),
        )


def _day(text: str) -> date | None:
    with contextlib.suppress(ValueError):
        return date.fromisoformat(text)
    return None
