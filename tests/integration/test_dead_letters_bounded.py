"""Dead letters are bounded per organisation, service and sender: one credential's flood of
junk drops its own oldest letters, never another organisation's or another sender's; and junk already answered with its field
errors is kept as its first bytes and a hash, not whole. On a server of this module's own,
its DEADLETTERS stream small (1 MiB, 200 letters a subject) so that a flood fills it."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.js.api import StreamConfig

from alongside.client import AlongsideClient
from contracts import subjects
from contracts.envelope import RawEnvelope
from contracts.replies import DeadLetter
from runtime import bus, topology
from runtime.access import ADMIN, AuthDir
from runtime.credentials import Credentials
from runtime.embedded import EmbeddedNats
from runtime.settings import Settings

SMALL = Settings(deadletters_max_bytes=2**20, deadletters_per_subject=200)
FLOOD = 2000


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory, auth: AuthDir) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(tmp_path_factory.mktemp("nats-dead-letters"), auth=auth)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def provisioned(nats_server: EmbeddedNats, auth: AuthDir) -> str:
    nc = await bus.connect(nats_server.url, "tests-provision", auth.credentials(ADMIN))
    await topology.provision(nc.jetstream(), SMALL)
    await nc.close()
    return nats_server.url


def junk(org: str, n: int) -> bytes:
    """A command that is no envelope (its time is no time), about 4 kB, as a careless or
    hostile client sends it."""
    return json.dumps(
        {
            "specversion": "1.0",
            "id": f"junk-{n}",
            "type": "SubmitIntake",
            "source": "flood",
            "org": org,
            "time": "never",
            "schemaversion": "1.0",
            "data": {"notes": "x" * 4000},
        }
    ).encode()


async def letters_on(nc: Client, subject: str) -> int:
    info = await nc.jetstream().stream_info(topology.DEADLETTER_STREAM, subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0))


@pytest.mark.usefixtures("intake")
async def test_a_flood_from_one_sender_does_not_push_out_anothers_letter(
    nc: Client,
    org: str,
    other_org: str,
    credentials: Credentials,
    tmp_path: Path,
    provisioned: str,
) -> None:
    client = AlongsideClient(nc, source="tests")
    js = nc.jetstream()
    genuine = junk(other_org, 0)
    await client.request_raw(other_org, "intake", "SubmitIntake", genuine, retry_for=0)
    # One of the same organisation's integrations sent junk too, before the flood.
    path = tmp_path / "crm.creds"
    path.write_text((await credentials.issue(org, "integration", "crm")).text)
    crm = await bus.connect(provisioned, "tests-crm", path)
    await AlongsideClient(crm, sender="crm").request_raw(
        org, "intake", "SubmitIntake", junk(org, -1), retry_for=0
    )
    await crm.close()
    slots = asyncio.Semaphore(32)

    async def flood(n: int) -> None:
        async with slots:
            reply = await client.request_raw(
                org, "intake", "SubmitIntake", junk(org, n), retry_for=0
            )
            assert reply.status == "rejected"  # type: ignore[attr-defined]

    await asyncio.gather(*(flood(n) for n in range(FLOOD)))

    flooded = subjects.dead_letter(org, "intake", subjects.OPERATOR)
    theirs = subjects.dead_letter(other_org, "intake", subjects.OPERATOR)
    assert await letters_on(nc, flooded) == SMALL.deadletters_per_subject
    assert await letters_on(nc, theirs) == 1
    assert await letters_on(nc, subjects.dead_letter(org, "intake", "crm")) == 1
    kept = await js.get_last_msg(topology.DEADLETTER_STREAM, theirs)
    assert kept.data is not None
    letter = await bus.read_dead_letter(
        bus.DeadLetters(Settings()).sealer(js), RawEnvelope.model_validate_json(kept.data)
    )
    assert letter.original_sha256 == hashlib.sha256(genuine).hexdigest()
    # The cap per subject is what kept it: the flood's letters alone outgrow the stream.
    info = await js.stream_info(topology.DEADLETTER_STREAM)
    per_letter = info.state.bytes / info.state.messages
    assert per_letter * FLOOD > SMALL.deadletters_max_bytes
    assert info.state.bytes <= SMALL.deadletters_max_bytes


@pytest.mark.usefixtures("intake")
async def test_junk_answered_with_field_errors_is_kept_as_its_first_bytes_and_a_hash(
    nc: Client, org: str
) -> None:
    client = AlongsideClient(nc, source="tests")
    body = junk(org, 1)
    reply = await client.request_raw(org, "intake", "SubmitIntake", body, retry_for=0)
    assert reply.status == "rejected"  # type: ignore[attr-defined]
    js = nc.jetstream()
    kept = await js.get_last_msg(
        topology.DEADLETTER_STREAM, subjects.dead_letter(org, "intake", subjects.OPERATOR)
    )
    assert kept.data is not None
    assert len(kept.data) < 3000  # the whole would be over 5 kB sealed
    letter = await bus.read_dead_letter(
        bus.DeadLetters(Settings()).sealer(js), RawEnvelope.model_validate_json(kept.data)
    )
    assert letter.original.encode() == body[: DeadLetter.MALFORMED_KEPT]
    assert letter.original_truncated
    assert letter.original_size == len(body)
    assert letter.original_sha256 == hashlib.sha256(body).hexdigest()
    assert letter.reason.startswith("malformed envelope: time: ")


async def test_provisioning_bounds_an_existing_deployments_dead_letters_per_subject(
    nc: Client,
) -> None:
    js = nc.jetstream()
    before = (await js.stream_info(topology.DEADLETTER_STREAM)).config
    assert before.max_msgs_per_subject == SMALL.deadletters_per_subject
    # As a deployment provisioned by an earlier version has it: no bound per subject.
    unbounded = StreamConfig.from_response({**before.as_dict(), "max_msgs_per_subject": -1})
    await js.update_stream(unbounded)
    assert (await js.stream_info(topology.DEADLETTER_STREAM)).config.max_msgs_per_subject == -1

    await topology.provision(js, SMALL)  # `alongside provision`, or `alongside up`

    after = (await js.stream_info(topology.DEADLETTER_STREAM)).config
    assert after.max_msgs_per_subject == SMALL.deadletters_per_subject
