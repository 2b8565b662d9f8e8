"""An outside service: it knows Alongside only through ``contracts/``, nats-py and the
credentials file an operator gave it (``alongside orgs credentials ORG --kind subscriber
--name NAME -o FILE``).

Run as a script: reads one organisation's events through the durable consumer the operator
made for its credential (so a second run goes on where the first stopped), prints them as
JSON lines, then checks that nothing but contracts was imported from this project.
"""

from __future__ import annotations

import asyncio
import json
import sys

import nats

from contracts import catalogue, subjects
from contracts.envelope import RawEnvelope


async def main(url: str, credentials: str, org: str, name: str, expected: int) -> None:
    # The credential's permissions allow replies only under its own inbox prefix, and
    # reading only through its durable consumer, which has its name.
    inbox = subjects.org_inbox(org, name)
    nc = await nats.connect(url, user_credentials=credentials, inbox_prefix=inbox)
    sub = await nc.jetstream().pull_subscribe_bind(name, subjects.org_events_stream(org))
    received = 0
    while received < expected:
        for msg in await sub.fetch(expected - received, timeout=10):
            envelope = RawEnvelope.model_validate_json(msg.data)
            event = catalogue.EVENTS[envelope.type].model_validate(envelope.data)
            print(
                json.dumps(
                    {
                        "org": envelope.org,
                        "type": envelope.type,
                        "event": event.model_dump(mode="json"),
                    }
                )
            )
            await msg.ack_sync()
            received += 1
    await nc.close()
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in {"alongside", "services"})
    if leaked:
        raise SystemExit(f"imported more than contracts: {leaked}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
