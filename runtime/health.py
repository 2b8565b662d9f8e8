"""Health and metrics endpoints of a process that runs services.

``GET /health/<service>`` answers 204 while that service's broker reaches NATS and 500
when it does not (FastStream's ping handler); ``GET /health`` answers for every service
in the process; ``GET /metrics`` is Prometheus's text format (``runtime/metrics.py``).
Served on ``ALONGSIDE_HEALTH_PORT`` when it is set.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import uvicorn
from faststream.asgi import AsgiResponse, make_ping_asgi
from faststream.nats import NatsBroker
from prometheus_client import make_asgi_app

from runtime import metrics, topology
from runtime.logging import get_logger

log = get_logger(__name__)

PING_TIMEOUT_S = 2.0

Scope = dict[str, Any]


def health_app(brokers: Mapping[str, NatsBroker]) -> Any:
    routes = {
        f"/health/{name}": make_ping_asgi(broker, timeout=PING_TIMEOUT_S)
        for name, broker in brokers.items()
    }

    async def every(scope: Scope, receive: Any, send: Any) -> None:
        healthy = [await broker.ping(PING_TIMEOUT_S) for broker in brokers.values()]
        await AsgiResponse(b"", 204 if all(healthy) else 500)(scope, receive, send)

    exposition = make_asgi_app(registry=metrics.REGISTRY)

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/metrics":
            await exposition(scope, receive, send)
            return
        handler = every if scope["path"] == "/health" else routes.get(scope["path"])
        if handler is None:
            await AsgiResponse(b"not found", 404)(scope, receive, send)
            return
        await handler(scope, receive, send)

    return app


QUEUES_EVERY_S = 15.0


async def watch_queues(brokers: Mapping[str, NatsBroker], every_s: float = QUEUES_EVERY_S) -> None:
    """Keep each service's queue depth in the metrics: its durable consumer's pending and
    unacknowledged events, as the server says (a service's credential may ask)."""
    specs = {spec.service: spec for spec in topology.CONSUMERS}
    while True:
        for name, broker in brokers.items():
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


async def serve(brokers: Mapping[str, NatsBroker], host: str, port: int) -> None:
    """The endpoints, and the queue depths behind ``/metrics``."""
    config = uvicorn.Config(
        health_app(brokers), host=host, port=port, lifespan="off", access_log=False,
        log_config=None, log_level="warning",
    )  # fmt: skip
    watching = asyncio.create_task(watch_queues(brokers))
    try:
        await uvicorn.Server(config).serve()
    finally:
        watching.cancel()
