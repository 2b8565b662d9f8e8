"""Record the messages of a demo run, for checking them against the exported schemas.

Runs ``alongside demo`` in this process with a tap that, as the operator, subscribes to
every Alongside subject (commands, events, dead letters) and to the reply inboxes, and
writes one JSON line per message: ``{"subject": ..., "data": <the message>}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from alongside.demo import run_demo
from runtime import bus
from runtime.access import ADMIN, AuthDir
from runtime.logging import configure

TAPPED = ("alongside.>", "_INBOX.>", "_INBOX_org.>", "_INBOX_svc.>")


async def capture() -> tuple[int, list[str]]:
    lines: list[str] = []
    taps: list[Client] = []

    async def record(msg: Msg) -> None:
        try:
            data: Any = json.loads(msg.data)
        except (ValueError, RecursionError):
            data = None  # the demo's deliberately malformed message, or not ours
        lines.append(json.dumps({"subject": msg.subject, "data": data}))

    async def tap(url: str, auth: AuthDir) -> None:
        nc = await bus.connect(url, "contracts-tap", auth.credentials(ADMIN))
        for subject in TAPPED:
            await nc.subscribe(subject, cb=record)
        await nc.flush()
        taps.append(nc)

    configure("ERROR", json=True)
    status = await run_demo(7, tap=tap)
    for nc in taps:
        await nc.close()
    return status, lines


def main(out: Path) -> int:
    status, lines = asyncio.run(capture())
    out.write_text("\n".join(lines) + "\n")
    print(f"captured {len(lines)} messages from the demo into {out}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
