"""Matching's figures for operators: counted per organisation from the cases' standings, as
read from their records as stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.records import CaseMatch, MatchStatus, Offer
from services.matching.figures import Standing, figures

NOW = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # an hour the clocks change somewhere


def match(status: MatchStatus, since: timedelta = timedelta(), *holds: timedelta) -> Standing:
    """A case's standing as read from its record as stored: JSON, with explanations sealed."""
    offers = [
        Offer(
            supporter_id=f"s{n}",
            score=1.0,
            matched=["speaks sm"],
            unmatched=[],
            matched_on=["languages"],
            held_until=NOW + hold,
        )
        for n, hold in enumerate(holds)
    ]
    record = CaseMatch(
        case_id="c", status=status, proposals=offers, since=NOW - since, updated_at=NOW
    ).model_dump(mode="json")
    for offer in record["proposals"]:
        offer["matched"] = "sealed:not-readable-here"  # no key is needed for the figures
    return Standing.of_stored(record)


def test_each_organisation_is_counted_apart() -> None:
    found = figures(
        [
            ("a", match("waitlisted", timedelta(days=3))),
            ("a", match("waitlisted", timedelta(hours=5))),
            ("a", match("proposed", timedelta(), timedelta(hours=2), timedelta(hours=30))),
            ("a", match("proposed", timedelta(), timedelta(hours=20))),
            ("a", match("proposed", timedelta(), timedelta(hours=-1))),  # ended, not yet swept
            ("a", match("accepted")),
            ("a", match("active")),
            ("b", match("accepted")),
        ],
        NOW,
    )
    a, b = found["a"], found["b"]
    assert (a.waitlisted, a.longest_wait_s) == (2, 3 * 86400)
    # The last hold decides: one ending in 30 h is not ending soon, an ended one is past.
    assert (a.awaiting_choice, a.holds_ending_soon) == (3, 1)
    assert (a.consents_pending, b.consents_pending, b.waitlisted) == (1, 1, 0)


def test_no_cases_no_figures() -> None:
    assert figures([], NOW) == {}
