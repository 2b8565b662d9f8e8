"""The console's own decisions and its API's schema, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from hashlib import sha256
from pathlib import Path
from typing import cast

import pytest
from nats.js import JetStreamContext
from starlette.datastructures import Headers

from contracts import catalogue, views
from contracts.console import Problem, Role
from contracts.intake import PersonData
from contracts.records import CaseRecord, ConsoleAccount
from contracts.replies import CommandRejected, CommandUnavailable, FieldError
from contracts.views import CaseView
from runtime.clock import ManualClock
from runtime.commands import NOT_CARRIED_OUT
from runtime.settings import Settings
from services.console import domain, edge, fields
from services.console.accounts import Accounts
from services.console.app import create_app
from services.console.gate import ConsoleDeps, problem
from services.console.orgs import OrgConnections
from services.console.sessions import Sessions
from services.console.throttle import SignInThrottle
from tests.fakes import FakeKeyValue
from tests.support import MARKERS, marked_intake

NOW = datetime(2027, 3, 28, 1, 30, tzinfo=UTC)  # an hour daylight saving ends somewhere


def account(roles: dict[str, Role]) -> ConsoleAccount:
    return ConsoleAccount(
        account_id="a1",
        email="ana@example.org",
        name="Ana",
        password_hash="x",
        roles=roles,
        status="active",
        created_at=NOW,
        updated_at=NOW,
    )


@pytest.mark.parametrize(
    ("roles", "command", "status"),
    [
        (None, "SubmitIntake", 401),
        ({"other": "supervisor"}, "SubmitIntake", 403),
        ({"acme": "coordinator"}, "SubmitIntake", None),
        ({"acme": "coordinator"}, "EraseClient", 403),
        ({"acme": "coordinator"}, "ExportPersonData", 403),
        ({"acme": "supervisor"}, "EraseClient", None),
        ({"acme": "operator"}, "ConfigureScheduling", None),
    ],
)
def test_who_may_send_what(roles: dict[str, Role] | None, command: str, status: int | None) -> None:
    found = domain.refusal(account(roles) if roles is not None else None, "acme", command)
    assert (found.status if found else None) == status


@pytest.mark.parametrize(
    ("field", "reason", "status"),
    [
        ("data.client.languages", "at least 1 item", 422),
        ("id", "this command id was already used for another command", 409),
        ("id", "could not be carried out (TimeoutError); retry later", 503),
        ("org", "organisation 'acme' is disabled", 403),
    ],
)
def test_a_refusal_reads_as_problem_details_relative_to_the_body(
    field: str, reason: str, status: int
) -> None:
    rejected = CommandRejected(
        command_id="k1",
        command_type="SubmitIntake",
        errors=[FieldError(field=field, reason=reason)],
    )
    found = domain.problem_of(rejected)
    assert found.status == status
    assert found.errors[0].field == field.removeprefix("data.")
    assert found.command_id == "k1"


def test_not_carried_out_just_now_reads_as_a_503_with_retry_after_in_whole_seconds() -> None:
    reply = CommandUnavailable(
        command_id="k1", command_type="SubmitIntake", reason=NOT_CARRIED_OUT, retry_after_s=2.2
    )
    found = domain.unavailable(reply)
    assert (found.status, found.retry_after_s, found.command_id) == (503, 3, "k1")
    assert found.errors == []  # not a refusal: no field to fix
    assert "try again" in found.detail
    response = problem(found)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "3"
    assert response.headers["content-type"] == "application/problem+json"
    short = reply.model_copy(update={"retry_after_s": 0.1})
    assert domain.unavailable(short).retry_after_s == 1  # Retry-After is at least a second


def test_the_schema_has_every_command_with_its_own_body_and_problem_details() -> None:
    clock = ManualClock(NOW)

    async def no_credential(org: str) -> Path:
        raise AssertionError("not sent")

    deps = ConsoleDeps(
        accounts=Accounts(FakeKeyValue().as_kv(), clock),
        sessions=Sessions(FakeKeyValue().as_kv(), bytes(32), clock),
        orgs=OrgConnections(
            "nats://127.0.0.1:1", no_credential, clock, cast(JetStreamContext, None)
        ),
        settings=Settings(),
        clock=clock,
        throttle=SignInThrottle(clock),
    )
    schema = create_app(deps).openapi()
    assert schema["openapi"].startswith("3.1")
    for name, model in catalogue.COMMANDS.items():
        if model in views.CONSOLE_ONLY:  # the console's own read: no route at all
            assert f"/api/orgs/{{org}}/commands/{name}" not in schema["paths"]
            continue
        operation = schema["paths"][f"/api/orgs/{{org}}/commands/{name}"]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body["$ref"].rsplit("/", 1)[1] == model.__name__, name
        assert "application/problem+json" in operation["responses"]["422"]["content"]
        assert "Idempotency-Key" in {p["name"] for p in operation["parameters"]}
        # The session cookie and its CSRF token: the security scheme says them.
        assert operation["security"] == [{"session": [], "csrf": []}]
        # Every refusal and failure, 400 and 500 too, is problem details and only that.
        assert {"400", "422", "500"} <= set(operation["responses"])
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert list(response["content"]) == ["application/problem+json"], (name, status)
        # Not carried out just now: a 503 saying when to send it again.
        unavailable = operation["responses"]["503"]
        assert "application/problem+json" in unavailable["content"]
        assert unavailable["headers"]["Retry-After"]["schema"]["type"] == "integer"
        # A 200 still carries the command's own answer (a rejection and a 503 are not 200s).
        ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
        answer = catalogue.REPLIES_TO[name][0]
        assert ok["$ref"].rsplit("/", 1)[1] == catalogue.REPLIES[answer].__name__, name
    intake = schema["components"]["schemas"]["SubmitIntake"]
    assert "client" in intake["properties"]


class Bucket(FakeKeyValue):
    """The sessions' bucket: a purged key is gone."""

    async def purge(self, key: str) -> bool:
        self.entries.pop(key, None)
        return True


