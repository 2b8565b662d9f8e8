"""The console's lists, search and "needs attention" through its API, against the real
server and services: pages round-trip their cursors, stable while new cases arrive; search
finds people by name, email, phone and reference, and loses them when they are erased;
another organisation's coordinator sees none of it."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from alongside.client import AlongsideClient
from contracts.intake import EraseClient
from services.console.app import create_app
from services.console.gate import ConsoleDeps
from services.console.sessions import CSRF_HEADER
from tests.conftest import CONSOLE_PASSWORD, Start
from tests.support import eligible, intake, supporter, wait_for

pytestmark = pytest.mark.nats


@pytest.fixture
async def console(console_deps: ConsoleDeps) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(console_deps))
    async with httpx.AsyncClient(transport=transport, base_url="https://console") as http:
        http.headers["Accept"] = "application/json"
        yield http


async def sign_in(http: httpx.AsyncClient, email: str) -> str:
    said = await http.post("/api/session", json={"email": email, "password": CONSOLE_PASSWORD})
    assert said.status_code == 200, said.text
    return str(said.json()["csrf_token"])


async def every_page(http: httpx.AsyncClient, url: str, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        asked = {**params, **({"cursor": cursor} if cursor else {})}
        page = await http.get(url, params=asked)
        assert page.status_code == 200, page.text
        rows += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return rows


async def test_pages_round_trip_their_cursors_and_stay_stable_while_cases_arrive(
    start: Start, console: httpx.AsyncClient, client: AlongsideClient, org: str
) -> None:
    await start("intake")
    for n in range(7):
        await client.submit(org, intake(f"c{n}", ["en"]))
    await wait_for(client, org, "IntakeReceived", 7)
    await sign_in(console, "ana@example.org")
    url = f"/api/orgs/{org}/cases"

    first = (await console.get(url, params={"limit": 3})).json()
    assert first["total"] == 7
    assert len(first["items"]) == 3
    await client.submit(org, intake("c-late", ["en"]))  # written between two pages
    await wait_for(client, org, "IntakeReceived", 8)
    rest = await every_page(console, url, limit=3, cursor=first["next_cursor"])
    seen = [row["case_id"] for row in first["items"] + rest]
    assert len(seen) == len(set(seen))  # nothing twice
    assert {f"c{n}" for n in range(7)} <= set(seen)  # nothing that was there is skipped
    opened = [row["opened_at"] for row in first["items"] + rest]
    assert opened == sorted(opened)  # in date order

    newest = (await console.get(url, params={"sort": "-opened", "limit": 1})).json()
    assert newest["items"][0]["case_id"] == "c-late"
    other_listing = await console.get(
        url, params={"state": "waiting", "cursor": first["next_cursor"]}
    )
    assert other_listing.status_code == 400
    assert "other filters" in other_listing.json()["detail"]
    assert (await console.get(url, params={"cursor": "not-a-cursor"})).status_code == 400
    assert (await console.get(url, params={"state": "sleeping"})).status_code == 422

    table = (await console.get(f"{url}.csv")).text.splitlines()
    assert table[0].split(",")[:3] == ["case_id", "stage", "state"]
    assert len(table) == 1 + 8


async def test_lists_filter_by_state_eligibility_and_unanswered_days(
    start: Start,
    console: httpx.AsyncClient,
    client: AlongsideClient,
    org: str,
) -> None:
    await start("intake", "rules", "matching")
    for n in range(2):
        await supporter(client, org, f"s{n}", ["en"])
    await eligible(client, org, 2)
    await client.submit(org, intake("c-en", ["en"]))
    await client.submit(org, intake("c-rare", ["niu"]))
    await wait_for(client, org, "ClientWaitlisted")
    await wait_for(client, org, "MatchProposed")
    await sign_in(console, "ana@example.org")
    base = f"/api/orgs/{org}"

    proposed = await every_page(console, f"{base}/cases", waits_on="choice")
    assert [row["case_id"] for row in proposed] == ["c-en"]
    assert proposed[0]["state"] == "proposed"
    waiting = await every_page(console, f"{base}/cases", state="waiting")
    assert [r["case_id"] for r in waiting] == ["c-rare"]
    assert waiting[0]["waits_on"][0] == "supporter"  # and the parties' consent, not yet given

    supporters = await every_page(console, f"{base}/supporters", eligibility="eligible")
    assert {s["supporter_id"] for s in supporters} == {"s0", "s1"}
    assert all(s["caseload"] == 1 and s["room"] == 1 for s in supporters)  # c-en holds both
    assert await every_page(console, f"{base}/supporters", eligibility="ineligible") == []
    lapsing = await every_page(console, f"{base}/supporters", lapsing_within_days=3650)
    assert {s["supporter_id"] for s in lapsing} == {"s0", "s1"}

    assert [p["case_id"] for p in await every_page(console, f"{base}/proposals")] == ["c-en"]
    assert await every_page(console, f"{base}/proposals", unanswered_days=1) == []
    attention = (await console.get("/api/attention")).json()  # (its kinds: tests/unit)
    dues = [item["due"] for item in attention["items"]]
    assert dues == sorted(dues)
    assert {item["org"] for item in attention["items"]} <= {org}

    await sign_in(console, "oli@example.org")  # another organisation's coordinator
    for path in ("cases", "supporters", "proposals", "cases.csv", "search?q=c"):
        assert (await console.get(f"{base}/{path}")).status_code == 403, path
    others = (await console.get("/api/attention")).json()["items"]
    assert all(item["org"] != org for item in others)


async def test_search_finds_people_by_name_email_phone_and_reference_until_erased(
    start: Start, console: httpx.AsyncClient, client: AlongsideClient, org: str
) -> None:
    await start("intake")
    command = intake("c-find", ["en"])
    command = command.model_copy(
        update={
            "client": command.client.model_copy(
                update={
                    "display_name": "Aroha Ngāti-Smith",
                    "contact": command.client.contact.model_copy(
                        update={"email": "aroha@example.org", "phone": "+64 21 555 1234"}
                    ),
                }
            )
        }
    )
    await client.submit(org, command)
    await client.submit(org, intake("c-other", ["en"]))
    await wait_for(client, org, "IntakeReceived", 2)
    csrf = await sign_in(console, "sam@example.org")  # a supervisor: may erase
    search = f"/api/orgs/{org}/search"

    for query, matched_on in [
        ("ngati smi", "name"),
        ("AROHA", "name"),
        ("aroha@example.org", "email"),
        ("021 555 1234", "phone"),
        ("c-fi", "reference"),
    ]:
        found = (await console.get(search, params={"q": query})).json()
        assert [(f["subject_id"], f["matched_on"]) for f in found["items"]] == [
            ("c-find", matched_on)
        ], query
    assert found["items"][0]["display_name"] == "Aroha Ngāti-Smith"
    assert (await console.get(search, params={"q": "nobody-like-this"})).json()["total"] == 0
    assert (await console.get(search, params={"q": ""})).status_code == 422

    erased = await console.post(
        f"/api/orgs/{org}/commands/EraseClient",
        json=json.loads(EraseClient(case_id="c-find").model_dump_json()),
        headers={CSRF_HEADER: csrf},
    )
    assert erased.status_code == 200, erased.text
    await wait_for(client, org, "ClientErased")
    assert (await console.get(search, params={"q": "aroha"})).json()["total"] == 0
    [read, *_] = await wait_for(client, org, "DirectoryRead")
    assert read.data["read_by"].startswith("alongside/console")
    assert "aroha" not in json.dumps(read.data).lower()  # counts, never names


async def test_the_list_pages_filter_page_on_and_find_without_a_script(
    start: Start, console_deps: ConsoleDeps, client: AlongsideClient, org: str
) -> None:
    await start("intake")
    for n in range(53):  # more than one page
        await client.submit(org, intake(f"c{n:02}", ["en"]))
    await wait_for(client, org, "IntakeReceived", 53)
    transport = httpx.ASGITransport(app=create_app(console_deps))
    async with httpx.AsyncClient(transport=transport, base_url="https://console") as browser:
        token = re.search(
            r'name="csrf_token" value="([^"]+)"', (await browser.get("/sign-in")).text
        )
        assert token is not None
        login = {"email": "ana@example.org", "password": CONSOLE_PASSWORD, "next": "/"}
        await browser.post("/sign-in", data={**login, "csrf_token": token.group(1)})

        first = await browser.get(f"/orgs/{org}/cases", params={"state": "matching"})
        assert first.status_code == 200, first.text
        assert "50 of 53 cases on this page." in first.text
        assert "<td>Being matched</td>" in first.text  # the state in words, not its code
        next_link = re.search(r'<a rel="next" href="([^"]+)"', first.text)
        assert next_link is not None
        second = await browser.get(html.unescape(next_link.group(1)))
        assert second.status_code == 200
        assert "c52" in second.text
        assert "c00" not in second.text  # the first page's rows are not repeated
        assert "Back to the first page" in second.text

        unfit = await browser.get(f"/orgs/{org}/cases", params={"state": "asleep"})
        assert unfit.status_code == 400
        assert "Where the case is: choose one of the listed options" in unfit.text  # its label

        name = intake("c07", ["en"]).client.display_name.split()[0]
        found = await browser.get(f"/orgs/{org}/search", params={"q": f"client c07 {name}"})
        assert found.status_code == 200
        assert f'href="/orgs/{org}/cases/c07"' in found.text
        for path in ("supporters", "proposals", "attention", "search"):
            page = await browser.get(f"/orgs/{org}/{path}")
            assert page.status_code == 200, path

        # Two cases chosen in the list, moved to the next stage at once; the same form sent
        # again (a double click) acts once.
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', first.text)
        bulk_id = re.search(r'name="bulk_id" value="([^"]+)"', first.text)
        assert csrf is not None
        assert bulk_id is not None
        chosen = {
            "csrf_token": csrf.group(1),
            "bulk_id": bulk_id.group(1),
            "action": "ChangeCaseStage",
            "stage": "conciliation",
            "case_id": ["c00", "c01"],
        }
        for _ in range(2):
            done = await browser.post(f"/orgs/{org}/cases/bulk", data=chosen)
            assert done.status_code == 200, done.text
            assert "2 of 2 done" in done.text
            assert "Moved to the stage: Conciliation" in done.text
        changed = await wait_for(client, org, "CaseStageChanged", 2)
        assert sorted(e.data["case_id"] for e in changed) == ["c00", "c01"]
        assert len(await wait_for(client, org, "CaseStageChanged", 0)) == 2  # not four
        refused = await browser.post(
            f"/orgs/{org}/cases/bulk", data={**chosen, "csrf_token": "forged"}
        )
        assert refused.status_code == 403
