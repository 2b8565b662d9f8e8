"""An outside service: it knows Alongside only through ``contracts/`` (and nats-py).

Run as a script: prints the events of one organisation as JSON lines, then
checks that nothing but contracts was imported from this project.
"""

from __future__ import annotations

import asyncio
import json
import sys

import nats

from contracts import catalogue, subjects
from contracts.envelope import RawEnvelope


async def main(url: str, org: str, expected: int) -> None:
    nc = await nats.connect(url)
    sub = await nc.jetstream().subscribe(subjects.events(org), ordered_consumer=True)
    for _ in range(expected):
        msg = await sub.next_msg(timeout=10)
        envelope = RawEnvelope.model_validate_json(msg.data)
        event = catalogue.EVENTS[envelope.type].model_validate(envelope.data)
        print(json.dumps({"type": envelope.type, "event": event.model_dump(mode="json")}))
    await nc.close()
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in {"alongside", "services"})
    if leaked:
        raise SystemExit(f"imported more than contracts: {leaked}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
