"""The forms on a record's page (a case's, a supporter's, the group sessions'), sent as their
commands: asked about first where ``actions.CONFIRM`` says so, then the page again saying
what was done (``actions.DONE``), or what was refused and why; and a person's export, given
as a file to download."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from contracts.console import Problem
from contracts.intake import ExportPersonData, PersonData
from contracts.records import ConsoleAccount
from contracts.replies import CommandRejected
from contracts.views import CaseView, SupporterView, ViewCase, ViewSupporter
from services.console import actions, domain, forms
from services.console.gate import ConsoleDeps, send_as
from services.console.pages_shared import (
    Page,
    csrf_refused,
    not_allowed,
    problem_page,
    render,
    send_command,
    zone_of,
)
from services.console.sessions import Session

# Form fields that carry several values, and those that are moments in the org's time zone.
_MANY = frozenset({"stages", "purposes"})
_MOMENTS = frozenset({"start", "first_session"})
_NOT_SENT = frozenset({"csrf_token", "confirmed"})  # the form's own, not the command's


def body_of(
    sent: Mapping[str, Sequence[str]], zone: ZoneInfo, ids: Mapping[str, str]
) -> dict[str, Any]:
    """The command's body from a form: dotted names nest (``changes.suspended``), empty
    inputs are left out, moments are in the organisation's zone; ``ids`` from the path win."""
    body: dict[str, Any] = {}
    for key, raw in sent.items():
        if key in _NOT_SENT:
            continue
        values = [v.strip() for v in raw if v.strip()]
        if key in _MANY:
            forms.put(body, key.split("."), values)
        elif values:
            value = _moment(values[0], zone) if key in _MOMENTS else values[0]
            forms.put(body, key.split("."), value)
    body.update(ids)
    return body


def _moment(value: str, zone: ZoneInfo) -> str:
    """A browser's local date and time (``2026-12-01T18:00``) in the organisation's zone."""
    with contextlib.suppress(ValueError):
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            return moment.replace(tzinfo=zone).isoformat()
    return value  # as sent: the command's model says what is wrong with it


@dataclass(frozen=True)
class Said:
    """What a page says once an action is done, and the reverse's form where there is one."""

    text: str
    undo: str | None = None
    undo_label: str = ""
    undo_fields: dict[str, str] = field(default_factory=dict)


def said_of(
    query: Mapping[str, str],
    account: ConsoleAccount,
    words: Mapping[str, Callable[[str], str]] | None = None,
) -> Said | None:
    """The done message a page's ``?done=`` names, its carried fields in plain words
    (``words``: a party's id to their name...); None when nothing was done (or unknown)."""
    done = actions.DONE.get(query.get("done", ""))
    if done is None:
        return None
    words = words or {}
    carried = {key: words.get(key, str)(query.get(key, "")) or "(not said)" for key in done.carry}
    return Said(done.said.format(account=account.name, **carried), done.undo, done.undo_label)


Shown = Callable[..., Awaitable[Response]]


class Acting:
    def __init__(self, deps: ConsoleDeps) -> None:
        self.deps = deps

    def acting(self, shown: Shown, allowed: frozenset[str], id_name: str | None) -> Page:
        """A form on a page: sent as its command with the page's id (``id_name`` in the path,
        if any), or first a page asking to confirm it; then the page again, saying what was
        done, or what was refused and why."""

        async def act(request: Request, account: ConsoleAccount, session: Session) -> Response:
            org, type_name = request.path_params["org"], request.path_params["type_name"]
            form = await request.form()
            if not session.allows(str(form.get("csrf_token", ""))):
                return problem_page(request, csrf_refused(), org, account)
            if type_name not in allowed:
                unknown = Problem(
                    title="No such action", status=404, detail=f"{type_name} is not sent from here"
                )
                return problem_page(request, unknown, org, account)
            if (no := not_allowed(request, account, type_name)) is not None:
                return no
            sent = {k: [str(v) for v in form.getlist(k)] for k in form}
            first = {k: v[0] for k, v in sent.items() if v}
            page = request.url.path.rsplit("/act/", 1)[0]
            ids = {id_name: request.path_params[id_name]} if id_name else {}
            confirm = actions.confirming(type_name, first)
            if confirm is not None and first.get("confirmed") != "yes":
                name = await self._name_of(org, ids, account)
                return render(
                    request,
                    "confirm.html",
                    org=org,
                    account=account,
                    session=session,
                    question=confirm.question.format(name=name),
                    consequence=confirm.consequence.format(name=name),
                    button=confirm.button,
                    fields=[(k, v) for k, vs in sent.items() if k not in _NOT_SENT for v in vs],
                    back=page,
                )
            body = actions.placed(type_name, body_of(sent, await zone_of(self.deps, org), ids))
            outcome = await send_command(self.deps, org, type_name, body, account)
            if isinstance(outcome, Problem):
                return await shown(request, account, session, refused=outcome)
            key = actions.done_key(type_name, first)
            carried = {k: first.get(k, "") for k in actions.DONE[key].carry}
            if type_name in actions.LEAVES:
                page = f"/orgs/{org}/done"
            return RedirectResponse(f"{page}?{urlencode({'done': key, **carried})}", 303)

        return act

    async def _name_of(self, org: str, ids: Mapping[str, str], account: ConsoleAccount) -> str:
        """Whom a confirmation is about, by name (as the record's page shows it)."""
        if "case_id" in ids:
            case = await send_as(self.deps, org, ViewCase(case_id=ids["case_id"]), None, account)
            if isinstance(case, CaseView):
                return case.case.intake.client.display_name
        if "supporter_id" in ids:
            viewing = ViewSupporter(supporter_id=ids["supporter_id"])
            found = await send_as(self.deps, org, viewing, None, account)
            if isinstance(found, SupporterView):
                return found.profile.display_name
        return next(iter(ids.values()), "this record")

    async def done(self, request: Request, account: ConsoleAccount, session: Session) -> Response:
        """What was done when its record is gone (an erasure): said on a page of its own."""
        said = said_of(request.query_params, account)
        return render(
            request,
            "done.html",
            org=request.path_params["org"],
            account=account,
            session=session,
            said=said,
        )

    async def export(self, request: Request, account: ConsoleAccount, session: Session) -> Response:
        """Everything held about a person (a subject access request), as a JSON file."""
        org = request.path_params["org"]
        form = await request.form()
        if not session.allows(str(form.get("csrf_token", ""))):
            return problem_page(request, csrf_refused(), org, account)
        if (no := not_allowed(request, account, ExportPersonData.type_name)) is not None:
            return no
        try:
            asking = ExportPersonData(
                person=str(form.get("person", "")),
                subject_id=str(form.get("subject_id", "")),
            )
        except ValidationError:
            odd = Problem(title="No such person", status=404, detail="say a client or supporter")
            return problem_page(request, odd, org, account)
        reply = await send_as(self.deps, org, asking, None, account)
        if not isinstance(reply, PersonData):
            refused = reply if isinstance(reply, Problem) else _refused_export(reply)
            return problem_page(request, refused, org, account)
        # The id is an EntityId (letters, digits, - and _): safe in the header as it is.
        named = f"alongside-{asking.person}-{asking.subject_id}.json"
        return Response(
            reply.model_dump_json(indent=2),
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{named}"'},
        )


def _refused_export(reply: Any) -> Problem:
    if isinstance(reply, CommandRejected):
        return domain.problem_of(reply)
    return Problem(title="Unexpected answer", status=502, detail=type(reply).__name__)
