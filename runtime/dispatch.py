"""One way to receive a message: a service's typed handlers, one per command or event.

A service declares ``handlers: Handlers[MyDeps] = Handlers(SERVICE)`` and registers

    @handlers.on(MatchingPolicyDecided)
    async def on_matching_policy_decided(event: MatchingPolicyDecided, meta: Meta,
                                         deps: MatchingDeps) -> None: ...

    @handlers.on(AcceptProposal)
    async def accept_proposal(command: AcceptProposal, meta: Received,
                              deps: MatchingDeps) -> Message: ...

Commands arrive on the service's command subscription (``commands.serve``), events on
its durable consumer (``consumer.subscribe``). Both read the envelope, check its
organisation against the subject's and validate the payload against the class the
catalogue names before any handler sees it: a handler gets a typed message, never a dict.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from contracts import subjects
from contracts.envelope import Command, Event, Message, RawEnvelope

D = TypeVar("D")
# The services that send commands under their own names (``runtime.access.RESERVED_NAMES``).
SERVICES = frozenset({"intake", "rules", "matching", "scheduling", "notifications"})
E = TypeVar("E", bound=Event)
C = TypeVar("C", bound=Command)


# The message being handled in this task, if any: whatever a handler publishes carries its
# correlation and trace (``runtime.unit``) without every function
# between the handler and the publish passing it on.
CAUSE: ContextVar[RawEnvelope | None] = ContextVar("cause", default=None)


@contextmanager
def handling(envelope: RawEnvelope) -> Iterator[None]:
    token = CAUSE.set(envelope)
    try:
        yield
    finally:
        CAUSE.reset(token)


@dataclass(frozen=True)
class Meta:
    """Where a message came from: its organisation (the subject's, which the envelope must
    name too) and its envelope (id, correlation, causation, time)."""

    org: str
    envelope: RawEnvelope


@dataclass(frozen=True)
class Received(Meta):
    """A command request that passed every check; ``command`` is its validated payload and
    ``sender`` the credential that sent it, as the server vouches (``subjects.sender_of``)."""

    command: Command
    sender: str

    @property
    def acted_by(self) -> str:
        """Who acted, for the access log and every audit entry: the sending credential, never
        the envelope's word alone. The console, a service and the operator are trusted to
        say more precisely who under their own name (the console names the signed-in
        account: ``alongside/console/<account>``)."""
        source = self.envelope.source
        if self.sender == subjects.OPERATOR:
            return f"operator ({source})"
        own = f"alongside/{self.sender}"
        if self.sender == subjects.CONSOLE or self.sender in SERVICES:
            return source if source == own or source.startswith(f"{own}/") else own
        return f"credential {self.sender}"


EventHandler = Callable[[E, Meta, D], Awaitable[None]]
CommandHandler = Callable[[C, Received, D], Awaitable[Message]]


@dataclass(frozen=True)
class Route(Generic[D]):
    model: type[Message]
    handler: Callable[[Any, Any, D], Awaitable[Any]]


class Handlers(Generic[D]):
    """A service's handlers by message type."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.events: dict[str, Route[D]] = {}
        self.commands: dict[str, Route[D]] = {}

    @overload
    def on(
        self, message_type: type[C]
    ) -> Callable[[CommandHandler[C, D]], CommandHandler[C, D]]: ...

    @overload
    def on(self, message_type: type[E]) -> Callable[[EventHandler[E, D]], EventHandler[E, D]]: ...

    def on(self, message_type: type[Message]) -> Callable[[Any], Any]:
        def register(handler: Any) -> Any:
            table = self.commands if issubclass(message_type, Command) else self.events
            if message_type.type_name in table:
                raise ValueError(f"{self.service} handles {message_type.type_name} twice")
            if issubclass(message_type, Command) and message_type.service != self.service:
                raise ValueError(f"{message_type.type_name} is {message_type.service}'s command")
            table[message_type.type_name] = Route(message_type, handler)
            return handler

        return register
