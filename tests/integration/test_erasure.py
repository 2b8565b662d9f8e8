"""Erasure reaches the disk: a client and a supporter with a marker in every personal and
sensitive field go through matching and scheduling, are erased, and then neither a marker
nor their keys are anywhere in the nats-server's store (every stream and bucket file), nor
in any log line; what stays (ids, dates, outcomes) still reads, and another organisation's
people are untouched.

This module runs its own nats-server (``tests.private_server``), so its store holds this
journey and nothing else."""

from __future__ import annotations

import random
from datetime import time

import pytest
import structlog
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError

from alongside import sample
from alongside.client import AlongsideClient
from alongside.demo import scheduling_journey
from contracts import subjects
from contracts.intake import (
    CLIENT_PARTY_ID,
    EraseClient,
    EraseSupporter,
    ExportPersonData,
    GiveConsent,
    Method,
    PersonData,
    Preference,
    RecordCheck,
    Slot,
    Stage,
    Weekday,
)
from contracts.matching import AcceptProposal
from contracts.replies import CommandAccepted, CommandRejected
from runtime import topology
from runtime.clock import ManualClock
from runtime.embedded import EmbeddedNats
from runtime.logging import configure
from runtime.settings import Settings
from runtime.vault import Vault
from tests.conftest import Start
from tests.private_server import nats_server, provisioned  # noqa: F401
from tests.support import (
    MARKERS,
    accepted,
    eligible,
    intake,
    marked_intake,
    marked_record_check,
    marked_supporter,
    match_of,
    org_today,
    supporter,
    wait_for,
)

pytestmark = pytest.mark.nats


def everywhere(server: EmbeddedNats, needle: bytes) -> list[str]:
    """Every file of the server's store holding ``needle``."""
    store = server.state_dir / "jetstream"
    return [str(f) for f in store.rglob("*") if f.is_file() and needle in f.read_bytes()]


