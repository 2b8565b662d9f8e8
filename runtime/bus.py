"""Broker factory, durable publishing and dead letters: the messaging every service shares."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nats
from faststream.message import StreamMessage
from faststream.nats import NatsBroker
from faststream.nats.security import NatsCredentials
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoServersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy, PubAck
from nats.js.errors import APIError, NoStreamResponseError

from contracts import subjects
from contracts.envelope import Envelope, RawEnvelope, new_id
from contracts.replies import DeadLetter
from runtime import metrics, tracing
from runtime.access import principal
from runtime.logging import get_logger
from runtime.settings import Settings
from runtime.topology import DEADLETTER_STREAM, EVENTS_STREAM
from runtime.vault import Sealer, Vault, dead_letters_sealer

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = get_logger(__name__)

PUBLISH_ATTEMPTS = 5
# JetStream's "duplicate message id is in process".
DUPLICATE_IN_PROCESS = 10158


def servers(url: str) -> list[str]:
    """``ALONGSIDE_NATS_URL`` may list a cluster's servers separated by commas."""
    return [part.strip() for part in url.split(",") if part.strip()]


def _auth(credentials: Path | None) -> dict[str, Any]:
    """Connect as the user in a ``.creds`` file, with the inbox prefix its permissions allow."""
    if credentials is None:
        return {}
    return {
        "user_credentials": str(credentials),
        "inbox_prefix": principal(credentials).inbox_prefix,
    }


def _errors(name: str, seen: list[Exception] | None = None) -> Any:
    async def on_error(error: Exception) -> None:
        # Permission violations surface only here, never at the call that caused them.
        log.error("nats_error", client=name, error=type(error).__name__, detail=str(error))
        if seen is not None:  # the last few: a refusal may come before a reset
            seen.append(error)
            del seen[:-16]

    return on_error


def make_broker(
    url: str,
    service: str,
    credentials: Path | None = None,
    metrics_on: bool = True,
    spans: TracerProvider | None = None,
) -> NatsBroker:
    """A FastStream broker; per-message logs go to DEBUG (INFO would halve throughput).
    With ``spans``, every message handled is traced (``runtime.tracing``)."""

    # FastStream's own lifecycle chatter (INFO) is not ours to print; its warnings are.
    framework_log = logging.getLogger(f"alongside.faststream.{service}")
    framework_log.setLevel(logging.WARNING)
    return NatsBroker(
        servers(url),
        name=f"alongside-{service}",
        error_cb=_errors(service),
        logger=framework_log,
        log_level=logging.DEBUG,
        max_reconnect_attempts=-1,
        middlewares=[
            *([tracing.middleware(spans)] if spans is not None else []),
            *([metrics.faststream_middleware(service)] if metrics_on else []),
        ],
        security=None if credentials is None else NatsCredentials(str(credentials)),
        inbox_prefix=principal(credentials).inbox_prefix,
    )


async def the_message(message: StreamMessage[Any]) -> StreamMessage[Any]:
    """FastStream's decoder for every subscriber: the message itself, as its handler's one
    argument, bytes as they came. Its default decoder parses JSON before any handler runs and
    raises on deep nesting or huge numbers, so such a message would get no reply and no dead
    letter; our handlers parse it themselves. Taken from FastStream's context instead (a
    ``NatsMessage`` parameter), each message cost a hop to a worker thread: fast_depends
    runs the context lookup there (about 5% of a service's CPU)."""
    return message


async def connect(
    url: str, name: str, credentials: Path | None = None, attempts: int = -1
) -> Client:
    """A connection as the user in ``credentials``; it tries each server ``attempts`` times
    (forever by default: services ride out a server's restart), the first connection too.
    Giving up, it raises the server's last word (an authorization violation, a refused
    connection) rather than nats-py's "no servers available"."""
    seen: list[Exception] = []
    try:
        return await nats.connect(
            servers(url),
            name=name,
            max_reconnect_attempts=attempts,
            error_cb=_errors(name, seen),
            **_auth(credentials),
        )
    except NoServersError:
        # The server's word on the user if it gave one: a refused user's connection may
        # also be reset before the refusal reaches the client.
        refused = [e for e in seen if "authorization" in str(e).lower()]
        if refused or seen:
            raise (refused or seen[-1:])[0] from None
        raise


async def publish_durably(
    js: JetStreamContext,
    subject: str,
    body: bytes,
    msg_id: str,
    stream: str,
    headers: Mapping[str, str] | None = None,
) -> PubAck:
    """Publish to JetStream and wait for its ack, retrying with the same ``Nats-Msg-Id``.

    Retrying with the same id is safe: within the duplicate window the stream
    keeps one copy, so a timeout never turns into a duplicate.
    """
    all_headers = {**(headers or {}), "Nats-Msg-Id": msg_id}
    delay = 0.05
    for attempt in range(1, PUBLISH_ATTEMPTS + 1):
        try:
            return await js.publish(subject, body, stream=stream, headers=all_headers, timeout=2.0)
        except (NatsTimeoutError, NoStreamResponseError, APIError) as error:
            # A replicated stream answers 10158 while another publish of this very id is
            # still being stored: ask again, and the dedupe answers for the first.
            in_process = isinstance(error, APIError) and error.err_code == DUPLICATE_IN_PROCESS
            if attempt == PUBLISH_ATTEMPTS or (isinstance(error, APIError) and not in_process):
                raise
            log.warning("publish_retry", subject=subject, attempt=attempt)
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


