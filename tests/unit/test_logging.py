"""Logs are JSON and never carry personal data, even when code passes it by mistake."""

from __future__ import annotations

import json

import pytest

from runtime.logging import configure, get_logger


def test_personal_keys_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure("INFO", json=True)
    get_logger("t").info("registered", supporter_id="s1", display_name="Ana Smith", email="a@x.org")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["supporter_id"] == "s1"
    assert line["display_name"] == "[redacted]"
    assert line["email"] == "[redacted]"
    assert "Ana" not in json.dumps(line)
