"""Contracts: subjects, envelopes, the catalogue and its exports."""

from __future__ import annotations

import dataclasses
import importlib
import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from faststream.nats import NatsBroker
from pydantic import ValidationError

from alongside import sample
from contracts import catalogue, subjects
from contracts.envelope import RawEnvelope, unreadable_version, wrap
from contracts.intake import (
    ConsentGiven,
    GiveConsent,
    IntakeReceived,
    RecordCheck,
    Slot,
    Stage,
    SubmitIntake,
    SupporterChanges,
)
from contracts.replies import CommandRejected, CommandUnavailable, FieldError
from contracts.scheduling import SchedulingPolicy
from runtime import consumer, topology
from runtime.asking import parse_any_reply, parse_reply
from runtime.clock import SYSTEM
from runtime.dispatch import Handlers, Meta
from runtime.settings import Settings

# Fields that would carry personal or sensitive data if an event exposed them.
SENSITIVE = {
    "display_name",
    "contact",
    "email",
    "phone",
    "summary",
    "other_factors",
    "safety_concerns",
    "birth_year",
    "gender_identity",
    "lived_experience",
    "access_needs",
    "affiliations",
    "name",
    "clear",
    "reference",
}


def test_org_is_the_second_token_of_every_subject() -> None:
    built = [
        subjects.command("acme", "intake", "SubmitIntake", "crm"),
        subjects.event("acme", "IntakeReceived"),
        subjects.dead_letter("acme", "intake", "crm"),
    ]
    assert all(s.split(".")[1] == "acme" for s in built)
    assert all(subjects.org_of(s) == "acme" for s in built)


@pytest.mark.parametrize("org", ["", "a", "Acme", "a.b", "a*", "a>", "-acme", "x" * 40])
def test_an_org_that_is_not_a_single_safe_token_is_refused(org: str) -> None:
    with pytest.raises(subjects.SubjectError):
        subjects.event(org, "IntakeReceived")


def test_envelope_round_trips_with_cloudevents_names() -> None:
    command = sample.intake(random.Random(1), "c1")
    moment = datetime(2026, 11, 28, 22, 11, tzinfo=UTC)
    cause = wrap(command, org="acme", source="test", time=moment, id="corr-1")
    envelope = wrap(command, org="acme", source="test", cause=cause, time=moment)
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
    assert raw["causationid"] == "corr-1"
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
        catalogue.COMMANDS,
        catalogue.EVENTS,
        catalogue.REPLIES,
        catalogue.OTHERS,
    ]
    assert len(messages) == sum(len(group) for group in groups)
    assert all(m.schema_version.count(".") == 1 for m in messages.values())


