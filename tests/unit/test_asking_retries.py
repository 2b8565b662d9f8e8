"""A client's command not answered is sent again, the very same bytes, within a bound; a
service's own is sent once (the event that caused it is redelivered instead); and an import
whose lines are still not answered says so, to run it again, rather than failing."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from alongside import sample
from alongside.importer import import_intakes
from runtime.asking import answered


@dataclass
class Reply:
    data: bytes


@dataclass
class Unanswering:
    """A connection whose first ``fail`` requests get ``error``, then an answer."""

    error: Exception
    fail: int
    sent: list[tuple[bytes, float]] = field(default_factory=list)

    async def request(self, subject: str, body: bytes, timeout: float, headers: Any) -> Reply:
        self.sent.append((body, timeout))
        if len(self.sent) <= self.fail:
            raise self.error
        return Reply(b"answer")


@pytest.mark.parametrize("error", [NatsTimeoutError(), NoRespondersError()])
async def test_an_unanswered_command_is_sent_again_the_same_bytes(error: Exception) -> None:
    nc = Unanswering(error, fail=2)
    said = await answered(nc, "s", b"envelope", {}, within_s=5.0, timeout_s=1.0)  # type: ignore[arg-type]
    assert said == b"answer"
    assert [body for body, _ in nc.sent] == [b"envelope"] * 3


async def test_past_the_bound_the_last_error_stands_and_no_attempt_outlasts_it() -> None:
    nc = Unanswering(NoRespondersError(), fail=1000)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(NoRespondersError):
        await answered(nc, "s", b"envelope", {}, within_s=1.5, timeout_s=10.0)  # type: ignore[arg-type]
    assert loop.time() - started < 1.5
    assert 2 <= len(nc.sent) <= 5
    assert all(timeout <= 10.0 for _, timeout in nc.sent)
    assert all(timeout <= 1.5 for _, timeout in nc.sent[1:])  # what is left of the bound


async def test_within_zero_it_is_sent_once() -> None:
    nc = Unanswering(NatsTimeoutError(), fail=1)
    with pytest.raises(NatsTimeoutError):
        await answered(nc, "s", b"envelope", {}, within_s=0.0, timeout_s=1.0)  # type: ignore[arg-type]
    assert len(nc.sent) == 1


class Timing:
    """A client whose every intake times out even after its own retries."""

    async def submit(self, org: str, command: Any, command_id: str | None = None) -> Any:
        raise NatsTimeoutError()


async def test_an_import_line_never_answered_is_not_carried_out_just_now_not_a_crash() -> None:
    text = "\n".join(sample.intake(random.Random(n), f"c{n}").model_dump_json() for n in range(2))
    result = await import_intakes(Timing(), "acme", text)  # type: ignore[arg-type]
    assert result.unavailable == [1, 2]  # run the same import again: the same ids
    assert result.refused == []
    assert result.assigned is None
