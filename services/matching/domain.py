"""Matching decisions at array speed: a client's policy applied to every supporter at once.

The rules service decides a client's matching policy (filters, weights, excluded
methods); this module applies it to an organisation's supporters held as numpy
arrays, never pair by pair. No I/O.

- Only supporters who are eligible and have a free slot are considered; a
  proposal holds one slot, so no one is proposed beyond their room.
- Anyone connected to another party of the dispute, and anyone the client
  declined or changed from, is excluded.
- A client nobody can serve is waitlisted with the constraint that left no one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, assert_never

import numpy as np
import numpy.typing as npt

from contracts.records import explanation
from contracts.rules import (
    AppliedFilterEffect,
    AppliedWeightEffect,
    ExcludeMethodEffect,
    FiredRule,
    OfferEffect,
)

# Supporter attributes a policy may filter or weigh on, and whether each holds several values.
MEMO_SIZE = 4096
SET_FIELDS = ("languages", "lived_experience", "cultural_background", "methods")
ONE_FIELDS = ("gender_identity", "region")
BOOL_FIELDS = ("youth_cleared",)

Bools = npt.NDArray[np.bool_]


def normalise(name: str) -> str:
    """Names of organisations and people, compared for conflicts of interest."""
    return " ".join(name.casefold().split())


@dataclass(frozen=True)
class SupporterRow:
    supporter_id: str
    eligible: bool
    free_slots: int
    languages: frozenset[str]
    lived_experience: frozenset[str]
    cultural_background: frozenset[str]
    methods: frozenset[str]
    gender_identity: str | None
    region: str
    youth_cleared: bool
    affiliations: frozenset[str] = frozenset()  # normalised names


class SupporterIndex:
    """One organisation's supporters as arrays: a boolean row per attribute value, over all
    supporters (value-major, so the few values a client names are contiguous reads)."""

    def __init__(self, rows: Sequence[SupporterRow]) -> None:
        self.ids = [row.supporter_id for row in rows]
        self.position = {supporter_id: i for i, supporter_id in enumerate(self.ids)}
        self.eligible = np.array([row.eligible for row in rows], dtype=bool)
        self.free = np.array([row.free_slots for row in rows], dtype=np.int32)
        self.vocab: dict[str, dict[str, int]] = {}
        self.columns: dict[str, Bools] = {}
        for name in SET_FIELDS + ONE_FIELDS:
            values = [_values(getattr(row, name)) for row in rows]
            vocab = {v: j for j, v in enumerate(sorted(set().union(*values)))} if values else {}
            matrix = np.zeros((max(len(vocab), 1), len(rows)), dtype=bool)
            for i, row_values in enumerate(values):
                matrix[[vocab[v] for v in row_values], i] = True
            self.vocab[name], self.columns[name] = vocab, matrix
        for name in BOOL_FIELDS:
            self.columns[name] = np.array([getattr(row, name) for row in rows], dtype=bool)[None, :]
        # Many clients name the same values: their masks and counts are computed once.
        self._memo: dict[tuple[str, str, tuple[str, ...]], npt.NDArray[Any]] = {}
        self.affiliated: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            for affiliation in row.affiliations:
                self.affiliated.setdefault(affiliation, []).append(i)

    def __len__(self) -> int:
        return len(self.ids)

    def _memoised(self, kind: str, name: str, values: Iterable[object]) -> npt.NDArray[Any]:
        key = (kind, name, tuple(sorted(map(str, values))))
        found = self._memo.get(key)
        if found is None:
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            found = self._memo[key] = getattr(self, f"_{kind}")(name, values)
            found.flags.writeable = False  # shared: callers must copy before changing it
        return found

    def has_any(self, name: str, values: Iterable[object]) -> Bools:
        """Supporters whose ``name`` holds at least one of ``values``."""
        return self._memoised("has_any", name, values)

    def has_all(self, name: str, values: Iterable[object]) -> Bools:
        return self._memoised("has_all", name, values)

    def overlap(
        self, name: str, values: Iterable[object], rows: npt.NDArray[np.intp] | None = None
    ) -> npt.NDArray[np.int32]:
        """How many of ``values`` each supporter (of ``rows``, or all) shares."""
        counts = self._memoised("overlap", name, values)
        return counts if rows is None else counts[rows]

    def _has_any(self, name: str, values: Iterable[object]) -> Bools:
        if name in BOOL_FIELDS:
            wanted = {bool(v) for v in values}
            column: Bools = self.columns[name][0]
            if wanted == {True}:
                return column.copy()
            return np.logical_not(column) if wanted == {False} else np.ones(len(self), dtype=bool)
        cols = [self.vocab[name][v] for v in map(str, values) if v in self.vocab[name]]
        if not cols:
            return np.zeros(len(self), dtype=bool)
        return np.asarray(self.columns[name][cols].any(axis=0), dtype=bool)

    def _has_all(self, name: str, values: Iterable[object]) -> Bools:
        wanted = [str(v) for v in values]
        if any(v not in self.vocab[name] for v in wanted):
            return np.zeros(len(self), dtype=bool)
        rows = [self.vocab[name][v] for v in wanted]
        return np.asarray(self.columns[name][rows].all(axis=0), dtype=bool)

    def _overlap(self, name: str, values: Iterable[object]) -> npt.NDArray[np.int32]:
        cols = [self.vocab[name][v] for v in map(str, values) if v in self.vocab.get(name, {})]
        if not cols:
            return np.zeros(len(self), dtype=np.int32)
        return np.asarray(self.columns[name][cols].sum(axis=0, dtype=np.int32), dtype=np.int32)

    def connected_to(self, party_names: Iterable[str]) -> list[int]:
        return [i for name in party_names for i in self.affiliated.get(normalise(name), [])]


def _values(value: object) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, frozenset | set | list | tuple):
        return frozenset(map(str, value))
    return frozenset({str(value)})


@dataclass(frozen=True)
class Filter:
    rule: str
    reason: str
    field: str
    values: tuple[object, ...]
    match: str = "any"


@dataclass(frozen=True)
class Weight:
    rule: str
    field: str
    points: float
    values: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    filters: tuple[Filter, ...] = ()
    weights: tuple[Weight, ...] = ()
    excluded_methods: frozenset[str] = frozenset()
    proposals: int = 3  # how many supporters are offered at once
    hold_days: int = 3  # how long each proposal holds its supporter's slot

    @classmethod
    def from_fired(cls, fired: Sequence[FiredRule]) -> Policy:
        """The policy a MatchingPolicyDecided decision carries (effects with values filled in).
        Raises ``pydantic.ValidationError`` for an effect of no known form."""
        effects = [(f, f.applied_effect) for f in fired]
        excluded = frozenset(
            effect.exclude_method
            for _, effect in effects
            if isinstance(effect, ExcludeMethodEffect)
        )
        filters, weights = [], []
        offer: OfferEffect | None = None
        for f, effect in effects:
            match effect:
                case OfferEffect():
                    offer = effect
                case AppliedFilterEffect():
                    filters.append(_filter(f, effect, excluded))
                case AppliedWeightEffect():
                    values = tuple(map(str, effect.values))
                    weights.append(Weight(f.rule, effect.weight, effect.points, values))
                case ExcludeMethodEffect() | None:
                    pass
                case _:
                    assert_never(effect)
        if offer is None:
            return cls(tuple(filters), tuple(weights), excluded)
        return cls(tuple(filters), tuple(weights), excluded, offer.proposals, offer.hold_days)


def _filter(fired: FiredRule, effect: AppliedFilterEffect, excluded: frozenset[str]) -> Filter:
    values: tuple[object, ...] = (
        # ``equals`` given (even as null) is what the field must equal.
        (effect.equals,) if "equals" in effect.model_fields_set else tuple(effect.values)
    )
    if effect.filter == "methods":
        values = tuple(v for v in values if v not in excluded)
    return Filter(fired.rule, fired.reason, effect.filter, values, effect.match)


@dataclass(frozen=True)
class Proposal:
    supporter_id: str
    score: float
    matched: tuple[str, ...]
    unmatched: tuple[str, ...]
    matched_on: tuple[str, ...] = ()  # field names only

    @property
    def explanation(self) -> str:
        return explanation(self.matched, self.unmatched)


@dataclass(frozen=True)
class Waitlisted:
    reason: str  # for the coordinator: may name what the client asked for
    constraint: str  # a rule id or a fixed name: no personal values, fit for events
    # (constraint, supporters left after it), in order.
    funnel: tuple[tuple[str, int], ...] = field(default=())


# Constraints that are not rules of the matching policy, and how they read.
AVAILABLE, UNCONNECTED, NOT_LEFT = "eligible-with-free-slot", "no-conflict", "not-declined"
POLICY = "matching-policy"  # any of the policy's filters
SAID = {
    AVAILABLE: "eligible with a free slot",
    UNCONNECTED: "no connection to another party of the dispute",
    NOT_LEFT: "not a supporter the client declined or changed from",
}


def _words(values: Iterable[object]) -> str:
    return ", ".join(str(v).replace("_", " ") for v in values)


def candidates(
    index: SupporterIndex,
    policy: Policy,
    party_names: Iterable[str] = (),
    excluded: Iterable[str] = (),
    funnel: list[tuple[str, int]] | None = None,
) -> Bools:
    """Who may be proposed at all; ``funnel``, if given, gets how many each constraint left."""

    def step(constraint: str) -> None:
        if funnel is not None:
            funnel.append((constraint, int(mask.sum())))

    mask = index.eligible & (index.free > 0)
    step(AVAILABLE)
    for f in policy.filters:
        mask &= (
            index.has_all(f.field, f.values)
            if f.match == "all"
            else index.has_any(f.field, f.values)
        )
        step(f.rule)
    conflicted = index.connected_to(party_names)
    if conflicted:
        mask[conflicted] = False
        step(UNCONNECTED)
    gone = [index.position[s] for s in excluded if s in index.position]
    if gone:
        mask[gone] = False
        step(NOT_LEFT)
    return mask


def scores(
    index: SupporterIndex, policy: Policy, rows: npt.NDArray[np.intp] | None = None
) -> npt.NDArray[np.float32]:
    """The soft-preference score of each supporter (of ``rows``, or all)."""
    total = np.zeros(len(index) if rows is None else rows.size, dtype=np.float32)
    for w in policy.weights:
        total += np.float32(w.points) * index.overlap(w.field, w.values, rows)
    return total


def propose(
    index: SupporterIndex,
    policy: Policy,
    k: int,
    party_names: Iterable[str] = (),
    excluded: Iterable[str] = (),
) -> list[Proposal] | Waitlisted:
    """Up to ``k`` proposals, best first, each explained; or the reason nobody fits."""
    funnel: list[tuple[str, int]] = []
    pool = np.flatnonzero(candidates(index, policy, party_names, excluded, funnel))
    if pool.size == 0:
        emptied = next(step for step, left in funnel if left == 0)
        said = SAID.get(emptied) or next(f.reason for f in policy.filters if f.rule == emptied)
        # A policy rule's id can say something about the client (a minor, a must-have): events
        # only learn that it was the client's matching policy.
        constraint = emptied if emptied in SAID else POLICY
        return Waitlisted(f"no supporter left after: {said}", constraint, tuple(funnel))
    score = scores(index, policy, pool)
    if pool.size > k:
        top = np.argpartition(-score, k - 1)[:k]
        pool, score = pool[top], score[top]
    order = sorted(range(pool.size), key=lambda j: (-score[j], index.ids[pool[j]]))
    return [explain(index, policy, int(pool[j]), float(score[j])) for j in order]


# How a coordinator reads what a supporter has, and what the client hoped for.
HAS = {
    "languages": "speaks {}",
    "methods": "offers {}",
    "lived_experience": "has been through {}",
    "cultural_background": "{} cultural background",
    "gender_identity": "is {}",
    "region": "in the {} region",
}
HOPED = {
    "lived_experience": "lived experience of {}",
    "cultural_background": "a {} cultural background",
    "gender_identity": "a supporter who is {}",
    "region": "someone in the {} region",
}


def explain(index: SupporterIndex, policy: Policy, i: int, score: float) -> Proposal:
    """What the supporter meets ("speaks sm; has been through tenancy dispute") and which of
    the client's preferences they do not ("you hoped for: someone in the north region")."""
    matched, unmatched = [], []
    matched_on = [f.field for f in policy.filters]
    for f in policy.filters:
        if f.field in index.vocab:
            vocab = index.vocab[f.field]
            shared = [
                v for v in f.values if str(v) in vocab and index.columns[f.field][vocab[str(v)], i]
            ]
            matched.append(HAS.get(f.field, f"{f.field}: {{}}").format(_words(shared)))
        else:
            matched.append(f.reason)
    for w in policy.weights:
        vocab = index.vocab.get(w.field, {})
        shared = [v for v in w.values if v in vocab and index.columns[w.field][vocab[v], i]]
        if shared:
            matched.append(HAS.get(w.field, f"{w.field}: {{}}").format(_words(shared)))
            matched_on.append(w.field)
        else:
            unmatched.append(HOPED.get(w.field, f"{w.field} {{}}").format(_words(w.values)))
    return Proposal(
        index.ids[i], score, tuple(matched), tuple(unmatched), tuple(dict.fromkeys(matched_on))
    )


