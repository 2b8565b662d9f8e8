"""Contracts: subjects, envelopes, the catalogue and its exports."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from alongside import sample
from contracts import catalogue, subjects
from contracts.envelope import RawEnvelope, wrap
from contracts.intake import GiveConsent, RecordCheck, SubmitIntake, SupporterChanges

# Fields that would carry personal or sensitive data if an event exposed them.
SENSITIVE = {
    "display_name", "contact", "email", "phone", "summary", "other_factors", "safety_concerns",
    "birth_year", "gender_identity", "lived_experience", "access_needs", "affiliations", "name",
    "clear", "reference",
}  # fmt: skip


def test_org_is_the_second_token_of_every_subject() -> None:
    built = [
        subjects.command("acme", "intake", "SubmitIntake"),
        subjects.event("acme", "IntakeReceived"),
        subjects.dead_letter("acme", "intake"),
    ]
    assert all(s.split(".")[subjects.ORG_TOKEN_POSITION - 1] == "acme" for s in built)
    assert all(subjects.org_of(s) == "acme" for s in built)


@pytest.mark.parametrize("org", ["", "a", "Acme", "a.b", "a*", "a>", "-acme", "x" * 40])
def test_an_org_that_is_not_a_single_safe_token_is_refused(org: str) -> None:
    with pytest.raises(subjects.SubjectError):
        subjects.event(org, "IntakeReceived")


def test_envelope_round_trips_with_cloudevents_names() -> None:
    command = sample.intake(random.Random(1), "c1")
    envelope = wrap(command, org="acme", source="test", correlationid="corr-1",
                    time=datetime(2026, 11, 28, 22, 11, tzinfo=UTC))
    raw = json.loads(envelope.model_dump_json())

    assert {
        "specversion",
        "id",
        "type",
        "source",
        "org",
        "time",
        "schemaversion",
        "data",
    } <= raw.keys()
    assert raw["type"] == "SubmitIntake"
    assert raw["correlationid"] == "corr-1"
    parsed = RawEnvelope.model_validate(raw)
    assert SubmitIntake.model_validate(parsed.data) == command


def test_commands_refuse_unknown_fields_and_name_them() -> None:
    with pytest.raises(ValidationError) as info:
        GiveConsent.model_validate(
            {
                "case_id": "c1",
                "party_id": "client",
                "stages": ["entry"],
                "given_on": "2026-01-01",
                "x": 1,
            }
        )
    assert info.value.errors()[0]["loc"] == ("x",)


def test_cross_field_rules_are_enforced() -> None:
    with pytest.raises(ValidationError, match="expires_on must be after issued_on"):
        RecordCheck(issued_on="2026-01-02", expires_on="2026-01-01", clear=True, reference="r")
    with pytest.raises(ValidationError, match="name at least one field"):
        SupporterChanges()
    intake = sample.intake(random.Random(1), "c1").model_dump()
    intake["other_parties"] = intake["other_parties"] * 2
    with pytest.raises(ValidationError, match="party_id values must be unique"):
        SubmitIntake.model_validate(intake)


def test_events_carry_no_personal_data() -> None:
    for name, event in catalogue.EVENTS.items():
        exposed = SENSITIVE & event.model_fields.keys()
        assert not exposed, f"{name} exposes {exposed}"


def test_every_message_has_a_unique_type_and_a_schema_version() -> None:
    messages = catalogue.all_messages()
    groups: list[dict[str, Any]] = [
        catalogue.COMMANDS, catalogue.EVENTS, catalogue.REPLIES, catalogue.OTHERS
    ]  # fmt: skip
    assert len(messages) == sum(len(group) for group in groups)
    assert all(m.schema_version.count(".") == 1 for m in messages.values())


def test_export_writes_a_schema_per_message_and_asyncapi(tmp_path: Path) -> None:
    written = catalogue.export(tmp_path)

    names = {p.stem for p in (tmp_path / "schemas").glob("*.json")}
    assert names == set(catalogue.all_messages())
    assert len(written) == len(names) + 1
    schema = json.loads((tmp_path / "schemas" / "SubmitIntake.json").read_text())
    assert schema["properties"]["type"] == {"const": "SubmitIntake", "type": "string"}
    assert "data" in schema["required"]

    doc = json.loads((tmp_path / "asyncapi.json").read_text())
    assert doc["asyncapi"] == "3.0.0"
    channel = doc["channels"]["SubmitIntake"]
    assert channel["address"] == "alongside.{org}.cmd.intake.SubmitIntake"
    assert "org" in channel["parameters"]
    reply = doc["operations"]["SubmitIntake"]["reply"]
    assert {m["$ref"].rsplit("/", 1)[-1] for m in reply["messages"]} == {
        "CommandAccepted",
        "CommandRejected",
    }
    for name in catalogue.EVENTS:
        assert doc["channels"][name]["address"] == f"alongside.{{org}}.evt.{name}"
    # every $ref resolves inside the document
    text = json.dumps(doc)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "#/')[1:]}:
        node = doc
        for key in ref.split("/"):
            node = node[key]
