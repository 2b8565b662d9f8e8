"""``alongside deadletters``: what the services could not use, for an operator to read,
send again once the cause is fixed, and purge.

Dead letters are in the stream ``DEADLETTERS`` (``alongside.<org>.dlq.<service>.<sender>``), their
reason and original sealed with the key of their organisation's day (``runtime/vault.py``):
reading them takes the operator's credential and the deployment's master key. What is
printed names no one unless ``--personal-data`` is given: the kind of failure, never the
reason's words (they may quote what was sent), nor the original. Every action is logged
(``deadletters_listed``, ``deadletter_shown``, ``deadletter_replayed``,
``deadletters_purged``) with the operating-system user who ran it.
"""

from __future__ import annotations

import asyncio
import base64
import getpass
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, TypeVar

import typer
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from alongside import connection
from alongside.client import AlongsideClient
from alongside.options import CliError, valid_org
from contracts import subjects
from contracts.envelope import RawEnvelope
from contracts.replies import DeadLetter
from runtime import bus, topology
from runtime.logging import configure, get_logger
from runtime.settings import Settings
from runtime.store import stream_subjects
from runtime.vault import NoMasterKey, Sealer, Vault

app = typer.Typer(no_args_is_help=True, help=__doc__)
log = get_logger("alongside.deadletters")
T = TypeVar("T")

# The id a consumer gives the letter of an event it gave up on: "<service>-<EVENTS sequence>"
# (runtime/consumer.py), so the whole event is found again in EVENTS.
_EVENT_LETTER_ID = re.compile(r"^(?P<service>[a-z]+)-(?P<sequence>\d+)$")
# Headers the server sets on a stored message; a message published again gets its own.
_SERVER_HEADERS = ("Nats-",)
REPLAYED_HEADER = "Alongside-Replay-Of"  # on an event published again: the letter's place

OrgFilter = Annotated[
    str | None, typer.Option("--org", help="One organisation's letters only.", show_default=False)
]
ServiceFilter = Annotated[
    str | None,
    typer.Option(help="One service's letters only (intake, rules, ...).", show_default=False),
]
PersonalData = Annotated[
    bool,
    typer.Option(
        "--personal-data",
        help="Also print the reason's words, the headers "
        "and the original as sent, which may hold a person's data (logged).",
    ),
]


@app.callback()
def _configure_logging() -> None:
    settings = Settings()
    configure(settings.log_level, settings.log_json)


@dataclass
class Letter:
    """One dead letter as kept: where it is in the stream, when it was stored, its envelope,
    and its reason and original opened ("" once its day's key was erased)."""

    sequence: int
    stored: datetime
    envelope: RawEnvelope
    letter: DeadLetter

    @property
    def org(self) -> str:
        return self.envelope.org

    @property
    def failure(self) -> str:
        """The kind of failure, as the services log it ("malformed envelope", "invalid
        IntakeReceived", "failed 7 times; last"), never what the reason quotes."""
        return self.letter.reason.split(":", 1)[0][:80]

    def original_bytes(self) -> bytes | None:
        """The original as sent, if it was kept whole and can still be read."""
        kept = self.letter
        if kept.original_truncated or not kept.original:
            return None
        if kept.original.startswith("base64:"):
            return base64.b64decode(kept.original[len("base64:") :])
        return kept.original.encode()

    def summary(self, personal_data: bool = False) -> dict[str, Any]:
        said: dict[str, Any] = {
            "sequence": self.sequence,
            "time": self.envelope.time.isoformat(),
            "stored": self.stored.isoformat(),
            "org": self.org,
            "service": self.letter.service,
            "subject": self.letter.subject,
            "failure": self.failure,
            "deliveries": self.letter.deliveries,
            "size": self.letter.original_size,
            "kept_whole": not self.letter.original_truncated,
            "sha256": self.letter.original_sha256,
        }
        if personal_data:
            said |= {
                "reason": self.letter.reason,
                "headers": self.letter.headers,
                "original": self.letter.original,
            }
        return said


def _subject(org: str | None, service: str | None) -> str:
    if org is not None:
        valid_org(org)
    return subjects.dead_letters(org or "*", service)


async def _letter(sealer: Sealer, msg: Msg) -> Letter:
    envelope = RawEnvelope.model_validate_json(msg.data)
    opened = await bus.read_dead_letter(sealer, envelope)
    return Letter(msg.metadata.sequence.stream, msg.metadata.timestamp, envelope, opened)


async def letters_in(
    js: JetStreamContext, sealer: Sealer, org: str | None = None, service: str | None = None
) -> list[Letter]:
    """Every dead letter kept (of one organisation, one service), oldest first."""
    found = await bus.every_message(js, topology.DEADLETTER_STREAM, _subject(org, service))
    return [await _letter(sealer, msg) for msg in found]


