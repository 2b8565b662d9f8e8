"""Durable JetStream consumption with bounded redelivery and dead letters.

FastStream's default (REJECT_ON_ERROR) terminates a message on any exception:
no retry, no trace. Here a failing handler's message is NACKed and redelivered
up to ``max_deliver`` times; on the last delivery, or at once when the message
cannot be read as an envelope of its subject's organisation, it goes to the
service's dead-letter subject with the reason and the original bytes, and is
acknowledged so it never blocks the consumer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage
from pydantic import ValidationError

from alongside.runtime import bus
from alongside.runtime.logging import get_logger
from alongside.runtime.topology import ConsumerSpec
from alongside.settings import Settings
from contracts import subjects
from contracts.envelope import RawEnvelope

log = get_logger(__name__)

Handler = Callable[[RawEnvelope], Awaitable[None]]


def subscribe(
    broker: NatsBroker,
    spec: ConsumerSpec,
    settings: Settings,
    handler: Handler,
    batch_size: int = 50,
) -> None:
    """Register ``handler`` on the durable consumer ``spec`` (which the topology created)."""

    @broker.subscriber(
        spec.filter_subject,
        stream=JStream(spec.stream, declare=False),
        durable=spec.durable,
        config=spec.config(settings),
        # A fetch returns as soon as messages arrive; the timeout only bounds an idle wait.
        # Kept long: nats-py 2.16 raises a plain asyncio.TimeoutError when a slow no-wait
        # probe uses up a short one, which FastStream 0.7.8 does not expect (it logs an error
        # and restarts the fetch task; nothing is lost).
        pull_sub=PullSub(batch_size=batch_size, timeout=5.0),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=f"{spec.service}:{spec.durable}",
    )
    async def on_message(message: NatsMessage) -> None:
        raw = message.raw_message
        deliveries = raw.metadata.num_delivered or 1
        org = subjects.org_of(raw.subject)

        async def give_up(reason: str) -> None:
            await bus.dead_letter(
                broker.connection.jetstream(), org=org, service=spec.service, reason=reason,
                subject=raw.subject, body=raw.data, headers=raw.headers, deliveries=deliveries,
            )  # fmt: skip

        try:
            envelope = RawEnvelope.model_validate_json(raw.data)
        except ValidationError as error:
            await give_up(
                f"malformed envelope: {error.errors()[0]['msg']} at {error.errors()[0]['loc']}"
            )
            return
        if envelope.org != org:
            await give_up(f"org mismatch: subject {org!r}, envelope {envelope.org!r}")
            return
        try:
            await handler(envelope)
        except Exception as error:
            if deliveries >= settings.max_deliver:
                await give_up(f"failed {deliveries} times; last: {type(error).__name__}: {error}")
                return
            log.warning(
                "redelivering",
                service=spec.service,
                deliveries=deliveries,
                error=type(error).__name__,
            )
            raise
