"""A message's words, from its template: the organisation's own if it has one, else the
plain default (``messages/``). Templates are sandboxed Jinja: an organisation's file can
use the values given and nothing else. Values are put in plain words and in the person's
time zone here, so no template can show a code, an id or a UTC time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

DEFAULTS = Path(__file__).parent / "messages"

KINDS = {
    "initial_meeting": "first meeting",
    "regular": "session",
    "extra": "extra session",
    "supervision": "supervision",
    "team_debrief": "team debrief",
}
METHODS = {
    "in_person": "in person",
    "home_visit": "at your home",
    "phone": "by phone",
    "text": "by text messages",
    "video": "by video call",
}
STAGES = {
    "entry": "first",
    "early_resolution": "early resolution",
    "investigation": "investigation",
    "conciliation": "conciliation",
    "adjudication": "decision",
    "closed": "closing",
}


@dataclass(frozen=True)
class Words:
    subject: str
    text: str  # the email's body
    sms: str  # the whole message on SMS and other webhook channels


class BadTemplate(Exception):
    """An organisation's template that cannot be read or filled: its default is used."""


_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


@lru_cache(maxsize=1024)
def _compiled(text: str) -> Template:
    """A template compiled once (compiling is most of the cost of filling one in)."""
    return _env.from_string(text)


@lru_cache(maxsize=256)
def _parse(text: str) -> tuple[str, str, str]:
    """Headers ``Subject:`` and ``SMS:``, a blank line, then the body."""
    head, _, body = text.partition("\n\n")
    headers = dict(line.split(":", 1) for line in head.splitlines() if ":" in line)
    subject, sms = headers.get("Subject", "").strip(), headers.get("SMS", "").strip()
    if not subject or not sms or not body.strip():
        raise BadTemplate("a template needs a Subject: line, an SMS: line and a body")
    return subject, sms, body


def _source(about: str, org: str, folder: Path | None) -> list[str]:
    """The organisation's template (if any), then the default."""
    found = []
    if folder is not None:
        own = folder / org / f"{about}.txt"
        if own.is_file():
            found.append(own.read_text(encoding="utf-8"))
    found.append((DEFAULTS / f"{about}.txt").read_text(encoding="utf-8"))
    return found


def when(moment: datetime, zone: ZoneInfo) -> str:
    """'Tuesday 8 December at 10:00', in the person's zone."""
    local = moment.astimezone(zone)
    return f"{local:%A} {local.day} {local:%B} at {local:%H:%M}"


def day(value: date) -> str:
    return f"{value:%A} {value.day} {value:%B %Y}"


def values(facts: dict[str, str], zone: ZoneInfo) -> dict[str, str]:
    """Facts as the person reads them."""
    shown = {name: "" for name in ("start", "until", "lapses_on", "kind", "method", "count")}
    shown["stage"] = ""
    for name in ("start", "until"):
        if name in facts:
            shown[name] = when(datetime.fromisoformat(facts[name]), zone)
    if "lapses_on" in facts:
        shown["lapses_on"] = day(date.fromisoformat(facts["lapses_on"]))
    shown["kind"] = KINDS.get(facts.get("kind", ""), "session")
    shown["method"] = METHODS.get(facts.get("method", ""), "")
    shown["count"] = facts.get("count", "")
    shown["stage"] = STAGES.get(facts.get("stage", ""), "")
    return shown


def words(
    about: str,
    facts: dict[str, str],
    zone: ZoneInfo,
    org: str,
    sender: str,
    link: str = "",
    code: str = "",
    folder: Path | None = None,
) -> Words:
    context = {**values(facts, zone), "link": link, "sender": sender, "code": code}
    last_error: Exception | None = None
    for text in _source(about, org, folder):
        try:
            subject, sms, body = _parse(text)
            return Words(
                subject=_compiled(subject).render(context).strip(),
                text=_compiled(body).render(context),
                sms=_compiled(sms).render(context).strip(),
            )
        except (BadTemplate, TemplateError) as error:  # the organisation's: use the default
            last_error = error
    raise BadTemplate(f"the default template {about!r} does not render: {last_error}")
