"""The console's forms: what a browser sends becomes the command's body, and each refusal
lands at the input it names."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from contracts.replies import FieldError
from services.console import actions, forms
from services.console.pages_actions import body_of
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


def test_every_action_that_cannot_be_taken_back_names_its_consequence_before_it_is_sent() -> None:
    for type_name, confirm in actions.CONFIRM.items():
        assert type_name in actions.CASE_ACTIONS | actions.SUPPORTER_ACTIONS, type_name
        said = confirm.consequence.format(name="Mere")
        assert "Mere" in said, type_name
        assert len(said) > 60, type_name
        assert confirm.question.format(name="Mere"), type_name
        assert confirm.button, type_name
    for irreversible in ("EraseClient", "EraseSupporter", "RefuseService", "ChangeSupporter"):
        assert actions.confirming(irreversible, {}) is not None
    assert "cannot be undone" in actions.CONFIRM["EraseClient"].consequence
    # Suspending is asked about; reinstating, its reverse, is not.
    assert actions.confirming("UpdateSupporter", {"changes.suspended": "true"}) is not None
    assert actions.confirming("UpdateSupporter", {"changes.suspended": "false"}) is None
    assert actions.confirming("UpdateSupporter", {"changes.region": "otago"}) is None
    assert actions.confirming("GiveConsent", {}) is None


def test_every_action_says_in_plain_words_what_was_done_and_offers_its_reverse() -> None:
    every = actions.CASE_ACTIONS | actions.SUPPORTER_ACTIONS | actions.GROUP_ACTIONS
    keys = {actions.done_key(t, {}) for t in every} | {
        actions.done_key("UpdateSupporter", {"changes.suspended": v}) for v in ("true", "false")
    }
    for key in keys:
        done = actions.DONE[key]
        said = done.said.format(account="Ana", **dict.fromkeys(done.carry, "x"))
        assert key.split(":")[0] not in said, key  # no command's name: words
        if done.undo is not None:
            assert done.undo in every, key
            assert done.undo_label, key
    assert actions.DONE["WithdrawConsent"].undo == "GiveConsent"
    assert actions.DONE["CancelSession"].undo == "BookSession"
    assert actions.DONE["UpdateSupporter:suspend"].undo_label == "Reinstate"


def test_a_record_pages_form_nests_its_names_and_reads_moments_in_the_organisations_zone() -> None:
    sent = {
        "csrf_token": ["t"],
        "confirmed": ["yes"],
        "changes.contact.email": ["a@example.org"],
        "changes.contact.phone": [""],
        "stages": ["entry", "investigation"],
        "start": ["2026-12-01T18:00"],
        "case_id": ["sent-by-the-form"],
    }

    body = body_of(sent, ZoneInfo("Pacific/Auckland"), {"case_id": "C-1"})

    assert body == {
        "changes": {"contact": {"email": "a@example.org"}},
        "stages": ["entry", "investigation"],
        "start": "2026-12-01T18:00:00+13:00",
        "case_id": "C-1",  # the page's, whatever the form said
    }


def test_a_refused_field_is_named_as_its_form_names_it() -> None:
    assert actions.field_label("evidence.recovery.since") == "In recovery since"
    assert actions.field_label("support_person.friend.display_name") == "Their name"
    assert actions.field_label("start") == "Starts"
    rule = "rules.boundaries.more-than-weekly-without-agreement"
    assert actions.field_label(rule) == rule  # no input of a form: as the rules name it