async def test_an_erased_client_and_supporter_leave_nothing_readable_on_disk_or_in_logs(
    start: Start,
    clock: ManualClock,
    client: AlongsideClient,
    nc: Client,
    org: str,
    other_org: str,
    nats_server: EmbeddedNats,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure("DEBUG", json=True)
    try:
        await start()
        today = org_today(clock)
        # A supporter and a client who match on a marked lived experience, so matching's
        # explanation holds it too; the client's notes on a session hold another marker.
        registered = marked_supporter("s1")
        profile = registered.profile.model_copy(
            update={
                "languages": ["en"],
                "methods": [Method.PHONE],
                "caseload_cap": 2,
                "availability": [Slot(day=d, start=time(17), end=time(21)) for d in Weekday],
            }
        )
        await accepted(client, org, registered.model_copy(update={"profile": profile}))
        for evidence in sample.vetting(random.Random("s1"), "s1", today):
            if isinstance(evidence.evidence, RecordCheck):
                evidence = marked_record_check("s1", today)
            await accepted(client, org, evidence)
        await eligible(client, org, 1)
        story = marked_intake("c1")
        wishes = story.client.model_copy(
            update={
                "languages": ["en"],
                "methods": [Method.PHONE],
                "gender_preference": None,
                "lived_experience_preference": Preference(values=[MARKERS["lived"]]),
                "availability": [
                    Slot(day=d, start=time(18), end=time(20)) for d in (Weekday.TUE, Weekday.THU)
                ],
            }
        )
        await accepted(client, org, story.model_copy(update={"client": wishes}))
        await wait_for(client, org, "MatchProposed")
        assert any(
            "marker lived quillon" in m
            for m in (await match_of(nc, org, "c1")).proposals[0].matched
        )
        await accepted(client, org, AcceptProposal(case_id="c1", supporter_id="s1"))
        await wait_for(client, org, "SupportPersonNamed")
        for party in (CLIENT_PARTY_ID, "respondent"):
            await accepted(
                client,
                org,
                GiveConsent(case_id="c1", party_id=party, stages=[Stage.ENTRY], given_on=today),
            )
        await wait_for(client, org, "MatchActivated")
        vault = Vault.of(nc.jetstream(), Settings())
        await scheduling_journey(client, nc, vault, org, "c1", clock, notes=MARKERS["notes"])
        # The other organisation's people, in the same buckets and streams.
        await supporter(client, other_org, "s1", ["en"])
        await accepted(client, other_org, intake("c1", ["en"]))
        await wait_for(client, other_org, "MatchProposed")
        keys = {
            person: (
                await nc.jetstream().get_last_msg(
                    topology.KEYS_STREAM, subjects.person_key(org, person, subject), direct=True
                )
            ).data
            or b""
            for person, subject in (("client", "c1"), ("supporter", "s1"))
        }
        assert all(everywhere(nats_server, wrapped) for wrapped in keys.values())

        # The supporter still supports the client: erasing them now is refused.
        refused = await client.submit(org, EraseSupporter(supporter_id="s1"))
        assert isinstance(refused, CommandRejected)
        assert refused.errors[0].field == "data.supporter_id"
        assert "change their supporter first" in refused.errors[0].reason

        erase = EraseClient(case_id="c1")
        erased = await client.submit(org, erase, command_id="erase-c1")
        assert isinstance(erased, CommandAccepted)
        assert await client.submit(org, erase, command_id="erase-c1") == erased  # a retry
        again = await client.submit(org, erase, command_id="erase-c1-again")
        assert isinstance(again, CommandRejected)
        assert again.errors[0].reason == "this client was already erased"
        [ended] = await wait_for(client, org, "MatchEnded")
        assert ended.data["reason"] == "client_erased"
        cancelled = await wait_for(client, org, "SessionCancelled")
        assert "client_erased" in {c.data["reason"] for c in cancelled}
        assert isinstance(
            await client.submit(org, EraseSupporter(supporter_id="s1")), CommandAccepted
        )
        await wait_for(client, org, "SupporterErased")

        # Nothing of theirs can be asked for or used again; what stays still reads.
        for person, subject in (("client", "c1"), ("supporter", "s1")):
            asked = await client.request(org, ExportPersonData(person=person, subject_id=subject))
            assert isinstance(asked, CommandRejected)
        reused = await client.submit(org, story)
        assert isinstance(reused, CommandRejected)
        assert reused.errors[0].reason == "this case was erased: nothing more is kept for them"
        for bucket, key in (
            (topology.CASES_BUCKET, "c1"),
            (topology.SUPPORTERS_BUCKET, "s1"),
            (topology.DECISIONS_BUCKET, "consent.c1"),
            (topology.DECISIONS_BUCKET, "eligibility.s1"),
        ):
            with pytest.raises(KeyNotFoundError):  # purged, every revision
                await (await nc.jetstream().key_value(bucket)).get(f"{org}.{key}")
        match = await match_of(nc, org, "c1")
        assert (match.status, match.proposals, match.waitlist_reason) == ("erased", [], None)
        other = await client.request(other_org, ExportPersonData(person="client", subject_id="c1"))
        assert isinstance(other, PersonData)
        their_name = intake("c1", ["en"]).client.display_name
        assert other.held["case"]["intake"]["client"]["display_name"] == their_name
    finally:
        written = capsys.readouterr()
        structlog.reset_defaults()

    for person, wrapped in keys.items():
        assert everywhere(nats_server, wrapped) == [], f"{person}'s key"
    markers = [m for marker in MARKERS.values() for m in (marker, marker.replace("_", " "))]
    assert [m for m in markers if everywhere(nats_server, m.encode())] == []
    logged = "\n".join([written.out, written.err, caplog.text]).lower()
    assert "person_erased" in logged  # the lines were captured
    assert [m for m in markers if m.lower() in logged] == []
