"""Matching without a broker: hard filters, capacity, conflicts, exclusions, waitlist reasons, batch."""

from __future__ import annotations

import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from contracts.rules import FiredRule
from services.matching import batch, population
from services.matching.domain import (
    Filter,
    Policy,
    SupporterIndex,
    SupporterRow,
    Waitlisted,
    candidates,
    propose,
)


def fits(row: SupporterRow, policy: Policy) -> bool:
    """A plain-Python reading of the policy, to check the array version against."""
    for f in policy.filters:
        value = getattr(row, f.field)
        have = {str(value)} if not isinstance(value, frozenset) else set(value)
        if f.field == "youth_cleared":
            have = {str(value)}
            wanted = {str(v) for v in f.values}
        else:
            wanted = {str(v) for v in f.values}
        if not (wanted <= have if f.match == "all" else wanted & have):
            return False
    return row.eligible and row.free_slots > 0


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 5))
def test_no_proposal_breaks_a_filter_exceeds_capacity_or_names_a_conflicted_or_declined_supporter(
    seed: int, k: int
) -> None:
    rng = random.Random(seed)
    rows = population.supporters(rng, 60)
    index = SupporterIndex(rows)
    policy = population.client(rng)
    declined = {r.supporter_id for r in rng.sample(rows, 5)}
    result = propose(index, policy, k, party_names=["Harbour  Housing Ltd"], excluded=declined)
    allowed = {
        r.supporter_id
        for r in rows
        if fits(r, policy) and r.supporter_id not in declined and not r.affiliations
    }
    if isinstance(result, Waitlisted):
        assert not allowed
        assert result.reason.startswith("no supporter left after: ")
        return
    assert 0 < len(result) <= k
    assert len({p.supporter_id for p in result}) == len(result)
    assert {p.supporter_id for p in result} <= allowed
    assert [p.score for p in result] == sorted((p.score for p in result), reverse=True)
    assert len(result) == min(k, len(allowed))


def test_proposals_explain_what_matched_and_what_did_not() -> None:
    rows = [
        population.supporters(random.Random(1), 1)[0].__class__(
            supporter_id="ana", eligible=True, free_slots=1, languages=frozenset({"en", "sm"}),
            lived_experience=frozenset({"tenancy"}), cultural_background=frozenset({"pasifika"}),
            methods=frozenset({"phone", "video"}), gender_identity="woman", region="north", youth_cleared=False,
        )
    ]  # fmt: skip
    fired = [
        FiredRule(
            rule="shared-language",
            outcome="policy",
            reason="shares a language",
            effect={"filter": "languages", "values": ["sm"]},
        ),
        FiredRule(
            rule="prefer-lived-experience",
            outcome="policy",
            reason="r",
            effect={"weight": "lived_experience", "points": 5, "values": ["tenancy"]},
        ),
        FiredRule(
            rule="prefer-culture",
            outcome="policy",
            reason="r",
            effect={"weight": "cultural_background", "points": 3, "values": ["maori"]},
        ),
    ]
    [proposal] = propose(SupporterIndex(rows), Policy.from_fired(fired), k=3)  # type: ignore[misc]
    assert proposal.score == 5
    assert (
        proposal.explanation
        == "languages: sm; lived experience: tenancy; not matched: cultural background (maori)"
    )


def test_home_visits_are_excluded_from_the_shared_method_filter() -> None:
    fired = [
        FiredRule(
            rule="shared-method",
            outcome="policy",
            reason="m",
            effect={"filter": "methods", "values": ["home_visit", "phone"]},
        ),
        FiredRule(
            rule="no-home-visits",
            outcome="policy",
            reason="h",
            effect={"exclude_method": "home_visit"},
        ),
    ]
    policy = Policy.from_fired(fired)
    assert policy.filters[0].values == ("phone",)


def test_waitlist_names_the_constraint_that_left_no_one() -> None:
    rng = random.Random(3)
    index = SupporterIndex(population.supporters(rng, 200))
    policy = population.client(rng)
    nobody = Policy(
        (
            *policy.filters,
            Filter("must-gender", "the gender asked for", "gender_identity", ("unknown",)),
        ),
        policy.weights,
    )
    result = propose(index, nobody, k=3)
    assert isinstance(result, Waitlisted)
    assert result.reason == "no supporter left after: the gender asked for"
    assert result.funnel[0][0] == "eligible with a free slot"


def test_batch_respects_capacity_and_filters_and_reaches_the_feasible_coverage() -> None:
    rng = random.Random(11)
    rows = population.supporters(rng, 120)
    index = SupporterIndex(rows)
    requests = [batch.Request(f"c{i}", population.client(rng)) for i in range(150)]
    result = batch.assign(index, requests)

    load: dict[str, int] = {}
    by_client = {r.client_id: r for r in requests}
    for client_id, supporter_id in result.chosen.items():
        load[supporter_id] = load.get(supporter_id, 0) + 1
        row = rows[index.position[supporter_id]]
        assert fits(row, by_client[client_id].policy)
    assert all(load[s] <= rows[index.position[s]].free_slots for s in load)

    # The most clients any assignment could serve: an exact assignment over slot copies.
    slots = [i for i, row in enumerate(rows) for _ in range(max(row.free_slots, 0))]
    feasible = np.zeros((len(requests), len(slots)))
    for c, request in enumerate(requests):
        mask = candidates(index, request.policy)
        feasible[c] = mask[slots]
    rows_, cols_ = linear_sum_assignment(feasible, maximize=True)
    best = int(feasible[rows_, cols_].sum())
    assert len(result.chosen) == best
