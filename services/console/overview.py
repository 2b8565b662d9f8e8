"""An organisation's work lists and monthly figures, folded from its events. Pure: events in
(each with when it was published), answers out, no I/O.

Events are the system of record and are never forgotten, so replaying an organisation's
stream from the start rebuilds all of this; ``readmodel`` keeps one following each
organisation. What is kept is in ``overview_state``, how each event changes it in
``overview_events``; the answers are read by ``overview_today`` and ``overview_month``.
Each case's timeline is kept beside them, by ``timeline``.
"""

from __future__ import annotations

from datetime import datetime

from contracts.envelope import Event
from contracts.overview import LiveRuleset, MonthReport, RulesHistory, ScheduledSession, Today
from contracts.timeline import CaseTimeline
from services.console import overview_events, overview_month, overview_roster, overview_today
from services.console.overview_state import OverviewState
from services.console.timeline import CaseTimelines, case_timeline
from services.console.timeline_events import TOLD

# Every event type any fold reads; the rest are skipped unread (``readmodel``).
FOLDED: frozenset[type[Event]] = frozenset(
    (*overview_events.FOLDED, *overview_roster.FOLDED, *TOLD)
)


class Overview(OverviewState):
    """One organisation's fold. ``apply`` each event in stream order."""

    def __init__(self, org: str) -> None:
        super().__init__(org)
        self.timelines = CaseTimelines()

    def apply(self, event: Event, at: datetime) -> None:
        overview_events.apply(self, event, at)
        overview_roster.apply(self, event, at)
        self.timelines.apply(event, at)

    def timeline(
        self, case_id: str, *, reads_decisions: bool, reads_access_log: bool
    ) -> CaseTimeline:
        """Every event about the case, oldest first, as a reader may see it (``timeline``)."""
        return case_timeline(
            self.timelines,
            self.org,
            case_id,
            self.zone,
            erased=self.erased(case_id),
            reads_decisions=reads_decisions,
            reads_access_log=reads_access_log,
        )

    def today(self, now: datetime, limit: int) -> Today:
        """Each list sorted by urgency; rows are made only for the first ``limit``."""
        return overview_today.today(self, now, limit)

    def sessions_of(self, supporter_id: str, now: datetime, days: int) -> list[ScheduledSession]:
        """A supporter's sessions with clients from now to ``days`` ahead, soonest first."""
        return overview_today.sessions_of(self, supporter_id, now, days)

    def month(self, month: str, now: datetime) -> MonthReport:
        return overview_month.month(self, month, now)

    def months(self, now: datetime) -> list[str]:
        """Every month from the first intake to now, oldest first."""
        return overview_month.months(self, now)

    def rules(self) -> RulesHistory:
        newest = sorted(self.rulesets, key=lambda r: r.published_at, reverse=True)
        live: dict[str, LiveRuleset] = {}
        for published in newest:
            live.setdefault(published.ruleset.kind.value, published)
        return RulesHistory(
            org=self.org,
            live=sorted(live.values(), key=lambda r: r.ruleset.kind.value),
            history=newest,
        )
