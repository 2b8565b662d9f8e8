"""The console's own decisions and its API's schema, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from contracts import catalogue
from contracts.console import Role
from contracts.records import ConsoleAccount
from contracts.replies import CommandRejected, CommandUnavailable, FieldError
from runtime.clock import ManualClock
from runtime.commands import NOT_CARRIED_OUT
from runtime.settings import Settings
from services.console import domain
from services.console.accounts import Accounts
from services.console.app import create_app
from services.console.gate import ConsoleDeps, problem
from services.console.orgs import OrgConnections
from services.console.sessions import Sessions
from services.console.throttle import SignInThrottle
from tests.fakes import FakeKeyValue

NOW = datetime(2027, 3, 28, 1, 30, tzinfo=UTC)  # an hour daylight saving ends somewhere


def account(roles: dict[str, Role]) -> ConsoleAccount:
    return ConsoleAccount(account_id="a1", email="ana@example.org", name="Ana",
                          password_hash="x", roles=roles, status="active", created_at=NOW,
                          updated_at=NOW)  # fmt: skip


@pytest.mark.parametrize(("roles", "command", "status"), [
    (None, "SubmitIntake", 401),
    ({"other": "supervisor"}, "SubmitIntake", 403),
    ({"acme": "coordinator"}, "SubmitIntake", None),
    ({"acme": "coordinator"}, "EraseClient", 403),
    ({"acme": "coordinator"}, "ExportPersonData", 403),
    ({"acme": "supervisor"}, "EraseClient", None),
    ({"acme": "operator"}, "ConfigureScheduling", None),
])  # fmt: skip
def test_who_may_send_what(roles: dict[str, Role] | None, command: str, status: int | None
                           ) -> None:  # fmt: skip
    found = domain.refusal(account(roles) if roles is not None else None, "acme", command)
    assert (found.status if found else None) == status


@pytest.mark.parametrize(("field", "reason", "status"), [
    ("data.client.languages", "at least 1 item", 422),
    ("id", "this command id was already used for another command", 409),
    ("id", "could not be carried out (TimeoutError); retry later", 503),
    ("org", "organisation 'acme' is disabled", 403),
])  # fmt: skip
def test_a_refusal_reads_as_problem_details_relative_to_the_body(
    field: str, reason: str, status: int
) -> None:
    rejected = CommandRejected(command_id="k1", command_type="SubmitIntake",
                               errors=[FieldError(field=field, reason=reason)])  # fmt: skip
    found = domain.problem_of(rejected)
    assert found.status == status
    assert found.errors[0].field == field.removeprefix("data.")
    assert found.command_id == "k1"


def test_not_carried_out_just_now_reads_as_a_503_with_retry_after_in_whole_seconds() -> None:
    reply = CommandUnavailable(command_id="k1", command_type="SubmitIntake",
                               reason=NOT_CARRIED_OUT, retry_after_s=2.2)  # fmt: skip
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
        accounts=Accounts(FakeKeyValue().as_kv(), clock), sessions=Sessions(bytes(32), clock),
        orgs=OrgConnections("nats://127.0.0.1:1", no_credential, clock), settings=Settings(),
        clock=clock, throttle=SignInThrottle(clock),
    )  # fmt: skip
    schema = create_app(deps).openapi()
    assert schema["openapi"].startswith("3.1")
    for name, model in catalogue.COMMANDS.items():
        operation = schema["paths"][f"/api/orgs/{{org}}/commands/{name}"]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body["$ref"].rsplit("/", 1)[1] == model.__name__, name
        assert "application/problem+json" in operation["responses"]["422"]["content"]
        assert {"Idempotency-Key", "X-CSRF-Token"} <= {p["name"] for p in operation["parameters"]}
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


def test_a_session_lasts_a_working_day_and_only_as_signed() -> None:
    clock = ManualClock(NOW)
    sessions = Sessions(bytes(32), clock)
    cookie, session = sessions.start("a1")
    assert sessions.read(cookie) == session
    assert sessions.read(cookie[:-2] + "xx") is None  # tampered
    assert Sessions(bytes(range(32)), clock).read(cookie) is None  # another deployment's
    assert session.allows(session.csrf_token)
    assert not session.allows("guess")
    assert not session.allows(None)
    clock.advance(timedelta(hours=8))
    assert sessions.read(cookie) is None
