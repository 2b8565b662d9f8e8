"""Every service, by name, and how to run them in this process.

A service is a ``bootstrap`` (dependencies from a NATS connection) and a
``register`` (its FastStream subscribers). ``alongside up`` runs them all
against the embedded server, or the named ones against a configured NATS, so
the same code runs as one process or as separately scaled replicas.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from faststream.nats import NatsBroker
from nats.aio.client import Client

from alongside.runtime.bus import make_broker
from alongside.runtime.logging import get_logger
from services.intake import app as intake_app
from services.intake import bootstrap as intake_bootstrap

log = get_logger(__name__)


@dataclass(frozen=True)
class Service:
    name: str
    bootstrap: Callable[[Client], Awaitable[Any]]
    register: Callable[[NatsBroker, Any], None]


SERVICES: dict[str, Service] = {
    "intake": Service("intake", intake_bootstrap.bootstrap, intake_app.register),
}


async def start(url: str, names: list[str]) -> list[NatsBroker]:
    """Start the named services; each gets its own broker (connection)."""
    unknown = sorted(set(names) - set(SERVICES))
    if unknown:
        raise ValueError(f"unknown service(s) {', '.join(unknown)}; known: {', '.join(SERVICES)}")
    brokers = []
    for name in names:
        service = SERVICES[name]
        broker = make_broker(url, name)
        await broker.connect()
        service.register(broker, await service.bootstrap(broker.connection))
        await broker.start()
        # Make sure the server has our subscriptions before anyone is told we are up.
        await broker.connection.flush()
        brokers.append(broker)
        log.info("service_started", service=name)
    return brokers


async def stop(brokers: list[NatsBroker]) -> None:
    for broker in brokers:
        await broker.stop()
