from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client

from alongside import services
from alongside.client import AlongsideClient


@pytest.fixture
async def intake(provisioned: str) -> AsyncIterator[services.Running]:
    brokers = await services.start(provisioned, ["intake"])
    yield brokers
    await services.stop(brokers)


@pytest.fixture
def client(nc: Client) -> AlongsideClient:
    return AlongsideClient(nc, source="tests")