class LiveIndex:
    """An organisation's supporters kept current one supporter at a time.

    Eligibility and free slots change often (every proposal takes a slot) and are
    changed in place; any other change (a new supporter, a new profile) rebuilds
    the arrays on the next read, which is rare.
    """

    def __init__(self) -> None:
        self.rows: dict[str, SupporterRow] = {}
        self._index: SupporterIndex | None = None
        # Counts every time a place may have opened (a slot freed, a supporter fit again): a
        # decision to waitlist made before the count moved is made again.
        self.opened = 0

    def put(self, row: SupporterRow) -> None:
        old = self.rows.get(row.supporter_id)
        self.rows[row.supporter_id] = row
        if (
            row.eligible
            and row.free_slots > 0
            and (old is None or not old.eligible or row.free_slots > old.free_slots)
        ):
            self.opened += 1
        index = self._index
        if index is None:
            return
        same_profile = old is not None and old == dataclasses.replace(
            row, eligible=old.eligible, free_slots=old.free_slots
        )
        if same_profile:
            i = index.position[row.supporter_id]
            index.eligible[i], index.free[i] = row.eligible, row.free_slots
        else:
            self._index = None

    def remove(self, supporter_id: str) -> None:
        if self.rows.pop(supporter_id, None) is not None:
            self._index = None

    @property
    def index(self) -> SupporterIndex:
        if self._index is None:
            self._index = SupporterIndex(list(self.rows.values()))
        return self._index
