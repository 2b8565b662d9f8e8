"""Health, readiness and metrics endpoints of a process that runs services.

- ``GET /health/<service>``: 204 while that service's connection reaches NATS, 500 when it
  does not, 503 while it is still starting (a liveness check: restart what stays 500);
- ``GET /ready/<service>``: 204 once the service has started (its stores open, its rules
  loaded, its subscribers answering through their queue group) and while it reaches NATS,
  else 503 with the reason (a readiness check: send it work, or count it in, only then);
- ``GET /health`` and ``GET /ready``: the same for every service of the process;
- ``GET /metrics``: Prometheus's text format (``runtime/metrics.py``).

Served on ``ALONGSIDE_HEALTH_PORT`` when it is set, from before the services start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import uvicorn
from faststream.asgi import AsgiResponse
from faststream.nats import NatsBroker
from prometheus_client import make_asgi_app

from runtime import metrics, topology
from runtime.logging import get_logger

log = get_logger(__name__)

PING_TIMEOUT_S = 2.0

Scope = dict[str, Any]


class Process:
    """The services of one process as they start: ``brokers`` once connected, ``ready``
    once answering. Both are filled in place, so the endpoints see the start as it goes."""

    def __init__(
        self, names: Sequence[str], brokers: Mapping[str, NatsBroker], ready: Collection[str]
    ) -> None:
        self.names, self.brokers, self.ready = list(names), brokers, ready

    async def health(self, name: str) -> tuple[int, str]:
        broker = self.brokers.get(name)
        if broker is None:
            return 503, f"{name}: starting"
        if not await broker.ping(PING_TIMEOUT_S):
            return 500, f"{name}: NATS out of reach"
        return 204, ""

    async def readiness(self, name: str) -> tuple[int, str]:
        if name not in self.ready:
            return 503, f"{name}: starting"
        code, reason = await self.health(name)
        return (204, "") if code == 204 else (503, reason)


def health_app(process: Process) -> Any:
    exposition = make_asgi_app(registry=metrics.REGISTRY)
    checks = {"health": process.health, "ready": process.readiness}

    async def answer(path: str) -> tuple[int, str]:
        kind, _, name = path.strip("/").partition("/")
        check = checks.get(kind)
        if check is None or (name and name not in process.names):
            return 404, "not found"
        said = [await check(one) for one in ([name] if name else process.names)]
        failing = [(code, reason) for code, reason in said if code != 204]
        if not failing:
            return 204, ""
        return max(code for code, _ in failing), "\n".join(reason for _, reason in failing)

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/metrics":
            await exposition(scope, receive, send)
            return
        code, reason = await answer(scope["path"])
        await AsgiResponse(reason.encode(), code)(scope, receive, send)

    return app


QUEUES_EVERY_S = 15.0


async def watch_queues(brokers: Mapping[str, NatsBroker], every_s: float = QUEUES_EVERY_S) -> None:
    """Keep each service's queue depth in the metrics: its durable consumer's pending and
    unacknowledged events, as the server says (a service's credential may ask)."""
    specs = {spec.service: spec for spec in topology.CONSUMERS}
    while True:
        for name, broker in list(brokers.items()):  # services may still be starting
            spec = specs.get(name)
            if spec is None:
                continue
            try:
                info = await broker.connection.jetstream().consumer_info(spec.stream, spec.durable)
            except Exception as error:  # unreachable for now: the gauges keep their last word
                log.warning("queue_depth_unknown", service=name, error=type(error).__name__)
                continue
            metrics.QUEUE_PENDING.labels(name).set(info.num_pending or 0)
            metrics.QUEUE_UNACKED.labels(name).set(info.num_ack_pending or 0)
        await asyncio.sleep(every_s)


async def serve(process: Process, host: str, port: int) -> None:
    """The endpoints, and the queue depths behind ``/metrics``."""
    config = uvicorn.Config(
        health_app(process),
        host=host,
        port=port,
        lifespan="off",
        access_log=False,
        log_config=None,
        log_level="warning",
    )
    watching = asyncio.create_task(watch_queues(process.brokers))
    try:
        await uvicorn.Server(config).serve()
    finally:
        watching.cancel()
