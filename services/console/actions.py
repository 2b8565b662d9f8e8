"""What the console's forms send from a record's page, in one place: which commands each page
may send, which ask to be confirmed first (and the consequence they name), what each says
once done, and the reverse offered beside it where the domain allows one. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# What a case's, a supporter's and the group sessions' pages may send.
CASE_ACTIONS = frozenset(
    {
        "AcceptProposal",
        "DeclineProposals",
        "ChangeSupporter",
        "RefuseService",
        "GiveConsent",
        "WithdrawConsent",
        "ChangeCaseStage",
        "NameSupportPerson",
        "ConfirmMeeting",
        "ProposeMeetingTime",
        "GoAhead",
        "RecordFrequencyAgreement",
        "BookSession",
        "RescheduleSession",
        "CancelSession",
        "RecordAttendance",
        "ExtendService",
        "ResumeMatch",
        "EraseClient",
        "SetContactPreferences",
        "RevokeLinks",
    }
)
SUPPORTER_ACTIONS = frozenset(
    {
        "UpdateSupporter",
        "RecordVettingEvidence",
        "RecordSupervisionAttendance",
        "EraseSupporter",
        "SetContactPreferences",
        "RevokeLinks",
    }
)
GROUP_ACTIONS = frozenset({"CreateGroupSession", "JoinGroupSession"})
# About one person of the record's page: the page's id goes in their ``person``.
ABOUT_A_PERSON = frozenset({"SetContactPreferences", "RevokeLinks"})
# Once done, the record is gone: its page cannot be shown again.
LEAVES = frozenset({"EraseClient", "EraseSupporter"})


@dataclass(frozen=True)
class Confirm:
    """An action asked about first: ``{name}`` is the person's name (or the record's id)."""

    question: str
    consequence: str
    button: str
    # Which sends of the command need it (default: every one).
    when: Callable[[Mapping[str, str]], bool] = lambda sent: True


def _suspending(sent: Mapping[str, str]) -> bool:
    return sent.get("changes.suspended") == "true"


CONFIRM: dict[str, Confirm] = {
    "EraseClient": Confirm(
        "Erase {name}'s case?",
        "Erasing {name}'s case destroys their personal data for good: their name, contact, "
        "and what they told us. Ids, dates and outcomes stay for the figures. "
        "This cannot be undone.",
        "Erase for good",
    ),
    "EraseSupporter": Confirm(
        "Erase {name}?",
        "Erasing {name} destroys their personal data for good: their name, contact, profile "
        "and vetting. They are never proposed again; their id, dates and outcomes stay for "
        "the figures. This cannot be undone.",
        "Erase for good",
    ),
    "RefuseService": Confirm(
        "Does {name} refuse the service?",
        "Recording that {name} refuses the service ends it: matching for the case closes, "
        "any supporters held for them are released and coming sessions are cancelled. "
        "It cannot be resumed from here.",
        "Record the refusal: end the service",
    ),
    "UpdateSupporter": Confirm(
        "Suspend {name}?",
        "While suspended, {name} is not proposed to any client. Clients who already chose "
        "them have their match paused, and no session goes ahead, until you reinstate them "
        "or give those clients another supporter.",
        "Suspend",
        when=_suspending,
    ),
    "CancelSession": Confirm(
        "Cancel this session of {name}'s?",
        "Cancelling the session means it will not happen: neither {name} nor their supporter "
        "is reminded of it. "
        "You can book the time again afterwards, if it is still free.",
        "Cancel the session",
    ),
    "RevokeLinks": Confirm(
        "Turn off every link {name} has?",
        "Every personal link already sent to {name} stops working at once (a lost or shared "
        "phone, an inbox someone else reads). Their next message carries a new one.",
        "Turn their links off",
    ),
    "ChangeSupporter": Confirm(
        "Change {name}'s supporter?",
        "Changing the supporter ends {name}'s match with their current supporter for good: "
        "that supporter is never proposed to them again, and their coming sessions are "
        "cancelled. New proposals follow.",
        "Change the supporter",
    ),
}


def confirming(type_name: str, sent: Mapping[str, str]) -> Confirm | None:
    """The confirmation this send needs before it goes, if any."""
    found = CONFIRM.get(type_name)
    return found if found is not None and found.when(sent) else None


@dataclass(frozen=True)
class Done:
    """What a page says once an action is done: ``said`` takes the ``carry`` fields (in plain
    words), and ``account``; ``undo`` is the reverse's type name, offered as ``undo_label``."""

    said: str
    carry: tuple[str, ...] = ()
    undo: str | None = None
    undo_label: str = ""


