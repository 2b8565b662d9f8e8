"""The console's pages: server-rendered HTML and plain forms (no script needed), over the
same reads and commands as the API, sent the same way (``gate``).

A page that changes something posts a form carrying the session's CSRF token; the answer is
a redirect back to the page (POST, redirect, GET), or the page again with the service's
refusal, each field named as the API names it. Here is which page answers each path; the
pages are in ``pages_sign_in``, ``pages_overview``, ``pages_records`` and ``pages_forms``, what
the forms on a record's page send in ``pages_actions``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from services.console import forms
from services.console.actions import CASE_ACTIONS, GROUP_ACTIONS, SUPPORTER_ACTIONS
from services.console.gate import ConsoleDeps
from services.console.pages_actions import Acting
from services.console.pages_forms import FormPages
from services.console.pages_lists import ListPages
from services.console.pages_overview import OverviewPages
from services.console.pages_records import RecordPages
from services.console.pages_shared import signed
from services.console.pages_sign_in import SignInPages


def add_pages(app: FastAPI, deps: ConsoleDeps) -> None:
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    lists, records, new = OverviewPages(deps), RecordPages(deps), FormPages(deps)
    sending, finding = Acting(deps), ListPages(deps)
    for path, method, handler in [
        ("/", "GET", lists.home),
        ("/orgs/{org}", "GET", lists.today),
        ("/orgs/{org}/reports", "GET", lists.reports),
        ("/orgs/{org}/rules", "GET", lists.rules),
        ("/orgs/{org}/attention", "GET", finding.attention),
        ("/orgs/{org}/search", "GET", finding.search),
        ("/orgs/{org}/cases", "GET", finding.cases),
        ("/orgs/{org}/cases/bulk", "POST", finding.bulk),
        ("/orgs/{org}/supporters", "GET", finding.supporters),
        ("/orgs/{org}/proposals", "GET", finding.proposals),
        # Before /supporters/{supporter_id}: "new" is a valid id.
        ("/orgs/{org}/intake", "GET", new.form_page(forms.INTAKE)),
        ("/orgs/{org}/intake", "POST", new.form_sent(forms.INTAKE)),
        ("/orgs/{org}/supporters/new", "GET", new.form_page(forms.SUPPORTER)),
        ("/orgs/{org}/supporters/new", "POST", new.form_sent(forms.SUPPORTER)),
        ("/orgs/{org}/cases/{case_id}", "GET", records.case),
        (
            "/orgs/{org}/cases/{case_id}/act/{type_name}",
            "POST",
            sending.acting(records.case, CASE_ACTIONS, "case_id"),
        ),
        ("/orgs/{org}/supporters/{supporter_id}", "GET", records.supporter),
        (
            "/orgs/{org}/supporters/{supporter_id}/act/{type_name}",
            "POST",
            sending.acting(records.supporter, SUPPORTER_ACTIONS, "supporter_id"),
        ),
        ("/orgs/{org}/groups", "GET", records.groups),
        (
            "/orgs/{org}/groups/act/{type_name}",
            "POST",
            sending.acting(records.groups, GROUP_ACTIONS, None),
        ),
        ("/orgs/{org}/export", "POST", sending.export),
        ("/orgs/{org}/done", "GET", sending.done),
    ]:
        app.add_api_route(path, signed(deps, handler), methods=[method], include_in_schema=False)
    sign_in = SignInPages(deps)
    app.add_api_route("/sign-in", sign_in.sign_in_page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/sign-in", sign_in.sign_in, methods=["POST"], include_in_schema=False)
    app.add_api_route("/sign-out", sign_in.sign_out, methods=["POST"], include_in_schema=False)
