"""The command line's edges: its version, an account for an organisation not registered, and
an organisation registered while the scheduling service is not running."""

from __future__ import annotations

import asyncio
import re
from importlib.metadata import version

from nats.aio.client import Client
from typer.testing import CliRunner, Result

from alongside.cli import app
from contracts import catalogue
from contracts.records import SchedulingSettings
from runtime import topology
from runtime.clock import SYSTEM
from runtime.state import Policies
from runtime.store import RecordStore
from services.console.accounts import Accounts
from tests.conftest import Start

runner = CliRunner()


async def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> Result:
    return await asyncio.to_thread(runner.invoke, app, list(args), input=stdin, env=env)


def test_version_names_the_package_and_the_contracts() -> None:
    said = runner.invoke(app, ["--version"])
    assert said.exit_code == 0
    assert said.stdout.strip() == (
        f"alongside {version('alongside')} (contracts {catalogue.VERSION})"
    )


async def test_an_account_for_an_organisation_not_registered_is_refused(
    env: dict[str, str], nc: Client, org: str
) -> None:
    refused = await cli(
        env,
        "console",
        "account",
        "bo@example.org",
        "--name",
        "Bo",
        "--role",
        f"{org}=coordinator",
        "--role",
        "nowhere-org=supervisor",
        "--password-stdin",
        stdin="correct horse battery\n",
    )

    assert refused.exit_code != 0
    assert str(refused.exception) == (
        "--role nowhere-org: organisation 'nowhere-org' is not registered here "
        "(alongside orgs list)"
    )
    accounts = Accounts(await nc.jetstream().key_value(topology.CONSOLE_ACCOUNTS_BUCKET), SYSTEM)
    assert await accounts.signing_in("bo@example.org", "correct horse battery") is None
    made = await cli(
        env,
        "console",
        "account",
        "bo@example.org",
        "--name",
        "Bo",
        "--role",
        f"{org}=coordinator",
        "--password-stdin",
        stdin="correct horse battery\n",
    )
    assert made.exit_code == 0, made.output


async def test_an_organisation_is_registered_without_the_scheduling_service_and_told_how_to_finish(
    env: dict[str, str], nc: Client, org: str, start: Start
) -> None:
    new = f"{org}-later"
    added = await cli(env, "orgs", "add", new, "--name", "Later", "--time-zone", "Europe/Paris")

    assert added.exit_code == 75, added.output  # not done just now, nor refused
    assert added.stdout.strip() == f"{new} registered (Later)"
    listed = await cli(env, "orgs", "list")
    assert f'"org":"{new}"' in listed.stdout.replace(" ", "")
    told = re.search(
        r"echo '(.*)' \| alongside submit ConfigureScheduling - --org (\S+) "
        r"--id (\S+)",
        added.stderr,
    )
    assert told is not None, added.stderr
    assert "no scheduling service answered" in added.stderr

    await start("scheduling")
    finished = await cli(
        env, "submit", "ConfigureScheduling", "-", "--org", told[2], "--id", told[3], stdin=told[1]
    )

    assert finished.exit_code == 0, finished.output
    store = RecordStore(
        await nc.jetstream().key_value(topology.ORGANISATIONS_BUCKET), SchedulingSettings
    )
    assert (await Policies(store).get(new)).time_zone == "Europe/Paris"
    # Adding it again once scheduling runs is refused as registered, as ever.
    again = await cli(env, "orgs", "add", new, "--name", "Later")
    assert "already registered" in str(again.exception)
