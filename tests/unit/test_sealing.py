"""Sealing a record's personal and sensitive fields with its person's key, and opening them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.intake import Stage
from contracts.records import CaseMatch, CaseRecord, Offer, SupporterRecord
from contracts.rules import FiredRule, Kind, RulesDecision, RulesetRef
from runtime import topology
from runtime.vault import DecisionSealer, Erased, Person, Sealer, sealer_of
from tests.fakes import FakeVault
from tests.support import MARKERS, marked_intake, marked_supporter

NOW = datetime(2026, 4, 5, 2, 30, tzinfo=UTC)  # an hour daylight saving ends somewhere


def supporter_record() -> dict[str, Any]:
    command = marked_supporter("s1")
    record = SupporterRecord(
        supporter_id="s1", profile=command.profile, registered_at=NOW, updated_at=NOW
    )
    return record.model_dump(mode="json")


def case_record() -> dict[str, Any]:
    record = CaseRecord(
        case_id="c1", intake=marked_intake("c1"), stage=Stage.ENTRY, opened_at=NOW, updated_at=NOW
    )
    return record.model_dump(mode="json")


@pytest.mark.parametrize(
    ("person", "model", "record"),
    [
        ("supporter", SupporterRecord, supporter_record),
        ("client", CaseRecord, case_record),
    ],
)
async def test_a_sealed_record_holds_no_marker_and_opens_to_what_it_was(
    person: Person, model: type[Any], record: Any
) -> None:
    vault = FakeVault()
    sealer = Sealer(vault, person, model, "place")
    original = record()
    sealed = await sealer.seal("acme", "p1", json.loads(json.dumps(original)))
    text = json.dumps(sealed)
    assert [name for name, marker in MARKERS.items() if marker in text] == []
    assert sealed.get("supporter_id", sealed.get("case_id")) in {"s1", "c1"}  # ids stay plain
    opened = await sealer.open("acme", "p1", json.loads(text))
    assert opened == original
    assert model.model_validate(opened)


async def test_a_field_sealed_for_one_place_does_not_open_in_another() -> None:
    vault = FakeVault()
    sealed = await Sealer(vault, "client", CaseRecord, "cases").seal("acme", "c1", case_record())
    with pytest.raises(ValueError, match="another place"):
        await Sealer(vault, "client", CaseRecord, "elsewhere").open("acme", "c1", sealed)


async def test_an_erased_persons_record_cannot_be_opened_and_an_unsealed_one_opens_as_it_is() -> (
    None
):
    vault = FakeVault()
    sealer = Sealer(vault, "supporter", SupporterRecord, "supporters")
    sealed = await sealer.seal("acme", "s1", supporter_record())
    vault.erased["acme", "supporter", "s1"] = "erase-1"
    with pytest.raises(Erased):
        await sealer.open("acme", "s1", sealed)
    plain = supporter_record()
    assert await sealer.open("acme", "s9", json.loads(json.dumps(plain))) == plain


def match_record() -> dict[str, Any]:
    offer = Offer(
        supporter_id="s1",
        score=0.9,
        matched=[f"has been through {MARKERS['lived']}"],
        unmatched=["a maori cultural background"],
        matched_on=["lived_experience"],
        held_until=NOW,
    )
    match = CaseMatch(
        case_id="c1",
        status="waitlisted",
        proposals=[offer],
        since=NOW,
        updated_at=NOW,
        waitlist_reason=f"no one speaks {MARKERS['lived']}",
    )
    return match.model_dump(mode="json")


async def test_a_record_that_outlives_its_person_opens_blank_once_they_are_erased() -> None:
    """Matching's and scheduling's records keep ids, dates and outcomes for reports: once
    the client is erased they open with the client's fields blank, and can be saved again
    without a key; intake's records of an erased person do not open at all."""
    vault = FakeVault()
    matches = sealer_of(vault, topology.MATCHES_BUCKET)
    sealed = await matches.seal("acme", "c1", match_record())
    assert MARKERS["lived"] not in json.dumps(sealed)
    assert await vault.erase("acme", "client", "c1")
    opened = CaseMatch.model_validate(await matches.open("acme", "c1", sealed))
    assert (opened.waitlist_reason, opened.proposals[0].matched) == (None, [])
    assert (opened.status, opened.proposals[0].supporter_id) == ("waitlisted", "s1")
    resealed = await matches.seal("acme", "c1", opened.model_dump(mode="json"))
    assert CaseMatch.model_validate(resealed) == opened
    cases = sealer_of(vault, topology.CASES_BUCKET)
    with pytest.raises(Erased):
        await cases.seal("acme", "c1", case_record())


async def test_a_decision_written_several_times_is_sealed_once_and_a_changed_one_again() -> None:
    vault = FakeVault()
    sealer = DecisionSealer(vault)
    fired = FiredRule(
        rule="r", outcome="policy", reason="Wants Te Reo Māori", effect={"values": ["mi"]}
    )
    decision = RulesDecision(
        kind=Kind.MATCHING_POLICY,
        subject_id="c1",
        outcome="policy",
        fired=[fired],
        ruleset=RulesetRef(org="acme", kind=Kind.MATCHING_POLICY, version="1", content_hash="h"),
        decided_at=NOW,
        decision_id="d1",
    )

    first = await sealer.seal("acme", decision.model_dump(mode="json"))
    again = await sealer.seal("acme", decision.model_dump(mode="json"))
    assert again is first  # the same ciphertext, not sealed anew
    assert "Te Reo" not in json.dumps(first)
    changed = decision.model_copy(update={"outcome": "other"})  # same id, other content
    other = await sealer.seal("acme", changed.model_dump(mode="json"))
    assert other is not first
    assert (await sealer.open("acme", json.loads(json.dumps(other))))["outcome"] == "other"
    opened = await sealer.open("acme", json.loads(json.dumps(first)))
    assert opened == decision.model_dump(mode="json")