async def test_a_session_is_held_as_a_hash_and_ends_signed_out_idle_or_after_a_working_day() -> (
    None
):
    clock = ManualClock(NOW)
    bucket = Bucket()
    sessions = Sessions(bucket.as_kv(), bytes(32), clock, idle=timedelta(minutes=30))
    cookie, session = await sessions.start("a" * 32)
    secret = cookie.split(".", 1)[1]
    assert await sessions.read(cookie) == session
    assert [k.split(".")[1] for k in bucket.entries] == [sha256(secret.encode()).hexdigest()]
    assert all(secret.encode() not in (e.value or b"") for e in bucket.entries.values())
    assert await sessions.read(cookie[:-2] + "xx") is None  # another secret
    assert await sessions.read("b" * 32 + cookie[32:]) is None  # another account's key
    assert await sessions.read("garbage.>") is None
    assert session.allows(session.csrf_token)
    assert not session.allows("guess")
    assert not session.allows(None)
    assert not session.allows("é" * 43)  # refused, not a failure
    assert session.csrf_token not in cookie  # derived from the secret, not stored

    # Used every 29 minutes it lasts; 8 hours after signing in it ends all the same.
    for _ in range(16):
        clock.advance(timedelta(minutes=29))
        assert await sessions.read(cookie) == session
    clock.advance(timedelta(minutes=29))  # 8 h 13 min
    assert await sessions.read(cookie) is None
    assert bucket.entries == {}

    idle, _ = await sessions.start("a" * 32)
    clock.advance(timedelta(minutes=30))  # unused for the idle time
    assert await sessions.read(idle) is None

    ended, held = await sessions.start("a" * 32)
    await sessions.end(held)
    assert await sessions.read(ended) is None  # signed out: a copy of the cookie opens nothing

    first, _ = await sessions.start("a" * 32)
    second, _ = await sessions.start("a" * 32)
    other, _ = await sessions.start("b" * 32)
    assert await sessions.end_all("a" * 32) == 2
    assert [await sessions.read(c) for c in (first, second)] == [None, None]
    assert await sessions.read(other) is not None  # another account's sessions go on