DONE: dict[str, Done] = {
    "SubmitIntake": Done("The intake was recorded: the case is open and matching has begun."),
    "RegisterSupporter": Done(
        "The supporter was registered: they can be proposed once their vetting is on file."
    ),
    "AcceptProposal": Done("The client's choice was recorded on their behalf by {account}."),
    "DeclineProposals": Done(
        "The client declined every supporter proposed: none of them is proposed again."
    ),
    "ChangeSupporter": Done("The supporter was changed: new proposals follow."),
    "RefuseService": Done("The client's refusal was recorded: the service has ended."),
    "ResumeMatch": Done("The match goes on with the same supporter."),
    "GiveConsent": Done("The consent of {party_id} was recorded.", ("party_id",)),
    "WithdrawConsent": Done(
        "The consent of {party_id} was withdrawn: the support person's involvement is "
        "suspended until it is given again.",
        ("party_id",),
        undo="GiveConsent",
        undo_label="Record consent again",
    ),
    "ChangeCaseStage": Done("The case moved to the stage: {stage}.", ("stage",)),
    "NameSupportPerson": Done(
        "The support person was named: each party's consent to them is needed again."
    ),
    "ConfirmMeeting": Done(
        "The first meeting's time was confirmed for {by}: it is booked once both sides have.",
        ("by",),
    ),
    "ProposeMeetingTime": Done(
        "Another time for the first meeting was proposed for {by}: the other side confirms it.",
        ("by",),
    ),
    "GoAhead": Done("The client goes ahead: weekly sessions are booked."),
    "RecordFrequencyAgreement": Done(
        "Both sides' agreement to meet {sessions_per_week} times a week was recorded.",
        ("sessions_per_week",),
    ),
    "BookSession": Done("The session was booked."),
    "RescheduleSession": Done("The session was moved."),
    "CancelSession": Done(
        "The session was cancelled.",
        ("session_id",),
        undo="BookSession",
        undo_label="Book the same time again",
    ),
    "RecordAttendance": Done("What happened at the session was recorded."),
    "ExtendService": Done(
        "The service was extended: weekly sessions go on to {until}.", ("until",)
    ),
    "EraseClient": Done(
        "The client's personal data was erased for good; ids, dates and outcomes stay."
    ),
    "UpdateSupporter": Done("The supporter's profile was changed."),
    "UpdateSupporter:suspend": Done(
        "The supporter is suspended: they are not proposed, and their clients' matches wait "
        "for your review.",
        undo="UpdateSupporter",
        undo_label="Reinstate",
    ),
    "UpdateSupporter:reinstate": Done(
        "The supporter is reinstated: they are proposed again while they are eligible."
    ),
    "RecordVettingEvidence": Done(
        "The vetting evidence was recorded: the supporter's eligibility is decided again."
    ),
    "RecordSupervisionAttendance": Done("Their attendance at supervision was recorded."),
    "EraseSupporter": Done(
        "The supporter's personal data was erased for good; ids, dates and outcomes stay."
    ),
    "SetContactPreferences": Done(
        "How we may contact them was saved. A limit you set for their safety, they cannot "
        "lift from their own page."
    ),
    "RevokeLinks": Done("Their links are turned off: none of them opens a page any more."),
    "CreateGroupSession": Done("The group session {group_id} was set up.", ("group_id",)),
    "JoinGroupSession": Done(
        "The client of case {case_id} joined the group session {group_id}.",
        ("case_id", "group_id"),
    ),
}


def placed(type_name: str, body: dict[str, Any]) -> dict[str, Any]:
    """A command about one person (``ABOUT_A_PERSON``) names them in ``person``: the page's
    id goes there (a supporter's page: the supporter; a case's: the client or, with
    ``person.party_id``, another party)."""
    if type_name not in ABOUT_A_PERSON:
        return body
    person = dict(body.get("person") or {})
    for name in ("case_id", "supporter_id"):
        if name in body:
            person[name] = body.pop(name)
    if "supporter_id" in person:
        person["kind"] = "supporter"
    else:
        person["kind"] = "party" if person.get("party_id") not in (None, "client") else "client"
        if person["kind"] == "client":
            person.pop("party_id", None)
    return {**body, "person": person}


def done_key(type_name: str, sent: Mapping[str, str]) -> str:
    """Which of ``DONE`` an accepted send says: a supporter's update by what it changed."""
    if type_name == "UpdateSupporter" and "changes.suspended" in sent:
        return f"{type_name}:{'suspend' if _suspending(sent) else 'reinstate'}"
    return type_name


# Fields as a form's refusal names them, in the words of the form's labels.
FIELD_LABELS: dict[str, str] = {
    "start": "Starts",
    "first_session": "First weekly session",
    "minutes": "Minutes",
    "method": "Way to meet",
    "by": "On behalf of",
    "party_id": "Party",
    "stages": "For the stages",
    "stage": "Stage",
    "given_on": "Given on",
    "withdrawn_on": "Withdrawn on",
    "until": "Funded to",
    "session_id": "Session",
    "sessions_per_week": "Sessions a week",
    "outcome": "Outcome",
    "supporter_id": "Supporter",
    "case_id": "Case reference",
    "group_id": "Group reference",
    "facilitator_id": "Facilitator (a supporter's reference)",
    "capacity": "Places",
    "support_person.kind": "Who they are",
    "support_person.display_name": "Their name",
    "support_person.contact": "Their email or phone",
    "support_person.contact.email": "Their email",
    "support_person.contact.phone": "Their phone",
    "changes": "The changes",
    "changes.display_name": "Name",
    "changes.contact": "Email or phone",
    "changes.contact.email": "Email",
    "changes.contact.phone": "Phone",
    "changes.region": "Region",
    "changes.caseload_cap": "Clients at a time, at most",
    "evidence": "The evidence",
    "evidence.issued_on": "Issued on",
    "evidence.expires_on": "Expires on",
    "evidence.clear": "Result",
    "evidence.reference": "Check reference",
    "evidence.held_on": "Held on",
    "evidence.passed": "Result",
    "evidence.reference_type": "Kind of reference",
    "evidence.received_on": "Received on",
    "evidence.satisfactory": "Result",
    "evidence.since": "In recovery since",
    "evidence.course": "Course",
    "evidence.completed_on": "Completed on",
    "evidence.session": "Which",
    "evidence.attended_on": "Attended on",
}


def field_label(field: str) -> str:
    """A refused field in the words of its form's label; a field a form has no input for
    (a rule's name) as it is. A union's tag in the path (``evidence.recovery.since``, as the
    model names it) is not in the form's names: it is looked up without it."""
    parts = field.split(".")
    for name in (field, ".".join(parts[:1] + parts[2:])):
        if name in FIELD_LABELS:
            return FIELD_LABELS[name]
    return field
