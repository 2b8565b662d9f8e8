"""What each form on a person's page sends: the command, made from what their link opened
(``LinkOpened``) and the few values the form carries, never from ids the form could change
beyond those the page offered. Pure.

A person may act only within their link: a client on their own case, a party on their own
consent, a supporter on the client offered to them and on sessions the page listed. Whether
the action fits the case's state now is the services' to decide (a form sent twice, after
the state moved on, is answered as the first time: its command id is the same).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, time
from typing import Literal

from contracts.envelope import Command
from contracts.intake import GiveConsent, Stage, WithdrawConsent
from contracts.matching import (
    AcceptClient,
    AcceptProposal,
    ChangeSupporter,
    DeclineClient,
    DeclineProposals,
    RefuseService,
)
from contracts.notifications import (
    Channel,
    ContactPreferences,
    LinkOpened,
    PageSession,
    SendCode,
    SetContactPreferences,
    Window,
)
from contracts.scheduling import CancelSession, ConfirmMeeting, RecordAttendance

# Command ids of a person's forms: the same link, action, target and form (its nonce) make
# the same id, so a form sent twice is carried out once and answered the same.
_NAMESPACE = uuid.UUID("3c0f7a52-9d1b-4e8e-b6a4-5f2d8c1e7a90")
NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
CODE = re.compile(r"[0-9]{6}")
# Consent is changed only after a one-time code sent to the person's own contact.
NEEDS_CODE = frozenset({"give_consent", "withdraw_consent"})

Form = Mapping[str, str]


class NotYours(Exception):
    """The form asks for something the link does not allow, or is not filled in right: the
    reason in words for the person."""


@dataclass(frozen=True)
class Confirm:
    question: str
    consequence: str
    button: str


@dataclass(frozen=True)
class Action:
    make: Callable[[LinkOpened, Form, str, date], Command]
    done: str  # said on the page after it was done
    not_done: str  # said above the services' reasons when it was refused
    confirm: Confirm | None = None
    target: str | None = None  # the form's field naming what it acts on, part of the id


def command_id(token_hash: str, action: str, target: str, nonce: str) -> str:
    return uuid.uuid5(_NAMESPACE, f"{token_hash}:{action}:{target}:{nonce}").hex


def _case(opened: LinkOpened) -> str:
    if opened.case_id is None:
        raise NotYours("There is no matter for this page to act on.")
    return opened.case_id


def _client_choosing(opened: LinkOpened) -> str:
    if opened.purpose != "choose_supporter" or opened.person.kind != "client":
        raise NotYours("This page cannot do that.")
    return _case(opened)


def _choose(opened: LinkOpened, form: Form, token: str, today: date) -> Command:
    case_id = _client_choosing(opened)
    chosen = form.get("supporter", "")
    # One of those offered (or, sent again, the one already chosen).
    if chosen not in {o.supporter_id for o in opened.offers} | {opened.chosen_id}:
        raise NotYours("That supporter is not one we suggested to you. Choose from the list.")
    return AcceptProposal(case_id=case_id, supporter_id=chosen)


def _decline_all(opened: LinkOpened, form: Form, token: str, today: date) -> Command:
    reason = form.get("reason", "").strip()
    if len(reason) > 2000:
        raise NotYours("Please say why in fewer words (at most 2,000 characters).")
    return DeclineProposals(case_id=_client_choosing(opened), reason=reason or None)


def _change(opened: LinkOpened, form: Form, token: str, today: date) -> Command:
    return ChangeSupporter(case_id=_client_choosing(opened))


def _refuse(opened: LinkOpened, form: Form, token: str, today: date) -> Command:
    return RefuseService(case_id=_client_choosing(opened))


def _consent(opened: LinkOpened) -> tuple[str, str, str]:
    consent = opened.consent
    if opened.purpose != "consent" or consent is None or consent.support_person is None:
        raise NotYours("There is nothing to consent to on this page just now.")
    return _case(opened), consent.party_id, consent.stage


def _send_code(opened: LinkOpened, form: Form, token: str, today: date) -> Command:
    _consent(opened)
    return SendCode(token=token)


def _give(opened: LinkOpened, form: Form, token: str, today: date) -> Command:
    case_id, party_id, stage = _consent(opened)
    return GiveConsent(case_id=case_id, party_id=party_id, stages=[Stage(stage)], given_on=today)


def _withdraw(opened: LinkOpened, form: Form, token: str, today: date) -> Command:
    case_id, party_id, _ = _consent(opened)
    return WithdrawConsent(case_id=case_id, party_id=party_id, withdrawn_on=today)


def _offered(opened: LinkOpened) -> tuple[str, str]:
    person, offered = opened.person, opened.offered
    if opened.purpose != "supporter_offer" or offered is None or person.supporter_id is None:
        raise NotYours("This page cannot do that.")
    return offered.case_id, person.supporter_id


def _accept_client(opened: LinkOpened, form: Form, token: str, today: date) -> Command:
    case_id, supporter_id = _offered(opened)
    return AcceptClient(case_id=case_id, supporter_id=supporter_id)


def _decline_client(opened: LinkOpened, form: Form, token: str, today: date) -> Command:
    case_id, supporter_id = _offered(opened)
    return DeclineClient(case_id=case_id, supporter_id=supporter_id)


def side(opened: LinkOpened) -> Literal["client", "supporter"]:
    if opened.person.kind == "party":
        raise NotYours("This page cannot do that.")
    return "supporter" if opened.person.kind == "supporter" else "client"


def session_of(opened: LinkOpened, form: Form) -> PageSession:
    """The session the form names, if the page listed it (nothing else is reachable)."""
    wanted = form.get("session", "")
    found = next((s for s in opened.sessions if s.session_id == wanted), None)
    if found is None:
        raise NotYours("That session is not one of yours.")
    return found


def _confirm_meeting(opened: LinkOpened, form: Form, token: str, today: date) -> Command:
    session = session_of(opened, form)
    if session.kind != "initial_meeting":
        raise NotYours("Only the first meeting is confirmed here.")
    return ConfirmMeeting(case_id=session.case_id, by=side(opened))


def _cancel(opened: LinkOpened, form: Form, token: str, today: date) -> Command:
    session = session_of(opened, form)
    return CancelSession(case_id=session.case_id, session_id=session.session_id, by=side(opened))


def _held(opened: LinkOpened, form: Form, token: str, today: date) -> Command:
    session = session_of(opened, form)
    if side(opened) != "supporter":
        raise NotYours("Your supporter records that a session was held.")
    return RecordAttendance(
        case_id=session.case_id, session_id=session.session_id, outcome="completed"
    )


def _preferences(opened: LinkOpened, form: Form, token: str, today: date) -> Command:
    return SetContactPreferences(person=opened.person, preferences=preferences_of(opened, form))


def preferences_of(opened: LinkOpened, form: Form) -> ContactPreferences:
    """The person's choices; the limits a coordinator set for their safety (one channel, one
    window) and their own time zone are kept as they are."""
    channel = form.get("channel", "")
    if channel not in (Channel.EMAIL.value, Channel.SMS.value):
        raise NotYours("Choose email or text message.")
    starts, ends = _time(form.get("quiet_from", "")), _time(form.get("quiet_to", ""))
    if (starts is None) != (ends is None):
        raise NotYours("Give both times for your quiet hours, or neither.")
    if starts is not None and starts == ends:
        raise NotYours("Your quiet hours must start and end at different times.")
    kept = opened.preferences
    return ContactPreferences(
        channel=Channel(channel),
        quiet_hours=Window(starts=starts, ends=ends) if starts and ends else None,
        essential_only=form.get("essential_only") == "yes",
        # A coordinator's "do not contact" stays (the service keeps it too): whoever holds
        # the link may not be the person.
        do_not_contact=form.get("do_not_contact") == "yes"
        or (opened.safety_locked and kept.do_not_contact),
        only_channel=kept.only_channel,
        only_within=kept.only_within,
        time_zone=kept.time_zone,
    )


def _time(value: str) -> time | None:
    value = value.strip()
    if not value:
        return None
    try:
        return time.fromisoformat(value).replace(second=0, microsecond=0)
    except ValueError:
        raise NotYours("Give each time as hours and minutes, like 21:00.") from None


ACTIONS: dict[str, Action] = {
    "choose": Action(
        _choose,
        "Done: you chose your supporter. We will let you know when everyone has agreed.",
        "Your choice was not recorded.",
        target="supporter",
    ),
    "decline_all": Action(
        _decline_all,
        "Done: we will look for other supporters for you.",
        "Your answer was not recorded.",
    ),
    "change_supporter": Action(
        _change,
        "Done: we will look for a new supporter for you.",
        "Your request was not recorded.",
        confirm=Confirm(
            "Do you want a different supporter?",
            "Your support with your supporter now ends, and we will suggest others to you. "
            "They will not be suggested to you again.",
            "Yes, find me a different supporter",
        ),
    ),
    "refuse_service": Action(
        _refuse,
        "Done: you will not get peer support. If you change your mind, contact your coordinator.",
        "Your answer was not recorded.",
        confirm=Confirm(
            "Do you want to stop peer support?",
            "You will not be matched with a supporter, and the supporters waiting for your "
            "answer will be free for others. If you change your mind later, contact your "
            "coordinator.",
            "Yes, I do not want peer support",
        ),
    ),
    "send_code": Action(
        _send_code,
        "Done: we sent you a code. It works for 10 minutes.",
        "We could not send you a code.",
    ),
    "give_consent": Action(
        _give, "Done: your consent is recorded. Thank you.", "Your consent was not recorded."
    ),
    "withdraw_consent": Action(
        _withdraw,
        "Done: your consent is withdrawn, and the support has stopped.",
        "Your consent was not withdrawn.",
    ),
    "accept_client": Action(
        _accept_client,
        "Done: thank you for agreeing to support them.",
        "Your answer was not recorded.",
    ),
    "decline_client": Action(
        _decline_client,
        "Done: we will offer them another supporter.",
        "Your answer was not recorded.",
        confirm=Confirm(
            "Say you cannot support them?",
            "They will be offered another supporter, and will not be offered you again.",
            "Yes, I cannot support them",
        ),
    ),
    "confirm_meeting": Action(
        _confirm_meeting,
        "Done: you confirmed the first meeting.",
        "The meeting was not confirmed.",
        target="session",
    ),
    "cancel_session": Action(
        _cancel,
        "Done: the session is cancelled.",
        "The session was not cancelled.",
        confirm=Confirm(
            "Cancel this session?",
            "The session will not take place, and the other side will be told.",
            "Yes, cancel it",
        ),
        target="session",
    ),
    "record_attendance": Action(
        _held,
        "Done: the session is recorded as held.",
        "The session was not recorded.",
        target="session",
    ),
    "preferences": Action(
        _preferences,
        "Done: your choices about how we contact you are saved.",
        "Your choices were not saved.",
    ),
}
