"""The console's own health, readiness and metrics, as every service has them
(``runtime/health.py``), on the console's port:

- ``GET /healthz``: 204 while the console reaches NATS (its accounts bucket answers), else
  500: a liveness check, restart a console that stays at 500;
- ``GET /readyz``: 204 when it can serve (the same, now), else 503 with the reason: a
  readiness check, send it people only then;
- ``GET /metrics``: Prometheus's text format; the console's requests by kind and status
  class (``alongside_console_requests_total``), every label set from zero.

None of them needs a session, and none is counted as a request.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from runtime import metrics
from runtime.logging import get_logger
from services.console.gate import ConsoleDeps

log = get_logger(__name__)

CHECK_TIMEOUT_S = 2.0
PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
Scope = dict[str, Any]


def add_health(app: FastAPI, deps: ConsoleDeps) -> None:
    """The endpoints on ``app``, and its requests counted."""
    metrics.start_at_zero("console")

    async def reaches_nats() -> str | None:
        """None when the console's NATS answers; else why not."""
        try:
            await asyncio.wait_for(deps.accounts.kv.status(), CHECK_TIMEOUT_S)
        except Exception as error:  # timed out, closed, no JetStream: all "not now"
            return f"console: NATS out of reach ({type(error).__name__})"
        return None

    @app.get("/healthz", status_code=204, include_in_schema=False)
    async def healthz() -> Response:
        failing = await reaches_nats()
        return Response(status_code=204) if failing is None else PlainTextResponse(failing, 500)

    @app.get("/readyz", status_code=204, include_in_schema=False)
    async def readyz() -> Response:
        failing = await reaches_nats()
        return Response(status_code=204) if failing is None else PlainTextResponse(failing, 503)

    @app.get("/metrics", include_in_schema=False)
    async def exposition() -> Response:
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(_Counted)


def kind_of(path: str) -> str | None:
    """What a request is, as its metric's label; None for the probes, not counted."""
    if path in PROBES:
        return None
    parts = path.strip("/").split("/")
    if parts[0] == "api":
        if parts[1:2] == ["session"]:
            return "session"
        return "command" if len(parts) == 5 and parts[3] == "commands" else "read"
    if parts[0] in ("sign-in", "sign-out"):
        return "session"
    return "page"


class _Counted:
    """Counts each request the console answers by kind and status class."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = kind_of(scope["path"]) if scope["type"] == "http" else None
        if kind is None:
            await self.app(scope, receive, send)
            return
        status: list[int] = []

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            answered = f"{(status[0] if status else 500) // 100}xx"
            if answered in metrics.STATUS_CLASSES:
                metrics.CONSOLE_REQUESTS.labels(kind, answered).inc()