async def letter_at(js: JetStreamContext, sealer: Sealer, sequence: int) -> Letter:
    try:
        raw = await js.get_msg(topology.DEADLETTER_STREAM, sequence)
    except NotFoundError:
        raise CliError(f"no dead letter {sequence} (alongside deadletters list)") from None
    assert raw.data is not None
    assert raw.time is not None
    envelope = RawEnvelope.model_validate_json(raw.data)
    opened = await bus.read_dead_letter(sealer, envelope)
    return Letter(sequence, raw.time, envelope, opened)


@dataclass
class Replayed:
    letter: Letter
    outcome: str  # "published" (an event), a reply's status, or why it was not sent
    sent: bool


async def replay(nc: Client, letter: Letter, keep: bool = False, timeout: float = 10.0) -> Replayed:
    """Send a dead letter's message again, now that what failed it is fixed, and (unless
    ``keep``) take the letter out of the stream once sent. An event is published again to
    ``EVENTS`` whole (from ``EVENTS``, where it still is), its id unchanged, so every
    consumer gets it again: the services, and subscribers, handle an id once in effect. A
    command is sent again as it was, as the operator, and its reply is the outcome; if it
    fails again, it is dead-lettered again with the new reason."""
    js = nc.jetstream()
    kind = letter.letter.subject.split(".")[2:3]
    if kind == ["evt"]:
        found = await _event_of(js, letter)
        if found is None:
            return Replayed(letter, "not replayable: the event is not kept whole", False)
        body, headers = found
        headers[REPLAYED_HEADER] = f"{topology.DEADLETTER_STREAM}/{letter.sequence}"
        await bus.publish_durably(
            js,
            letter.letter.subject,
            body,
            f"replay-{letter.envelope.id}",
            topology.EVENTS_STREAM,
            headers,
        )
        outcome = "published"
    elif kind == ["cmd"]:
        sent = letter.original_bytes()
        if sent is None:
            return Replayed(letter, "not replayable: the command was not kept whole", False)
        tokens = letter.letter.subject.split(".")
        try:
            reply = await AlongsideClient(nc).request_raw(
                letter.org,
                tokens[3],
                subjects.command_type_of(letter.letter.subject),
                sent,
                _sent_again(letter.letter.headers),
                timeout=timeout,
            )
        except (NatsTimeoutError, NoRespondersError) as error:
            return Replayed(letter, f"not answered ({type(error).__name__}): kept", False)
        except ValidationError:
            outcome = "answered"
        else:
            outcome = str(getattr(reply, "status", "answered"))
    else:
        return Replayed(letter, "not replayable: not a command or an event", False)
    if not keep:
        await js.delete_msg(topology.DEADLETTER_STREAM, letter.sequence)
    return Replayed(letter, outcome, True)


def _sent_again(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if not k.startswith(_SERVER_HEADERS)}


async def _event_of(js: JetStreamContext, letter: Letter) -> tuple[bytes, dict[str, str]] | None:
    """The event a consumer gave up on, whole, from ``EVENTS``; else as the letter kept it."""
    named = _EVENT_LETTER_ID.match(letter.envelope.id)
    if named is not None:
        try:
            stored = await js.get_msg(topology.EVENTS_STREAM, int(named["sequence"]))
        except NotFoundError:
            stored = None
        if stored is not None and stored.subject == letter.letter.subject and stored.data:
            return stored.data, _sent_again(dict(stored.headers or {}))
    body = letter.original_bytes()
    return None if body is None else (body, _sent_again(letter.letter.headers))


async def purge(
    js: JetStreamContext,
    vault: Vault,
    sealer: Sealer,
    before: datetime,
    org: str | None = None,
    service: str | None = None,
    by: str = "",
) -> tuple[int, int]:
    """Take every letter stored before ``before`` (of one organisation, one service) out of
    the stream; with no service named, also erase the keys of the days whose letters are
    all gone, so no copy of them (a backup) can be read after. The letters purged, and the
    day keys erased."""
    kept = await letters_in(js, sealer, org, service)
    gone = [letter for letter in kept if letter.stored < before]
    if gone:
        # The stream keeps its letters in the order they were stored: all up to the last
        # one stored before ``before`` are older.
        await js.purge_stream(
            topology.DEADLETTER_STREAM, subject=_subject(org, service), seq=gone[-1].sequence + 1
        )
    erased = 0
    if service is None:
        left = {(letter.org, _day(letter.envelope.time)) for letter in kept[len(gone) :]}
        pattern = subjects.person_keys(org or "*", "dead_letters")
        for subject in await stream_subjects(js, topology.KEYS_STREAM, pattern):
            key_org, day = subjects.org_of(subject), subject.rsplit(".", 1)[1]
            if date.fromisoformat(day) < before.date() and (key_org, day) not in left:
                erased += await vault.erase(key_org, "dead_letters", day, by=by or "purge")
    return len(gone), erased


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return "unknown"


def _run(act: Callable[[Client, Settings], Awaitable[T]]) -> T:
    settings = Settings()

    async def run() -> T:
        nc = await connection.connect(settings, "alongside-deadletters")
        try:
            return await act(nc, settings)
        except NoMasterKey as missing:
            raise CliError(str(missing)) from None
        finally:
            await nc.close()

    return asyncio.run(run())