def test_the_sign_in_form_token_is_for_its_own_nonce_only() -> None:
    sessions = Sessions(Bucket().as_kv(), bytes(32), ManualClock(NOW))
    nonce = sessions.sign_in_nonce(None)
    token = sessions.sign_in_token(nonce)
    assert sessions.sign_in_allows(nonce, token)
    assert sessions.sign_in_nonce(nonce) == nonce  # the browser's, kept
    assert not sessions.sign_in_allows(sessions.sign_in_nonce(None), token)
    assert not sessions.sign_in_allows(nonce, None)
    assert not sessions.sign_in_allows(nonce, "ü" + token[1:])
    assert not sessions.sign_in_allows(None, token)
    other = Sessions(Bucket().as_kv(), bytes(range(32)), ManualClock(NOW))
    assert not other.sign_in_allows(nonce, token)  # another deployment's


def test_a_coordinator_reads_no_field_that_is_a_supervisors() -> None:
    command = marked_intake("c1")
    record = CaseRecord(
        case_id="c1", intake=command, stage=command.dispute.stage, opened_at=NOW, updated_at=NOW
    )
    view = CaseView(command_id="v1", viewed_at=NOW, case=record)
    seen = fields.limited(view, "coordinator")
    client = seen.case.intake.client
    assert (client.safety_concerns, client.other_factors, client.cultural_preference) == (
        [],
        None,
        None,
    )
    assert seen.case.intake.dispute.summary == "withheld"  # required: valid, and nothing held
    # Still a valid answer to its documented schema: what the HTTP API answers is checked.
    CaseView.model_validate_json(seen.model_dump_json())
    assert seen.withheld == [
        "case.intake.client.safety_concerns",
        "case.intake.dispute.summary",
        "case.intake.client.lived_experience_preference",
        "case.intake.client.cultural_preference",
        "case.intake.client.other_factors",
    ]
    assert client.access_needs == [MARKERS["access"]]  # what arranging a meeting needs
    assert view.case.intake.client.safety_concerns == [MARKERS["safety"]]  # a copy, not changed
    for role in ("supervisor", "operator"):
        assert fields.limited(view, role) == view
    nothing = record.model_copy(
        update={
            "intake": command.model_copy(
                update={"client": command.client.model_copy(update={"safety_concerns": []})}
            )
        }
    )
    unconcerned = fields.limited(view.model_copy(update={"case": nothing}), "coordinator")
    assert "case.intake.client.safety_concerns" not in unconcerned.withheld  # nothing to ask
    export = PersonData(
        command_id="e1",
        person="client",
        subject_id="c1",
        exported_at=NOW,
        held={"case": record.model_dump(mode="json")},
    )
    refused = fields.limited(export, "coordinator")
    assert isinstance(refused, Problem)
    assert refused.status == 403
    assert fields.limited(export, "supervisor") is export
    assert fields.limited(export, None).status == 403  # no role: as little as any


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({}, False),  # a script: left to the CSRF token
        ({"origin": "https://console"}, False),
        ({"origin": "https://console:443"}, False),
        ({"origin": "https://console.example.org"}, False),  # configured
        ({"referer": "https://console/orgs/acme"}, False),
        ({"sec-fetch-site": "same-origin", "origin": "https://console"}, False),
        ({"origin": "https://evil.example"}, True),
        ({"origin": "null"}, True),
        ({"origin": "https://console:8443"}, True),
        ({"origin": "https://console.evil.example"}, True),
        ({"referer": "https://evil.example/"}, True),
        ({"sec-fetch-site": "cross-site"}, True),
        ({"sec-fetch-site": "same-site", "origin": "https://console"}, True),
    ],
)
def test_a_change_must_come_from_the_consoles_own_pages(
    headers: dict[str, str], refused: bool
) -> None:
    sent = Headers({"host": "console", **headers})
    assert (edge.cross_site(sent, frozenset({"console.example.org"})) is not None) is refused
