"""The console's lists of cases, supporters and unanswered proposals, with their filters,
sort orders and pages; and what needs a coordinator's attention. Pure: the overview's fold
in, rows out, no I/O.

A page is found by keyset, not by offset: rows are ordered by a sort key and then the id,
and the cursor holds the last row's key, so a row written meanwhile never shifts a page.
The cursor also names the listing it came from (its filters and sort), so it cannot be
sent with another's.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from contracts.lists import (
    AttentionItem,
    AttentionKind,
    CaseRow,
    CaseState,
    Found,
    ProposalRow,
    SupporterRow,
    WaitsOn,
)
from services.console.directory import SearchIndex, folded
from services.console.labels import plain
from services.console.overview_state import FoldedCase, FoldedSupporter, OverviewState, utc

Row = TypeVar("Row", bound=BaseModel)
Key = tuple[float, str]
Made = Callable[[], Row]  # a row, made when asked for
_NEVER = 1e15  # a sort key for "no date": after every date


class BadCursor(ValueError):
    """A cursor that this listing did not give out."""


@dataclass(frozen=True)
class Page(Generic[Row]):
    total: int
    items: list[Row]
    next_cursor: str | None


def listing(name: str, **filters: object) -> str:
    """A short fingerprint of a listing: its name, filters and sort."""
    said = json.dumps([name, sorted((k, str(v)) for k, v in filters.items())])
    return hashlib.sha256(said.encode()).hexdigest()[:12]


def paged(
    rows: Iterable[tuple[Key, Made[Row]]], listing_id: str, cursor: str | None, limit: int
) -> Page[Row]:
    """The rows after ``cursor`` in key order, at most ``limit`` of them: each row is made
    only once it is on the page (a model for each of 10,000 cases would take longer than
    the rest of the read)."""
    ordered = sorted(rows, key=lambda row: row[0])
    after = _after(cursor, listing_id) if cursor else None
    start = 0
    if after is not None:
        start = next((i for i, (key, _) in enumerate(ordered) if key > after), len(ordered))
    chosen = ordered[start : start + limit]
    more = start + limit < len(ordered)
    next_cursor = _cursor(chosen[-1][0], listing_id) if more and chosen else None
    return Page(total=len(ordered), items=[made() for _, made in chosen], next_cursor=next_cursor)


def every(rows: Iterable[tuple[Key, Made[Row]]]) -> list[Row]:
    """Every row, in key order (a CSV of the whole list)."""
    return [made() for _, made in sorted(rows, key=lambda row: row[0])]


def _cursor(key: Key, listing_id: str) -> str:
    said = json.dumps([listing_id, key[0], key[1]], separators=(",", ":"))
    return base64.urlsafe_b64encode(said.encode()).decode().rstrip("=")


def _after(cursor: str, listing_id: str) -> Key:
    try:
        said = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        made_for, when, key_id = said
        key = (float(when), str(key_id))
    except (ValueError, TypeError) as error:
        raise BadCursor(
            "this cursor was not given out by this list; start again without it"
        ) from error
    if made_for != listing_id:
        raise BadCursor("this cursor belongs to a list with other filters; start again without it")
    return key


def _moment(at: datetime | None, descending: bool = False) -> float:
    if at is None:
        return _NEVER
    return -at.timestamp() if descending else at.timestamp()


# Cases -------------------------------------------------------------------------------

CaseSort = Literal["opened", "-opened", "since", "-since"]


class CaseFilters(BaseModel):
    """Which cases a list holds, and in which order (the API's query, and the page's)."""

    model_config = ConfigDict(frozen=True)
    stage: str | None = Field(None, max_length=40, pattern=r"^[a-z_]+$")
    state: CaseState | None = None
    waits_on: WaitsOn | None = None
    sort: CaseSort = "opened"


def waits_on(case: FoldedCase) -> list[WaitsOn]:
    waits: list[WaitsOn] = []
    if case.erased:
        return waits
    if case.paused is not None:
        waits.append("review")
    if case.waiting is not None:
        waits.append("supporter")
    if case.proposal is not None:
        waits.append("choice")
    if case.consent is not None:
        waits.append("consent")
    if case.meeting is not None:
        waits.append("meeting")
    return waits


def case_rows(kept: OverviewState, filters: CaseFilters) -> list[tuple[Key, Made[CaseRow]]]:
    rows: list[tuple[Key, Made[CaseRow]]] = []
    descending = filters.sort.startswith("-")
    by_since = filters.sort.endswith("since")
    for case_id, case in kept.cases.items():
        if filters.stage is not None and case.stage != filters.stage:
            continue
        if filters.state is not None and case.state != filters.state:
            continue
        if filters.waits_on is not None and filters.waits_on not in waits_on(case):
            continue
        since = case.state_since or case.intake_at
        if since is None:
            continue  # only its later events are in the stream: nothing to list it by
        key = _moment(since if by_since else case.intake_at, descending)
        rows.append(((key, case_id), partial(case_row, case_id, case, since)))
    return rows


def case_row(case_id: str, case: FoldedCase, since: datetime) -> CaseRow:
    return CaseRow(
        case_id=case_id,
        stage=case.stage,
        state=case.state,
        since=since,
        opened_at=case.intake_at,
        waits_on=waits_on(case),
        missing_party_ids=case.consent.missing_party_ids if case.consent else [],
        supporter_id=case.holders[0] if len(case.holders) == 1 else None,
    )


# Supporters --------------------------------------------------------------------------

SupporterSort = Literal["registered", "lapses", "room"]
Eligibility = Literal["eligible", "ineligible", "undecided"]


class SupporterFilters(BaseModel):
    """Which supporters a list holds, and in which order."""

    model_config = ConfigDict(frozen=True)
    eligibility: Eligibility | None = None
    lapsing_within_days: int | None = Field(None, ge=0, le=3650)
    with_room: bool | None = None
    supervision_overdue: bool | None = None
    suspended: bool | None = None
    sort: SupporterSort = "registered"


def supporter_rows(
    kept: OverviewState, filters: SupporterFilters, now: datetime
) -> list[tuple[Key, Made[SupporterRow]]]:
    now = utc(now)
    today = now.astimezone(kept.zone).date()
    overdue: dict[str, datetime] = {}
    for start, session_id in kept.unattended.until(now):
        overdue.setdefault(kept.supervision[session_id].supporter_id, start)
    rows: list[tuple[Key, Made[SupporterRow]]] = []
    for supporter_id, s in kept.supporters.items():
        room = max(0, s.caseload_cap - len(s.caseload))
        if not _eligibility_fits(filters.eligibility, s.eligible):
            continue
        if filters.lapsing_within_days is not None and not _lapsing(
            s.lapses_on, today, filters.lapsing_within_days
        ):
            continue
        if filters.with_room is not None and (room > 0) != filters.with_room:
            continue
        late = overdue.get(supporter_id)
        if (
            filters.supervision_overdue is not None
            and (late is not None) != filters.supervision_overdue
        ):
            continue
        if filters.suspended is not None and s.suspended != filters.suspended:
            continue
        row = partial(
            SupporterRow,
            supporter_id=supporter_id,
            registered_at=s.registered_at,
            region=s.region,
            eligible=s.eligible,
            lapses_on=s.lapses_on,
            suspended=s.suspended,
            caseload=len(s.caseload),
            caseload_cap=s.caseload_cap,
            room=room,
            supervision_overdue_since=late,
        )
        rows.append(((_supporter_key(filters.sort, s, room), supporter_id), row))
    return rows


def _eligibility_fits(wanted: Eligibility | None, eligible: bool | None) -> bool:
    if wanted is None:
        return True
    return {
        "eligible": eligible is True,
        "ineligible": eligible is False,
        "undecided": eligible is None,
    }[wanted]


def _lapsing(lapses_on: date | None, today: date, within_days: int) -> bool:
    return lapses_on is not None and lapses_on <= today + timedelta(days=within_days)


def _supporter_key(sort: SupporterSort, supporter: FoldedSupporter, room: int) -> float:
    if sort == "lapses":
        return float(supporter.lapses_on.toordinal()) if supporter.lapses_on else _NEVER
    if sort == "room":
        return float(-room)  # the most room first
    return supporter.registered_at.timestamp()


# Proposals ---------------------------------------------------------------------------


def proposal_rows(
    kept: OverviewState, unanswered_days: int, now: datetime
) -> list[tuple[Key, Made[ProposalRow]]]:
    """Proposals out for more than ``unanswered_days`` days, the oldest first."""
    now = utc(now)
    rows: list[tuple[Key, Made[ProposalRow]]] = []
    for case_id, case in kept.cases.items():
        proposal = case.proposal
        if proposal is None or case.erased:
            continue
        days = (now - proposal.proposed_at).days
        if days < unanswered_days:
            continue
        row = partial(
            ProposalRow,
            case_id=case_id,
            round=proposal.round,
            proposed_at=proposal.proposed_at,
            days_unanswered=days,
            supporters=len(proposal.holds),
            first_hold_ends=proposal.first_hold_ends,
        )
        rows.append(((proposal.proposed_at.timestamp(), case_id), row))
    return rows


# Needs attention ---------------------------------------------------------------------

HOLD_ENDING = timedelta(hours=24)
MEETING_SOON = timedelta(hours=48)
WAITING_LONG = timedelta(days=14)
CONSENT_LATE = timedelta(days=3)
LAPSING_SOON = timedelta(days=14)


def attention(kept: OverviewState, now: datetime) -> list[tuple[Key, Made[AttentionItem]]]:
    """What is overdue, or about to be, in one organisation: each with the moment it
    became (or becomes) overdue, which orders the list."""
    now = utc(now)
    items: list[tuple[Key, Made[AttentionItem]]] = []

    def add(
        kind: AttentionKind,
        due: datetime,
        what: str,
        case_id: str | None = None,
        supporter_id: str | None = None,
    ) -> None:
        about = f"{kept.org}/{kind}/{case_id or ''}/{supporter_id or ''}"
        item = partial(
            AttentionItem,
            kind=kind,
            org=kept.org,
            case_id=case_id,
            supporter_id=supporter_id,
            due=due,
            what=what,
        )
        items.append(((due.timestamp(), about), item))

    for case_id, case in kept.cases.items():
        if case.erased:
            continue
        if case.paused is not None:
            add(
                "match_paused",
                case.paused.since,
                "The match is paused: its supporter is no longer eligible. Review it.",
                case_id,
                case.paused.supporter_id,
            )
        if case.proposal is not None and case.proposal.first_hold_ends <= now + HOLD_ENDING:
            add(
                "hold_ending",
                case.proposal.first_hold_ends,
                "The client has not chosen a supporter, and a place held for them ends soon.",
                case_id,
            )
        if case.consent is not None and case.consent.since <= now - CONSENT_LATE:
            parties = ", ".join(plain(p, "party") for p in case.consent.missing_party_ids)
            add(
                "consent_missing",
                case.consent.since + CONSENT_LATE,
                f"Consent is missing from {parties}.",
                case_id,
            )
        if case.meeting is not None and case.meeting.start <= now + MEETING_SOON:
            add(
                "meeting_unconfirmed",
                case.meeting.start - MEETING_SOON,
                "The first meeting is soon and not confirmed.",
                case_id,
                case.meeting.supporter_id,
            )
        if case.waiting is not None and case.waiting[1] <= now - WAITING_LONG:
            add(
                "waiting_long",
                case.waiting[1] + WAITING_LONG,
                "The client has waited more than two weeks for a supporter.",
                case_id,
            )
    for start, session_id in kept.unattended.until(now):
        supporter_id = kept.supervision[session_id].supporter_id
        add(
            "supervision_overdue",
            start,
            "Supervision was due and is not recorded as attended.",
            supporter_id=supporter_id,
        )
    local_today = now.astimezone(kept.zone).date()
    for day, supporter_id in kept.lapses.until(local_today + LAPSING_SOON):
        lapses_at = utc(datetime.combine(day, datetime.min.time(), kept.zone))
        add(
            "vetting_lapsing",
            lapses_at - LAPSING_SOON,
            f"Vetting lapses on {day:%d %B %Y}: the supporter can no longer be matched from then.",
            supporter_id=supporter_id,
        )
    return items


# Search ------------------------------------------------------------------------------


def found_rows(index: SearchIndex, query: str) -> list[tuple[Key, Made[Found]]]:
    """Who ``query`` finds, in the order of their names."""
    rows: list[tuple[Key, Made[Found]]] = []
    for (person, subject_id), matched_on in index.search(query).items():
        entry = index.entries[(person, subject_id)]
        row = partial(
            Found,
            person=person,
            subject_id=subject_id,
            display_name=entry.display_name,
            matched_on=matched_on,
        )
        rows.append(((0.0, f"{folded(entry.display_name)}\x00{person}\x00{subject_id}"), row))
    return rows


# CSV ---------------------------------------------------------------------------------


def as_csv(rows: Sequence[BaseModel], columns: Sequence[str]) -> str:
    """Rows as CSV with a header line, lists joined by spaces, dates as ISO 8601."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        said = row.model_dump(mode="json")
        writer.writerow([_cell(said.get(column)) for column in columns])
    return out.getvalue()


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(map(str, value))
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text  # no formulas in a sheet
