"""``alongside import``: many intakes at once, matched together.

Every line of the file is a ``SubmitIntake`` payload. Each is submitted to intake
marked with the import batch, so matching holds it back; once every case's
matching policy is decided, one ``AssignBatch`` gives every client a first
proposal before anyone gets a second (a global assignment, scarce needs first).
Re-running the same file is safe: the batch id and command ids derive from it, so an
intake the service could not carry out just now (``unavailable``) is sent again that way.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import ValidationError

from alongside.client import AlongsideClient, Unavailable
from contracts.intake import SubmitIntake
from contracts.matching import AssignBatch, BatchAssigned
from contracts.replies import CommandAccepted, CommandRejected, FieldError, field_errors

IN_FLIGHT = 16
READY_TIMEOUT_S = 120.0


@dataclass
class Imported:
    batch_id: str
    submitted: int = 0
    refused: list[tuple[int, list[FieldError]]] = field(default_factory=list)  # line, errors
    # Lines the service could not carry out just now (after the client's retries): neither
    # submitted nor refused; running the import again sends them again, with the same ids.
    unavailable: list[int] = field(default_factory=list)
    assigned: BatchAssigned | None = None


def batch_id_of(text: str) -> str:
    return "import-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def parse(text: str, result: Imported) -> list[tuple[int, SubmitIntake]]:
    commands = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            command = SubmitIntake.model_validate_json(line)
        except ValidationError as error:
            result.refused.append((number, field_errors(error)))
            continue
        commands.append((number, command.model_copy(update={"import_batch": result.batch_id})))
    return commands


async def import_intakes(
    client: AlongsideClient,
    org: str,
    text: str,
    submitted: Callable[[], None] = lambda: None,
    ready: Callable[[str], None] = lambda _: None,
) -> Imported:
    """Submit every intake of ``text`` (JSON lines), then have matching assign them together.
    ``submitted`` is called after each intake, ``ready`` with matching's progress."""
    result = Imported(batch_id_of(text))
    commands = parse(text, result)
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def submit(number: int, command: SubmitIntake) -> None:
        command_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{result.batch_id}/{command.case_id}").hex
        async with slots:
            try:
                reply = await client.submit(org, command, command_id=command_id)
            except (Unavailable, NatsTimeoutError, NoRespondersError):
                # Not carried out, or not answered, after the client's retries (the same id):
                # neither refused; running the import again sends it again.
                result.unavailable.append(number)
                submitted()
                return
        if isinstance(reply, CommandAccepted):
            result.submitted += 1
        else:
            result.refused.append((number, reply.errors))
        submitted()

    await asyncio.gather(*(submit(number, command) for number, command in commands))
    if not result.submitted or result.unavailable:
        # Assigned together or not at all: a run of the same file again sends the lines not
        # carried out (the same ids), then assigns the whole batch.
        return result
    deadline = asyncio.get_running_loop().time() + READY_TIMEOUT_S
    assign = AssignBatch(import_batch=result.batch_id, expected=result.submitted)
    while True:
        reply = await client.request(org, assign, timeout=300)
        if isinstance(reply, BatchAssigned):
            result.assigned = reply
            return result
        assert isinstance(reply, CommandRejected)
        if reply.errors[0].field != "expected" or asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"matching refused the batch: {reply.errors}")
        ready(reply.errors[0].reason)
        await asyncio.sleep(0.25)
