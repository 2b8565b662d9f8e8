"""``alongside rules`` end to end: check, test, publish, history, rollback and explain."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from alongside.cli import app
from runtime.access import ADMIN, AuthDir
from services.rules import bundle

runner = CliRunner()


@pytest.fixture
def tree(tmp_path: Path, org: str) -> Path:
    root = tmp_path / "rules"
    shutil.copytree(bundle.DEFAULT_ROOT, root)
    shutil.copytree(root / "orgs" / "harbour-ombudsman", root / "orgs" / org)
    return root


def test_check_and_test_pass_on_the_shipped_rules() -> None:
    checked = runner.invoke(app, ["rules", "check"])
    assert checked.exit_code == 0, checked.output
    assert checked.output.startswith("ok: 6 rulesets")
    tested = runner.invoke(app, ["rules", "test"])
    assert tested.exit_code == 0, tested.output
    assert "FAIL" not in tested.output
    assert tested.output.strip().endswith("all cases pass")


def test_check_names_the_file_and_line_of_a_mistake(tree: Path) -> None:
    path = tree / "default" / "consent" / "ruleset.yaml"
    path.write_text(
        path.read_text().replace(
            "{support_person_named: {eq: false}}", "{support_person_named: {eq: no_thanks}}"
        )
    )
    result = runner.invoke(app, ["rules", "check", str(tree)])
    assert result.exit_code == 1
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "no_thanks" in text)
    assert f"{path}:{line}: support_person_named is true or false" in result.output


@pytest.mark.usefixtures("rules_service")
async def test_publish_history_rollback_and_explain(
    provisioned: str, auth: AuthDir, tree: Path, org: str, tmp_path: Path
) -> None:
    env = {
        "ALONGSIDE_NATS_URL": provisioned,
        "ALONGSIDE_NATS_CREDENTIALS": str(auth.credentials(ADMIN)),
        "ALONGSIDE_LOG_LEVEL": "ERROR",
        "ALONGSIDE_STATE_DIR": str(tmp_path),
    }

    def invoke(*args: str) -> Result:
        return runner.invoke(app, ["rules", *args], env=env)

    # The CLI runs its own event loop: give it a thread so the service keeps serving on ours.
    async def run(*args: str) -> Result:
        return await asyncio.to_thread(invoke, *args)

    published = await run("publish", "--org", org, "--kind", "eligibility", "--path", str(tree))
    assert published.exit_code == 0, published.output
    assert f"{org}.eligibility@1.0.1-harbour.1 live" in published.output

    override = tree / "orgs" / org / "eligibility" / "override.yaml"
    override.write_text(
        override.read_text()
        .replace('"1.0.1-harbour.1"', '"1.0.1-harbour.2"')
        .replace("supervision_interval_days: 30", "supervision_interval_days: 28")
    )
    assert (
        await run("publish", "--org", org, "--kind", "eligibility", "--path", str(tree))
    ).exit_code == 0

    broken = (
        override.read_text()
        .replace("disable: [caseload-full]", "disable: [caseload]")
        .replace("harbour.2", "harbour.3")
    )
    override.write_text(broken)
    refused = await run("publish", "--org", org, "--kind", "eligibility", "--path", str(tree))
    assert refused.exit_code == 1
    assert "refused; the live version stays" in refused.output
    assert "no rule 'caseload' to disable" in refused.output

    rolled = await run("rollback", "--org", org, "eligibility")
    assert rolled.exit_code == 0, rolled.output
    assert "1.0.1-harbour.1 live again" in rolled.output
    history = await run("history", "--org", org, "eligibility")
    assert [line.split()[2] for line in history.output.splitlines()] == [
        "1.0.1-harbour.1",
        "1.0.1-harbour.2",
        "1.0.1-harbour.1",
    ]

    facts = tmp_path / "facts.json"
    facts.write_text(
        json.dumps(
            {
                "supporter_id": "s9",
                "record_check_present": True,
                "record_check_clear": True,
                "record_check_days_left": -3,
                "interview_passed": True,
                "professional_references": 1,
                "personal_references": 1,
                "recovery_days": 900,
                "training_courses": ["peer_support_foundations"],
                "days_since_supervision": 29,
                "caseload_room": 1,
                "suspended": False,
            }
        )
    )
    for _ in range(400):  # the service picks up the rollback within moments
        explained = await run("explain", "--org", org, "eligibility", str(facts))
        if "1.0.1-harbour.1" in explained.output:
            break
        await asyncio.sleep(0.05)
    assert explained.exit_code == 0, explained.output
    assert explained.output.startswith(f"ineligible  (ruleset {org}.eligibility@1.0.1-harbour.1")
    assert "record-check-expired: The record check has expired" in explained.output
    assert "supervision-overdue" not in explained.output  # 29 days is within harbour's 30
    # The evaluation is in the decision log: explained again by its id, listed by subject.
    decision_id = re.findall(r"decision ([0-9a-f]{32}),", explained.output)[-1]
    again = await run("explain", "--org", org, "--decision", decision_id)
    assert again.exit_code == 0, again.output
    assert again.output.startswith("eligibility of s9, decided ")
    assert "record-check-expired: The record check has expired" in again.output
    listed = await run("decisions", "--org", org, "s9")
    assert listed.exit_code == 0, listed.output
    assert decision_id in listed.output
    unknown = await run("explain", "--org", org, "--decision", "0" * 32)
    assert unknown.exit_code != 0
    assert f"no decision {'0' * 32} of {org}" in str(unknown.exception)
