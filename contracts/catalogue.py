"""The event catalogue: every message by type, and its export as JSON Schema + AsyncAPI 3.

Run ``alongside contracts export DIR`` to write ``DIR/schemas/<Type>.json``
(one JSON Schema per message, envelope included) and ``DIR/asyncapi.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from contracts import intake, matching, notifications, rules, scheduling, subjects, views
from contracts.envelope import Command, Envelope, Event, Message
from contracts.replies import CommandAccepted, CommandRejected, CommandUnavailable, DeadLetter

VERSION = "2.3.0"

COMMANDS: dict[str, type[Command]] = {
    c.type_name: c
    for c in (
        *intake.COMMANDS,
        *views.COMMANDS,
        *rules.COMMANDS,
        *matching.COMMANDS,
        *scheduling.COMMANDS,
        *notifications.COMMANDS,
    )
}
EVENTS: dict[str, type[Event]] = {
    e.type_name: e
    for e in (
        *intake.EVENTS,
        *views.EVENTS,
        *rules.EVENTS,
        *matching.EVENTS,
        *scheduling.EVENTS,
        *notifications.EVENTS,
    )
}
# What an organisation's integration credential may send (``alongside orgs credentials
# --kind integration``): its intake, and never a view, an export or an erasure, which are
# the console's, behind its roles and its access log. The server holds each credential to
# its own list (runtime/access.py).
INTEGRATION_COMMANDS: tuple[str, ...] = tuple(
    c.type_name
    for c in intake.COMMANDS
    if c not in (intake.ExportPersonData, intake.EraseClient, intake.EraseSupporter)
)
REPLIES: dict[str, type[Message]] = {
    m.type_name: m
    for m in (
        CommandAccepted,
        CommandRejected,
        CommandUnavailable,
        rules.RulesEvaluated,
        matching.BatchAssigned,
        intake.PersonData,
        views.CaseView,
        views.SupporterView,
        views.DecisionView,
        views.Directory,
        notifications.LinkOpened,
    )
}
# Which replies answer a command: every command may be rejected, or be unavailable just then
# (not carried out: send the same command again later).
_ANSWERED: dict[str, str] = {
    **{c.type_name: "CommandAccepted" for c in intake.COMMANDS},
    intake.ExportPersonData.type_name: "PersonData",
    views.ViewCase.type_name: "CaseView",
    views.ViewSupporter.type_name: "SupporterView",
    views.ViewDecision.type_name: "DecisionView",
    views.ReadDirectory.type_name: "Directory",
    **{c.type_name: "RulesEvaluated" for c in rules.COMMANDS},
    **{c.type_name: "CommandAccepted" for c in matching.COMMANDS},
    matching.AssignBatch.type_name: "BatchAssigned",
    **{c.type_name: "CommandAccepted" for c in scheduling.COMMANDS},
    **{c.type_name: "CommandAccepted" for c in notifications.COMMANDS},
    notifications.OpenLink.type_name: "LinkOpened",
}
REPLIES_TO: dict[str, tuple[str, ...]] = {
    name: (answer, CommandRejected.type_name, CommandUnavailable.type_name)
    for name, answer in _ANSWERED.items()
}
OTHERS: dict[str, type[Message]] = {DeadLetter.type_name: DeadLetter}
# The events each service's durable consumer takes (its filter on EVENTS): exactly those
# its handlers handle, so the server sends it nothing it would only skip.
CONSUMED_BY: dict[str, tuple[type[Event], ...]] = {
    "rules": (
        intake.SupporterRegistered,
        intake.SupporterUpdated,
        intake.VettingEvidenceRecorded,
        intake.IntakeReceived,
        intake.SupportPersonNamed,
        intake.ConsentGiven,
        intake.ConsentWithdrawn,
        intake.CaseStageChanged,
        intake.ClientErased,
        intake.SupporterErased,
        matching.ProposalAccepted,
        matching.MatchEnded,
        matching.ServiceRefused,
    ),
    "matching": (
        rules.MatchingPolicyDecided,
        rules.ConsentDecided,
        rules.SupporterEligibilityDecided,
        scheduling.ServiceEnded,
        intake.ClientErased,
        intake.SupporterErased,
        intake.SupporterRegistered,
        intake.SupporterUpdated,
        matching.ClientWaitlisted,
        matching.ProposalAccepted,
        matching.ProposalsDeclined,
        matching.ProposalsExpired,
        matching.MatchEnded,
        matching.ServiceRefused,
    ),
    "scheduling": (
        matching.MatchActivated,
        matching.MatchPaused,
        matching.MatchResumed,
        matching.MatchEnded,
        matching.ServiceRefused,
        rules.ConsentDecided,
        rules.SupporterEligibilityDecided,
        intake.ClientErased,
    ),
    "notifications": (
        matching.MatchProposed,
        matching.ClientWaitlisted,
        matching.ProposalsWithdrawn,
        matching.ProposalAccepted,
        rules.ConsentDecided,
        rules.SupporterEligibilityDecided,
        intake.ConsentGiven,
        intake.ConsentWithdrawn,
        intake.ClientErased,
        intake.SupporterErased,
        scheduling.InitialMeetingProposed,
        scheduling.SessionBooked,
        scheduling.SessionRescheduled,
        scheduling.SessionCancelled,
        scheduling.SessionReminderDue,
        scheduling.SupervisionScheduled,
    ),
}


def all_messages() -> dict[str, type[Message]]:
    return {**COMMANDS, **EVENTS, **REPLIES, **OTHERS}


JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"


def schema_id(name: str) -> str:
    return f"urn:alongside:contracts:{VERSION}:{name}"


def wire_schema(model: type[Message], ref_template: str = "#/$defs/{model}") -> dict[str, Any]:
    """The schema of the message as it is on the wire: an event, a command or a dead letter
    inside the envelope; a reply bare, as services send it."""
    if model.type_name in REPLIES:
        schema = model.model_json_schema(ref_template=ref_template)
    else:
        schema = Envelope[model].model_json_schema(ref_template=ref_template)  # type: ignore[valid-type]
        props = schema["properties"]
        props["type"] = {"const": model.type_name, "type": "string"}
        props["schemaversion"] = {"const": model.schema_version, "type": "string"}
    schema["title"] = model.type_name
    schema["description"] = (model.__doc__ or model.type_name).strip().splitlines()[0]
    return schema


def _discriminators(node: Any, as_name: bool) -> Any:
    """pydantic writes OpenAPI's ``discriminator`` object: JSON Schema has no such keyword
    (ajv's strict mode refuses it; ``oneOf`` with each branch's ``const`` already decides),
    and AsyncAPI's is the property's name."""
    if isinstance(node, list):
        return [_discriminators(item, as_name) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "discriminator" and isinstance(value, dict):
            if as_name:
                out[key] = value["propertyName"]
            continue
        out[key] = _discriminators(value, as_name)
    return out


def json_schemas() -> dict[str, dict[str, Any]]:
    """A JSON Schema (draft 2020-12) per message, with its ``$id``."""
    return {
        name: {
            "$schema": JSON_SCHEMA,
            "$id": schema_id(name),
            **_discriminators(wire_schema(model), as_name=False),
        }
        for name, model in all_messages().items()
    }


_ORG_PARAMETER = {
    "description": "Organisation token; the subject's org must equal the envelope's org.",
    "examples": ["harbour-ombudsman"],
}
_SENDER_PARAMETER = {
    "description": "The name of the credential sending the command; the server allows each "
    "credential only its own (docs/subscribers.md, 'Credentials').",
    "examples": ["case-intake-form"],
}


def _message_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/messages/{name}"}


def asyncapi() -> dict[str, Any]:
    """An AsyncAPI 3.1 document of every subject, with its org parameter and reply schemas."""
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for name, model in all_messages().items():
        schema = wire_schema(model, ref_template="#/components/schemas/{model}")
        schema = _discriminators(schema, as_name=True)
        schemas.update(schema.pop("$defs", {}))
        # A reply's own model is its wire schema; the others are wrapped in the envelope.
        wire = name if name in REPLIES else f"{name}Envelope"
        schemas[wire] = schema
        messages[name] = {
            "name": name,
            "title": name,
            "summary": schema["description"],
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{wire}"},
        }

    channels: dict[str, Any] = {
        "CommandReply": {
            "address": None,
            "description": "The requester's reply inbox.",
            "messages": {name: _message_ref(name) for name in REPLIES},
        }
    }
    operations: dict[str, Any] = {}
    for name, command in COMMANDS.items():
        channels[name] = {
            "address": f"{subjects.PREFIX}.{{org}}.cmd.{command.service}.{name}.{{sender}}",
            "parameters": {"org": _ORG_PARAMETER, "sender": _SENDER_PARAMETER},
            "messages": {name: _message_ref(name)},
        }
        operations[name] = {
            "action": "receive",
            "summary": messages[name]["summary"],
            "channel": {"$ref": f"#/channels/{name}"},
            "reply": {
                "channel": {"$ref": "#/channels/CommandReply"},
                "messages": [
                    {"$ref": f"#/channels/CommandReply/messages/{reply}"}
                    for reply in REPLIES_TO[name]
                ],
            },
        }
    for name in EVENTS:
        channels[name] = {
            "address": f"{subjects.PREFIX}.{{org}}.evt.{name}",
            "parameters": {"org": _ORG_PARAMETER},
            "messages": {name: _message_ref(name)},
        }
        operations[f"publish{name}"] = {
            "action": "send",
            "summary": messages[name]["summary"],
            "channel": {"$ref": f"#/channels/{name}"},
        }
    channels["DeadLetter"] = {
        "address": f"{subjects.PREFIX}.{{org}}.dlq.{{service}}.{{sender}}",
        "parameters": {
            "org": _ORG_PARAMETER,
            "service": {"description": "Service that gave up"},
            "sender": {"description": "Whom it came from: a command's sender, or `events`"},
        },
        "messages": {"DeadLetter": _message_ref("DeadLetter")},
    }
    operations["publishDeadLetter"] = {
        "action": "send",
        "summary": "A message a service could not process, with its reason.",
        "channel": {"$ref": "#/channels/DeadLetter"},
    }
    return {
        "asyncapi": "3.1.0",
        "info": {
            "title": "Alongside",
            "version": VERSION,
            "description": "Commands, replies and events of Alongside (contracts/VERSIONING.md).",
        },
        "defaultContentType": "application/json",
        "servers": {"local": {"host": "127.0.0.1:4222", "protocol": "nats"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def export(directory: Path) -> list[Path]:
    """Write every JSON Schema and the AsyncAPI document; return the paths written."""
    schema_dir = directory / "schemas"
    schema_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = schema_dir / f"{name}.json"
        path.write_text(json.dumps(schema, indent=2, default=str) + "\n")
        written.append(path)
    path = directory / "asyncapi.json"
    path.write_text(json.dumps(asyncapi(), indent=2, default=str) + "\n")
    written.append(path)
    return written
