"""Matching: proposals of supporters to a client, and the client's choice.

Events carry ids, scores and which requirements a supporter met (field names),
never the values: what a client asked for and a supporter's lived experience
stay in the ``matches`` record (``alongside proposals`` shows them to the
coordinator).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from contracts.envelope import Command, EntityId, Event, Message, Part
from contracts.intake import LongText
from contracts.privacy import SENSITIVE

SERVICE = "matching"


# Commands ----------------------------------------------------------------


class AcceptProposal(Command):
    """The client chooses one of the supporters proposed to them."""

    type_name: ClassVar[str] = "AcceptProposal"
    service: ClassVar[str] = SERVICE
    case_id: EntityId
    supporter_id: EntityId


class DeclineProposals(Command):
    """The client wants none of the supporters proposed; they are never proposed again.
    ``reason``, if they gave one, is kept with the case's matching (sealed), never in an
    event."""

    type_name: ClassVar[str] = "DeclineProposals"
    schema_version: ClassVar[str] = "1.1"  # 1.1: reason
    service: ClassVar[str] = SERVICE
    case_id: EntityId
    reason: Annotated[LongText | None, SENSITIVE] = None


class ChangeSupporter(Command):
    """The client asks for a different supporter: the match ends and new proposals follow."""

    type_name: ClassVar[str] = "ChangeSupporter"
    service: ClassVar[str] = SERVICE
    case_id: EntityId


class RefuseService(Command):
    """The client wants no peer support: the case is closed for matching and holds released."""

    type_name: ClassVar[str] = "RefuseService"
    service: ClassVar[str] = SERVICE
    case_id: EntityId


class AcceptClient(Command):
    """The supporter a client chose agrees to support them (from their own page)."""

    type_name: ClassVar[str] = "AcceptClient"
    service: ClassVar[str] = SERVICE
    case_id: EntityId
    supporter_id: EntityId


class DeclineClient(Command):
    """The supporter a client chose cannot support them: the match ends, and the client is
    offered others (never this supporter again), as with a change of supporter."""

    type_name: ClassVar[str] = "DeclineClient"
    service: ClassVar[str] = SERVICE
    case_id: EntityId
    supporter_id: EntityId


class ResumeMatch(Command):
    """A coordinator's review of a match paused because its supporter became ineligible: the
    match goes on with the same supporter, refused (with the rules' reasons) unless they are
    eligible again. To give the client someone else instead: ``ChangeSupporter``."""

    type_name: ClassVar[str] = "ResumeMatch"
    service: ClassVar[str] = SERVICE
    case_id: EntityId


class AssignBatch(Command):
    """Give every case of an import batch a first proposal at once (global assignment).

    Refused, naming ``expected``, while fewer than ``expected`` cases of the batch are ready
    (their matching policies still being decided): the importer retries.
    """

    type_name: ClassVar[str] = "AssignBatch"
    service: ClassVar[str] = SERVICE
    import_batch: EntityId
    expected: int = Field(ge=1, le=100_000)


class BatchAssigned(Message):
    """Reply to AssignBatch."""

    type_name: ClassVar[str] = "BatchAssigned"
    status: Literal["assigned"] = "assigned"
    command_id: str
    import_batch: str
    clients: int
    proposed: int
    waitlisted: int


# Events ------------------------------------------------------------------


class ProposedSupporter(Part):
    supporter_id: EntityId
    score: float
    # Which of the client's requirements and preferences this supporter meets, by field name.
    matched_on: list[str]
    held_until: datetime


class MatchProposed(Event):
    """Supporters offered to a client, best first; each holds one of its supporter's slots."""

    type_name: ClassVar[str] = "MatchProposed"
    case_id: EntityId
    round: int
    proposals: list[ProposedSupporter]


class ClientWaitlisted(Event):
    """Nobody can serve the client now. ``constraint`` names what left no one: matching-policy
    (one of the client's requirements), eligible-with-free-slot, no-conflict or not-declined
    (a place lost to another client meanwhile is sought again, never a reason); which
    requirement, in words that may say what the client asked for, stays in the matching record."""

    type_name: ClassVar[str] = "ClientWaitlisted"
    case_id: EntityId
    constraint: str


class ProposalsWithdrawn(Event):
    """Supporters who may no longer be matched (their eligibility lapsed, a record check or a
    suspension, stricter rules) were taken out of a client's open proposals. The same change
    offers the client fresh proposals (``MatchProposed``) or waitlists them
    (``ClientWaitlisted``). Why, in the rules' words, stays in the decision log."""

    type_name: ClassVar[str] = "ProposalsWithdrawn"
    case_id: EntityId
    supporter_ids: list[EntityId]
    reason: Literal["supporter_ineligible"] = "supporter_ineligible"


class MatchPaused(Event):
    """The chosen supporter of an accepted or active match became ineligible. The match is
    not ended: it waits for a coordinator's review (``ResumeMatch`` once the supporter is
    eligible again, or ``ChangeSupporter``), and no session goes ahead meanwhile."""

    type_name: ClassVar[str] = "MatchPaused"
    case_id: EntityId
    supporter_id: EntityId
    reason: Literal["supporter_ineligible"] = "supporter_ineligible"


class MatchResumed(Event):
    """A coordinator reviewed a paused match and it goes on with the same supporter."""

    type_name: ClassVar[str] = "MatchResumed"
    case_id: EntityId
    supporter_id: EntityId


class ProposalAccepted(Event):
    """The client chose a supporter; the match waits for every party's consent."""

    type_name: ClassVar[str] = "ProposalAccepted"
    case_id: EntityId
    supporter_id: EntityId
    released_supporter_ids: list[EntityId]


class ProposalsDeclined(Event):
    type_name: ClassVar[str] = "ProposalsDeclined"
    case_id: EntityId
    supporter_ids: list[EntityId]


class ProposalsExpired(Event):
    """The client did not choose in time: the holds are released."""

    type_name: ClassVar[str] = "ProposalsExpired"
    case_id: EntityId
    supporter_ids: list[EntityId]


class SupporterAgreed(Event):
    """The chosen supporter agreed to support the client."""

    type_name: ClassVar[str] = "SupporterAgreed"
    case_id: EntityId
    supporter_id: EntityId


class MatchActivated(Event):
    """Every party has consented: the match is active and scheduling arranges a first meeting."""

    type_name: ClassVar[str] = "MatchActivated"
    case_id: EntityId
    supporter_id: EntityId


class MatchEnded(Event):
    type_name: ClassVar[str] = "MatchEnded"
    case_id: EntityId
    supporter_id: EntityId
    # 1.1: the reason client_erased; 1.2: supporter_declined
    schema_version: ClassVar[str] = "1.2"
    reason: Literal[
        "change_of_supporter",
        "supporter_declined",
        "service_refused",
        "service_completed",
        "client_erased",
    ]


class ServiceRefused(Event):
    """The client refused peer support; matching for the case is closed."""

    type_name: ClassVar[str] = "ServiceRefused"
    case_id: EntityId
    released_supporter_ids: list[EntityId]


COMMANDS: tuple[type[Command], ...] = (
    AcceptProposal,
    DeclineProposals,
    ChangeSupporter,
    RefuseService,
    AcceptClient,
    DeclineClient,
    ResumeMatch,
    AssignBatch,
)
EVENTS: tuple[type[Event], ...] = (
    MatchProposed,
    ClientWaitlisted,
    ProposalsWithdrawn,
    ProposalAccepted,
    ProposalsDeclined,
    ProposalsExpired,
    SupporterAgreed,
    MatchActivated,
    MatchPaused,
    MatchResumed,
    MatchEnded,
    ServiceRefused,
)
