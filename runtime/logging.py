"""Structured JSON logs with no personal data.

Code logs ids, types and counts only. As a safety net, values of keys that
could hold personal data are replaced before a line is written.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from contracts.catalogue import all_messages
from contracts.privacy import marked

# Keys whose values could hold personal data: every field the contracts mark personal or
# sensitive (contracts/privacy.py), by its name, and whole messages.
PERSONAL_KEYS = frozenset(
    {
        *(path.rsplit(".", 1)[-1] for model in all_messages().values() for path in marked(model)),
        "body",
        "payload",
        "data",
        "original",
        "profile",
        "client",
        "evidence",
    }
)


def _redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in PERSONAL_KEYS.intersection(event_dict):
        event_dict[key] = "[redacted]"
    return event_dict


# nats-py's functions a pull consumer's fetch runs through (nats/js/client.py).
_FETCHES = frozenset({"fetch", "_fetch_n", "_fetch_one"})
_NATS_JS = f"{os.sep}nats{os.sep}js{os.sep}"


def _from_fetch(error: BaseException) -> bool:
    trace = error.__traceback__
    while trace is not None:
        code = trace.tb_frame.f_code
        if code.co_name in _FETCHES and _NATS_JS in code.co_filename:
            return True
        trace = trace.tb_next
    return False


class RoutineTimeouts(logging.Filter):
    """An idle pull consumer's fetch that runs out of time is routine, not an error.

    nats-py 2.16 raises a plain ``asyncio.TimeoutError`` (not its own ``TimeoutError``)
    when a fetch's time runs out between its two pull requests, which happens now and then
    while nothing comes (the server answers the first at the very end of its wait);
    FastStream 0.7.8 catches only nats-py's own, so its task supervisor logged it at error
    level with a traceback, then restarted the fetch loop (nothing is lost). Such a record
    is lowered to DEBUG, without its traceback, as ``fetch_timed_out``: shown only when the
    root logger is at DEBUG. Any other error, from a fetch or not, stays as it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if record.levelno < logging.ERROR or not isinstance(error, TimeoutError):
            return True
        if not _from_fetch(error):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        record.msg, record.args = "fetch_timed_out", ()
        record.exc_info, record.exc_text = None, None
        return logging.getLogger().isEnabledFor(logging.DEBUG)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is now: tests and the CLI runner swap it."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure(level: str = "INFO", json: bool | None = None) -> None:
    """Our logs and every library's (FastStream, nats-py, uvicorn: the standard library's
    logging) as one kind of line: JSON, or for a person at a terminal (``json=None``
    decides by whether stderr is one), readable text. A library's traceback becomes the
    line's ``exception`` field, never loose lines among the JSON."""
    if json is None:
        json = not sys.stderr.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # Look stderr up on each use: tests and the CLI runner swap it.
        logger_factory=lambda *_: structlog.PrintLogger(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = _Stderr()
    handler.addFilter(RoutineTimeouts())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Libraries speak up from warnings on (their INFO is lifecycle chatter).
    root.setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
