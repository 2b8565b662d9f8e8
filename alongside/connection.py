"""Finding the NATS to talk to: the configured URL, else the embedded server ``up`` started."""

from __future__ import annotations

from pathlib import Path

from alongside.options import CliError
from runtime.settings import Settings


class NoNatsError(CliError):
    pass


def url_file(settings: Settings) -> Path:
    return settings.state_dir / "nats.url"


def resolve_url(settings: Settings) -> str:
    if settings.nats_url:
        return settings.nats_url
    path = url_file(settings)
    if path.exists():
        return path.read_text().strip()
    raise NoNatsError(
        "no NATS to talk to: start one with `alongside up` (embedded) or set ALONGSIDE_NATS_URL"
    )
