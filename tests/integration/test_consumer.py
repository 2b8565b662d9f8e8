"""The shared durable consumer: typed handlers, bounded redelivery, then a dead letter with
the reason; an invalid payload is dead-lettered at once, an event nobody handles is acked."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

from nats.aio.client import Client

from contracts import catalogue, subjects
from contracts.envelope import RawEnvelope, wrap
from contracts.intake import CaseStageChanged, IntakeReceived, Stage
from contracts.views import CaseViewed
from runtime import bus, topology
from runtime.access import ADMIN, AuthDir
from runtime.changes import NotYet
from runtime.clock import SYSTEM
from runtime.consumer import subscribe
from runtime.dispatch import Handlers, Meta
from runtime.settings import Settings
from tests.support import opened_letter


async def dead_letters(nc: Client, org: str, expected: int) -> list[RawEnvelope]:
    sub = await nc.jetstream().subscribe(subjects.dead_letters(org), ordered_consumer=True)
    letters: list[RawEnvelope] = []
    try:
        while len(letters) < expected:
            msg = await sub.next_msg(timeout=10)
            letters.append(await opened_letter(nc, RawEnvelope.model_validate_json(msg.data)))
    finally:
        await sub.unsubscribe()
    return letters


async def test_failing_message_is_redelivered_then_dead_lettered(
    provisioned: str, auth: AuthDir, nc: Client, org: str
) -> None:
    settings = Settings(max_deliver=3, ack_wait_s=1.0)
    spec = topology.ConsumerSpec(
        service="probe",
        durable=f"probe-{org}",
        stream=topology.EVENTS_STREAM,
        filter_subjects=(subjects.events(org),),
    )
    js = nc.jetstream()
    await topology.provision_consumer(js, spec, settings)
    calls: dict[str, int] = {}
    handlers: Handlers[None] = Handlers("probe")

    @handlers.on(CaseStageChanged)
    async def on_case_stage_changed(event: CaseStageChanged, meta: Meta, deps: None) -> None:
        assert meta.org == org
        calls[event.case_id] = calls.get(event.case_id, 0) + 1
        if event.case_id == "poison":
            raise RuntimeError("cannot handle this one")

    broker = bus.make_broker(provisioned, "probe", auth.credentials(ADMIN))
    subscribe(broker, spec, settings, handlers, None, SYSTEM, batch_size=10)
    await broker.start()
    try:
        for case_id in ("good", "poison", "after"):
            event = CaseStageChanged(case_id=case_id, from_stage=Stage.ENTRY, to_stage=Stage.CLOSED)
            envelope: Any = wrap(event, org=org, source="test", time=SYSTEM())
            await bus.publish_event(js, envelope)
        # Nobody here handles this type: acknowledged, neither handled nor dead-lettered.
        unwanted = IntakeReceived(
            case_id="other", scheme="s", stage=Stage.ENTRY, party_ids=[], has_other_support=False
        )
        await bus.publish_event(js, wrap(unwanted, org=org, source="test", time=SYSTEM()))
        # A CaseStageChanged without its case: the contract refuses it before any handler.
        invalid = wrap(event, org=org, source="test", time=SYSTEM()).model_dump(mode="json")
        del invalid["data"]["case_id"]
        await bus.publish_durably(
            js,
            subjects.event(org, "CaseStageChanged"),
            json.dumps(invalid).encode(),
            "raw-0",
            stream=topology.EVENTS_STREAM,
        )
        await bus.publish_durably(
            js,
            subjects.event(org, "CaseStageChanged"),
            b"not an envelope",
            "raw-1",
            stream=topology.EVENTS_STREAM,
        )
        # What the fuzz found acknowledged with no trace, or retried to exhaustion:
        good = wrap(event, org=org, source="test", time=SYSTEM()).model_dump(mode="json")
        mislabelled = {**good, "id": "raw-2", "type": "SupporterRegistered"}
        newer = {**good, "id": "raw-3", "schemaversion": "2.0"}
        unkeyable = {**good, "id": "raw-4", "data": {**good["data"], "case_id": ""}}
        for raw_id, body in [
            ("raw-2", json.dumps(mislabelled).encode()),  # routed by its envelope's type
            ("raw-3", json.dumps(newer).encode()),
            ("raw-4", json.dumps(unkeyable).encode()),  # an id no store can key
            ("raw-5", b"[" * 20_000 + b"]" * 20_000),  # FastStream's decoder raised on it
        ]:
            await bus.publish_durably(
                js,
                subjects.event(org, "CaseStageChanged"),
                body,
                raw_id,
                stream=topology.EVENTS_STREAM,
            )
        letters = await dead_letters(nc, org, expected=7)
        for _ in range(100):  # the good ones may still be in flight
            if {"good", "after"} <= calls.keys():
                break
            await asyncio.sleep(0.05)
    finally:
        await broker.stop()

    assert calls == {"good": 1, "poison": 3, "after": 1}
    reasons = sorted(letter.data["reason"] for letter in letters)
    assert reasons[0] == "CaseStageChanged 2.0 is not readable here; this version reads 1.x"
    assert reasons[1].startswith("failed 3 times; last: RuntimeError: cannot handle this one")
    assert reasons[2] == "invalid CaseStageChanged: data.case_id: required: fill it in"
    assert reasons[3].startswith("invalid CaseStageChanged: data.case_id: use only letters")
    assert reasons[4].startswith("malformed envelope: body: is not JSON (expected ident")
    assert reasons[5].startswith("malformed envelope: body: is not JSON (recursion limit")
    assert reasons[6].startswith("type mismatch: subject")
    assert {letter.data["service"] for letter in letters} == {"probe"}
    originals = {letter.data["original"] for letter in letters}
    assert "not an envelope" in originals


async def test_an_event_whose_state_is_not_readable_yet_is_looked_at_again_later(
    provisioned: str, auth: AuthDir, nc: Client, org: str
) -> None:
    settings = Settings(max_deliver=4, ack_wait_s=5.0, not_yet_delay_s=0.05)
    spec = topology.ConsumerSpec(
        service="probe",
        durable=f"probe-later-{org}",
        stream=topology.EVENTS_STREAM,
        filter_subjects=(subjects.events(org),),
    )
    js = nc.jetstream()
    await topology.provision_consumer(js, spec, settings)
    seen: dict[str, int] = {}
    handlers: Handlers[None] = Handlers("probe")

    @handlers.on(CaseStageChanged)
    async def on_case_stage_changed(event: CaseStageChanged, meta: Meta, deps: None) -> None:
        seen[event.case_id] = seen.get(event.case_id, 0) + 1
        if event.case_id == "never" or seen[event.case_id] < 3:
            raise NotYet(f"{event.case_id} is not readable here yet")

    broker = bus.make_broker(provisioned, "probe", auth.credentials(ADMIN))
    subscribe(broker, spec, settings, handlers, None, SYSTEM, batch_size=10)
    await broker.start()
    try:
        for case_id in ("soon", "never"):
            event = CaseStageChanged(case_id=case_id, from_stage=Stage.ENTRY, to_stage=Stage.CLOSED)
            await bus.publish_event(js, wrap(event, org=org, source="test", time=SYSTEM()))
        [letter] = await dead_letters(nc, org, expected=1)
        for _ in range(100):
            if seen.get("soon") == 3:
                break
            await asyncio.sleep(0.05)
    finally:
        await broker.stop()

    assert seen == {"soon": 3, "never": 4}  # handled once readable; the other, up to the bound
    assert letter.data["reason"] == (
        "still not readable after 4 deliveries: never is not readable here yet"
    )


async def test_a_consumer_is_sent_only_the_events_it_handles_and_an_old_filter_is_replaced(
    provisioned: str, nc: Client, org: str
) -> None:
    js = nc.jetstream()
    wide = topology.ConsumerSpec(
        service="probe",
        durable=f"probe-filter-{org}",
        stream=topology.EVENTS_STREAM,
        filter_subjects=(subjects.events(org),),
    )
    # As a deployment made before consumers were filtered by type: every event.
    await topology.provision_consumer(js, wide, Settings())
    handled = [event.type_name for event in catalogue.CONSUMED_BY["rules"]]
    narrow = dataclasses.replace(
        wide, filter_subjects=tuple(subjects.events(org, t) for t in handled)
    )
    await topology.provision_consumer(js, narrow, Settings())

    info = await js.consumer_info(narrow.stream, narrow.durable)
    assert sorted(info.config.filter_subjects or []) == sorted(narrow.filter_subjects)
    intake = IntakeReceived(
        case_id="c1", scheme="s", stage=Stage.ENTRY, party_ids=[], has_other_support=False
    )
    # Rules handles IntakeReceived, not CaseViewed: the server holds back the second.
    viewed = CaseViewed(case_id="c1", command_id="v1", viewed_by="console:ana@example.org")
    for event in (intake, viewed, intake.model_copy(update={"case_id": "c2"})):
        await bus.publish_event(js, wrap(event, org=org, source="test", time=SYSTEM()))
    info = await js.consumer_info(narrow.stream, narrow.durable)
    assert info.num_pending == 2
