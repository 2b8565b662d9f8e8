"""Retention: a closed case is kept as long as its organisation says and no longer; dead
letters past their days cannot be read even where a copy of them remains."""

from __future__ import annotations

from datetime import timedelta

import pytest
from nats.aio.client import Client

from alongside.client import AlongsideClient
from contracts import subjects
from contracts.envelope import RawEnvelope
from contracts.intake import ChangeCaseStage, ExportPersonData, PersonData, Stage
from contracts.replies import CommandRejected
from runtime import topology
from runtime.clock import ManualClock
from runtime.registry import Registry
from services.intake import retention
from services.intake.handlers import IntakeDeps
from tests.conftest import Start

# A server of its own: the sweep erases a day's dead-letter key for every organisation.
from tests.private_server import nats_server, provisioned  # noqa: F401
from tests.support import accepted, intake, opened_letter, wait_for

pytestmark = pytest.mark.nats


async def held(client: AlongsideClient, org: str, case_id: str) -> bool:
    reply = await client.request(org, ExportPersonData(person="client", subject_id=case_id))
    return isinstance(reply, PersonData)


async def test_a_closed_case_is_erased_once_its_organisations_retention_runs_out(
    start: Start,
    clock: ManualClock,
    client: AlongsideClient,
    nc: Client,
    org: str,
    other_org: str,
) -> None:
    running = await start("intake")
    deps: IntakeDeps = running.deps["intake"]
    registry = Registry(await nc.jetstream().key_value(topology.REGISTRY_BUCKET), clock)
    await registry.set_days(org, "retention_days", 30)
    for where in (org, other_org):  # the other keeps the default, seven years
        for case_id in ("c1", "c2"):
            await accepted(client, where, intake(case_id, ["en"]))
        await accepted(client, where, ChangeCaseStage(case_id="c1", stage=Stage.CLOSED))

    clock.advance(timedelta(days=29, hours=23))
    assert (await retention.sweep(deps)).cases_erased == 0
    clock.advance(timedelta(hours=1))
    assert (await retention.sweep(deps)).cases_erased == 1
    [erased] = await wait_for(client, org, "ClientErased")
    assert erased.data["case_id"] == "c1"
    assert erased.data["requested_by"] == "alongside/intake/retention"
    assert (await retention.sweep(deps)).cases_erased == 0  # done once
    assert not await held(client, org, "c1")
    assert await held(client, org, "c2")  # open: kept
    assert await held(client, other_org, "c1")  # closed, but its period is longer


async def test_dead_letters_past_their_days_read_as_nothing(
    start: Start, clock: ManualClock, client: AlongsideClient, nc: Client, org: str
) -> None:
    running = await start("intake")
    deps: IntakeDeps = running.deps["intake"]
    reply = await client.send_raw(org, "intake", "SubmitIntake", b'{"summary": "my landlord')
    assert isinstance(reply, CommandRejected)
    kept = await nc.jetstream().get_last_msg(
        topology.DEADLETTER_STREAM, subjects.dead_letter(org, "intake", subjects.OPERATOR)
    )
    letter = RawEnvelope.model_validate_json(kept.data or b"")
    assert (await opened_letter(nc, letter)).data["original"] == '{"summary": "my landlord'

    clock.advance(timedelta(days=deps.settings.deadletters_days))
    assert (await retention.sweep(deps)).dead_letter_days_erased == 0  # still within its days
    clock.advance(timedelta(days=1))
    # (Every organisation's letters of that day: others' on this server too.)
    assert (await retention.sweep(deps)).dead_letter_days_erased >= 1
    gone = await opened_letter(nc, letter)
    assert (gone.data["original"], gone.data["reason"]) == ("", "")
    assert gone.data["subject"] == subjects.command(
        org, "intake", "SubmitIntake", subjects.OPERATOR
    )
