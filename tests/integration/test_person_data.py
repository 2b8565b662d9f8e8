"""A subject access request: everything held about one person, from every service's
records, given to whoever asked, recorded, and kept nowhere else."""

from __future__ import annotations

import pytest
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError

from alongside.client import AlongsideClient
from contracts.intake import ExportPersonData, PersonData
from contracts.replies import CommandAccepted, CommandRejected
from runtime import topology
from runtime.clock import SYSTEM
from tests.support import (
    MARKERS,
    eligible,
    marked_intake,
    marked_record_check,
    marked_supporter,
    org_today,
    supporter,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("running")


async def test_everything_held_about_a_client_and_a_supporter_is_exported_and_recorded(
    client: AlongsideClient, nc: Client, org: str, other_org: str
) -> None:
    assert isinstance(await client.submit(org, marked_supporter("s1")), CommandAccepted)
    check = marked_record_check("s1", org_today(SYSTEM))
    assert isinstance(await client.submit(org, check), CommandAccepted)
    await supporter(client, org, "s2", ["en"])
    await eligible(client, org, 1)
    assert isinstance(await client.submit(org, marked_intake("c1")), CommandAccepted)
    await wait_for(client, org, "MatchingPolicyDecided")
    await wait_for(client, org, "ConsentDecided")

    about_client = await client.request(
        org, ExportPersonData(person="client", subject_id="c1"), command_id="sar-1"
    )
    assert isinstance(about_client, PersonData)
    held = about_client.held
    assert held["case"]["intake"]["client"]["display_name"] == MARKERS["client_name"]
    assert held["case"]["intake"]["dispute"]["summary"] == MARKERS["summary"]
    assert held["decisions.matching_policy"]["subject_id"] == "c1"
    assert held["decisions.consent"]["outcome"] in {"pending", "active", "suspended"}
    assert {"matching", "schedule"} <= held.keys()
    # Every decision about them in the audit period, why included (opened for the export).
    logged = held["decision_log"]
    assert {d["kind"] for d in logged} == {"matching_policy", "consent"}
    assert {d["subject_id"] for d in logged} == {"c1"}
    assert all(rule["reason"] for d in logged for rule in d["fired"])

    about_supporter = await client.request(
        org, ExportPersonData(person="supporter", subject_id="s1"), command_id="sar-2"
    )
    assert isinstance(about_supporter, PersonData)
    record = about_supporter.held["supporter"]
    assert record["profile"]["contact"]["email"] == MARKERS["supporter_email"]
    assert [v["reference"] for v in record["vetting"]] == [MARKERS["check_reference"]]
    assert about_supporter.held["decisions.eligibility"]["subject_id"] == "s1"
    assert [d["kind"] for d in about_supporter.held["decision_log"]][-1] == "eligibility"

    # Each export is recorded, by id, with who asked; the data itself is kept nowhere new.
    recorded = await wait_for(client, org, "PersonDataExported", 2)
    assert [(e.data["person"], e.data["subject_id"], e.data["requested_by"]) for e in recorded] == [
        ("client", "c1", "operator (tests)"),
        ("supporter", "s1", "operator (tests)"),
    ]
    replies = await nc.jetstream().key_value(topology.REPLIES_BUCKET)
    with pytest.raises(KeyNotFoundError):
        await replies.get(f"{org}.sar-1")

    # No such person here, nor in another organisation's export.
    for asked, who in ((org, "c404"), (other_org, "c1")):
        missing = await client.request(asked, ExportPersonData(person="client", subject_id=who))
        assert isinstance(missing, CommandRejected)
        assert missing.errors[0].field == "data.subject_id"
        assert f"no client {who} is held here" in missing.errors[0].reason
