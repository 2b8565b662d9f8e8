"""What bench/walk.py counts as the walk of one intake, without a server: functions compiled
under file names of ours stand in for the runtime and a service."""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from types import SimpleNamespace
from typing import Any

from bench import walk

SERVICE = """
import asyncio
async def receive(cause, envelope):
    check()
    await asyncio.sleep(0)
    handle(cause, envelope)
    await asyncio.sleep(0)
    check()
def handle(cause, envelope):
    token = cause.set(envelope)
    try:
        return [helper() for _ in range(2)]
    finally:
        cause.reset(token)
"""
PLUMBING = """
def check():
    return 0
def helper():
    return 1
"""


def traced(envelope: Any) -> walk.Tracer:
    """``receive`` run under a tracer of the correlation ``cmd``, as a message's handling."""
    files = walk.Files([walk.UNIT_OF_WORK])
    cause: ContextVar[Any] = ContextVar("cause", default=None)
    names: dict[str, Any] = {}
    for source, rel in ((PLUMBING, "runtime/plumbing.py"), (SERVICE, "services/fake.py")):
        filename = f"/nowhere/{rel}"
        files._cache[filename] = rel
        exec(compile(source, filename, "exec"), names)
    tracer = walk.Tracer(files, cause, "cmd")
    with tracer.tracing():
        asyncio.run(names["receive"](cause, envelope))
    return tracer


def envelope(id: str, correlationid: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(id=id, correlationid=correlationid, type="T", causationid=None)


def test_a_message_of_the_intake_counts_with_its_receipt_and_no_resumption() -> None:
    tracer = traced(envelope("cmd"))
    counted = walk.walk_of(tracer, receipt=True)
    assert sorted((c.callee, c.function) for c in counted.calls) == [
        ("runtime/plumbing.py", "check"),
        ("runtime/plumbing.py", "check"),
        ("runtime/plumbing.py", "helper"),
        ("runtime/plumbing.py", "helper"),
        ("services/fake.py", "handle"),
        ("services/fake.py", "receive"),  # once: resuming it is not a call
    ]
    assert counted.receipt_calls == 4
    assert [c.function for c in walk.walk_of(tracer, receipt=False).calls] == ["helper"] * 2

    result = walk.figures(counted.calls)
    assert (result["files"], result["calls"], result["edges"]) == (2, 6, 1)
    assert result["cross_file_calls"] == 4  # check, check, helper, helper
    assert result["entries"] == 1  # receive, from the event loop
    story = walk.figures(counted.calls, keep=tracer.files.story)
    assert (story["files"], story["calls"], story["edges"]) == (1, 2, 0)


def test_another_correlation_counts_nothing() -> None:
    assert walk.walk_of(traced(envelope("other")), receipt=True).calls == []
    assert walk.walk_of(traced(envelope("e", "other")), receipt=True).calls == []
    assert len(walk.walk_of(traced(envelope("e", "cmd")), receipt=True).calls) == 6


def test_what_the_proposals_cause_is_left_out() -> None:
    tracer = walk.Tracer(walk.Files([walk.UNIT_OF_WORK]), ContextVar("c"), "cmd")
    tracer.envelopes = {
        "cmd": ("SubmitIntake", None),
        "policy": ("MatchingPolicyDecided", "cmd"),
        "proposed": (walk.OUTCOME, "policy"),
        "after": ("Later", "proposed"),
    }
    tracer.calls = [
        walk.Call("services/x/handlers.py", "f", None, None, cause, None)
        for cause in ("cmd", "policy", "proposed", "after")
    ]
    counted = walk.walk_of(tracer, receipt=True)
    assert [call.cause for call in counted.calls] == ["cmd", "policy"]
    assert counted.left_out_after_outcome == 2
    assert walk.lineage("proposed", tracer.envelopes) == ["proposed", "policy", "cmd"]
