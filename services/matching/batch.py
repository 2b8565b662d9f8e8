"""Batch assignment for imports and waitlist sweeps: every client a first proposal at once.

Each client's best candidates (by the same filters and scores as one intake)
become arcs of a min-cost flow (OR-Tools): client -> supporter with capacity 1,
supporter -> sink with capacity = free slots. Covering a client is worth far
more than any score, and covering a client with few candidates (scarce needs)
is worth more still, so the flow first serves as many clients as possible,
the scarce first, then the best matches; among choices equal in all of that
(clients with the same needs), the client who asked first (the requests'
order) is served first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from ortools.graph.python import min_cost_flow

from services.matching.domain import Policy, SupporterIndex, candidates, scores

COVER = 1_000_000  # value of serving a client at all
SCARCE = 100_000  # extra for a client with at most SCARCE_AT candidates
SCARCE_AT = 5
SCALE = 100  # scores to integer costs


@dataclass(frozen=True)
class Request:
    client_id: str
    policy: Policy
    party_names: tuple[str, ...] = ()
    excluded: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Assignment:
    chosen: dict[str, str]  # client -> supporter
    scores: dict[str, float]  # client -> score of the chosen supporter
    candidate_counts: dict[str, int]  # client -> how many supporters could serve them at all


# Each client's best 20 candidates: on the benchmark population 50 served the same clients with
# the same total score (and matched the exact optimum) at 1.3x the solve time.
PER_CLIENT = 20
WIDE = 500  # for the clients the first solve left out


def assign(
    index: SupporterIndex,
    requests: Sequence[Request],
    in_order: bool = False,
) -> Assignment:
    """``in_order``: the requests' order (the order clients asked) comes before the scores,
    as the waitlist is served: a client who asked later never takes a place from one who
    asked earlier, whatever fits either better. Otherwise (an import, asked at once) the
    order only breaks ties."""
    first = _solve(index, requests, PER_CLIENT, index.free.astype(np.int64), in_order)
    # Clients alike share their best candidates: some may be left out though others who fit
    # them still have room. They are offered the remaining room from their whole pool.
    left = [
        r
        for r in requests
        if r.client_id not in first.chosen and first.candidate_counts[r.client_id] > 0
    ]
    if not left:
        return first
    room = index.free.astype(np.int64)
    for supporter_id in first.chosen.values():
        room[index.position[supporter_id]] -= 1
    more = _solve(index, left, WIDE, room, in_order)
    return Assignment(
        {**first.chosen, **more.chosen}, {**first.scores, **more.scores}, first.candidate_counts
    )


WeightsKey = tuple[tuple[str, float, tuple[str, ...]], ...]


def weights_key(policy: Policy) -> WeightsKey:
    """All of a policy that ``domain.scores`` reads: policies with the same key score every
    supporter the same. The weights in order (float32 sums depend on it); each one's field,
    points (``np.float32(points)``: equal numbers give equal float32s, and 0.0 and -0.0 add
    the same to a total that starts at +0.0) and values as ``SupporterIndex.overlap`` reads
    them (a sorted multiset of strings). Filters, party names and exclusions only decide who
    is a candidate, not anyone's score."""
    return tuple((w.field, w.points, tuple(sorted(map(str, w.values)))) for w in policy.weights)


def _solve(
    index: SupporterIndex,
    requests: Sequence[Request],
    per_client: int,
    room: npt.NDArray[np.int64],
    in_order: bool = False,
) -> Assignment:
    n = len(requests)
    # Supporter positions and their scores, per client (every one is filled in below).
    heads: list[npt.NDArray[np.intp]] = [np.zeros(0, dtype=np.intp)] * n
    values: list[npt.NDArray[np.float32]] = [np.zeros(0, dtype=np.float32)] * n
    candidate_counts = [0] * n
    has_room = room > 0
    # Clients are taken a weight set at a time (the 5,000 of the benchmark have 716): each
    # set's scores over all supporters are computed once and each client's pool gathered from
    # them, the same floats ``scores(index, policy, pool)`` gives. One vector is kept at a
    # time (4 bytes a supporter); the results go back in the requests' order.
    alike: dict[WeightsKey, list[int]] = {}
    for i, request in enumerate(requests):
        alike.setdefault(weights_key(request.policy), []).append(i)
    for members in alike.values():
        everyone = scores(index, requests[members[0]].policy)
        for i in members:
            request = requests[i]
            mask = candidates(index, request.policy, request.party_names, request.excluded)
            candidate_counts[i] = int(np.count_nonzero(mask))
            pool = np.flatnonzero(mask & has_room)
            score = everyone[pool]
            if pool.size > per_client:
                top = np.argpartition(-score, per_client - 1)[:per_client]
                pool, score = pool[top], score[top]
            heads[i], values[i] = pool, score
    counts = {r.client_id: c for r, c in zip(requests, candidate_counts, strict=True)}
    sizes = np.array([h.size for h in heads], dtype=np.intp)
    if not sizes.sum():
        return Assignment({}, {}, counts)

    clients = np.repeat(np.arange(len(requests)), sizes)
    positions = np.concatenate(heads)
    pair_scores = np.concatenate(values)
    used, supporter_rank = np.unique(positions, return_inverse=True)
    source, sink = 0, len(requests) + 1 + used.size
    scarce = np.array([counts[r.client_id] <= SCARCE_AT for r in requests])
    bonus = COVER + SCARCE * scarce[clients]

    # Who asked first (the requests' order): a tie-break below one unit of everything else
    # between clients alike; in order, a tier of its own above every score and below
    # scarcity (tiers sized so they never overlap).
    seniority = (len(requests) - 1 - clients).astype(np.int64)
    score_cost = np.round(pair_scores * SCALE).astype(np.int64)
    if in_order:
        span = int(score_cost.max() - score_cost.min()) + 1
        tier = len(requests) * span
        value = (
            2 * tier
            + tier * scarce[clients].astype(np.int64)
            + seniority * span
            + (score_cost - score_cost.min())
        )
    else:
        value = (bonus + score_cost) * max(len(requests), 1) + seniority

    flow = min_cost_flow.SimpleMinCostFlow()
    one, none = np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    flow.add_arcs_with_capacity_and_unit_cost(none, np.arange(1, n + 1), one, none)
    pair_arcs = flow.add_arcs_with_capacity_and_unit_cost(
        clients + 1,
        len(requests) + 1 + supporter_rank,
        np.ones(clients.size, dtype=np.int64),
        -value.astype(np.int64),
    )
    supporter_nodes = len(requests) + 1 + np.arange(used.size)
    flow.add_arcs_with_capacity_and_unit_cost(
        supporter_nodes, np.full(used.size, sink), room[used], np.zeros(used.size, dtype=np.int64)
    )
    # Offer one unit per client; the solver sends as many as capacity allows, at least cost.
    flow.set_node_supply(source, len(requests))
    flow.set_node_supply(sink, -len(requests))
    status = flow.solve_max_flow_with_min_cost()
    if status != flow.OPTIMAL:
        raise RuntimeError(f"min-cost flow failed with status {status}")
    chosen_pairs = np.flatnonzero(flow.flows(pair_arcs) > 0)
    chosen = {requests[clients[p]].client_id: index.ids[positions[p]] for p in chosen_pairs}
    chosen_scores = {requests[clients[p]].client_id: float(pair_scores[p]) for p in chosen_pairs}
    return Assignment(chosen, chosen_scores, counts)
