"""The console's forms: what a browser sends becomes the command's body, and each refusal
lands at the input it names."""

from __future__ import annotations

from contracts.replies import FieldError
from services.console import forms
from services.console.pages_sign_in import same_site


def test_a_form_becomes_the_commands_body_nested_listed_and_without_empty_inputs() -> None:
    sent = {
        "case_id": ["C-1"],
        "client.display_name": [" Mere "],
        "client.contact.email": [""],
        "client.contact.phone": ["021 555 0101"],
        "client.birth_year": ["1980"],
        "client.languages": ["en, mi,"],
        "client.methods": ["phone", "video"],
        "client.availability.0.day": ["tue"],
        "client.availability.0.start": ["18:00"],
        "other_parties.0.party_id": ["p1"],
    }

    body = forms.body_of(forms.INTAKE, sent)

    assert body["client"] == {
        "display_name": "Mere",
        "contact": {"phone": "021 555 0101"},
        "birth_year": 1980,
        "languages": ["en", "mi"],
        "methods": ["phone", "video"],
        "availability": [{"day": "tue", "start": "18:00"}],
    }
    assert body["other_parties"] == [{"party_id": "p1"}]
    assert body["has_other_support"] is False  # an unticked box is sent as nothing
    assert forms.body_of(forms.INTAKE, {"client.birth_year": ["x"]})["client"] == {
        "birth_year": "x"  # left for the command's model to refuse, naming the field
    }
    assert forms.values_of(body)["client.languages"] == "en, mi"


def test_each_error_is_shown_at_the_input_it_names_or_the_first_inside_it() -> None:
    errors = [
        FieldError(field="client.contact", reason="Field required"),
        FieldError(field="client.birth_year", reason="too old"),
        FieldError(field="dispute", reason="elsewhere"),
        FieldError(field="import_batch", reason="no input"),
    ]

    placed = forms.errors_by_input(forms.INTAKE, errors)

    assert placed == {
        "client.contact.email": "Field required",
        "client.birth_year": "too old",
        "dispute.scheme": "elsewhere",
    }


def test_signing_in_leads_back_only_to_a_page_of_this_site() -> None:
    assert same_site("/orgs/a/cases/c1") == "/orgs/a/cases/c1"
    for elsewhere in ("https://evil.example", "//evil.example", "/\\evil.example", ""):
        assert same_site(elsewhere) == "/"
