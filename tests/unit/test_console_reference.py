"""The console's API reference and its errors, without a server: the document says every
refusal and failure as problem details and how a request is signed in, the page at ``/docs``
loads nothing from elsewhere, and the console answers problem details even when it fails."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from runtime.clock import SYSTEM
from runtime.settings import Settings
from services.console.app import create_app
from services.console.gate import PROBLEM, ConsoleDeps

PROBLEM_SCHEMA = {"$ref": "#/components/schemas/Problem"}


def unwired() -> FastAPI:
    """The app with nothing behind its routes: enough for its document and its edges, and
    any route that reaches further fails (a 500)."""
    nothing: dict[str, Any] = {field.name: None for field in dataclasses.fields(ConsoleDeps)}
    return create_app(ConsoleDeps(**{**nothing, "settings": Settings(), "clock": SYSTEM}))


@pytest.fixture
async def console() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=unwired(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as http:
        yield http


def test_every_refusal_and_failure_is_documented_as_problem_details() -> None:
    document = unwired().openapi()
    operations = [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]
    assert len(operations) > 40
    for path, method, operation in operations:
        responses = operation["responses"]
        expected = {"500"} | ({"400", "413", "422"} if "requestBody" in operation else set())
        assert expected <= set(responses), (method, path)
        for status, response in responses.items():
            if int(status) >= 400:
                assert response["content"] == {PROBLEM: {"schema": PROBLEM_SCHEMA}}, (path, status)
        assert "X-CSRF-Token" not in {p["name"] for p in operation.get("parameters", [])}
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # FastAPI's own 422: ours is Problem
    assert {"title", "status", "detail"} <= set(schemas["Problem"]["required"])


def test_the_document_says_how_a_request_is_signed_in() -> None:
    document = unwired().openapi()
    schemes = document["components"]["securitySchemes"]
    assert schemes["session"] == {
        **schemes["session"],
        "type": "apiKey",
        "in": "cookie",
        "name": "alongside_session",
    }
    assert schemes["csrf"] == {
        **schemes["csrf"],
        "type": "apiKey",
        "in": "header",
        "name": "X-CSRF-Token",
    }
    paths = document["paths"]
    assert paths["/api/session"]["post"]["security"] == []
    assert paths["/api/session"]["get"]["security"] == [{"session": []}]
    # Signing out without a session: nothing to end, and no refusal.
    assert paths["/api/session"]["delete"]["security"] == [{}, {"session": [], "csrf": []}]
    assert paths["/api/orgs/{org}/today"]["get"]["security"] == [{"session": []}]
    intake = paths["/api/orgs/{org}/commands/SubmitIntake"]["post"]
    assert intake["security"] == [{"session": [], "csrf": []}]


def test_a_discriminated_union_requires_its_tag_in_every_variant() -> None:
    schemas = unwired().openapi()["components"]["schemas"]
    evidence = schemas["RecordVettingEvidence"]["properties"]["evidence"]
    assert evidence["discriminator"]["propertyName"] == "kind"
    for ref in evidence["discriminator"]["mapping"].values():
        assert "kind" in schemas[ref.rsplit("/", 1)[1]]["required"], ref
    # A peer's tag has a default in the model, and is required all the same.
    assert "kind" in schemas["PeerSupporter"]["required"]


async def test_the_reference_page_loads_nothing_from_elsewhere(
    console: httpx.AsyncClient,
) -> None:
    page = await console.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert not re.search(r"https?:|//", html), "a URL of another site"
    loaded = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert {
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
        "/docs/start.js",
    } <= set(loaded)
    # Every script is a file of this site: the Content-Security-Policy needs no exception.
    assert html.count("<script") == html.count("<script src=")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for url in loaded:
        assert re.match(r"/[^/]", url), url
        asset = await console.get(url)
        assert asset.status_code == 200, url
    start = (await console.get("/docs/start.js")).text
    assert "validatorUrl: null" in start  # no badge fetched from Swagger's site
    assert "http" not in start
    document = await console.get(html.split('data-openapi="')[1].split('"')[0])
    assert document.json()["openapi"].startswith("3.1")


async def test_what_cannot_be_read_or_routed_is_refused_as_problem_details(
    console: httpx.AsyncClient,
) -> None:
    url = "/api/orgs/acme/commands/SubmitIntake"
    json = {"content-type": "application/json"}

    unreadable = await console.post(url, content=b"\xff\xfe\xfa", headers=json)
    assert unreadable.status_code == 400
    not_json = await console.post(url, content=b"nope", headers=json)
    assert not_json.status_code == 422
    assert not_json.json()["errors"] == [
        {"field": "body", "reason": "is not JSON (Expecting value)", "label": None}
    ]
    other_type = await console.post(url, content=b"nope", headers={"content-type": "text/plain"})
    assert other_type.status_code == 422
    nowhere = await console.get("/api/nowhere")
    assert nowhere.status_code == 404
    wrong_method = await console.put("/api/session")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "DELETE, GET, POST"  # the path's, not one route's
    for answer in (unreadable, not_json, other_type, nowhere, wrong_method):
        assert answer.headers["content-type"] == PROBLEM, answer.text
        assert answer.json()["status"] == answer.status_code


@pytest.mark.parametrize("month", ["0000-01", "0001-01", "9999-12", "1899-12", "3000-01"])
async def test_a_month_the_reports_cannot_reach_is_refused_before_it_is_read(
    console: httpx.AsyncClient, month: str
) -> None:
    refused = await console.get(f"/api/orgs/acme/reports/{month}")
    assert refused.status_code == 422
    assert refused.headers["content-type"] == PROBLEM
    assert refused.json()["errors"][0]["field"] == "month"


async def test_a_failure_of_the_console_is_a_500_in_problem_details_and_tells_nothing(
    console: httpx.AsyncClient,
) -> None:
    failed = await console.get("/api/session")  # reaches the sessions: none are wired
    assert failed.status_code == 500
    assert failed.headers["content-type"] == PROBLEM
    said = failed.json()
    assert (said["status"], said["title"]) == (500, "Internal Server Error")
    assert not re.search("NoneType|Traceback|attribute", failed.text)
    assert failed.headers["x-content-type-options"] == "nosniff"  # the edge's headers too
