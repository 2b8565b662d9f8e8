"""The API's reference: the OpenAPI document as served at ``/openapi.json``, and the page that
shows it at ``/docs``.

FastAPI writes the document from the routes and the contracts; this module says what it
cannot know on its own, so that a client (or a property-based tester) holding the document
is never surprised by an answer:

- Every refusal and failure is problem details (RFC 9457), as ``application/problem+json``
  with the ``Problem`` schema: 422 (the request does not match this document), 400 (a body
  that could not be read), 413 (too large), 500 (the console failed), and each route's own.
- How a request is signed in (``securitySchemes``): the session cookie, and for a request
  that changes something the session's CSRF token in ``X-CSRF-Token``.
- A discriminated union's tag is required in each of its variants, as the API requires it
  (a model may give it a default; the API does not guess which variant was meant).

And the API holds to it: a command's body is checked against the document as served
(``Bodies``) besides its model, which alone would take ``0`` for false, ``"5"`` for 5 and
``0`` for 1970-01-01 where the document says a boolean, an integer and a date.

The page works offline: Swagger UI's script and stylesheet come from the console itself (the
``fastapi-offline`` package ships them), and its own start-up is a script of this site, not
inline, so the console's Content-Security-Policy needs no exception.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema_rs
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from services.console.gate import PROBLEM
from services.console.sessions import COOKIE, CSRF_HEADER

PROBLEM_SCHEMA = {"$ref": "#/components/schemas/Problem"}
SECURITY_SCHEMES = {
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": COOKIE,
        "description": "The session, set by `POST /api/session` (HTTP-only; named "
        f"`__Host-{COOKIE}` when served over HTTPS).",
    },
    "csrf": {
        "type": "apiKey",
        "in": "header",
        "name": CSRF_HEADER,
        "description": "The session's `csrf_token` (from `POST /api/session` or "
        "`GET /api/session`), sent with every request that changes something.",
    },
}
SIGNED_IN: list[dict[str, list[str]]] = [{"session": []}]
CHANGING: list[dict[str, list[str]]] = [{"session": [], "csrf": []}]
# Statuses every operation may answer besides its own, and those of one with a body.
ANY_OPERATION = {
    "500": "The console failed to answer (the failure is logged). A command sent "
    "with an Idempotency-Key may be sent again with it."
}
WITH_BODY = {
    "400": "The body could not be read (not JSON as declared).",
    "413": "The body is larger than the console takes.",
}
CHANGING_ANY = {"403": "Sent from a page of another site (its Origin or Sec-Fetch-Site)."}
ASSETS = "/docs/assets"
_SWAGGER_UI = Path(str(resources.files("fastapi_offline").joinpath("static")))


def document(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """``app.openapi``: FastAPI's document, refined once, then served as it is."""
    made = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = refined(made())
        return app.openapi_schema

    return openapi


def refined(found: dict[str, Any]) -> dict[str, Any]:
    """FastAPI's document with what it cannot know (this module's docstring)."""
    components = found.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for path, method, operation in _operations(found):
        responses = operation["responses"]
        extra = {
            **ANY_OPERATION,
            **(WITH_BODY if "requestBody" in operation else {}),
            **(CHANGING_ANY if method not in ("get", "head", "options") else {}),
        }
        for status, description in extra.items():
            responses.setdefault(status, {"description": description})
        for status, response in responses.items():
            if int(status) >= 400:
                response["content"] = {PROBLEM: {"schema": PROBLEM_SCHEMA}}
        operation["responses"] = dict(sorted(responses.items()))
        # The CSRF token is a credential: the security scheme says it, not a parameter.
        parameters = [p for p in operation.get("parameters", []) if p["name"] != CSRF_HEADER]
        if parameters:
            operation["parameters"] = parameters
        else:
            operation.pop("parameters", None)
        operation["security"] = _security(method, path)
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422: ours is Problem
        schemas.pop(unused, None)
    _require_tags(found, schemas)
    components["securitySchemes"] = SECURITY_SCHEMES
    return found


def _operations(found: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in found.get("paths", {}).items():
        for method, operation in operations.items():
            yield path, method, operation


def _security(method: str, path: str) -> list[dict[str, list[str]]]:
    if path == "/api/session":
        # Signing in needs nothing; signing out without a session has nothing to end.
        return {"post": [], "get": SIGNED_IN, "delete": [{}, *CHANGING]}[method]
    return SIGNED_IN if method in ("get", "head") else CHANGING


def _require_tags(node: Any, schemas: dict[str, Any]) -> None:
    """Each variant of a discriminated union requires its tag, as the API does."""
    if isinstance(node, dict):
        discriminator = node.get("discriminator")
        if isinstance(discriminator, dict):
            tag = discriminator["propertyName"]
            refs = {
                *discriminator.get("mapping", {}).values(),
                *(v["$ref"] for v in node.get("oneOf", []) if "$ref" in v),
            }
            for ref in refs:
                variant = schemas.get(ref.rsplit("/", 1)[-1], {})
                required = variant.setdefault("required", [])
                if tag in variant.get("properties", {}) and tag not in required:
                    required.insert(0, tag)
        for value in node.values():
            _require_tags(value, schemas)
    elif isinstance(node, list):
        for value in node:
            _require_tags(value, schemas)


class Bodies:
    """Each operation's request body checked against the document the app serves."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._checks: dict[str, jsonschema_rs.Validator] = {}

    async def check(self, request: Request, path: str) -> None:
        """Raises what FastAPI raises for a body its model refuses (a 422, each field with
        the reason); the reason never repeats what was sent (it may be personal)."""
        check = self._checks.get(path)
        if check is None:
            document = self.app.openapi()
            body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
            check = jsonschema_rs.Draft202012Validator(
                {"components": document["components"], **body["schema"]}
            )
            self._checks[path] = check
        try:
            sent = json.loads(await request.body())
        except ValueError:
            raise RequestValidationError([{"loc": ("body",), "msg": "not JSON"}]) from None
        refused = [
            {"loc": ("body", *error.instance_path), "msg": _reason(error)}
            for error in check.iter_errors(sent)
        ]
        if refused:
            raise RequestValidationError(refused)


def _reason(error: jsonschema_rs.ValidationError) -> str:
    kind = error.kind
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Type):
        return f"should be of type {' or '.join(kind.types)}"
    return f"does not match the document ({kind.name})"


def add_reference(app: FastAPI) -> None:
    """The reference page at ``/docs``, everything it loads served here."""
    app.mount(ASSETS, StaticFiles(directory=_SWAGGER_UI), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def reference(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return HTMLResponse(_PAGE.format(root=root, title=app.title))

    @app.get("/docs/start.js", include_in_schema=False)
    async def start() -> Response:
        return Response(_START, media_type="text/javascript")


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}: API reference</title>
<link rel="stylesheet" href="{root}/docs/assets/swagger-ui.css">
<link rel="icon" href="{root}/docs/assets/favicon.png">
</head>
<body>
<div id="swagger-ui" data-openapi="{root}/openapi.json"></div>
<script src="{root}/docs/assets/swagger-ui-bundle.js"></script>
<script src="{root}/docs/start.js"></script>
</body>
</html>
"""

# No validator badge: Swagger UI would otherwise fetch one from its own site.
_START = """"use strict";
const here = document.getElementById("swagger-ui");
window.ui = SwaggerUIBundle({
  url: here.dataset.openapi,
  dom_id: "#swagger-ui",
  validatorUrl: null,
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  layout: "BaseLayout",
});
"""