def test_export_writes_a_schema_per_message_and_asyncapi(tmp_path: Path) -> None:
    written = catalogue.export(tmp_path)

    names = {p.stem for p in (tmp_path / "schemas").glob("*.json")}
    assert names == set(catalogue.all_messages())
    assert len(written) == len(names) + 1
    schema = json.loads((tmp_path / "schemas" / "SubmitIntake.json").read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:alongside:contracts:{catalogue.VERSION}:SubmitIntake"
    assert schema["properties"]["type"] == {"const": "SubmitIntake", "type": "string"}
    assert "data" in schema["required"]
    # A reply is on the wire bare, not in an envelope; its schema says so.
    reply_schema = json.loads((tmp_path / "schemas" / "CommandAccepted.json").read_text())
    assert set(reply_schema["required"]) >= {"command_id", "command_type"}
    assert "data" not in reply_schema["properties"]
    # Availability times are local, without an offset: no RFC 3339 `time` format.
    assert '"format": "time"' not in (tmp_path / "schemas" / "RegisterSupporter.json").read_text()

    doc = json.loads((tmp_path / "asyncapi.json").read_text())
    assert doc["asyncapi"] == "3.1.0"
    channel = doc["channels"]["SubmitIntake"]
    assert channel["address"] == "alongside.{org}.cmd.intake.SubmitIntake.{sender}"
    assert "org" in channel["parameters"]
    reply = doc["operations"]["SubmitIntake"]["reply"]
    assert {m["$ref"].rsplit("/", 1)[-1] for m in reply["messages"]} == {
        "CommandAccepted",
        "CommandRejected",
        "CommandUnavailable",
    }
    # Every command may be answered "not carried out just now", whatever its other replies.
    for name in catalogue.COMMANDS:
        said = doc["operations"][name]["reply"]["messages"]
        assert {"$ref": "#/channels/CommandReply/messages/CommandUnavailable"} in said, name
    unavailable = json.loads((tmp_path / "schemas" / "CommandUnavailable.json").read_text())
    assert unavailable["properties"]["status"]["const"] == "unavailable"
    assert unavailable["properties"]["retry_after_s"]["exclusiveMinimum"] == 0
    assert set(unavailable["required"]) >= {"command_id", "command_type", "reason"}
    for name in catalogue.EVENTS:
        assert doc["channels"][name]["address"] == f"alongside.{{org}}.evt.{name}"
    # every $ref resolves inside the document
    text = json.dumps(doc)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "#/')[1:]}:
        node = doc
        for key in ref.split("/"):
            node = node[key]


def test_a_reply_says_by_its_status_whether_it_was_refused_or_not_carried_out_just_now() -> None:
    said = parse_reply(
        b'{"status": "unavailable", "command_id": "c1", '
        b'"command_type": "SubmitIntake", "reason": "not just now", '
        b'"retry_after_s": 2.5}'
    )
    assert said == CommandUnavailable(
        command_id="c1", command_type="SubmitIntake", reason="not just now", retry_after_s=2.5
    )
    assert isinstance(parse_any_reply(said.model_dump_json().encode()), CommandUnavailable)
    refused = CommandRejected(
        command_id="c1",
        command_type="SubmitIntake",
        errors=[FieldError(field="data.case_id", reason="no such case")],
    )
    assert isinstance(parse_reply(refused.model_dump_json().encode()), CommandRejected)
    # A wait of nothing (or less) is no wait, and a person must be told why.
    for bad in ({"retry_after_s": 0}, {"retry_after_s": -1}, {"reason": ""}):
        with pytest.raises(ValidationError):
            CommandUnavailable.model_validate(
                {"command_id": None, "command_type": "X", "reason": "r", **bad}
            )
    assert CommandUnavailable(command_id=None, command_type="X", reason="r").retry_after_s > 0


def test_a_slot_time_is_local_with_no_offset() -> None:
    # One time with an offset and one without used to raise TypeError: no reply at all.
    with pytest.raises(ValidationError) as error:
        Slot.model_validate({"day": "mon", "start": "09:00:00+01:00", "end": "10:00:00"})
    assert error.value.errors()[0]["loc"] == ("start",)
    assert "without a UTC offset" in error.value.errors()[0]["msg"]


@pytest.mark.parametrize("zone", ["localtime", "posixrules", "Factory", "EST5EDT", "America"])
def test_an_organisation_is_in_a_place_not_a_hosts_setting(zone: str) -> None:
    with pytest.raises(ValidationError, match="is not an IANA time zone"):
        SchedulingPolicy(time_zone=zone)
    assert SchedulingPolicy(time_zone="Pacific/Chatham").time_zone == "Pacific/Chatham"


def test_a_moment_is_a_string_in_our_era_as_the_schema_says() -> None:
    consent = GiveConsent.model_validate(
        {"case_id": "c1", "party_id": "client", "stages": ["entry"], "given_on": "2027-01-01"}
    )
    moment = datetime(2027, 1, 1, tzinfo=UTC)
    envelope = json.loads(wrap(consent, org="acme", source="t", time=moment).model_dump_json())
    for bad in (0.1, 1700000000, "0001-01-01T00:00:00+23:59"):
        with pytest.raises(ValidationError) as error:
            RawEnvelope.model_validate({**envelope, "time": bad})
        assert error.value.errors()[0]["loc"] == ("time",)
    schema = RawEnvelope.model_json_schema()["properties"]["time"]
    assert schema["type"] == "string"
    assert schema["pattern"] == "^(19|20|21)[0-9]{2}-"


def test_ids_in_events_are_ids_a_store_can_key() -> None:
    with pytest.raises(ValidationError) as error:
        IntakeReceived.model_validate(
            {
                "case_id": "",
                "scheme": "s",
                "stage": "entry",
                "party_ids": ["a b"],
                "has_other_support": False,
            }
        )
    assert {e["loc"][0] for e in error.value.errors()} == {"case_id", "party_ids"}


def test_another_major_version_is_not_read_as_this_one() -> None:
    assert unreadable_version("1.7", GiveConsent) is None
    reason = unreadable_version("2.0", GiveConsent)
    assert reason == "GiveConsent 2.0 is not readable here; this version reads 1.x"


def test_the_subscribers_guide_lists_every_event_with_its_fields() -> None:
    guide = (Path(__file__).parents[2] / "docs" / "subscribers.md").read_text()
    for name, model in catalogue.EVENTS.items():
        fields = ", ".join(f"`{field}`" for field in model.model_fields)
        assert f"| `{name}` | {fields} |" in guide, f"docs/subscribers.md: {name} or its fields"


def test_a_trace_runs_from_a_command_through_every_message_it_causes() -> None:
    moment = datetime(2026, 11, 28, 22, 11, tzinfo=UTC)
    received = IntakeReceived(
        case_id="c1", scheme="s", stage=Stage.ENTRY, party_ids=[], has_other_support=False
    )
    consent = ConsentGiven(case_id="c1", party_id="p", stages=[Stage.ENTRY], given_on=moment.date())
    command = wrap(sample.intake(random.Random(1), "c1"), org="acme", source="t", time=moment)
    event = wrap(received, org="acme", source="t", time=moment, id="e1", cause=command)
    later = wrap(consent, org="acme", source="t", time=moment, id="e2", cause=event)
    assert command.traceparent is not None
    assert event.traceparent is not None
    assert later.traceparent is not None
    trace, span = command.traceparent.split("-")[1:3]
    assert event.traceparent.split("-")[1] == trace == later.traceparent.split("-")[1]
    assert len({span, event.traceparent.split("-")[2], later.traceparent.split("-")[2]}) == 3
    # Published again (an outbox finished after a crash), a message carries the same context.
    again = wrap(received, org="acme", source="t", time=moment, id="e1", cause=command)
    assert again.traceparent == event.traceparent


@pytest.mark.parametrize("service", sorted(catalogue.CONSUMED_BY))
def test_each_service_is_sent_exactly_the_events_it_handles(service: str) -> None:
    handled = importlib.import_module(f"services.{service}.handlers").handlers.events
    consumed = [event.type_name for event in catalogue.CONSUMED_BY[service]]
    assert sorted(consumed) == sorted(handled)
    spec = next(spec for spec in topology.CONSUMERS if spec.service == service)
    assert sorted(spec.filter_subjects) == sorted(subjects.events("*", t) for t in handled)


def test_a_service_whose_consumer_does_not_take_an_event_it_handles_does_not_start() -> None:
    handlers: Handlers[None] = Handlers("probe")

    @handlers.on(IntakeReceived)
    async def on_intake_received(event: IntakeReceived, meta: Meta, deps: None) -> None:
        return None

    spec = dataclasses.replace(
        topology.RULES_CONSUMER, filter_subjects=(subjects.events("*", "CaseStageChanged"),)
    )
    with pytest.raises(
        ValueError, match="handles IntakeReceived, which its consumer rules does not take"
    ):
        consumer.subscribe(NatsBroker(), spec, Settings(), handlers, None, SYSTEM)


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("alongside.*.evt.IntakeReceived", "alongside.acme.evt.IntakeReceived", True),
        ("alongside.*.evt.IntakeReceived", "alongside.acme.evt.ConsentGiven", False),
        ("alongside.acme.>", "alongside.acme.evt.IntakeReceived", True),
        ("alongside.acme.>", "alongside.acme", False),
        ("alongside.*.evt.*", "alongside.acme.evt", False),
        ("alongside.*.evt.*", "alongside.acme.evt.A.B", False),
    ],
)
def test_subjects_match_as_nats_reads_wildcards(pattern: str, subject: str, expected: bool) -> None:
    assert subjects.matches(pattern, subject) is expected
