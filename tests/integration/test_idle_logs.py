"""An idle service's logs hold no errors: FastStream's fetch loop meeting nats-py's plain
TimeoutError (which happened about every hundred seconds while idle) is routine, logged at
DEBUG without a traceback; any other failure of the loop is still an error. Each test runs
a real broker's pull subscriber on the suite's server, its fetch made to fail once as
nats-py's does, and reads the process's log lines."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from faststream.nats import JStream, NatsBroker, PullSub
from nats.aio.client import Client
from nats.js import JetStreamContext

from runtime import bus
from runtime.access import ADMIN, AuthDir
from runtime.logging import configure

STREAM = "IDLELOGS"


@pytest.fixture
async def stream(nc: Client) -> AsyncIterator[str]:
    js = nc.jetstream()
    await js.add_stream(name=STREAM, subjects=["idlelogs.>"])
    yield "idlelogs.x"
    await js.delete_stream(STREAM)


@contextmanager
def fetch_fails_once(error: BaseException) -> Iterator[None]:
    """nats-py's fetch of many raises ``error`` on its next call, from where nats-py raises
    its plain TimeoutError (the end of ``_fetch_n``), then works again."""
    fetch_n = JetStreamContext.PullSubscription._fetch_n
    raised: list[bool] = []

    async def _fetch_n(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not raised:
            raised.append(True)
            raise error
        return await fetch_n(self, *args, **kwargs)

    JetStreamContext.PullSubscription._fetch_n = _fetch_n  # type: ignore[method-assign]
    try:
        yield
    finally:
        JetStreamContext.PullSubscription._fetch_n = fetch_n  # type: ignore[method-assign]


async def consumed_after(
    provisioned: str, auth: AuthDir, nc: Client, subject: str, error: BaseException
) -> list[bytes]:
    """A broker as every service makes it, pulling from ``subject``; its fetch fails once
    with ``error``; then a message is published: what the subscriber received."""
    broker: NatsBroker = bus.make_broker(
        provisioned, "idlelogs", auth.credentials(ADMIN), metrics_on=False
    )
    received: list[bytes] = []

    @broker.subscriber(
        subject,
        stream=JStream(STREAM, declare=False),
        durable="idle",
        pull_sub=PullSub(batch_size=10, timeout=0.5),
        decoder=bus.the_message,
    )
    async def handle(message: Any) -> None:
        received.append(message.raw_message.data)

    with fetch_fails_once(error):
        await broker.start()
        try:
            await asyncio.sleep(0.3)  # the failed fetch, and the loop started again
            await nc.jetstream().publish(subject, b"after", stream=STREAM)
            for _ in range(50):
                if received:
                    break
                await asyncio.sleep(0.1)
        finally:
            await broker.stop()
    return received


def logged(err: str) -> list[dict[str, Any]]:
    """This broker's log lines (a connection another test left may log meanwhile)."""
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "alongside.faststream.idlelogs"]


async def test_an_idle_fetch_that_times_out_is_not_an_error(
    provisioned: str, auth: AuthDir, nc: Client, stream: str, capsys: pytest.CaptureFixture[str]
) -> None:
    configure("INFO", json=True)
    capsys.readouterr()
    # Unique, as FastStream prints a traceback once per kind in a process.
    timed_out = TimeoutError(f"idle {uuid.uuid4().hex}")

    received = await consumed_after(provisioned, auth, nc, stream, timed_out)

    assert received == [b"after"]  # the loop went on
    lines = logged(capsys.readouterr().err)
    assert [line for line in lines if line["level"] in ("error", "warning")] == []
    assert "Traceback" not in json.dumps(lines)


async def test_at_debug_the_routine_timeout_is_one_line_without_its_traceback(
    provisioned: str, auth: AuthDir, nc: Client, stream: str, capsys: pytest.CaptureFixture[str]
) -> None:
    configure("INFO", json=True)
    logging.getLogger().setLevel(logging.DEBUG)
    capsys.readouterr()
    try:
        await consumed_after(provisioned, auth, nc, stream, TimeoutError(uuid.uuid4().hex))
    finally:
        configure("INFO", json=True)
    said = [line for line in logged(capsys.readouterr().err) if line["event"] == "fetch_timed_out"]
    assert [(line["level"], line["logger"]) for line in said] == [
        ("debug", "alongside.faststream.idlelogs")
    ]
    assert "exception" not in said[0]


async def test_any_other_failure_of_the_fetch_loop_is_still_an_error(
    provisioned: str, auth: AuthDir, nc: Client, stream: str, capsys: pytest.CaptureFixture[str]
) -> None:
    configure("INFO", json=True)
    capsys.readouterr()

    await consumed_after(provisioned, auth, nc, stream, RuntimeError(uuid.uuid4().hex))

    errors = [line for line in logged(capsys.readouterr().err) if line["level"] == "error"]
    assert len(errors) == 1
    assert "RuntimeError" in errors[0]["exception"]
