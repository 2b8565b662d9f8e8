"""Durable JetStream consumption: typed event handlers, bounded redelivery, dead letters.

Each event goes to the service's handler of its type (``dispatch.Handlers``), its payload
validated against the catalogue's class first; an event type no handler wants is
acknowledged, a payload that fails validation is dead-lettered at once with its reason.

FastStream's default (REJECT_ON_ERROR) terminates a message on any exception:
no retry, no trace. Here a failing handler's message is NACKed with a doubling
delay and redelivered up to ``max_deliver`` times; on the last delivery, or at once when the message
cannot be read as an envelope of its subject's organisation, it goes to the
service's dead-letter subject with the reason and the original bytes, and is
acknowledged so it never blocks the consumer.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar, cast

from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage
from nats.aio.msg import Msg
from pydantic import ValidationError

from contracts import subjects
from contracts.envelope import MAX_EVENT_BYTES, RawEnvelope, unreadable_version
from contracts.replies import field_errors
from runtime import bus, metrics
from runtime.changes import NotYet
from runtime.clock import Clock
from runtime.dispatch import Handlers, Meta, handling
from runtime.logging import get_logger
from runtime.settings import Settings
from runtime.topology import ConsumerSpec
from runtime.vault import Erased

log = get_logger(__name__)

D = TypeVar("D")


def _deliveries(raw: Msg, service: str) -> int:
    """How many times this event has been delivered, counting each repeat for operators."""
    deliveries = raw.metadata.num_delivered or 1
    if deliveries > 1:
        metrics.REDELIVERIES.labels(service).inc()
    return deliveries


def _refuse_unfed(spec: ConsumerSpec, handlers: Handlers[D]) -> None:
    """A handler the consumer's filter never feeds is a mistake of ours: refuse to start."""
    unfed = [
        event_type
        for event_type in handlers.events
        if not any(subjects.last_token(f) in ("*", event_type) for f in spec.filter_subjects)
    ]
    if unfed:
        raise ValueError(
            f"{spec.service} handles {', '.join(unfed)}, which its consumer {spec.durable} "
            "does not take: add them to contracts.catalogue.CONSUMED_BY"
        )


def subscribe(
    broker: NatsBroker,
    spec: ConsumerSpec,
    settings: Settings,
    handlers: Handlers[D],
    deps: D,
    clock: Clock,
    batch_size: int = 50,
) -> None:
    """Hand each event on the durable consumer ``spec`` (which the topology created) to the
    handler of its type."""

    _refuse_unfed(spec, handlers)
    letters = bus.DeadLetters(settings)

    @broker.subscriber(
        # The durable consumer (created by the topology) holds the filter: it is bound to by
        # name, not by a subject.
        "",
        stream=JStream(spec.stream, declare=False),
        durable=spec.durable,
        config=spec.config(settings),
        # A fetch returns as soon as messages arrive; the timeout only bounds an idle wait.
        # Kept long: nats-py 2.16 raises a plain asyncio.TimeoutError when a slow no-wait
        # probe uses up a short one, which FastStream 0.7.8 does not expect (it restarts the
        # fetch task, nothing lost; runtime.logging.RoutineTimeouts keeps it off error).
        pull_sub=PullSub(batch_size=batch_size, timeout=5.0),
        # Fetched messages come to the inbox the service's credential may subscribe to.
        inbox_prefix=f"{subjects.service_inbox(spec.service)}.".encode(),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=f"{spec.service}:{spec.durable}",
        decoder=bus.the_message,
    )
    async def on_message(received: Any) -> None:
        message = cast(NatsMessage, received)
        raw = message.raw_message
        deliveries = _deliveries(raw, spec.service)
        try:
            org = subjects.org_of(raw.subject)
        except subjects.SubjectError:
            # No organisation to keep a dead letter under; the message stays in its stream.
            log.error(
                "unroutable_event",
                service=spec.service,
                subject=raw.subject,
                stream_sequence=raw.metadata.sequence.stream,
            )
            return

        async def give_up(reason: str) -> None:
            await letters.keep(
                broker.connection.jetstream(),
                org=org,
                service=spec.service,
                sender=subjects.EVENTS_SENDER,
                reason=reason,
                subject=raw.subject,
                body=raw.data,
                headers=raw.headers,
                deliveries=deliveries,
                # One letter per event and service, however often this runs.
                msg_id=f"{spec.service}-{raw.metadata.sequence.stream}",
                time=clock(),
            )

        try:
            if len(raw.data) > MAX_EVENT_BYTES:
                raise ValueError(
                    f"{len(raw.data)} bytes; an event may have at most {MAX_EVENT_BYTES}"
                )
            envelope = RawEnvelope.model_validate_json(raw.data)
        except (ValueError, ValidationError) as error:
            said = (
                "; ".join(f"{e.field}: {e.reason}" for e in field_errors(error))
                if isinstance(error, ValidationError)
                else str(error)
            )
            await give_up(f"malformed envelope: {said}")
            return
        if envelope.org != org:
            await give_up(f"org mismatch: subject {org!r}, envelope {envelope.org!r}")
            return
        if envelope.type != subjects.last_token(raw.subject):
            await give_up(f"type mismatch: subject {raw.subject!r}, envelope {envelope.type!r}")
            return
        route = handlers.events.get(envelope.type)
        if route is None:
            return  # not an event this service reacts to
        unreadable = unreadable_version(envelope.schemaversion, route.model)
        if unreadable is not None:
            await give_up(unreadable)
            return
        try:
            event = route.model.model_validate(envelope.data)
        except (ValidationError, TypeError, ArithmeticError) as error:
            said = (
                "; ".join(f"{e.field}: {e.reason}" for e in field_errors(error, "data"))
                if isinstance(error, ValidationError)
                else f"cannot be read: {error}"
            )
            await give_up(f"invalid {envelope.type}: {said}")
            return
        # Looked at again after 1, 2, 4, 8 ... s (capped at ack_wait): long enough for a
        # replica to catch up or a cluster to elect a stream leader (5-10 s), where
        # redelivering at once used up every delivery in 4 s and dead-lettered intakes.
        delay = min(settings.not_yet_delay_s * 2 ** (deliveries - 1), settings.ack_wait_s)
        try:
            with handling(envelope):
                await _unless_erased(route.handler(event, Meta(org, envelope), deps), spec)
        except NotYet as later:
            if deliveries >= settings.max_deliver:
                await give_up(f"still not readable after {deliveries} deliveries: {later}")
                return
            # Not a failure: never act on state older than the event; look again later.
            log.info("not_yet", service=spec.service, deliveries=deliveries, delay_s=delay)
            await message.nack(delay=delay)
        except Exception as error:
            if deliveries >= settings.max_deliver:
                await give_up(f"failed {deliveries} times; last: {type(error).__name__}: {error}")
                return
            log.warning(
                "redelivering",
                service=spec.service,
                deliveries=deliveries,
                error=type(error).__name__,
                delay_s=delay,
            )
            await message.nack(delay=delay)


async def _unless_erased(handled: Awaitable[None], spec: ConsumerSpec) -> None:
    """An event about someone erased since is done with: nothing of theirs is left to act on
    (their records are gone, their key destroyed)."""
    try:
        await handled
    except Erased as gone:
        log.info("about_someone_erased", service=spec.service, why=str(gone))
