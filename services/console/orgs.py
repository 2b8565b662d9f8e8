"""Each organisation's own NATS connection: the console sends an organisation's commands
only as that organisation, with the console's credential of it (``access.org_permissions``,
kind ``console``), so the server itself refuses anything that would reach another, whatever
a page gets wrong; and only the console's credential may send the sensitive reads, under
the sender ``console``, which is how the access log knows a view came from here."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext

from contracts import subjects
from contracts.console import AccessLogEntry, Viewed
from contracts.envelope import RawEnvelope
from contracts.views import CaseViewed, DecisionViewed, SupporterViewed
from runtime import bus
from runtime.access import principal
from runtime.asking import Asking
from runtime.clock import Clock
from runtime.credentials import Credentials
from services.console.directory import SearchIndex
from services.console.overview import Overview
from services.console.readmodel import Following
from services.console.search import Directories

SOURCE = "alongside/console"
# A person acting through their own link (``<PERSON_SOURCE>/<purpose>``): no account; the
# notifications service tells it apart from a coordinator by this prefix.
PERSON_SOURCE = f"{SOURCE}/person"
CredentialFor = Callable[[str], Awaitable[Path]]


class NoCredential(Exception):
    """The console holds no credential for an organisation."""


def from_folder(folder: Path) -> CredentialFor:
    """A deployment's: the operator wrote ``<org>.creds`` for the console into ``folder``
    (``alongside orgs credentials ORG --kind console -o FOLDER/ORG.creds``)."""

    async def credential(org: str) -> Path:
        path = folder / f"{org}.creds"
        if not path.exists():
            raise NoCredential(f"the console holds no credential for {org} ({path})")
        return path

    return credential


def issued_by(credentials: Credentials, folder: Path) -> CredentialFor:
    """The embedded server's: the console's credential for an organisation is issued the
    first time it is needed (``alongside up`` holds the operator's keys)."""

    async def credential(org: str) -> Path:
        path = folder / f"{org}.creds"
        if not path.exists() or principal(path).kind != "console":
            # (again where the one kept was issued before credential kinds)
            _keep(path, (await credentials.issue(org, "console")).text)
        return path

    return credential


def _keep(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.touch(mode=0o600)  # a secret: readable by this user only
    path.write_text(text)


class OrgConnections:
    """``reader``: the console's own connection, which reads each organisation's events
    stream; what is sent as an organisation goes on that organisation's connection."""

    def __init__(
        self, url: str, credential: CredentialFor, clock: Clock, reader: JetStreamContext
    ) -> None:
        self.url = url
        self.credential = credential
        self.clock = clock
        self.reader = reader
        self._open: dict[str, tuple[Client, Asking]] = {}
        self._following: dict[str, Following] = {}
        self._lock = asyncio.Lock()
        self._directories = Directories(f"{SOURCE}/search")

    async def asking(self, org: str) -> Asking:
        """Commands out as ``org`` (connected the first time it is asked for)."""
        async with self._lock:
            if org not in self._open:
                path = await self.credential(org)
                nc = await bus.connect(self.url, f"alongside-console-{org}", path, attempts=3)
                self._open[org] = (nc, Asking(nc, SOURCE, self.clock, subjects.CONSOLE))
            return self._open[org][1]

    async def overview(self, org: str) -> Overview:
        """The organisation's work lists and figures, as of now (``readmodel``)."""
        js = self.reader
        async with self._lock:
            following = self._following.get(org)
            if following is None:
                following = self._following[org] = Following(org)
                await following.start(js)
        return await following.current(js)

    async def search_index(self, org: str) -> SearchIndex:
        """The organisation's search index, with every record the fold knows of as of now
        (``search``)."""
        overview = await self.overview(org)
        return await self._directories.current(org, overview, lambda: self.asking(org))

    async def access_log(self, org: str) -> list[AccessLogEntry]:
        return await access_log(self.reader, org)

    async def failed(self, org: str) -> None:
        """A command as ``org`` failed: if its connection is down (the server dropped it:
        its credential revoked, say, and perhaps issued again), drop it, so the next
        command connects afresh, reading the credential again."""
        async with self._lock:
            opened = self._open.get(org)
            if opened is None or opened[0].is_connected:
                return
            del self._open[org]
            following = self._following.pop(org, None)
        if following is not None:
            await following.stop()
        with contextlib.suppress(Exception):
            await opened[0].close()

    async def close(self) -> None:
        for following in self._following.values():
            await following.stop()
        self._following.clear()
        for nc, _ in self._open.values():
            await nc.close()
        self._open.clear()


# Each kind of view in the access log: its event, and the id of what was seen.
_VIEWS: tuple[
    tuple[type[CaseViewed | SupporterViewed | DecisionViewed], Viewed, Callable[[Any], str]], ...
] = (
    (CaseViewed, "case", lambda viewed: viewed.case_id),
    (SupporterViewed, "supporter", lambda viewed: viewed.supporter_id),
    (DecisionViewed, "decision", lambda viewed: viewed.decision_id),
)


async def access_log(js: JetStreamContext, org: str) -> list[AccessLogEntry]:
    """Every view of the organisation's cases, supporters and decisions, oldest first, read
    from its own events stream, with the console service's own credential."""
    stream, entries = subjects.org_events_stream(org), []
    for model, viewed, subject_of in _VIEWS:
        for msg in await bus.every_message(js, stream, subjects.event(org, model.type_name)):
            envelope = RawEnvelope.model_validate_json(msg.data)
            event = model.model_validate(envelope.data)
            entries.append(
                AccessLogEntry(
                    viewed=viewed,
                    subject_id=subject_of(event),
                    viewed_by=event.viewed_by,
                    viewed_at=envelope.time,
                    command_id=event.command_id,
                )
            )
    return sorted(entries, key=lambda entry: entry.viewed_at)
