"""A subscriber in another service, importing only contracts/, receives the events."""

from __future__ import annotations

import asyncio
import json
import random
import sys
from pathlib import Path

import pytest

from alongside import sample
from alongside.client import AlongsideClient
from contracts.replies import CommandAccepted

SCRIPT = Path(__file__).with_name("outside_subscriber.py")


@pytest.mark.usefixtures("intake")
async def test_outside_subscriber_receives_events_knowing_only_contracts(
    client: AlongsideClient, provisioned: str, org: str
) -> None:
    for command in (
        sample.supporter(random.Random(1), "s1"),
        sample.intake(random.Random(2), "c1"),
    ):
        assert isinstance(await client.submit(org, command), CommandAccepted)

    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), provisioned, org, "2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)

    assert process.returncode == 0, err.decode()
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert [line["type"] for line in lines] == ["SupporterRegistered", "IntakeReceived"]
    assert lines[1]["event"]["case_id"] == "c1"
    assert "display_name" not in json.dumps(lines)
