"""What every test of the ``alongside`` command shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.access import ADMIN, AuthDir


@pytest.fixture
def env(provisioned: str, auth: AuthDir, tmp_path: Path) -> dict[str, str]:
    """The CLI's environment: the suite's server, as the operator, a state folder of its own."""
    return {
        "ALONGSIDE_NATS_URL": provisioned,
        "ALONGSIDE_NATS_CREDENTIALS": str(auth.credentials(ADMIN)),
        "ALONGSIDE_AUTH_DIR": str(auth.path),
        "ALONGSIDE_STATE_DIR": str(tmp_path),
        "ALONGSIDE_LOG_LEVEL": "ERROR",
    }
