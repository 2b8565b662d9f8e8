"""An outside service: it knows Alongside only through ``contracts/``, nats-py and the
credentials file an operator gave it (``alongside orgs credentials ORG -o FILE``).

Run as a script: reads one organisation's events through its own durable consumer (so a
second run goes on where the first stopped), prints them as JSON lines, then checks that
nothing but contracts was imported from this project.
"""

from __future__ import annotations

import asyncio
import json
import sys

import nats
from nats.js.api import AckPolicy, ConsumerConfig

from contracts import catalogue, subjects
from contracts.envelope import RawEnvelope


async def main(url: str, credentials: str, org: str, expected: int) -> None:
    # The credential's permissions allow replies only under the organisation's inbox prefix.
    nc = await nats.connect(url, user_credentials=credentials, inbox_prefix=subjects.org_inbox(org))
    js = nc.jetstream()
    stream = subjects.org_events_stream(org)
    durable = "outside-feed"
    await js.add_consumer(stream, ConsumerConfig(
        name=durable, durable_name=durable, ack_policy=AckPolicy.EXPLICIT,
    ))  # fmt: skip
    sub = await js.pull_subscribe_bind(
        durable, stream, inbox_prefix=f"{subjects.org_inbox(org)}.".encode()
    )
    received = 0
    while received < expected:
        for msg in await sub.fetch(expected - received, timeout=10):
            envelope = RawEnvelope.model_validate_json(msg.data)
            event = catalogue.EVENTS[envelope.type].model_validate(envelope.data)
            print(json.dumps({"org": envelope.org, "type": envelope.type,
                              "event": event.model_dump(mode="json")}))  # fmt: skip
            await msg.ack_sync()
            received += 1
    await nc.close()
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in {"alongside", "services"})
    if leaked:
        raise SystemExit(f"imported more than contracts: {leaked}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