# The CloudEvents NATS binding's structured mode: the whole event is the body, in the
# JSON event format, which this header names.
CLOUDEVENTS_JSON = "application/cloudevents+json; charset=utf-8"


def headers_of(envelope: Envelope[Any]) -> dict[str, str]:
    """The NATS headers of a command or event: what a CloudEvents or OpenTelemetry reader
    (FastStream's telemetry middleware among them) reads without our code."""
    headers = {"content-type": CLOUDEVENTS_JSON}
    if envelope.traceparent is not None:
        headers["traceparent"] = envelope.traceparent
    return headers


async def publish_event(js: JetStreamContext, envelope: Envelope[Any]) -> PubAck:
    ack = await publish_durably(
        js,
        subjects.event(envelope.org, envelope.type),
        envelope.model_dump_json().encode(),
        msg_id=envelope.id,
        stream=EVENTS_STREAM,
        headers=headers_of(envelope),
    )
    if not ack.duplicate:  # a retried publish the stream already holds is not a new event
        metrics.EVENTS_PUBLISHED.labels(envelope.org, envelope.type).inc()
    return ack


def _text(body: bytes) -> str:
    try:
        return body.decode()
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(body).decode()


class DeadLetters:
    """Where a service keeps what it could not use: ``dead_letter`` with the reason and
    original sealed (``runtime.vault.dead_letters_sealer``), bound to the deployment's
    master key on the first letter, once connected."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._sealer: Sealer | None = None

    def sealer(self, js: JetStreamContext) -> Sealer:
        if self._sealer is None:
            self._sealer = dead_letters_sealer(Vault.of(js, self.settings))
        return self._sealer

    async def keep(self, js: JetStreamContext, **letter: Any) -> None:
        await dead_letter(js, self.sealer(js), **letter)


async def read_dead_letter(letters: Sealer, envelope: RawEnvelope) -> DeadLetter:
    """A dead letter as kept, its reason and original opened (both "" once its day's key was
    erased, when dead letters of that day expired)."""
    opened = await letters.open(envelope.org, _day(envelope.time), dict(envelope.data))
    return DeadLetter.model_validate(opened)


def _day(time: datetime) -> str:
    return time.astimezone(UTC).date().isoformat()


def _reason(reason: str, limit: int = 2000) -> str:
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"


async def dead_letter(
    js: JetStreamContext,
    letters: Sealer,
    *,
    org: str,
    service: str,
    sender: str,
    reason: str,
    subject: str,
    body: bytes,
    headers: Mapping[str, str] | None = None,
    deliveries: int = 1,
    msg_id: str | None = None,
    time: datetime,
    kept: int = DeadLetter.ORIGINAL_KEPT,
) -> None:
    """Keep a message the service could not use, with why, in the DEADLETTERS stream: its
    first ``kept`` bytes (``DeadLetter.MALFORMED_KEPT`` for a command already answered with
    its field errors, and then its first headers only) with the size and hash of the
    whole."""
    few = kept < DeadLetter.ORIGINAL_KEPT
    count, name_len, value_len = (8, 100, 200) if few else (50, 200, 1000)
    letter = DeadLetter(
        service=service,
        reason=_reason(reason),
        subject=subject,
        deliveries=deliveries,
        headers={
            _reason(k, name_len): _reason(v, value_len)
            for k, v in list((headers or {}).items())[:count]
        },
        original=_text(body[:kept]),
        original_size=len(body),
        original_truncated=len(body) > kept,
        original_sha256=hashlib.sha256(body).hexdigest(),
    )
    sealed = await letters.seal(org, _day(time), letter.model_dump(mode="json"))
    envelope = Envelope[DeadLetter](
        id=msg_id or new_id(),
        type=DeadLetter.type_name,
        source=f"alongside/{service}",
        org=org,
        time=time,
        schemaversion=DeadLetter.schema_version,
        data=DeadLetter.model_validate(sealed),
    )
    await publish_durably(
        js,
        subjects.dead_letter(org, service, sender),
        envelope.model_dump_json().encode(),
        msg_id=envelope.id,
        stream=DEADLETTER_STREAM,
    )
    metrics.DEAD_LETTERS.labels(org, service).inc()
    # The kind of failure only ("invalid SubmitIntake", "org mismatch"): the whole reason,
    # which may quote what was sent, stays in the dead letter (``alongside deadletters``).
    log.warning(
        "dead_lettered",
        org=org,
        service=service,
        failure=reason.split(":", 1)[0][:80],
        subject=subject,
    )


async def every_message(js: JetStreamContext, stream: str, subject: str) -> list[Msg]:
    """Every message on ``subject`` (wildcards allowed) in ``stream`` now, oldest first.
    Exact however slowly they come: the consumer says how many there are, and each says how
    many are left. (nats-py's KV history ends early when its first message is slower than
    the consumer's info: an empty history of a key that has one.)"""
    sub = await js.subscribe(
        subject, stream=stream, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    try:
        info = await sub.consumer_info()
        if not info.num_pending and not (info.delivered and info.delivered.consumer_seq):
            return []
        found: list[Msg] = []
        while True:
            msg = await sub.next_msg(timeout=10.0)
            found.append(msg)
            if msg.metadata.num_pending == 0:
                return found
    finally:
        await sub.unsubscribe()
