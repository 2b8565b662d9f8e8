"""Signing in and out from the console's pages."""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from contracts.console import Problem
from services.console.gate import (
    ConsoleDeps,
    cookie_name,
    delete_cookie,
    end_session,
    set_cookie,
    signed_in,
    signing_in,
    start_session,
)
from services.console.pages_shared import csrf_refused, problem_page, render
from services.console.sessions import SIGN_IN_COOKIE

SIGN_IN_LASTS_S = 3600  # a sign-in page's token: an hour to fill it in


class SignInPages:
    def __init__(self, deps: ConsoleDeps) -> None:
        self.deps = deps

    async def sign_in_page(self, request: Request, next: str = "/") -> Response:
        return self.sign_in_form(request, same_site(next), None, "")

    def sign_in_form(
        self, request: Request, goto: str, problem: Problem | None, email: str
    ) -> Response:
        """The sign-in page, its form carrying a token for the nonce in the browser's cookie
        (login CSRF: no other site can sign this browser in to an account of its own)."""
        sessions, name = self.deps.sessions, cookie_name(self.deps, request, SIGN_IN_COOKIE)
        nonce = sessions.sign_in_nonce(request.cookies.get(name))
        response = render(
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
            return problem_page(request, csrf_refused(), None, None)
        response = RedirectResponse("/sign-in", status_code=303)
        await end_session(self.deps, request, response, found[0] if found else None)
        return response


def same_site(url: str) -> str:
    """Only a path on this site: a sign-in link cannot send anyone elsewhere."""
    # Not "//host" nor "/\\host": browsers take both for another site.
    return url if url.startswith("/") and url[1:2] not in ("/", "\\") else "/"
