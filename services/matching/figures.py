"""What an operator watches of matching, per organisation: who waits and how long, which
proposals await the client's choice and whose holds end soon, which matches await consent.
No I/O: the figures of a set of cases' standings at a moment."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from contracts.records import CaseMatch

# A hold ending within this is worth a coordinator's call today.
HOLDS_ENDING_SOON = timedelta(days=1)


@dataclass(frozen=True)
class Standing:
    """What the figures read of one case's matching state."""

    status: str
    since: datetime  # when the current status began
    last_hold: datetime | None  # when its proposals' last hold ends

    @classmethod
    def of(cls, match: CaseMatch) -> Standing:
        holds = [offer.held_until for offer in match.proposals]
        return cls(match.status, match.since, max(holds, default=None))

    @classmethod
    def of_stored(cls, record: Mapping[str, Any]) -> Standing:
        """From a ``CaseMatch`` as stored (JSON, its sealed fields still sealed): none of
        what is read here is sealed, so no key is needed."""
        holds = [datetime.fromisoformat(offer["held_until"]) for offer in record["proposals"]]
        return cls(
            record["status"], datetime.fromisoformat(record["since"]), max(holds, default=None)
        )


@dataclass
class Figures:
    waitlisted: int = 0
    longest_wait_s: float = 0.0  # the oldest waitlisted client's time on the list
    awaiting_choice: int = 0  # proposals out, the client has not chosen
    holds_ending_soon: int = 0  # of those, the ones whose last hold ends within a day
    consents_pending: int = 0  # the client chose; not every party has consented yet


def figures(cases: Iterable[tuple[str, Standing]], now: datetime) -> dict[str, Figures]:
    """The figures of each organisation that has cases, from (org, standing) pairs."""
    found: dict[str, Figures] = {}
    for org, case in cases:
        of = found.setdefault(org, Figures())
        if case.status == "waitlisted":
            of.waitlisted += 1
            of.longest_wait_s = max(of.longest_wait_s, (now - case.since).total_seconds())
        elif case.status == "proposed":
            of.awaiting_choice += 1
            last_hold = case.last_hold or now
            if now < last_hold <= now + HOLDS_ENDING_SOON:
                of.holds_ending_soon += 1
        elif case.status == "accepted":
            of.consents_pending += 1
    return found
