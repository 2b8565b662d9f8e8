"""Refusals in plain words: what pydantic says about the real models, as people read it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from contracts import catalogue
from contracts.console import SignIn
from contracts.intake import SubmitIntake
from contracts.replies import _PATTERNS, field_errors, plain_reason
from tests.support import intake


def errors_of(body: dict[str, Any], model: type[Any] = SubmitIntake) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(body)
    return {e.field: e.reason for e in field_errors(info.value, "data")}


def good() -> dict[str, Any]:
    return intake("c-1", ["en"]).model_dump(mode="json")


def with_(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = path.split(".")
    into: Any = body
    for part in parents:
        into = into[int(part)] if part.isdigit() else into[part]
    if value is ...:
        del into[last]
    else:
        into[last] = value
    return body


def assert_plain(reason: str) -> None:
    assert reason
    assert not re.search(r"\^|\$'|\\[sd]|\{\d|\[[A-Za-z]", reason), reason  # no regex
    for pydantic_words in ("String should", "Input should", "Field required", "Value error"):
        assert pydantic_words not in reason


@pytest.mark.parametrize(
    ("path", "value", "field", "reason"),
    [
        (
            "case_id",
            "no spaces allowed",
            "data.case_id",
            "use only letters, digits, - and _ (a letter or digit first), at most 64 characters",
        ),
        (
            "client.contact.email",
            "not-an-email",
            "data.client.contact.email",
            "must be an email address, like name@example.org",
        ),
        ("has_other_support", ..., "data.has_other_support", "required: fill it in"),
        ("client.birth_year", 1800, "data.client.birth_year", "must be 1900 or more"),
        ("client.birth_year", 2100, "data.client.birth_year", "must be 2025 or less"),
        ("client.birth_year", "soon", "data.client.birth_year", "must be a whole number"),
        ("client.languages", [], "data.client.languages", "needs at least one"),
        (
            "client.languages",
            ["english"],
            "data.client.languages.0",
            "must be a language code of 2 or 3 lower-case letters, like en or sm",
        ),
        ("client.display_name", "", "data.client.display_name", "required: fill it in"),
        ("client.display_name", "x" * 201, "data.client.display_name", "at most 200 characters"),
        ("client.methods", ["carrier_pigeon"], "data.client.methods.0", "must be one of: "),
        ("client.region", "North Shore", "data.client.region", "use lower-case letters"),
        ("client.contact.phone", "call me", "data.client.contact.phone", "must be a phone number"),
        ("dispute.stage", "appeal", "data.dispute.stage", "must be one of: entry"),
        (
            "client.availability.0.start",
            "9am",
            "data.client.availability.0.start",
            "must be a time of day",
        ),
        ("nickname", "x", "data.nickname", "is not one this takes: leave it out"),
    ],
)
def test_submit_intake_refusals_are_plain(path: str, value: Any, field: str, reason: str) -> None:
    errors = errors_of(with_(good(), path, value))
    assert field in errors, errors
    assert errors[field].startswith(reason), errors[field]
    for said in errors.values():
        assert_plain(said)


def test_a_validators_own_words_are_kept_without_pydantics() -> None:
    errors = errors_of(with_(good(), "client.contact", {}))
    assert errors == {"data.client.contact": "give an email or a phone number"}


def test_enum_choices_are_listed_as_the_values_to_send() -> None:
    errors = errors_of(with_(good(), "client.methods", ["carrier_pigeon"]))
    assert errors["data.client.methods.0"] == (
        "must be one of: in_person, home_visit, phone, text, video"
    )


def test_the_consoles_own_email_pattern_reads_as_an_email() -> None:
    errors = errors_of({"email": "nobody", "password": "x"}, SignIn)
    assert errors == {"data.email": "must be an email address, like name@example.org"}


def test_every_pattern_in_the_catalogue_has_plain_words() -> None:
    """A new pattern in a contract needs its words here, or people would read 'is not in the
    form this takes' with no idea what form that is."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "pattern" and isinstance(value, str):
                    found.add(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for model in catalogue.all_messages().values():
        walk(model.model_json_schema())
    said = {p for p in found if "@" in p or p in _PATTERNS}
    # Dates are checked by their own validator (1900-2199), which says so in words.
    unsaid = {p for p in found - said if not p.startswith("^(19|20|21)")}
    assert unsaid == set()


def test_an_unknown_kind_keeps_its_message() -> None:
    assert plain_reason({"type": "effect_form", "msg": "an effect names one of: filter"}) == (
        "an effect names one of: filter"
    )
