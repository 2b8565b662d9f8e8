"""Keeping each organisation's search index as its records are now: before a search, the
records new or changed since the last one (the fold marks them, ``overview_roster``) are
read from intake (``ReadDirectory``, recorded as ``DirectoryRead``), and the erased are
dropped, so a search never answers from names older than the events the console has
taken in. The index lives in this process's memory only (docs/decisions/0030)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from contracts.envelope import new_id
from contracts.views import DIRECTORY_BATCH, Directory, ReadDirectory
from runtime.asking import Asking
from runtime.logging import get_logger
from services.console.directory import SearchIndex, Who
from services.console.overview import Overview

log = get_logger(__name__)


class DirectoryUnread(Exception):
    """Intake did not answer a directory read: the search cannot be trusted to be whole."""


class Directories:
    """Each organisation's search index, brought up to date before it is read."""

    def __init__(self, source: str) -> None:
        self.source = source  # who the reads are from, in the access log
        self._indexes: dict[str, SearchIndex] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def current(
        self, org: str, overview: Overview, asking: Callable[[], Awaitable[Asking]]
    ) -> SearchIndex:
        index = self._indexes.setdefault(org, SearchIndex())
        async with self._locks.setdefault(org, asyncio.Lock()):
            for who in _taken(overview.directory_erased):
                index.drop(who)
            changed = _taken(overview.directory_changed)
            try:
                await _read(org, index, changed, await asking(), self.source)
            except BaseException:
                overview.directory_changed.update(changed)  # read them next time
                raise
        return index


def _taken(marked: set[Who]) -> list[Who]:
    taken = sorted(marked)
    marked.clear()
    return taken


async def _read(
    org: str, index: SearchIndex, wanted: list[Who], asking: Asking, source: str
) -> None:
    for start in range(0, len(wanted), DIRECTORY_BATCH):
        batch = wanted[start : start + DIRECTORY_BATCH]
        command = ReadDirectory(
            case_ids=[i for person, i in batch if person == "client"],
            supporter_ids=[i for person, i in batch if person == "supporter"],
        )
        reply = await asking.any(org, command, new_id(), source=source)
        if not isinstance(reply, Directory):
            log.warning("console_directory_unread", org=org, status=reply.status)
            raise DirectoryUnread(f"intake answered {reply.status}")
        returned = {(e.person, e.subject_id) for e in reply.entries}
        for who in batch:
            if who not in returned:  # erased meanwhile, or never held
                index.drop(who)
        for entry in reply.entries:
            index.put(entry)
