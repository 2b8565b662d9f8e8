"""A case's timeline through the console's API and page, against the real server: every event
of the case oldest first, each reading in the access log, the decision behind an entry named
only to a supervisor, and nothing of another organisation's."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from alongside.client import AlongsideClient
from services.console.accounts import account_id
from services.console.sessions import CSRF_HEADER
from tests.conftest import Start
from tests.integration.test_console_api import console, problem_of, sign_in
from tests.support import MARKERS, intake, wait_for

pytestmark = pytest.mark.nats
__all__ = ["console"]  # the API's client, a fixture


async def test_a_case_timeline_is_told_oldest_first_and_each_reading_is_a_logged_view(
    start: Start, console: httpx.AsyncClient, client: AlongsideClient, org: str
) -> None:
    await start("intake", "rules")
    csrf = await sign_in(console, "ana@example.org")
    headers = {CSRF_HEADER: csrf}
    sent = await console.post(
        f"/api/orgs/{org}/commands/SubmitIntake",
        json=json.loads(intake("c1", ["en"]).model_dump_json()),
        headers=headers,
    )
    assert sent.status_code == 200, sent.text
    [decided] = await wait_for(client, org, "MatchingPolicyDecided")
    staged = await console.post(
        f"/api/orgs/{org}/commands/ChangeCaseStage",
        json={"case_id": "c1", "stage": "investigation"},
        headers=headers,
    )
    assert staged.status_code == 200, staged.text
    await wait_for(client, org, "CaseStageChanged")

    url = f"/api/orgs/{org}/cases/c1/timeline"
    timeline = await until_told(console, url, {"MatchingPolicyDecided", "CaseStageChanged"})
    entries = timeline["entries"]
    assert (timeline["case_id"], timeline["erased"]) == ("c1", False)
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)  # oldest first
    assert entries[0]["event"] == "IntakeReceived"
    assert entries[0]["what"].startswith("Intake received at stage")
    policy = next(e for e in entries if e["event"] == "MatchingPolicyDecided")
    assert (policy["who"], policy["decision_id"]) == ("the rules service", None)  # a supervisor's
    stage = next(e for e in entries if e["event"] == "CaseStageChanged")
    assert (stage["what"], stage["who"]) == (
        "Stage changed from Entry to Investigation",
        "a coordinator",
    )
    assert MARKERS["client_name"] not in json.dumps(timeline)  # ids and dates, never names
    ana = f"alongside/console/{account_id('ana@example.org')}"
    views = await wait_for(client, org, "CaseViewed")
    assert {(v.data["case_id"], v.data["viewed_by"]) for v in views} == {("c1", ana)}

    csv = await console.get(f"{url}.csv")
    assert csv.status_code == 200, csv.text
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0].startswith("org,case_id,at,what,who,why,decision_id")
    page = await console.get(f"/orgs/{org}/cases/c1", headers={"Accept": "text/html"})
    assert page.status_code == 200, page.text
    assert "What happened" in page.text
    assert "Stage changed from Entry to Investigation" in page.text
    assert "?decision=" not in page.text  # why a decision was made: not a coordinator's

    missing = problem_of(await console.get(f"/api/orgs/{org}/cases/c9/timeline"), 404)
    errors = missing["errors"]
    assert isinstance(errors, list)
    assert [(e["field"], e["reason"]) for e in errors] == [("case_id", "no case c9 is held here")]

    await sign_in(console, "sam@example.org")  # a supervisor: the decision, who viewed
    told = (await console.get(url)).json()["entries"]
    policy = next(e for e in told if e["event"] == "MatchingPolicyDecided")
    assert policy["decision_id"] == decided.data["decision_id"]
    assert ana in {e["viewed_by"] for e in told if e["event"] == "CaseViewed"}
    page = await console.get(f"/orgs/{org}/cases/c1", headers={"Accept": "text/html"})
    assert f"?decision={decided.data['decision_id']}" in page.text

    await sign_in(console, "oli@example.org")  # a coordinator of another organisation
    problem_of(await console.get(url), 403)
    problem_of(await console.get(f"{url}.csv"), 403)
    console.cookies.clear()  # signed out
    problem_of(await console.get(url), 401)


async def until_told(console: httpx.AsyncClient, url: str, events: set[str]) -> dict[str, Any]:
    """The timeline once it tells each of ``events``: a read has every event the stream held,
    but a service answers a command before its events are all copied to the organisation's
    stream."""
    for _ in range(100):
        read = await console.get(url)
        assert read.status_code == 200, read.text
        timeline: dict[str, Any] = read.json()
        if events <= {e["event"] for e in timeline["entries"]}:
            return timeline
        await asyncio.sleep(0.1)
    raise AssertionError(f"the timeline never told {events}: {timeline['entries']}")
