"""The ``alongside`` command end to end: submit, events, contracts export, and the demo."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from nats.aio.client import Client
from typer.testing import CliRunner, Result

from alongside import sample, services
from alongside.cli import app
from alongside.client import AlongsideClient
from alongside.demo import run_demo
from alongside.options import CliError
from contracts import subjects
from contracts.envelope import wrap
from contracts.intake import IntakeReceived, Method, Stage
from contracts.records import SchedulingSettings
from runtime import bus, topology
from runtime.access import AuthDir
from runtime.clock import SYSTEM
from runtime.credentials import Credentials
from runtime.embedded import EmbeddedNats
from runtime.registry import register
from runtime.settings import Settings
from runtime.state import Policies
from runtime.store import RecordStore
from services.console.accounts import Accounts
from services.intake.handlers import handlers as intake_handlers
from tests.conftest import Start
from tests.flaky import flaky
from tests.support import accepted, org_today

runner = CliRunner()


@pytest.mark.usefixtures("intake")
async def test_submit_prints_the_reply_and_events_lists_the_result(
    env: dict[str, str], org: str, tmp_path: Path
) -> None:
    # The CLI runs its own event loop: give it a thread so the service keeps serving on ours.
    def invoke(*args: str, stdin: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=stdin, env=env)

    payload = tmp_path / "intake.json"
    payload.write_text(sample.intake(random.Random(1), "c1").model_dump_json())

    accepted = await asyncio.to_thread(invoke, "submit", "SubmitIntake", str(payload), "--org", org)
    assert accepted.exit_code == 0, accepted.output
    assert json.loads(accepted.output)["status"] == "accepted"

    bad = json.loads(payload.read_text())
    bad["case_id"] = "not a valid id!"
    rejected = await asyncio.to_thread(
        invoke, "submit", "submitintake", "-", "--org", org, stdin=json.dumps(bad)
    )
    assert rejected.exit_code == 1
    assert json.loads(rejected.output)["errors"][0]["field"] == "data.case_id"

    listed = await asyncio.to_thread(invoke, "events", "--org", org)
    assert listed.exit_code == 0, listed.output
    lines = [json.loads(line) for line in listed.output.splitlines()]
    assert [(line["type"], line["case_id"]) for line in lines] == [("IntakeReceived", "c1")]


@pytest.mark.usefixtures("intake")
async def test_submit_not_carried_out_just_now_exits_75_and_the_same_id_is_carried_out_later(
    env: dict[str, str], org: str, tmp_path: Path
) -> None:
    def invoke(*args: str) -> Result:
        return runner.invoke(app, list(args), env=env)

    payload = tmp_path / "intake.json"
    payload.write_text(sample.intake(random.Random(3), "c3").model_dump_json())
    submit = ("submit", "SubmitIntake", str(payload), "--org", org)
    with flaky(intake_handlers, "SubmitIntake", fail=-1) as calls:
        busy = await asyncio.to_thread(invoke, *submit, "--retry-for", "0")
    assert busy.exit_code == 75, busy.output  # EX_TEMPFAIL, not 1: nothing refused it
    # The reply, printed indented (the service's own log, in this process, may come first).
    said = json.loads(busy.output[busy.output.index("{\n") :])
    assert said["status"] == "unavailable"
    assert said["retry_after_s"] > 0
    assert calls.ids == [said["command_id"]]

    again = await asyncio.to_thread(invoke, *submit, "--id", said["command_id"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["command_id"] == said["command_id"]


async def test_submit_with_no_service_to_answer_exits_75_naming_the_id_to_send_again(
    env: dict[str, str], org: str, tmp_path: Path
) -> None:
    payload = tmp_path / "intake.json"
    payload.write_text(sample.intake(random.Random(4), "c4").model_dump_json())
    args = [
        "submit",
        "SubmitIntake",
        str(payload),
        "--org",
        org,
        "--id",
        "c4-first",
        "--retry-for",
        "0.5",
    ]
    result = await asyncio.to_thread(runner.invoke, app, args, env=env)
    assert result.exit_code == 75, result.output
    assert "no service to answer" in result.output
    assert "--id c4-first" in result.output


def test_without_any_nats_the_cli_says_how_to_get_one(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["events", "--org", "acme"],
        env={"ALONGSIDE_STATE_DIR": str(tmp_path), "ALONGSIDE_NATS_URL": ""},
    )
    assert result.exit_code != 0
    assert "alongside up" in str(result.exception)


def test_contracts_export(tmp_path: Path) -> None:
    result = runner.invoke(app, ["contracts", "export", str(tmp_path)])
    assert result.exit_code == 0
    assert (tmp_path / "asyncapi.json").exists()


@pytest.mark.nats  # the demo starts its own embedded nats-server
async def test_demo_runs_the_flow_and_exits_zero(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the demo keeps people's mail in its working folder
    assert await run_demo(seed=7) == 0
    kept = list((tmp_path / "alongside-demo-mail").glob("*/*.eml"))
    assert len(kept) > 10, "the demo's mail is kept after it ends"
    # Without --serve the console stops with the demo: no address nothing serves.
    said = " ".join(capsys.readouterr().out.split())  # as one line, however it was wrapped
    assert "alongside demo --serve` keeps them" in said
    assert "HTTP API at http" not in said
    assert "no script needed): http" not in said


async def test_import_matches_a_file_of_intakes_and_proposals_explains_them(
    env: dict[str, str], org: str, tmp_path: Path, provisioned: str, auth: AuthDir
) -> None:
    running = await services.start(
        provisioned, ["intake", "rules", "matching"], credentials=auth.credentials
    )
    try:
        client = AlongsideClient(
            running.brokers["intake"].connection, source="tests", sender="intake"
        )
        rng = random.Random(5)
        for n in range(4):
            await accepted(client, org, sample.supporter(rng, f"s{n}"))
            for evidence in sample.vetting(rng, f"s{n}", org_today(SYSTEM)):
                await accepted(client, org, evidence)
        intakes = [sample.intake(rng, f"c{n}") for n in range(3)]
        english = [
            i.model_copy(
                update={
                    "client": i.client.model_copy(
                        update={
                            "languages": ["en"],
                            "methods": list(Method),
                            "gender_preference": None,
                        }
                    )
                }
            )
            for i in intakes
        ]
        lines = [i.model_dump_json() for i in english] + ['{"case_id": 5}']
        file = tmp_path / "intakes.jsonl"
        file.write_text("\n".join(lines) + "\n")

        def invoke(*args: str) -> Result:
            return runner.invoke(app, list(args), env=env)

        imported = await asyncio.to_thread(invoke, "import", str(file), "--org", org)
        assert imported.exit_code == 1  # one line refused
        assert "intakes.jsonl:4: case_id: must be text" in imported.output
        assert "3 intakes imported" in imported.output
        assert "3 given proposals, 0 waitlisted" in imported.output

        shown = await asyncio.to_thread(invoke, "proposals", "c0", "--org", org)
        assert shown.exit_code == 0, shown.output
        assert shown.output.startswith("c0: proposed")
        assert "speaks en" in shown.output
    finally:
        await running.stop()


@pytest.mark.usefixtures("intake")
async def test_calendar_writes_an_icalendar_file_and_needs_one_person(
    env: dict[str, str], org: str, tmp_path: Path, client: AlongsideClient
) -> None:
    out = tmp_path / "c1.ics"

    def invoke(*args: str) -> Result:
        return runner.invoke(app, list(args), env=env)

    for who in (["--case", "c1"], ["--supporter", "s1"], ["--case", "not an id"]):
        unknown = await asyncio.to_thread(invoke, "calendar", "--org", org, *who, "-o", str(out))
        assert unknown.exit_code != 0  # not an empty calendar, as if there were no sessions yet
        assert str(unknown.exception) == f"no {who[0][2:]} {who[1]!r} in {org}"
        assert not out.exists()
    await accepted(client, org, sample.intake(random.Random(1), "c1"))  # no sessions yet
    written = await asyncio.to_thread(
        invoke, "calendar", "--org", org, "--case", "c1", "-o", str(out)
    )
    assert written.exit_code == 0, written.output
    text = out.read_text()
    assert text.startswith("BEGIN:VCALENDAR")
    assert "X-WR-TIMEZONE:Pacific/Auckland" in text
    both = await asyncio.to_thread(invoke, "calendar", "--org", org)
    assert both.exit_code != 0
    assert "exactly one of --case or --supporter" in both.output


async def test_events_passes_over_what_is_not_an_event_and_goes_on(
    env: dict[str, str], client: AlongsideClient, nc: Client, org: str
) -> None:
    """Anyone who may publish into EVENTS could once stop every later `alongside events`."""
    js = nc.jetstream()
    first = wrap(
        IntakeReceived(
            case_id="c1", scheme="s", stage=Stage.ENTRY, party_ids=[], has_other_support=False
        ),
        org=org,
        source="t",
        time=SYSTEM(),
    )
    await bus.publish_event(js, first)
    await js.publish(subjects.event(org, "IntakeReceived"), b"\xff not an envelope")
    mislabelled = first.model_copy(update={"id": "mislabelled"}).model_dump_json()
    await js.publish(subjects.event(org, "ConsentGiven"), mislabelled.encode())
    second = first.model_copy(update={"id": "after-them"})
    await bus.publish_event(js, second)

    listed = await asyncio.to_thread(runner.invoke, app, ["events", "--org", org], env=env)

    assert listed.exit_code == 0, listed.output
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [
        first.id,
        "after-them",
    ]
    assert listed.stderr.count("alongside: skipped event") == 2
    skipped: list[tuple[int, str]] = []
    seen = [
        e.id
        async for e in client.events(org, on_unreadable=lambda n, why: skipped.append((n, why)))
    ]
    assert seen == [first.id, "after-them"]
    assert [why.split(":")[0] for _, why in skipped] == ["not an event envelope"] * 2


ALONGSIDE = str(Path(sys.executable).parent / "alongside")


def run_cli(*args: str, state_dir: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ALONGSIDE_STATE_DIR": str(state_dir), "ALONGSIDE_NATS_URL": ""}
    return subprocess.run(
        [ALONGSIDE, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["up", "intake", "nosuch"], "alongside: unknown service nosuch; one of intake, rules"),
        (["events", "--org", "Bad Org"], "alongside: --org: org 'Bad Org' is not a valid"),
        (
            ["submit", "SubmitIntake", "/no/such.json", "--org", "acme"],
            "alongside: /no/such.json: No such file or directory",
        ),
        (
            ["submit", "GrantEverything", "-", "--org", "acme"],
            "alongside: unknown command 'GrantEverything'",
        ),
        (
            ["rules", "explain", "eligibility", "/no/facts.json", "--org", "acme"],
            "alongside: /no/facts.json: No such file or directory",
        ),
    ],
    ids=["unknown-service", "bad-org", "missing-file", "unknown-command", "missing-facts"],
)
def test_a_mistake_at_the_command_line_is_one_line_not_a_traceback(
    args: list[str], said: str, tmp_path: Path
) -> None:
    result = run_cli(*args, state_dir=tmp_path / "state")

    assert result.returncode == 2
    assert result.stderr.startswith(said), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "state").exists()  # refused before any server started


@pytest.mark.nats  # starts `alongside up`, and its server
def test_a_second_up_on_the_same_state_folder_is_refused_and_the_first_is_found(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    env = {
        **os.environ,
        "ALONGSIDE_STATE_DIR": str(state),
        "ALONGSIDE_NATS_URL": "",
        "ALONGSIDE_LOG_LEVEL": "ERROR",
    }
    first = subprocess.Popen(
        [ALONGSIDE, "up", "intake"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert first.stderr is not None
        # Auth is on from the first start: the operator's keys are made in the state folder.
        assert (
            f"made the operator's keys and credentials in {state / 'auth'}"
            in first.stderr.readline()
        )
        assert "running on nats://" in first.stderr.readline()
        second = run_cli("up", "intake", state_dir=state)
        assert second.returncode == 2
        url = (state / "nats.url").read_text().strip()
        assert second.stderr.strip() == (
            f"alongside: `alongside up` is already running on {state} at {url}; "
            "stop it, or set ALONGSIDE_STATE_DIR to another folder"
        )

        # Any directory: the state folder, not the working one, says where `up` runs, and
        # holds the operator's credentials the command connects with.
        def found(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [ALONGSIDE, *args],
                env=env,
                cwd="/",
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )

        unknown = found("events", "--org", "acme")
        assert unknown.returncode == 2
        assert "alongside: organisation 'acme' has no events stream here" in unknown.stderr
        assert found("orgs", "add", "acme", "--name", "Acme").returncode == 0
        listed = found("events", "--org", "acme")
        assert listed.returncode == 0, listed.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)


async def test_organisations_are_added_listed_and_disabled_and_rules_need_one(
    env: dict[str, str], org: str
) -> None:
    def invoke(*args: str) -> Result:
        return runner.invoke(app, list(args), env=env)

    new = f"{org}-new"
    added = await asyncio.to_thread(invoke, "orgs", "add", new, "--name", "New Scheme")
    assert added.exit_code == 0, added.output
    assert added.stdout.strip() == f"{new} registered (New Scheme)"
    again = await asyncio.to_thread(invoke, "orgs", "add", new, "--name", "New Scheme")
    assert isinstance(again.exception, CliError)
    assert str(again.exception) == f"organisation {new!r} is already registered (New Scheme)"

    listed = await asyncio.to_thread(invoke, "orgs", "list")
    records = {json.loads(line)["org"]: json.loads(line) for line in listed.stdout.splitlines()}
    assert records[new]["status"] == "active"
    assert records[org]["status"] == "active"
    assert records[new]["audit_days"] == 2557  # seven years, unless it says

    audit = await asyncio.to_thread(invoke, "orgs", "audit", new, "3650")
    assert audit.stdout.strip() == f"{new}: decisions are kept 3650 days"
    forever = await asyncio.to_thread(invoke, "orgs", "audit", new, "0")
    assert "audit days: Input should be greater than or equal to 1" in str(forever.exception)

    disabled = await asyncio.to_thread(invoke, "orgs", "disable", new)
    assert disabled.stdout.strip() == f"{new} disabled"
    refused = await asyncio.to_thread(invoke, "rules", "publish", "--org", new)
    assert refused.exit_code != 0
    assert f"organisation {new!r} is disabled" in refused.output + str(refused.exception)
    unknown = await asyncio.to_thread(invoke, "rules", "publish", "--org", f"{org}-nobody")
    assert f"organisation '{org}-nobody' is not registered here" in (
        unknown.output + str(unknown.exception)
    )


async def test_an_organisation_added_with_a_time_zone_works_in_it(
    env: dict[str, str], start: Start, nc: Client, org: str
) -> None:
    await start("scheduling")  # the zone lives in the organisation's scheduling settings
    new = f"{org}-tz"
    args = ["orgs", "add", new, "--name", "Tz Scheme", "--time-zone", "Europe/London"]
    added = await asyncio.to_thread(runner.invoke, app, args, env=env)

    assert added.exit_code == 0, added.output
    assert added.stdout.strip() == f"{new} registered (Tz Scheme), time zone Europe/London"
    store = RecordStore(
        await nc.jetstream().key_value(topology.ORGANISATIONS_BUCKET), SchedulingSettings
    )
    assert (await Policies(store).get(new)).time_zone == "Europe/London"

    args = ["orgs", "add", f"{org}-mars", "--name", "M", "--time-zone", "Mars/Olympus"]
    bad = await asyncio.to_thread(runner.invoke, app, args, env=env)
    assert isinstance(bad.exception, CliError)
    assert str(bad.exception).startswith("--time-zone: Value error, 'Mars/Olympus' is not")


async def _as_before_auth(state: Path) -> None:
    """A state folder as `up` left it before auth: everything in the global account."""
    with EmbeddedNats(state) as server:
        nc = await bus.connect(server.url, "before-auth")
        await topology.provision(nc.jetstream(), Settings())
        await register(nc.jetstream(), "acme", "Acme", Settings(), SYSTEM)
        await nc.close()


@pytest.mark.nats  # starts servers of its own
def test_up_keeps_the_data_of_a_state_folder_from_before_auth(tmp_path: Path) -> None:
    state = tmp_path / "state"
    asyncio.run(_as_before_auth(state))

    env = {
        **os.environ,
        "ALONGSIDE_STATE_DIR": str(state),
        "ALONGSIDE_NATS_URL": "",
        "ALONGSIDE_LOG_LEVEL": "ERROR",
    }
    up = subprocess.Popen([ALONGSIDE, "up", "intake"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert up.stderr is not None
        said = [up.stderr.readline() for _ in range(3)]
        assert "moved the data stored before auth into the account" in said[1]
        assert "running on nats://" in said[2]
        listed = run_cli("orgs", "list", state_dir=state)
        assert listed.returncode == 0, listed.stderr
        assert [json.loads(line)["org"] for line in listed.stdout.splitlines()] == ["acme"]
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=30)


async def test_a_revoked_credential_is_told_in_one_line_not_retried_forever(
    env: dict[str, str], org: str, credentials: Credentials, tmp_path: Path
) -> None:
    path = tmp_path / "feed.creds"
    path.write_text((await credentials.issue(org, "subscriber", "cli")).text)
    assert await credentials.revoke(org, "cli") == ["cli"]

    def invoke() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ALONGSIDE, "events", "--org", org],
            env={**os.environ, **env, "ALONGSIDE_NATS_CREDENTIALS": str(path)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    result = await asyncio.to_thread(invoke)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"alongside: cannot connect to NATS at {env['ALONGSIDE_NATS_URL']}: ")
    assert "Authorization Violation" in last


async def test_a_service_will_not_start_without_the_deployments_master_key(
    env: dict[str, str], tmp_path: Path
) -> None:
    # A key of its own would seal what no other process could open: it refuses, saying why.
    missing = tmp_path / "nowhere" / "master.key"
    result = await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).parent / "alongside"), "up", "intake"],
        env={**os.environ, **env, "ALONGSIDE_MASTER_KEY_FILE": str(missing)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"no master key at {missing}" in result.stderr
    assert "ALONGSIDE_MASTER_KEY_FILE" in result.stderr
    assert "Traceback" not in result.stderr
    assert not missing.exists()


async def test_console_accounts_are_made_and_changed_from_the_command_line(
    env: dict[str, str], nc: Client, org: str
) -> None:
    def invoke(*args: str, stdin: str) -> Result:
        return runner.invoke(
            app, ["console", "account", *args, "--password-stdin"], input=stdin, env=env
        )

    made = await asyncio.to_thread(
        invoke,
        "ana@example.org",
        "--name",
        "Ana",
        "--role",
        f"{org}=coordinator",
        stdin="correct horse battery\n",
    )
    assert made.exit_code == 0, made.output
    # (and, if another test's browser had signed in as ana, "; 1 session(s) ended")
    assert made.output.strip().split(";")[0] == f"ana@example.org: coordinator of {org}"
    accounts = Accounts(await nc.jetstream().key_value(topology.CONSOLE_ACCOUNTS_BUCKET), SYSTEM)
    assert await accounts.signing_in("ana@example.org", "correct horse battery") is not None
    assert await accounts.signing_in("ana@example.org", "wrong horse battery") is None

    changed = await asyncio.to_thread(
        invoke,
        "ana@example.org",
        "--name",
        "Ana",
        "--role",
        f"{org}=supervisor",
        stdin="a new long password\n",
    )
    assert changed.exit_code == 0, changed.output
    ana = await accounts.signing_in("ANA@example.org ", "a new long password")  # as typed
    assert ana is not None
    assert ana.roles == {org: "supervisor"}

    short = await asyncio.to_thread(
        invoke, "bo@example.org", "--name", "Bo", "--role", f"{org}=coordinator", stdin="short\n"
    )
    assert short.exit_code == 1
    assert "at least 12 characters" in str(short.exception)
    stopped = await asyncio.to_thread(
        runner.invoke, app, ["console", "disable", "ana@example.org"], env=env
    )
    assert stopped.exit_code == 0, stopped.output
    assert await accounts.signing_in("ana@example.org", "a new long password") is None
    unknown = await asyncio.to_thread(
        invoke,
        "bo@example.org",
        "--name",
        "Bo",
        "--role",
        f"{org}=boss",
        stdin="correct horse battery\n",
    )
    assert unknown.exit_code == 2
    assert f"{org}=boss" in unknown.output


@pytest.mark.usefixtures("intake")
async def test_credentials_of_each_kind_are_issued_listed_and_held_to_their_job(
    env: dict[str, str], org: str, tmp_path: Path
) -> None:
    def invoke(*args: str, creds: Path | None = None) -> Result:
        as_whom = {} if creds is None else {"ALONGSIDE_NATS_CREDENTIALS": str(creds)}
        return runner.invoke(app, list(args), env={**env, **as_whom})

    crm, feed = tmp_path / "crm.creds", tmp_path / "feed.creds"
    for kind, name, path in (("integration", "crm", crm), ("subscriber", "feed", feed)):
        issued = await asyncio.to_thread(
            invoke, "orgs", "credentials", org, "--kind", kind, "--name", name, "-o", str(path)
        )
        assert issued.exit_code == 0, issued.output
        assert f"{org}'s {kind} credential '{name}'" in issued.output
    reserved = await asyncio.to_thread(
        invoke,
        "orgs",
        "credentials",
        org,
        "--kind",
        "integration",
        "--name",
        "console",
        "-o",
        str(tmp_path / "x.creds"),
    )
    assert isinstance(reserved.exception, CliError)
    assert "'console' is reserved" in str(reserved.exception)
    listed = await asyncio.to_thread(invoke, "orgs", "issued", org)
    assert listed.exit_code == 0, listed.output
    kinds = {
        (line["name"], line["kind"], line["valid"])
        for line in map(json.loads, listed.output.splitlines())
    }
    assert kinds == {("crm", "integration", True), ("feed", "subscriber", True)}

    # The integration sends an intake as itself; the subscriber reads it from its feed.
    payload = tmp_path / "intake.json"
    payload.write_text(sample.intake(random.Random(1), "c1").model_dump_json())
    sent = await asyncio.to_thread(
        invoke, "submit", "SubmitIntake", str(payload), "--org", org, creds=crm
    )
    assert sent.exit_code == 0, sent.output
    read = await asyncio.to_thread(invoke, "events", "--org", org, creds=feed)
    assert read.exit_code == 0, read.output
    assert [json.loads(line)["type"] for line in read.output.splitlines()] == ["IntakeReceived"]
    again = await asyncio.to_thread(invoke, "events", "--org", org, creds=feed)
    assert again.output == ""  # its feed goes on from where it stopped

    # A view is the console's: the server refuses the integration's, so nothing answers.
    view = tmp_path / "view.json"
    view.write_text(json.dumps({"case_id": "c1"}))
    refused = await asyncio.to_thread(
        invoke, "submit", "ViewCase", str(view), "--org", org, "--retry-for", "0", creds=crm
    )
    assert refused.exit_code != 0
    assert "case" not in refused.stdout
