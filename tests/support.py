"""Helpers for tests that drive the services through their commands and events."""

from __future__ import annotations

import asyncio
from typing import Any

from alongside.client import AlongsideClient
from contracts.envelope import RawEnvelope
from contracts.replies import CommandAccepted


async def accepted(client: AlongsideClient, org: str, command: Any) -> CommandAccepted:
    reply = await client.submit(org, command)
    assert isinstance(reply, CommandAccepted), reply
    return reply


async def wait_for(
    client: AlongsideClient, org: str, event_type: str, count: int = 1, timeout: float = 15
) -> list[RawEnvelope]:
    """The organisation's events of one type, once there are ``count`` (or at the timeout)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = [e async for e in client.events(org, idle_s=0.2) if e.type == event_type]
        if len(found) >= count or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.1)
