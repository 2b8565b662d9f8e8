"""What every command shares: the organisation option, and errors a person reads in one line.

``main`` prints a ``CliError`` as ``alongside: <what went wrong>`` and exits 2, instead of
a traceback.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from contracts import subjects


class CliError(RuntimeError):
    """A mistake the person at the command line can fix; said in one line."""


# sysexits' EX_TEMPFAIL: a command not carried out just now (nor refused: that is 1); send
# the same command, with the same id, again.
EXIT_UNAVAILABLE = 75


def valid_org(value: str) -> str:
    try:
        subjects.event(value, "x")  # the one place that knows what an org token may be
    except subjects.SubjectError as error:
        raise CliError(f"--org: {error} (lower-case letters, digits and -, 2-32 long)") from None
    return value


def valid_name(value: str | None) -> str | None:
    """A credential's name: one token, as an id is."""
    if value is not None and not re.match(subjects.ID_PATTERN, value):
        raise CliError(f"--name: {value!r} is not a valid name (letters, digits, _ and -)")
    return value


OrgOpt = Annotated[str, typer.Option(help="Organisation token.", callback=valid_org)]


def read_text(path: Path) -> str:
    """A file's text, or a one-line error naming it (missing, unreadable, a folder)."""
    try:
        return path.read_text()
    except OSError as error:
        raise CliError(f"{path}: {error.strerror or error}") from None
