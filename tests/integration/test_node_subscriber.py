"""The example subscriber in a second language (examples/node-subscriber, nats.js) reads
exactly its organisation's events, durably, with only that organisation's credential."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from alongside import sample
from alongside.client import AlongsideClient
from contracts.replies import CommandAccepted
from runtime.credentials import Credentials

EXAMPLE = Path(__file__).parents[2] / "examples" / "node-subscriber"


@pytest.fixture(scope="session")
def node_example() -> Path:
    """The example with its dependencies installed (as `npm ci` does from its lock file).
    Node is on every CI machine; on a machine with only Python this is skipped."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        # The quick start needs only Python; CI machines have Node, so there it runs.
        pytest.skip("Node.js is not installed here")
    if not (EXAMPLE / "node_modules" / "nats").is_dir():
        subprocess.run(
            ["npm", "ci", "--silent", "--no-audit", "--no-fund"],
            cwd=EXAMPLE,
            check=True,
            timeout=300,
        )
    return EXAMPLE


async def node_subscriber(example: Path, url: str, creds: Path, org: str, count: int) -> list[Any]:
    process = await asyncio.create_subprocess_exec(
        "node",
        str(example / "subscriber.mjs"),
        url,
        str(creds),
        org,
        "node",
        str(count),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    return [json.loads(line) for line in out.decode().splitlines()]


@pytest.mark.usefixtures("intake")
async def test_the_node_subscriber_reads_its_organisations_events_durably(
    node_example: Path,
    client: AlongsideClient,
    provisioned: str,
    org: str,
    other_org: str,
    credentials: Credentials,
    tmp_path: Path,
) -> None:
    for each, case_id in ((other_org, "x1"), (org, "c1"), (other_org, "x2"), (org, "c2")):
        command = sample.intake(random.Random(case_id), case_id)
        assert isinstance(await client.submit(each, command), CommandAccepted)
    creds = tmp_path / "node.creds"
    creds.write_text((await credentials.issue(org, "subscriber", "node")).text)

    first = await node_subscriber(node_example, provisioned, creds, org, 2)

    assert [(e["org"], e["type"], e["data"]["case_id"]) for e in first] == [
        (org, "IntakeReceived", "c1"),
        (org, "IntakeReceived", "c2"),
    ]
    assert isinstance(
        await client.submit(org, sample.intake(random.Random(3), "c3")), CommandAccepted
    )
    second = await node_subscriber(node_example, provisioned, creds, org, 1)
    assert [e["data"]["case_id"] for e in second] == ["c3"]  # went on after its acks
