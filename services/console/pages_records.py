"""A case's page, a supporter's and the group sessions': the record as its services show it,
with a form for each command a coordinator (or supervisor) gives from there; what the forms
send is ``pages_actions``'."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request, Response

from contracts.console import Problem
from contracts.intake import CLIENT_PARTY_ID
from contracts.notifications import Person
from contracts.records import ConsoleAccount, PersonContact
from contracts.replies import CommandRejected
from contracts.views import CaseView, SupporterView, ViewCase, ViewSupporter
from services.console import actions, domain, forms
from services.console.api_timeline import timeline_shown
from services.console.gate import ConsoleDeps, send_as
from services.console.labels import plain
from services.console.overview import Overview
from services.console.pages_actions import Said, said_of
from services.console.pages_shared import (
    not_allowed,
    overview_of,
    problem_page,
    render,
    status_of,
    zone_of,
)
from services.console.sessions import Session

UPCOMING_DAYS = 14  # a supporter's sessions shown ahead
# The kinds of vetting evidence, each recorded from a form of its own (no script needed to
# show one kind's inputs and hide another's).
EVIDENCE_KINDS = ("record_check", "interview", "reference", "recovery", "training", "supervision")


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
        today = self.deps.clock().astimezone(zone).date()
        names = {CLIENT_PARTY_ID: "the client"} | {
            p.party_id: f"{p.name} ({p.party_id})" for p in reply.case.intake.other_parties
        }
        said = said_of(
            request.query_params,
            account,
            {
                "party_id": lambda party: names.get(party, party),
                "stage": lambda stage: plain(stage, "stage"),
                "by": lambda side: f"the {side}",
                "until": _day,
            },
        )
        return render(
            request,
            "case.html",
            status_of(refused),
            org=org,
            account=account,
            session=session,
            view=reply,
            zone=zone,
            parties=list(names),
            party_names=names,
            # Who has consent on record now: whose consent can be withdrawn.
            consented=[p for p, c in reply.case.consents.items() if c.status == "given"],
            stages=forms.STAGES,
            methods=forms.METHODS,
            refused=refused,
            labels=actions.field_label,
            said=_case_undo(said, request.query_params, reply, zone, today),
            may=_may(account, org),
            today=today,
            timeline=await timeline_shown(self.deps, org, case_id, account),
            contacts={
                party: await contact_of(self.deps, org, _person_key(case_id, party))
                for party in names
            },
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
        said = said_of(request.query_params, account)
        if said is not None and said.undo == "UpdateSupporter" and reply.suspended:
            said = _with_undo(said, {"changes.suspended": "false"})
        elif said is not None:
            said = _with_undo(said, None)
        return render(
            request,
            "supporter.html",
            status_of(refused),
            org=org,
            account=account,
            session=session,
            view=reply,
            refused=refused,
            labels=actions.field_label,
            zone=zone,
            said=said,
            may=_may(account, org),
            evidence_kinds=EVIDENCE_KINDS,
            today=self.deps.clock().astimezone(zone).date(),
            upcoming=upcoming,
            days=UPCOMING_DAYS,
            contact=await contact_of(
                self.deps, org, Person(kind="supporter", supporter_id=supporter_id).key
            ),
        )

    async def groups(
        self,
        request: Request,
        account: ConsoleAccount,
        session: Session,
        refused: Problem | None = None,
    ) -> Response:
        """The organisation's group sessions: set one up, or have a client join one."""
        org = request.path_params["org"]
        if (no := not_allowed(request, account, "CreateGroupSession")) is not None:
            return no
        found = await overview_of(self.deps, org)
        now = self.deps.clock()
        coming = (
            sorted(
                ((g.start, group_id, g) for group_id, g in found.groups.items() if g.end >= now),
                key=lambda row: row[:2],
            )
            if isinstance(found, Overview)
            else []
        )
        return render(
            request,
            "groups.html",
            status_of(refused),
            org=org,
            account=account,
            session=session,
            refused=refused,
            coming=coming,
            zone=found.zone if isinstance(found, Overview) else ZoneInfo("UTC"),
            labels=actions.field_label,
            said=said_of(request.query_params, account),
            methods=forms.METHODS,
        )


def _person_key(case_id: str, party_id: str) -> str:
    if party_id == CLIENT_PARTY_ID:
        return Person(kind="client", case_id=case_id).key
    return Person(kind="party", case_id=case_id, party_id=party_id).key


async def contact_of(deps: ConsoleDeps, org: str, key: str) -> PersonContact | None:
    """How a person may be contacted, as the notifications service keeps it (None: as yet
    unchosen, or no bucket to read)."""
    if deps.contacts is None:
        return None
    stored, _ = await deps.contacts.load(org, key)
    return stored.record if stored else None


def _may(account: ConsoleAccount, org: str) -> Callable[[str], bool]:
    """Whether the account may send a command: a form it may not send is not shown."""
    return lambda type_name: domain.refusal(account, org, type_name) is None


def _day(text: str) -> str:
    try:
        return date.fromisoformat(text).strftime("%a %d %b %Y")
    except ValueError:
        return text


def _with_undo(said: Said, fields: dict[str, str] | None) -> Said:
    """The done message with its reverse's form, or without it (it does not apply now)."""
    if fields is None:
        return Said(said.text)
    return Said(said.text, said.undo, said.undo_label, fields)


def _case_undo(
    said: Said | None, query: Any, view: CaseView, zone: ZoneInfo, today: date
) -> Said | None:
    """The reverse of what was just done on a case, filled in: consent given again by the
    party who withdrew it, for the case's stage, today; a cancelled session booked again at
    its time, for as long, the same way."""
    if said is None or said.undo is None:
        return said
    if said.undo == "GiveConsent" and query.get("party_id"):
        return _with_undo(
            said,
            {"party_id": query["party_id"], "stages": view.case.stage, "given_on": str(today)},
        )
    cancelled = view.schedule.session(query.get("session_id", "")) if view.schedule else None
    if said.undo == "BookSession" and cancelled is not None and cancelled.status == "cancelled":
        minutes = int((cancelled.end - cancelled.start).total_seconds() // 60)
        start: datetime = cancelled.start.astimezone(zone)
        return _with_undo(
            said,
            {"start": start.isoformat(), "minutes": str(minutes), "method": cancelled.method},
        )
    return _with_undo(said, None)


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
