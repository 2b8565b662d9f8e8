"""Each case's timeline: every event about it, in plain words, with when, who (by role) and
why where the event says. Pure: events in (each with when it was published), answers out.

Events carry ids, dates and codes, never a name or a reason a person gave, so nothing kept
here is personal, and an erased case keeps what it had: ids and dates. Why a rules decision
came out as it did is in the decision log, about the person: an entry names the decision,
and an answer gives the name only to a reader who may read it; who read the case (the
access log) likewise. How each event is told is in ``timeline_events``.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from operator import attrgetter
from zoneinfo import ZoneInfo

from contracts.envelope import Event
from contracts.timeline import CaseTimeline, TimelineEntry
from services.console.timeline_events import Entry, tell


class CaseTimelines:
    """Every case's entries, in the order their events came."""

    def __init__(self) -> None:
        self._cases: dict[str, list[Entry]] = {}

    def apply(self, event: Event, at: datetime) -> None:
        told = tell(event, at.astimezone(UTC))
        if told is not None:
            case_id, entry = told
            self._cases.setdefault(case_id, []).append(entry)

    def of(self, case_id: str) -> list[Entry]:
        """Oldest first; events of one moment in the order they came (a stable sort: the
        services' outboxes publish in their own order, not always in time order)."""
        return sorted(self._cases.get(case_id, ()), key=attrgetter("at"))


def case_timeline(
    timelines: CaseTimelines,
    org: str,
    case_id: str,
    zone: ZoneInfo,
    *,
    erased: bool,
    reads_decisions: bool,
    reads_access_log: bool,
) -> CaseTimeline:
    """The case's timeline as a reader may see it: the decision behind an entry only if they
    may read why decisions were made, who read the case only if they may read the access
    log."""
    return CaseTimeline(
        org=org,
        case_id=case_id,
        erased=erased,
        entries=[
            TimelineEntry(
                at=entry.at,
                what=entry.words(zone),
                who=entry.who,
                why=entry.why,
                decision_id=entry.decision_id if reads_decisions else None,
                viewed_by=entry.viewed_by if reads_access_log else None,
                event=entry.event,
            )
            for entry in timelines.of(case_id)
        ],
    )


def as_csv(timeline: CaseTimeline) -> str:
    """One row an entry, the same columns as the answer's."""
    out = io.StringIO()
    columns = list(TimelineEntry.model_fields)
    writer = csv.DictWriter(out, fieldnames=["org", "case_id", *columns], lineterminator="\n")
    writer.writeheader()
    for entry in timeline.entries:
        row = entry.model_dump(mode="json")
        writer.writerow({"org": timeline.org, "case_id": timeline.case_id, **row})
    return out.getvalue()
