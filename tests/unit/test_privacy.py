"""Data minimisation, checked: every field that holds a person's data is marked personal or
sensitive (contracts/privacy.py), and no event carries one."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import BaseModel

from contracts import catalogue, privacy, records
from contracts.intake import SubmitIntake

# Names that say a field holds someone's data; each such field must be marked.
LOOKS_PERSONAL = re.compile(
    r"(^|_)(name|email|phone|contact|birth|summary|notes?|factors|experience|safety|access|"
    r"cultural|gender|affiliations?|relationship|reference|matched|unmatched|reason)($|_)"
)
# Fields with such names that hold no one's data, and why. (One of a fixed set of values,
# an enum or a constant, never does, and is not listed.)
NOT_PERSONAL = {
    "reference_type",  # professional or personal: which kind of reference
    "matched_on",  # field names only ("languages"), as events say
    "cancel_reason",  # cancelled_by_client, service_completed ...: said by our code
    "suspended_because",  # consent_withdrawn and the like: said by our code
    "support_person_ref",  # an id
    "OrganisationRecord.name",  # an organisation's, not a person's
    "from_name",  # the organisation's sender name on its messages
    "person_key",  # c=<case>, s=<supporter>: ids
    "CredentialRecord.name",  # a credential's label, chosen by an operator
    "CommandRejected.errors.reason",  # said back to whoever sent the command, about it
    "CommandUnavailable.reason",  # our own words: not carried out just now, send it again
    "DeadLetter.reason",  # why a message failed: names fields, never their values
}


def _models() -> dict[str, type[BaseModel]]:
    found: dict[str, type[BaseModel]] = dict(catalogue.all_messages())
    found |= {
        name: model
        for name, model in vars(records).items()
        if isinstance(model, type) and issubclass(model, records.Record)
    }
    return found


def _properties(model: type[BaseModel]) -> set[str]:
    """Every property name anywhere in the model's schema, with its dotted path."""
    schema = model.model_json_schema()
    paths: set[str] = set()

    def walk(node: object, path: str, seen: frozenset[str]) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, path, seen)
        elif isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref not in seen:
                walk(schema["$defs"][ref.rsplit("/", 1)[-1]], path, seen | {ref})
            for key in ("anyOf", "oneOf", "allOf", "items", "additionalProperties"):
                walk(node.get(key), path, seen)
            for name, prop in (node.get("properties") or {}).items():
                if not ({"enum", "const"} & prop.keys()):
                    paths.add(f"{path}.{name}" if path else name)
                walk(prop, f"{path}.{name}" if path else name, seen)

    walk(schema, "", frozenset())
    return paths


def test_no_event_carries_a_personal_or_sensitive_field() -> None:
    for name, event in catalogue.EVENTS.items():
        assert privacy.marked(event) == {}, name


def test_every_field_named_like_a_persons_data_is_marked() -> None:
    unmarked = []
    for name, model in _models().items():
        marked = privacy.marked(model)
        for path in _properties(model):
            leaf = path.rsplit(".", 1)[-1]
            covered = any(path == m or path.startswith(m + ".") for m in marked)
            exempt = leaf in NOT_PERSONAL or f"{name}.{path}" in NOT_PERSONAL
            if LOOKS_PERSONAL.search(leaf) and not exempt and not covered:
                unmarked.append(f"{name}.{path}")
    assert unmarked == []


def test_an_intake_marks_what_is_personal_and_what_is_sensitive() -> None:
    marked = privacy.marked(SubmitIntake)
    assert marked["client.display_name"] == "personal"
    assert marked["client.contact.email"] == "personal"
    assert marked["other_parties.name"] == "personal"
    assert marked["dispute.summary"] == "sensitive"
    assert marked["client.safety_concerns"] == "sensitive"
    assert "case_id" not in marked
    assert "client.languages" not in marked  # what matching needs, and nobody's secret


def test_the_exported_schemas_carry_the_marks(tmp_path: Path) -> None:
    catalogue.export(tmp_path)
    schema = json.loads((tmp_path / "schemas" / "SubmitIntake.json").read_text())
    assert '"x-privacy": "sensitive"' in json.dumps(schema)
    event = json.loads((tmp_path / "schemas" / "IntakeReceived.json").read_text())
    assert "x-privacy" not in json.dumps(event)
