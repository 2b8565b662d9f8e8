"""What a coordinator reads: views of a case, answered by intake from every service's
records (read only), each view recorded.

A view is a command that changes nothing: ``ViewCase`` is answered with ``CaseView``, as
``ExportPersonData`` is with ``PersonData``; that it was seen, by whom (the asking
command's source: the console names the signed-in account), is published first as
``CaseViewed``, ids only, the access log supervisors read.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from contracts.envelope import Command, EntityId, Event, Message
from contracts.intake import SERVICE
from contracts.records import CaseMatch, CaseRecord, CaseSchedule


class ViewCase(Command):
    """Everything a coordinator works with on one case: answered with ``CaseView``."""

    type_name: ClassVar[str] = "ViewCase"
    service: ClassVar[str] = SERVICE
    case_id: EntityId


class CaseView(Message):
    """A case as its services hold it now: intake's record (the client, the dispute, the
    parties and their consent per stage), matching's (proposals with their explanations and
    hold ends, or why the client waits) and scheduling's (meetings and sessions)."""

    type_name: ClassVar[str] = "CaseView"
    status: Literal["viewed"] = "viewed"
    command_id: str
    viewed_at: datetime
    case: CaseRecord
    matching: CaseMatch | None = None
    schedule: CaseSchedule | None = None


class CaseViewed(Event):
    """Someone saw a case: the access log, ids only."""

    type_name: ClassVar[str] = "CaseViewed"
    case_id: EntityId
    command_id: str
    viewed_by: str  # the viewing command's source: the console names the account


COMMANDS: tuple[type[Command], ...] = (ViewCase,)
EVENTS: tuple[type[Event], ...] = (CaseViewed,)
