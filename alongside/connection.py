"""Finding the NATS to talk to, and as whom: the configured URL and credentials, else the
embedded server ``up`` started and the operator's credentials it keeps in its state folder."""

from __future__ import annotations

from pathlib import Path

from nats.aio.client import Client

from alongside.options import CliError
from runtime import access, bus
from runtime.access import ADMIN, AuthDir, Principal
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


def credentials(settings: Settings, user: str = ADMIN) -> Path | None:
    """ALONGSIDE_NATS_CREDENTIALS, else (with the embedded server) the auth folder's."""
    if settings.nats_credentials is not None:
        if not settings.nats_credentials.is_file():
            raise CliError(f"ALONGSIDE_NATS_CREDENTIALS: no file {settings.nats_credentials}")
        return settings.nats_credentials
    if settings.nats_url is None:
        path = AuthDir(settings.auth_path).credentials(user)
        return path if path.exists() else None
    return None


def principal(settings: Settings) -> Principal:
    """Who the CLI is to NATS: the sender its commands go as, its inbox, its kind."""
    return access.principal(credentials(settings))


# A command gives up after a few tries (about 2 s apart) instead of retrying forever: a
# revoked credential or a stopped server is said in one line.
CLI_ATTEMPTS = 3


async def connect(settings: Settings, name: str) -> Client:
    """The CLI's connection: one line instead of a traceback when the server refuses it."""
    url = resolve_url(settings)
    try:
        return await bus.connect(url, name, credentials(settings), attempts=CLI_ATTEMPTS)
    except Exception as error:
        raise CliError(f"cannot connect to NATS at {url}: {error}") from None
