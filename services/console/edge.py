"""The console's edge: what every request meets before routing, signing in or parsing, as a
public web app's would.

- Every answer, a page, an API answer, a refusal or a failure, carries a Content-Security-
  Policy (this site's own scripts, styles and images only, no frame may hold it, forms post
  only here), ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin`` and
  ``X-Frame-Options: DENY``; all but the static files also ``Cache-Control: no-store``
  (pages and answers carry people's data: no browser or proxy keeps a copy).
- Forwarded headers (``X-Forwarded-For``, ``-Proto``) are believed only from the proxies
  named in ``http_trusted_proxies`` (uvicorn's own handling is off: ``app.serve``); anyone
  else's address is the peer's, so the sign-in throttle cannot be dodged with a made-up
  header.
- A request that changes something (not GET, HEAD or OPTIONS) sent from a page of another
  site is refused (403): its ``Origin`` (else its ``Referer``) must be this host, or one of
  ``http_origins``, and ``Sec-Fetch-Site`` must not say another site. A second line behind
  the CSRF token; a request with neither header (a script) is left to the token. One path
  is exempt: a person's one-click unsubscribe (RFC 8058), which their mail provider posts
  from wherever it runs; it only ever stops messages that are not essential.
- A request body larger than ``http_max_body_bytes`` is refused (413), by its
  Content-Length before a byte is read, else by counting what arrives; no route, sign-in or
  parser sees it. The body is read here, whole, before the app is called.

Refusals are problem details (RFC 9457), as every other refusal of the console.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from contracts.console import Problem
from runtime.settings import Settings
from services.console.gate import problem

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # (no-referrer would make a browser send Origin: null)
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
# RFC 8058's one-click unsubscribe: posted by a mail provider, not from our pages.
ONE_CLICK = re.compile(r"/p/[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{22}/unsubscribe")
CACHED = ("/static/", "/docs/assets/")  # stylesheets, the API reference's scripts: nobody's data


def guard(app: FastAPI, settings: Settings) -> None:
    """Put the edge around the whole app, outside even its handler of failures (so that a
    500 carries the headers too)."""
    build = app.build_middleware_stack
    proxies = [p.strip() for p in settings.http_trusted_proxies.split(",") if p.strip()]
    named = (_origin(o.strip()) for o in settings.http_origins.split(","))
    origins = frozenset(o for o in named if o)

    def built() -> ASGIApp:
        inner: ASGIApp = SameOrigin(BodyLimit(build(), settings.http_max_body_bytes), origins)
        if proxies:
            inner = cast(ASGIApp, ProxyHeadersMiddleware(cast(Callable, inner), proxies))  # type: ignore[type-arg]
        return Hardened(inner)

    app.build_middleware_stack = built  # type: ignore[method-assign]


class Hardened:
    """The headers every answer carries. A response that set its own Content-Security-Policy
    keeps it (a page that needs another sets it there, in the open)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cached = str(scope.get("path", "")).startswith(CACHED)

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    if name != "Content-Security-Policy" or name not in headers:
                        headers[name] = value
                if not cached:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, sending)


class SameOrigin:
    """Changes only from this console's own pages (or from scripts, which send no Origin)."""

    def __init__(self, app: ASGIApp, origins: frozenset[str]) -> None:
        self.app = app
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] not in SAFE_METHODS
            and not (scope["method"] == "POST" and ONE_CLICK.fullmatch(str(scope.get("path", ""))))
        ):
            why = cross_site(Headers(scope=scope), self.origins)
            if why is not None:
                refused = Problem(title="Sent from another site", status=403, detail=why)
                await problem(refused)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def cross_site(headers: Headers, origins: frozenset[str] = frozenset()) -> str | None:
    """Why a request that changes something was not sent from this console's pages; None if
    it was, or if it does not say where it came from."""
    site = headers.get("sec-fetch-site")
    if site in ("cross-site", "same-site"):
        return f"the browser says it was sent from another site (Sec-Fetch-Site: {site})"
    sent_from = headers.get("origin")
    if sent_from is None:
        referer = headers.get("referer")
        if referer is None:
            return None
        sent_from = referer
    origin, host = _origin(sent_from), headers.get("host")
    if origin is not None and (origin in origins or (host and origin == _origin(f"//{host}"))):
        return None
    return "a request that changes something must come from this console's own pages"


def _origin(url: str) -> str | None:
    """Host and port of an origin, a URL or a Host header (``//host:port``), the default
    port left out; None for anything else (``null``)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.scheme not in ("", "http", "https"):
        return None
    if port in (80, 443) or port is None:
        return parts.hostname
    return f"{parts.hostname}:{port}"


class BodyLimit:
    """No body larger than ``limit`` bytes reaches the app: refused by its Content-Length
    before it is read, else once more than ``limit`` has arrived."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self.refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self.refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body: list[bytes] = [b"".join(chunks)]

        async def replay() -> Message:
            if body:
                return {"type": "http.request", "body": body.pop(), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        too_big = Problem(
            title="Request too large",
            status=413,
            detail=f"a request body may have at most {self.limit} bytes",
        )
        await problem(too_big, {"Connection": "close"})(scope, receive, send)
