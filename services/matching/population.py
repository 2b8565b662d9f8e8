"""A seeded synthetic population for matching tests and benchmarks.

Supporters: 1-3 of 8 lived-experience tags, English plus one of 8 languages
(a few speak only a rare one), 2-4 of 5 methods, one of 3 gender identities,
one of 5 cultural backgrounds, one of 6 regions, 10 % cleared for youth work,
90 % eligible, caseload room 0-3. Clients: a shared-language filter and a
shared-method filter always; 25 % a "must" gender filter; 10 % under 18
(youth clearance filter); 20 % no home visits; 5 % need a rare language
(the scarce needs); weights for lived experience (5), gender (3), culture (3)
and region (1). No names: ids only.
"""

from __future__ import annotations

import random

from services.matching.domain import Filter, Policy, SupporterRow, Weight

LIVED = [
    "tenancy",
    "homelessness",
    "addiction",
    "mental_health",
    "prison",
    "violence",
    "employment",
    "benefits",
]
LANGS = ["sm", "to", "mi", "zh", "hi", "ar", "ko", "fj"]
RARE = ["niu", "tkl"]
METHODS = ["in_person", "home_visit", "phone", "text", "video"]
GENDERS = ["woman", "man", "non_binary"]
CULTURES = ["maori", "pasifika", "pakeha", "asian", "middle_eastern"]
REGIONS = ["north", "central", "south", "east", "west", "islands"]


def supporters(rng: random.Random, n: int) -> list[SupporterRow]:
    rows = []
    for i in range(n):
        rare = rng.random() < 0.01
        rows.append(
            SupporterRow(
                supporter_id=f"s{i:05d}",
                eligible=rng.random() < 0.9,
                free_slots=rng.randint(0, 3),
                languages=frozenset({rng.choice(RARE)} if rare else {"en", rng.choice(LANGS)}),
                lived_experience=frozenset(rng.sample(LIVED, k=rng.randint(1, 3))),
                cultural_background=frozenset({rng.choice(CULTURES)}),
                methods=frozenset(rng.sample(METHODS, k=rng.randint(2, 4))),
                gender_identity=rng.choice(GENDERS),
                region=rng.choice(REGIONS),
                youth_cleared=rng.random() < 0.1,
                affiliations=frozenset({"harbour housing ltd"})
                if rng.random() < 0.02
                else frozenset(),
            )
        )
    return rows


def client(rng: random.Random) -> Policy:
    rare = rng.random() < 0.05
    languages = (rng.choice(RARE),) if rare else tuple(sorted({"en", rng.choice(LANGS)}))
    methods = tuple(rng.sample(METHODS, k=rng.randint(1, 3)))
    no_home = rng.random() < 0.2
    filters = [
        Filter("shared-language", "shares a language", "languages", languages),
        Filter(
            "shared-method",
            "offers an accepted method",
            "methods",
            tuple(m for m in methods if not (no_home and m == "home_visit")) or ("phone",),
        ),
    ]
    if rng.random() < 0.25:
        filters.append(
            Filter("must-gender", "the gender asked for", "gender_identity", (rng.choice(GENDERS),))
        )
    if rng.random() < 0.10:
        filters.append(
            Filter(
                "minor-needs-youth-clearance", "cleared for youth work", "youth_cleared", (True,)
            )
        )
    weights = (
        Weight("prefer-lived-experience", "lived_experience", 5, (rng.choice(LIVED),)),
        Weight("prefer-gender", "gender_identity", 3, (rng.choice(GENDERS),)),
        Weight("prefer-culture", "cultural_background", 3, (rng.choice(CULTURES),)),
        Weight("same-region", "region", 1, (rng.choice(REGIONS),)),
    )
    return Policy(tuple(filters), weights, frozenset({"home_visit"}) if no_home else frozenset())


def is_scarce(policy: Policy) -> bool:
    return any(
        f.field == "languages" and set(map(str, f.values)) & set(RARE) for f in policy.filters
    )
