"""A month's figures for an organisation's reports, read from the UTC days its local month
spans; the months there are; and the reports as CSV."""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from contracts.overview import Durations, MonthReport
from services.console.overview_state import (
    Day,
    FoldedCase,
    FoldedSession,
    FoldedSupervision,
    OverviewState,
    midnight,
    utc,
)


@dataclass(frozen=True)
class _Month:
    """A month in the organisation's zone, from its first midnight to the next month's."""

    start: datetime  # in UTC
    end: datetime
    days: list[Day]  # the UTC days that hold any of it

    def holds(self, at: datetime | None) -> bool:
        return at is not None and self.start <= at < self.end


def month(kept: OverviewState, month: str, now: datetime) -> MonthReport:
    now = utc(now)
    span = _local_month(kept, month)
    outcomes = Counter(kind for day in span.days for at, kind in day.outcomes if span.holds(at))
    accepted = outcomes["accepted"]
    answered = accepted + outcomes["declined"] + outcomes["expired"]
    sessions = _sessions(kept, span)
    supervision = _supervision(kept, span, now)
    attended = _attended(supervision)
    ages = _waiting_days(kept, min(span.end, now))
    return MonthReport(
        org=kept.org,
        month=month,
        time_zone=kept.zone_name,
        intakes=_intakes(kept, span),
        intake_to_first_proposal=_from_intake(
            _cases(kept, span, lambda day: day.first_proposals),
            lambda case: case.first_proposed_at,
            span,
        ),
        intake_to_active_match=_from_intake(
            _cases(kept, span, lambda day: day.activations), lambda case: case.activated_at, span
        ),
        proposals_accepted=accepted,
        proposals_declined=outcomes["declined"],
        proposals_expired=outcomes["expired"],
        acceptance_rate=_ratio(accepted, answered),
        changes_of_supporter=outcomes["changed_supporter"],
        refusals=outcomes["refused"],
        drop_outs=outcomes["dropped_out"],
        sessions_booked=len(sessions),
        sessions_held=_ended(sessions, "completed"),
        client_no_shows=_ended(sessions, "client_no_show"),
        supporter_no_shows=_ended(sessions, "supporter_no_show"),
        supervision_due=len(supervision),
        supervision_attended=attended,
        supervision_compliance=_ratio(attended, len(supervision)),
        waitlist_size=len(ages),
        waitlist_median_days=round(statistics.median(ages), 1) if ages else None,
        waitlist_oldest_days=round(max(ages), 1) if ages else None,
    )


def months(kept: OverviewState, now: datetime) -> list[str]:
    """Every month from the first intake to now, oldest first."""
    zone = kept.zone
    firsts = [c.intake_at for c in kept.cases.values() if c.intake_at]
    current = now.astimezone(zone).date().replace(day=1)
    month = min(firsts).astimezone(zone).date().replace(day=1) if firsts else current
    found = []
    while month <= current:
        found.append(f"{month:%Y-%m}")
        month = _next_month(month)
    return found


def as_csv(reports: Sequence[MonthReport]) -> str:
    """One row a month; each duration as its cases, median and p90 columns."""
    rows = []
    for report in reports:
        row: dict[str, object] = {}
        for name, value in report.model_dump(mode="json").items():
            if isinstance(value, dict):
                row.update({f"{name}_{part}": v for part, v in value.items()})
            else:
                row[name] = value
        rows.append(row)
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()


def _local_month(kept: OverviewState, month: str) -> _Month:
    zone = kept.zone
    first = date.fromisoformat(f"{month}-01")
    start, end = midnight(first, zone), midnight(_next_month(first), zone)
    return _Month(start, end, kept.days_between(start, end))


def _next_month(first: date) -> date:
    return (first + timedelta(days=32)).replace(day=1)


def _intakes(kept: OverviewState, span: _Month) -> int:
    return sum(span.holds(kept.cases[k].intake_at) for day in span.days for k in day.intakes)


def _cases(
    kept: OverviewState, span: _Month, listed: Callable[[Day], list[str]]
) -> list[FoldedCase]:
    return [kept.cases[k] for day in span.days for k in listed(day)]


def _from_intake(
    cases: Iterable[FoldedCase], reached: Callable[[FoldedCase], datetime | None], span: _Month
) -> Durations:
    """How long from intake each case took to reach a stage this month."""
    return _durations(
        at - case.intake_at
        for case in cases
        if case.intake_at and (at := reached(case)) and span.holds(at)
    )


def _sessions(kept: OverviewState, span: _Month) -> list[FoldedSession]:
    """The month's sessions booked and not cancelled."""
    return [
        s
        for day in span.days
        for k in day.sessions
        if span.holds((s := kept.sessions[k]).start) and not s.cancelled
    ]


def _ended(sessions: Iterable[FoldedSession], outcome: str) -> int:
    return sum(s.outcome == outcome for s in sessions)


def _supervision(kept: OverviewState, span: _Month, now: datetime) -> list[FoldedSupervision]:
    """The month's supervision due by now."""
    return [
        sv
        for day in span.days
        for k in day.supervision
        if span.holds((sv := kept.supervision[k]).start) and sv.start <= now
    ]


def _attended(supervision: Iterable[FoldedSupervision]) -> int:
    return sum(sv.attended for sv in supervision)


def _waiting_days(kept: OverviewState, at: datetime) -> list[float]:
    """How many days each client waiting at ``at`` had waited."""
    waited = (kept.cases[k] for k in kept.waitlisted)
    return [(at - since).total_seconds() / 86400 for since in _waiting_at(waited, at)]


def _waiting_at(cases: Iterable[FoldedCase], at: datetime) -> list[datetime]:
    """When each client waiting at ``at`` began to wait."""
    return [
        start
        for c in cases
        for start, end in c.waitlisted
        if start is not None and start <= at and (end is None or end > at)
    ]


def _durations(spans: Iterable[timedelta]) -> Durations:
    hours = sorted(span.total_seconds() / 3600 for span in spans)
    if not hours:
        return Durations(cases=0)
    p90 = hours[min(len(hours) - 1, max(0, -(-9 * len(hours) // 10) - 1))]  # nearest rank
    # Four places: a proposal within a second still reads as more than nothing.
    return Durations(
        cases=len(hours), median_hours=round(statistics.median(hours), 4), p90_hours=round(p90, 4)
    )


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None
