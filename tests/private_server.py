"""A nats-server of one test module's own, for a module whose tests change what every
organisation on a server shares (a day's dead-letter key) or read its whole store folder.
Import both fixtures into the module: they stand in for the suite's shared server there.

    from tests.private_server import nats_server, provisioned  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runtime.access import AuthDir
from runtime.embedded import EmbeddedNats
from tests.conftest import provision


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory, auth: AuthDir) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(tmp_path_factory.mktemp("nats-own"), auth=auth)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def provisioned(nats_server: EmbeddedNats, auth: AuthDir) -> str:
    return await provision(nats_server, auth)
