"""``alongside deadletters`` against the real server: list and show without anyone's data
unless asked, replay after a fix, purge before a day (and the days' keys with them)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, timedelta
from typing import Any

import pytest
from nats.aio.client import Client
from typer.testing import CliRunner, Result

from alongside import sample
from alongside.cli import app
from alongside.client import AlongsideClient
from contracts import subjects
from runtime import topology
from runtime.clock import SYSTEM
from runtime.settings import Settings
from runtime.vault import Erased, Vault
from services.rules.handlers import handlers as rules_handlers
from tests.conftest import Start
from tests.support import MARKERS, wait_for

runner = CliRunner()
MARKER = MARKERS["client_name"]


async def cli(env: dict[str, str], *args: str, log_level: str = "ERROR") -> Result:
    """The CLI in a thread (it runs its own event loop), the services serving on ours."""
    environment = {**env, "ALONGSIDE_LOG_LEVEL": log_level}
    return await asyncio.to_thread(runner.invoke, app, list(args), env=environment)


def lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def malformed(org: str, case_id: str, padding: int = 0) -> bytes:
    """A SubmitIntake whose envelope cannot be read (its time is no time), with a person's
    name in it, after ``padding`` bytes of notes."""
    body = {
        "specversion": "1.0",
        "id": f"id-{case_id}",
        "type": "SubmitIntake",
        "source": "tests",
        "org": org,
        "time": "not a time",
        "schemaversion": "1.0",
        "data": {"notes": "n" * padding, "client": {"display_name": MARKER}},
    }
    return json.dumps(body).encode()


@pytest.mark.usefixtures("intake")
async def test_dead_letters_are_listed_and_shown_without_personal_data_unless_asked(
    env: dict[str, str], nc: Client, org: str
) -> None:
    client = AlongsideClient(nc, source="tests")
    small, large = malformed(org, "c1"), malformed(org, "c2", padding=3000)
    for body in (small, large):
        reply = await client.request_raw(org, "intake", "SubmitIntake", body, retry_for=0)
        assert reply.status == "rejected"  # type: ignore[attr-defined]

    listed = await cli(env, "deadletters", "list", "--org", org)

    assert listed.exit_code == 0, listed.output
    assert MARKER not in listed.stdout
    found = lines(listed)
    assert [(f["org"], f["service"], f["failure"], f["kept_whole"]) for f in found] == [
        (org, "intake", "malformed envelope", True),
        (org, "intake", "malformed envelope", False),  # answered: its first 1 KiB only
    ]
    assert found[1]["size"] == len(large)
    assert found[1]["sha256"] == hashlib.sha256(large).hexdigest()
    assert "reason" not in found[0]

    shown = await cli(env, "deadletters", "show", str(found[0]["sequence"]))
    assert shown.exit_code == 0, shown.output
    assert MARKER not in shown.stdout
    assert json.loads(shown.stdout)["subject"].startswith(f"alongside.{org}.cmd.intake.")

    # An operator asks for the words and the original: they get them, and it is logged.
    opened = await cli(
        env, "deadletters", "show", str(found[0]["sequence"]), "--personal-data", log_level="INFO"
    )
    assert opened.exit_code == 0, opened.output
    letter = json.loads(opened.stdout)
    assert MARKER in letter["original"]
    assert letter["reason"].startswith("malformed envelope: time: ")
    logged = [json.loads(line) for line in opened.stderr.splitlines() if line.startswith("{")]
    assert [(e["event"], e["sequence"], e["personal_data"]) for e in logged] == [
        ("deadletter_shown", found[0]["sequence"], True)
    ]
    truncated = await cli(env, "deadletters", "show", str(found[1]["sequence"]), "--personal-data")
    assert len(json.loads(truncated.stdout)["original"]) <= 1024

    missing = await cli(env, "deadletters", "show", "999999999")
    assert "no dead letter 999999999" in str(missing.exception)


@pytest.mark.usefixtures("intake")
async def test_a_command_kept_whole_is_sent_again_and_one_truncated_is_not(
    env: dict[str, str], nc: Client, org: str
) -> None:
    client = AlongsideClient(nc, source="tests")
    for body in (malformed(org, "c1"), malformed(org, "c2", padding=3000)):
        await client.request_raw(org, "intake", "SubmitIntake", body, retry_for=0)
    first, second = lines(await cli(env, "deadletters", "list", "--org", org))

    replayed = await cli(env, "deadletters", "replay", "--all", "--org", org)

    # Still malformed: answered again with its field errors, and dead-lettered again; the
    # one not kept whole cannot be sent again, and stays.
    assert replayed.exit_code == 1
    assert [(r["sequence"], r["outcome"]) for r in lines(replayed)] == [
        (first["sequence"], "rejected"),
        (second["sequence"], "not replayable: the command was not kept whole"),
    ]
    assert "1 sent again, 1 not" in replayed.stderr
    after = lines(await cli(env, "deadletters", "list", "--org", org))
    assert [f["sequence"] for f in after][:1] == [second["sequence"]]
    assert len(after) == 2
    assert after[1]["sha256"] == first["sha256"]  # the same command, dead-lettered again
    both = await cli(env, "deadletters", "replay", "1", "--all")
    assert "give the letters' sequences, or --all" in str(both.exception)


@contextmanager
def failing(event_type: str, org: str) -> Iterator[list[str]]:
    """The rules service's handler of ``event_type`` raises for ``org``'s events (a bug),
    until the block ends (the fix); the ids it was given."""
    route = rules_handlers.events[event_type]
    seen: list[str] = []

    async def handler(event: Any, meta: Any, deps: Any) -> None:
        seen.append(meta.envelope.id)
        if meta.org == org:
            raise RuntimeError("a bug in the rules service")
        await route.handler(event, meta, deps)

    rules_handlers.events[event_type] = dataclasses.replace(route, handler=handler)
    try:
        yield seen
    finally:
        rules_handlers.events[event_type] = route


async def test_an_event_a_service_gave_up_on_is_replayed_after_the_fix(
    env: dict[str, str], nc: Client, org: str, start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALONGSIDE_MAX_DELIVER", "1")  # give up at the first failure
    await start("intake", "rules")
    client = AlongsideClient(nc, source="tests")
    js = nc.jetstream()
    with failing("IntakeReceived", org) as seen:
        reply = await client.submit(org, sample.intake(random.Random(1), "c1"))
        assert reply.status == "accepted"
        letter_subject = subjects.dead_letter(org, "rules", subjects.EVENTS_SENDER)
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.1)
        await wait_for_letter(nc, letter_subject)
    listed = lines(await cli(env, "deadletters", "list", "--org", org, "--service", "rules"))
    assert [(f["failure"], f["kept_whole"]) for f in listed] == [("failed 1 times; last", True)]

    replayed = await cli(env, "deadletters", "replay", str(listed[0]["sequence"]), log_level="INFO")

    assert replayed.exit_code == 0, replayed.output
    assert [r["outcome"] for r in lines(replayed)] == ["published"]
    decided = await wait_for(client, org, "MatchingPolicyDecided")
    assert decided[0].data["case_id"] == "c1"
    # Published again with its own id: the organisation's feed holds it twice, one id.
    received = await wait_for(client, org, "IntakeReceived", 2)
    assert len({event.id for event in received}) == 1
    assert not await js_letters(js, letter_subject)  # sent, so taken out
    assert '"event": "deadletter_replayed"' in replayed.stderr


async def wait_for_letter(nc: Client, subject: str, timeout: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await js_letters(nc.jetstream(), subject):
        assert asyncio.get_running_loop().time() < deadline, f"no dead letter on {subject}"
        await asyncio.sleep(0.1)


async def js_letters(js: Any, subject: str) -> int:
    info = await js.stream_info(topology.DEADLETTER_STREAM, subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0))


@pytest.mark.usefixtures("intake")
async def test_letters_stored_before_a_day_are_purged_with_their_days_keys(
    env: dict[str, str], nc: Client, org: str, other_org: str
) -> None:
    client = AlongsideClient(nc, source="tests")
    for owner in (org, other_org):
        await client.request_raw(
            owner, "intake", "SubmitIntake", malformed(owner, "c1"), retry_for=0
        )
    today = SYSTEM().astimezone(UTC).date()

    kept = await cli(env, "deadletters", "purge", "--before", today.isoformat(), "--org", org)
    assert kept.stdout.strip().startswith("purged 0 dead letters")
    tomorrow = (today + timedelta(days=1)).isoformat()
    purged = await cli(
        env, "deadletters", "purge", "--before", tomorrow, "--org", org, log_level="INFO"
    )

    assert purged.exit_code == 0, purged.output
    assert purged.stdout.strip().startswith(f"purged 1 dead letters stored before {tomorrow}")
    assert "erased 1 day keys" in purged.stdout
    assert '"event": "deadletters_purged"' in purged.stderr
    assert lines(await cli(env, "deadletters", "list", "--org", org)) == []
    # Another organisation's letters, and their key, are untouched.
    assert len(lines(await cli(env, "deadletters", "list", "--org", other_org))) == 1
    vault = Vault.of(nc.jetstream(), Settings())
    with pytest.raises(Erased):
        await vault.key(org, "dead_letters", today.isoformat())
    assert await vault.key(other_org, "dead_letters", today.isoformat()) is not None
