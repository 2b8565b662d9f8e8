"""A matching policy's effects as typed models: the applied forms a decision carries, read
the same by the rules service that fills them in and by matching, which applies them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.rules import (
    AppliedFilterEffect,
    AppliedWeightEffect,
    ExcludeMethodEffect,
    FiredRule,
    Kind,
    OfferEffect,
    RulesDecision,
    read_effect,
)
from services.matching.domain import Filter, Policy, Weight
from services.rules import bundle, domain
from services.rules.engine import Engine

FACTS: dict[str, Any] = {
    "case_id": "c1",
    "age": 16,
    "languages": ["en", "sm"],
    "gender_preference_strength": "must",
    "gender_preference_values": ["woman"],
    "cultural_preference_strength": "prefer",
    "cultural_preference_values": ["maori"],
    "lived_experience_preference_strength": "prefer",
    "lived_experience_preference_values": ["tenancy_dispute"],
    "age_preference": "any",
    "methods": ["phone", "home_visit"],
    "safety_concerns": ["no_home_visits"],
    "access_needs": [],
    "region": "north",
}


def fired(effect: dict[str, Any] | None, rule: str = "r") -> FiredRule:
    return FiredRule(rule=rule, outcome="policy", reason=f"why {rule}", effect=effect)


@pytest.mark.parametrize(
    ("effect", "expected"),
    [
        (
            {"filter": "languages", "match": "any", "values_from": "languages", "values": ["sm"]},
            AppliedFilterEffect(
                filter="languages", match="any", values_from="languages", values=["sm"]
            ),
        ),
        (
            {"filter": "youth_cleared", "equals": True},
            AppliedFilterEffect(filter="youth_cleared", equals=True),
        ),
        (
            {"weight": "region", "points": 1, "values_from": "region", "values": ["north"]},
            AppliedWeightEffect(
                weight="region", points=1.0, values_from="region", values=["north"]
            ),
        ),
        ({"exclude_method": "home_visit"}, ExcludeMethodEffect(exclude_method="home_visit")),
        ({"proposals": 2, "hold_days": 5}, OfferEffect(proposals=2, hold_days=5)),
        (None, None),
        ({}, None),  # the rules service fills in a rule with no effect as {}
    ],
)
def test_each_applied_form_reads_into_its_model(
    effect: dict[str, Any] | None, expected: object
) -> None:
    assert read_effect(effect) == expected
    assert fired(effect).applied_effect == expected


def test_values_keep_the_type_the_fact_gave_them() -> None:
    effect = read_effect({"filter": "f", "values": ["a", 3, 2.5, True]})
    assert isinstance(effect, AppliedFilterEffect)
    assert [type(v) for v in effect.values] == [str, int, float, bool]


@pytest.mark.parametrize(
    ("effect", "where", "says"),
    [
        ({"colour": "red", "values": ["secret"]}, (), "an effect names one of: filter, weight"),
        ({"filter": "languages", "values_from": "languages"}, ("filter",), "not filled in"),
        ({"weight": "region", "values": ["secret"]}, ("weight", "points"), "Field required"),
        ({"proposals": 2}, ("proposals", "hold_days"), "Field required"),
        ({"proposals": 0, "hold_days": 3}, ("proposals", "proposals"), "greater than or equal"),
        ({"exclude_method": "x", "values": ["secret"]}, ("exclude_method", "values"), "Extra"),
        ({"filter": "languages", "match": "most", "values": ["secret"]}, ("filter", "match"), ""),
        ({"filter": "languages", "values": [["secret"]]}, ("filter", "values", 0, "str"), ""),
    ],
)
def test_a_malformed_effect_says_where_it_is_wrong_and_not_what_the_client_asked_for(
    effect: dict[str, Any], where: tuple[object, ...], says: str
) -> None:
    with pytest.raises(ValidationError) as info:
        read_effect(effect)
    assert info.value.title == "applied effect"
    assert where in [error["loc"] for error in info.value.errors()]
    assert says in str(info.value)
    assert "secret" not in str(info.value)  # the values are the client's wishes


def test_the_stored_form_of_a_fired_rule_is_unchanged() -> None:
    effect = {"weight": "region", "points": 1, "values_from": "region", "values": ["north"]}
    rule = fired(effect)
    assert rule.model_dump(mode="json")["effect"] == effect
    assert FiredRule.model_validate_json(rule.model_dump_json()) == rule
    assert FiredRule.model_json_schema()["properties"]["effect"] == {
        "anyOf": [{"additionalProperties": True, "type": "object"}, {"type": "null"}],
        "default": None,
        "title": "Effect",
        "x-privacy": "sensitive",
    }


def test_the_policy_reads_every_form() -> None:
    policy = Policy.from_fired(
        [
            fired({"filter": "methods", "values": ["home_visit", "phone"]}, "shared-method"),
            fired({"exclude_method": "home_visit"}, "no-home-visits"),
            fired({"filter": "youth_cleared", "equals": True}, "youth"),
            fired({"filter": "lived_experience", "match": "all", "values": ["a", "b"]}, "all"),
            fired({"weight": "region", "points": 1, "values": ["north"]}, "same-region"),
            fired({"proposals": 2, "hold_days": 5}, "offer"),
            fired(None, "no-effect"),
        ]
    )
    assert policy == Policy(
        filters=(
            Filter("shared-method", "why shared-method", "methods", ("phone",)),
            Filter("youth", "why youth", "youth_cleared", (True,)),
            Filter("all", "why all", "lived_experience", ("a", "b"), "all"),
        ),
        weights=(Weight("same-region", "region", 1.0, ("north",)),),
        excluded_methods=frozenset({"home_visit"}),
        proposals=2,
        hold_days=5,
    )
    assert Policy.from_fired([]) == Policy()


def test_a_policy_with_a_malformed_effect_is_refused_not_half_read() -> None:
    with pytest.raises(ValidationError, match="an effect names one of"):
        Policy.from_fired([fired({"filter": "languages", "values": ["sm"]}), fired({"x": 1})])


def test_the_rules_service_fills_in_effects_matching_can_read() -> None:
    loaded = bundle.Loaded(
        Engine(), bundle.read_source(bundle.DEFAULT_ROOT, Kind.MATCHING_POLICY).resolve(), "t"
    )
    decision = domain.decide(loaded, "c1", FACTS, datetime(2026, 11, 28, tzinfo=UTC))
    # Read back as the decisions bucket and the decision log hold it.
    decision = RulesDecision.model_validate_json(decision.model_dump_json())
    effects = {f.rule: f.applied_effect for f in decision.fired}
    assert effects["must-gender"] == AppliedFilterEffect(
        filter="gender_identity",
        match="any",
        values_from="gender_preference_values",
        values=["woman"],
    )
    assert effects["same-region"] == AppliedWeightEffect(
        weight="region", points=1, values_from="region", values=["north"]
    )
    assert effects["no-home-visits"] == ExcludeMethodEffect(exclude_method="home_visit")
    assert isinstance(effects["offer"], OfferEffect)
    policy = Policy.from_fired(decision.fired)
    assert {f.rule: f.values for f in policy.filters}["shared-method"] == ("phone",)
    assert {w.rule: w.values for w in policy.weights}["prefer-culture"] == ("maori",)


def test_the_rules_service_refuses_to_fill_in_an_effect_matching_could_not_read() -> None:
    facts = {"languages": ["sm"]}
    good = fired({"filter": "languages", "values_from": "languages"})
    assert domain._with_values(good, facts).effect == {
        "filter": "languages",
        "values_from": "languages",
        "values": ["sm"],
    }
    with pytest.raises(ValidationError, match="an effect names one of"):
        domain._with_values(fired({"languages": "sm"}), facts)
