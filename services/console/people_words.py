"""What people's pages say, in words a person reads: languages by name, ways of meeting,
the dispute's stage, a session's kind and where it stands, a time in their zone, and where
their match or consent stands. Never a code, an id or an organisation's name. Pure.

People read these, not coordinators: the words differ from ``labels`` on purpose ("by
phone", "the first stage of the matter"), and a code with no words here is never shown as
the code ("another language").
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from contracts.notifications import PageConsent, PageSession
from services.console.labels import plain, words

# ISO 639 codes a client or supporter may give (``LanguageCode``), by their English names.
LANGUAGES = {
    "ar": "Arabic",
    "bn": "Bengali",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "es": "Spanish",
    "fa": "Persian",
    "fil": "Filipino",
    "fj": "Fijian",
    "fr": "French",
    "gil": "Kiribati",
    "hi": "Hindi",
    "id": "Indonesian",
    "it": "Italian",
    "ja": "Japanese",
    "km": "Khmer",
    "ko": "Korean",
    "mi": "Māori",
    "ms": "Malay",
    "my": "Burmese",
    "ne": "Nepali",
    "niu": "Niuean",
    "nl": "Dutch",
    "pa": "Punjabi",
    "pl": "Polish",
    "pt": "Portuguese",
    "rar": "Cook Islands Māori",
    "ru": "Russian",
    "sm": "Samoan",
    "so": "Somali",
    "sw": "Swahili",
    "ta": "Tamil",
    "th": "Thai",
    "tkl": "Tokelauan",
    "tl": "Tagalog",
    "to": "Tongan",
    "tr": "Turkish",
    "tvl": "Tuvaluan",
    "uk": "Ukrainian",
    "ur": "Urdu",
    "vi": "Vietnamese",
    "zh": "Chinese",
}
METHODS = {
    "in_person": "in person, at a safe place",
    "home_visit": "a home visit",
    "phone": "by phone",
    "text": "by text messages",
    "video": "by video call",
}
# The dispute's stage, as the messages say it ("for the first stage of the matter").
STAGES = {
    "entry": "first",
    "early_resolution": "early resolution",
    "investigation": "investigation",
    "conciliation": "conciliation",
    "adjudication": "decision",
    "closed": "closing",
}
KINDS = {
    "initial_meeting": "First meeting",
    "regular": "Session",
    "extra": "Extra session",
    "supervision": "Supervision",
    "team_debrief": "Team debrief",
}
SESSION_STATUS = {
    "proposed": "Suggested, not yet confirmed",
    "booked": "Booked",
    "completed": "Held",
    "client_no_show": "Missed",
    "supporter_no_show": "Missed",
    "cancelled": "Cancelled",
}
SUPPORT_PERSON = {
    "peer": "a trained peer supporter",
    "family": "a family member",
    "friend": "a friend",
}
# Where a client's match stands, when there is nothing to choose.
STANDING = {
    None: "We are finding supporters who fit what you asked for. We will send you a message "
    "when they are ready.",
    "awaiting_batch": "We are finding supporters who fit what you asked for. We will send you "
    "a message when they are ready.",
    "waitlisted": "Every supporter who fits is busy just now. You are on the waiting list, and "
    "we will send you a message as soon as one is free.",
    "expired": "The supporters we suggested are no longer waiting for your answer. We are "
    "finding others for you.",
    "accepted": "You chose your supporter. We are waiting for everyone to agree.",
    "active": "Your peer support has started.",
    "paused": "Your peer support is paused while we check something. Your coordinator will "
    "be in touch.",
    "completed": "Your peer support has finished.",
    "refused": "You told us you do not want peer support. If you change your mind, contact "
    "your coordinator.",
    "erased": "There is nothing to show here any more.",
}
CLIENT_STANDING = {
    "accepted": "They have chosen you. We are waiting for everyone to agree to the support.",
    "active": "Everyone has agreed: the support has started.",
    "paused": "The support is paused while we check something.",
    "completed": "The support has finished.",
    "refused": "They decided not to have peer support after all.",
    "expired": "This match has ended.",
}


def when(moment: datetime, zone: ZoneInfo) -> str:
    """'Tuesday 8 December at 10:00', in the person's zone."""
    local = moment.astimezone(zone)
    return f"{local:%A} {local.day} {local:%B} at {local:%H:%M}"


def listed(items: Iterable[str]) -> str:
    """'a, b and c'."""
    said = [i for i in items if i]
    if len(said) <= 1:
        return "".join(said)
    return f"{', '.join(said[:-1])} and {said[-1]}"


def languages(codes: Iterable[str]) -> str:
    """Languages by name; codes with no name here are counted, never shown."""
    codes = list(codes)
    named = [LANGUAGES[c] for c in codes if c in LANGUAGES]
    others = len(codes) - len(named)
    if others:
        named.append("another language" if others == 1 else f"{others} other languages")
    return listed(named)


def methods(codes: Iterable[str]) -> str:
    return listed(METHODS.get(c, words(c).lower()) for c in codes)


def stage(code: str) -> str:
    return f"the {STAGES.get(code, words(code).lower())} stage"


def region(code: str) -> str:
    return words(code)


def matched_on(fields: Iterable[str]) -> str:
    """Which of the client's wishes a supporter meets, in words (``labels``)."""
    return listed(plain(f, "matched_on").lower() for f in fields)


def standing(match_status: str | None, chosen_name: str | None = None) -> str:
    said = STANDING.get(match_status, STANDING[None])
    if chosen_name and match_status in ("accepted", "active"):
        said = f"Your supporter is {chosen_name}. {said}"
    return said


def client_standing(status: str, supporter_accepted: bool) -> str:
    said = CLIENT_STANDING.get(status, "")
    if status in ("accepted", "active") and not supporter_accepted:
        said = f"{said} Please tell us whether you can support them."
    return said.strip()


def session_kind(session: PageSession) -> str:
    return KINDS.get(session.kind, words(session.kind))


def session_status(session: PageSession) -> str:
    if session.status == "proposed" and session.confirmed:
        return "You confirmed it; waiting for the other side"
    return SESSION_STATUS.get(session.status, words(session.status))


def support_person(consent: PageConsent) -> str:
    return SUPPORT_PERSON.get(consent.support_person or "", "a support person")


def consent_standing(consent: PageConsent) -> str:
    """Where this person's answer stands, and the support's."""
    if consent.status == "given":
        covered = listed(stage(s) for s in consent.stages)
        said = f"You have given your consent for {covered}."
    elif consent.status == "withdrawn":
        said = "You withdrew your consent, so the support is stopped."
    else:
        said = "You have not answered yet."
    if consent.active:
        return f"{said} Everyone involved has agreed, so the support can go ahead."
    return f"{said} We are waiting for everyone involved to agree."
