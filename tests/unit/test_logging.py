"""Logs are JSON and never carry personal data, even when code passes it by mistake."""

from __future__ import annotations

import json
import logging

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


def test_a_librarys_log_and_its_traceback_are_one_json_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # FastStream's fetch task logged a TimeoutError traceback as plain text among the JSON.
    configure("INFO", json=True)
    library = logging.getLogger("alongside.faststream.intake")  # what make_broker gives it
    library.info("lifecycle chatter")  # a library's INFO is not ours to print
    try:
        raise TimeoutError("fetch timed out")
    except TimeoutError:
        library.exception("subscriber fetch failed")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["event"] == "subscriber fetch failed"
    assert line["logger"] == "alongside.faststream.intake"
    assert line["level"] == "error"
    assert "TimeoutError: fetch timed out" in line["exception"]


def test_a_person_at_a_terminal_reads_text(capsys: pytest.CaptureFixture[str]) -> None:
    configure("INFO", json=False)
    get_logger("t").info("registered", supporter_id="s1")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "registered" in line
    assert "supporter_id=s1" in line
    assert not line.startswith("{")