def _sealer(nc: Client, settings: Settings) -> Sealer:
    return bus.DeadLetters(settings).sealer(nc.jetstream())


@app.command("list")
def list_(
    org: OrgFilter = None,
    service: ServiceFilter = None,
    personal_data: PersonalData = False,
) -> None:
    """Every dead letter kept, oldest first, one JSON line each: where it is (sequence),
    when, whose, which service gave up on what subject, the kind of failure, its size and
    whether it was kept whole (only those can be sent again)."""

    async def listed(nc: Client, settings: Settings) -> list[Letter]:
        return await letters_in(nc.jetstream(), _sealer(nc, settings), org, service)

    found = _run(listed)
    log.info(
        "deadletters_listed",
        org=org,
        service=service,
        count=len(found),
        personal_data=personal_data,
        by=_who(),
    )
    for letter in found:
        typer.echo(json.dumps(letter.summary(personal_data)))


@app.command()
def show(
    sequence: Annotated[int, typer.Argument(help="The letter's sequence (from `list`).")],
    personal_data: PersonalData = False,
) -> None:
    """One dead letter: when, whose, which service, the subject and the kind of failure;
    with --personal-data, the whole reason, the headers and the original too."""

    async def shown(nc: Client, settings: Settings) -> Letter:
        return await letter_at(nc.jetstream(), _sealer(nc, settings), sequence)

    letter = _run(shown)
    log.info(
        "deadletter_shown",
        sequence=sequence,
        org=letter.org,
        service=letter.letter.service,
        personal_data=personal_data,
        by=_who(),
    )
    typer.echo(json.dumps(letter.summary(personal_data), indent=2))


@app.command("replay")
def replay_(
    sequences: Annotated[
        list[int] | None,
        typer.Argument(help="The letters' sequences (from `list`).", show_default=False),
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Every letter kept (of --org, --service), oldest first.")
    ] = False,
    org: OrgFilter = None,
    service: ServiceFilter = None,
    keep: Annotated[
        bool,
        typer.Option("--keep", help="Keep the letters in the stream after sending them again."),
    ] = False,
) -> None:
    """Send dead letters' messages again once what failed them is fixed: an event is
    published to EVENTS again, whole and with its own id (every consumer gets it again and
    handles its id once in effect); a command is sent again as it was, its reply printed.
    Each letter sent is taken out of the stream (unless --keep); one that fails again is
    dead-lettered again with the new reason. Exit 1 if any could not be sent."""
    if bool(sequences) == every:
        raise CliError("give the letters' sequences, or --all")
    if sequences and (org or service):
        raise CliError("--org and --service go with --all")

    async def replayed(nc: Client, settings: Settings) -> list[Replayed]:
        js, sealer = nc.jetstream(), _sealer(nc, settings)
        chosen = (
            [await letter_at(js, sealer, n) for n in sequences]
            if sequences
            else await letters_in(js, sealer, org, service)
        )
        done = []
        for letter in chosen:
            result = await replay(nc, letter, keep)
            log.info(
                "deadletter_replayed",
                sequence=letter.sequence,
                org=letter.org,
                service=letter.letter.service,
                subject=letter.letter.subject,
                outcome=result.outcome,
                sent=result.sent,
                kept=keep,
                by=_who(),
            )
            done.append(result)
        return done

    results = _run(replayed)
    for result in results:
        typer.echo(
            json.dumps(
                {
                    "sequence": result.letter.sequence,
                    "org": result.letter.org,
                    "subject": result.letter.letter.subject,
                    "outcome": result.outcome,
                }
            )
        )
    unsent = sum(not result.sent for result in results)
    typer.echo(f"{len(results) - unsent} sent again, {unsent} not", err=True)
    if unsent:
        raise typer.Exit(1)


@app.command("purge")
def purge_(
    before: Annotated[
        datetime,
        typer.Option(
            help="Purge the letters stored before this day (or moment, UTC unless it says).",
            formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"],
        ),
    ],
    org: OrgFilter = None,
    service: ServiceFilter = None,
) -> None:
    """Take the dead letters stored before a day out of the stream (of one organisation, one
    service); with no --service, also erase the keys their days were sealed with, so no
    copy of them can be read after. (The stream drops letters older than
    ALONGSIDE_DEADLETTERS_DAYS on its own.)"""
    moment = before if before.tzinfo else before.replace(tzinfo=UTC)
    by = _who()

    async def purged(nc: Client, settings: Settings) -> tuple[int, int]:
        js = nc.jetstream()
        vault = Vault.of(js, settings)
        return await purge(
            js, vault, _sealer(nc, settings), moment, org, service, by=f"deadletters purge by {by}"
        )

    count, keys = _run(purged)
    log.info(
        "deadletters_purged",
        before=moment.isoformat(),
        org=org,
        service=service,
        count=count,
        day_keys_erased=keys,
        by=by,
    )
    typer.echo(
        f"purged {count} dead letters stored before {moment.isoformat()}"
        + (f"; erased {keys} day keys" if keys else "")
    )
