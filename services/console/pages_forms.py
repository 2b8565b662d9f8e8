"""The forms that start a record (an intake, a supporter): the form's page, and what its
command met, at each input it names, or the new record's page."""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from contracts.console import Problem
from contracts.records import ConsoleAccount
from services.console import forms
from services.console.gate import ConsoleDeps
from services.console.pages_shared import (
    Page,
    csrf_refused,
    not_allowed,
    problem_page,
    render,
    send_command,
    status_of,
)
from services.console.sessions import Session

# Where a form's command leads once accepted.
_THEN = {
    "SubmitIntake": "/orgs/{org}/cases/{case_id}?done=SubmitIntake",
    "RegisterSupporter": "/orgs/{org}/supporters/{supporter_id}?done=RegisterSupporter",
}


class FormPages:
    def __init__(self, deps: ConsoleDeps) -> None:
        self.deps = deps

    def form_page(self, form: forms.Form) -> Page:
        async def show(request: Request, account: ConsoleAccount, session: Session) -> Response:
            if (no := not_allowed(request, account, form.command_type)) is not None:
                return no
            return render(
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
            if (no := not_allowed(request, account, form.command_type)) is not None:
                return no
            fields = await request.form()
            if not session.allows(str(fields.get("csrf_token", ""))):
                return problem_page(request, csrf_refused(), org, account)
            body = forms.body_of(form, {k: [str(v) for v in fields.getlist(k)] for k in fields})
            outcome = await send_command(self.deps, org, form.command_type, body, account)
            if isinstance(outcome, Problem):
                return render(
                    request,
                    "form.html",
                    status_of(outcome),
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
