"""Benchmark of the console's HTTP API: a command through it against the same command sent
straight over NATS, in the same run.

A real nats-server (``sync_interval: always``, auth on) and the intake service in this
process, as ``alongside up`` runs them; the console served by uvicorn on a loopback port,
its organisation connection with the organisation's own credential. One at a time (the
latency a coordinator's click sees), alternating rounds:

  - ``nats``: ``SubmitIntake`` sent as the CLI sends it (an envelope, request/reply), with
    the organisation's credential;
  - ``http``: the same command's payload posted to ``/api/orgs/{org}/commands/SubmitIntake``
    by a signed-in coordinator (session cookie, CSRF token, ``Idempotency-Key``), over a
    kept-alive HTTP connection (``httpx``).

Every command is a new case (same seeded records in both paths). Per path: p50 and p99 in
ms over all rounds, and the ratio http / nats. The last line is JSON.

    python -m bench.console [--n 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from alongside import sample, services
from alongside.client import AlongsideClient
from bench import console_serving, deployment, register
from contracts.replies import CommandAccepted
from runtime import bus, topology
from runtime.access import ADMIN, SERVICE_NEEDS, SYSTEM_USER, AuthDir
from runtime.clock import SYSTEM
from runtime.credentials import Credentials
from runtime.embedded import EmbeddedNats
from runtime.settings import Settings

SEED = 20261129
ORG = "bench"
PASSWORD = "a long benchmark password"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(n: int, rounds: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder)
        auth = AuthDir.init(state / "auth", SERVICE_NEEDS, int(SYSTEM().timestamp()))
        settings = deployment(state, log_level="ERROR")
        with EmbeddedNats(state / "nats", auth=auth) as server:
            return await measure(server.url, auth, state, settings, n, rounds)


async def measure(
    url: str, auth: AuthDir, state: Path, settings: Settings, n: int, rounds: int
) -> dict[str, object]:
    admin = await bus.connect(url, "bench-admin", auth.credentials(ADMIN))
    system = await bus.connect(url, "bench-system", auth.credentials(SYSTEM_USER))
    await topology.provision(admin.jetstream(), settings)
    await register(admin.jetstream(), ORG, settings=settings)
    running = await services.start(url, ["intake"], settings, credentials=auth.credentials)
    credentials = Credentials(
        await admin.jetstream().key_value(topology.CREDENTIALS_BUCKET),
        admin.jetstream(),
        auth,
        system,
        SYSTEM,
    )
    org_creds = state / "org.creds"
    org_creds.write_text((await credentials.issue(ORG, "integration", "bench-cli")).text)
    as_org = await bus.connect(url, "bench-org", org_creds)
    cli = AlongsideClient(as_org, source="bench/cli", sender="bench-cli")
    try:
        async with console_serving(url, auth, state, settings, admin, credentials, ORG) as http:
            rng = random.Random(SEED)
            count = iter(range(10**9))

            async def by_nats() -> None:
                reply = await cli.submit(ORG, sample.intake(rng, f"n{next(count)}"))
                assert isinstance(reply, CommandAccepted), reply

            async def by_http() -> None:
                i = next(count)
                body = json.loads(sample.intake(rng, f"h{i}").model_dump_json())
                response = await http.post(
                    f"/api/orgs/{ORG}/commands/SubmitIntake",
                    json=body,
                    headers={"Idempotency-Key": f"bench-{i}"},
                )
                assert response.status_code == 200, response.text

            timings: dict[str, list[float]] = {"nats": [], "http": []}
            for _ in range(30):  # warm up both paths
                await by_nats()
                await by_http()
            for _ in range(rounds):
                for name, send in (("nats", by_nats), ("http", by_http)):
                    for _ in range(n):
                        started = time.perf_counter()
                        await send()
                        timings[name].append((time.perf_counter() - started) * 1000)
    finally:
        await running.stop()
        await as_org.close()
        await system.close()
        await admin.close()
    figures: dict[str, object] = {
        "seed": SEED,
        "n_per_round": n,
        "rounds": rounds,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
    }
    for name, values in timings.items():
        figures[f"{name}_p50_ms"] = round(statistics.median(values), 3)
        figures[f"{name}_p99_ms"] = round(percentile(values, 0.99), 3)
    figures["http_to_nats_p50_ratio"] = round(
        statistics.median(timings["http"]) / statistics.median(timings["nats"]), 2
    )
    figures["http_to_nats_p99_ratio"] = round(
        percentile(timings["http"], 0.99) / percentile(timings["nats"], 0.99), 2
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="commands per path per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    figures = asyncio.run(run(args.n, args.rounds))
    print(
        f"p50 {figures['nats_p50_ms']} ms over NATS, {figures['http_p50_ms']} ms over HTTP "
        f"(x{figures['http_to_nats_p50_ratio']})",
        file=sys.stderr,
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
