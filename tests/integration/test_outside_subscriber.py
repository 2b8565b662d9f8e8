"""A subscriber in another service, importing only contracts/ and holding only its
organisation's credential, receives exactly that organisation's events, durably."""

from __future__ import annotations

import asyncio
import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest

from alongside import sample
from alongside.client import AlongsideClient
from contracts.replies import CommandAccepted
from runtime.credentials import Credentials

SCRIPT = Path(__file__).with_name("outside_subscriber.py")


async def subscriber(url: str, credentials: Path, org: str, expected: int) -> list[dict[str, Any]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        url,
        str(credentials),
        org,
        "feed",
        str(expected),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    return [json.loads(line) for line in out.decode().splitlines()]


@pytest.mark.usefixtures("intake")
async def test_outside_subscriber_receives_its_organisations_events_knowing_only_contracts(
    client: AlongsideClient,
    provisioned: str,
    org: str,
    other_org: str,
    credentials: Credentials,
    tmp_path: Path,
) -> None:
    for each, supporter_id in ((other_org, "s1"), (org, "s1"), (other_org, "s2")):
        command = sample.supporter(random.Random(1), supporter_id)
        assert isinstance(await client.submit(each, command), CommandAccepted)
    assert isinstance(
        await client.submit(org, sample.intake(random.Random(2), "c1")), CommandAccepted
    )
    feed = tmp_path / "feed.creds"
    feed.write_text((await credentials.issue(org, "subscriber", "feed")).text)

    first = await subscriber(provisioned, feed, org, 2)

    assert [line["type"] for line in first] == ["SupporterRegistered", "IntakeReceived"]
    assert {line["org"] for line in first} == {org}
    assert first[1]["event"]["case_id"] == "c1"
    assert "display_name" not in json.dumps(first)

    # Durable: a second run goes on after what the first acknowledged.
    assert isinstance(
        await client.submit(org, sample.intake(random.Random(3), "c2")), CommandAccepted
    )
    second = await subscriber(provisioned, feed, org, 1)
    assert [(line["type"], line["event"]["case_id"]) for line in second] == [
        ("IntakeReceived", "c2")
    ]
