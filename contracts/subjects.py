"""Every NATS subject Alongside uses, built in one place.

The organisation is always the second token (``alongside.<org>. ...``) so that
NATS accounts can map and restrict subjects per organisation
(``account_token_position: 2``) and every consumer can filter on it.

    alongside.<org>.cmd.<service>.<command>.<sender>
                                              request/reply commands; ``sender`` is the
                                              credential that sent it, which the server
                                              holds it to (``sender_of``)
    alongside.<org>.evt.<event>               domain events (stream EVENTS)
    alongside.<org>.dlq.<service>.<sender>    dead letters (stream DEADLETTERS), by whom
                                              the letter came from: a command's sender,
                                              or ``events``; each subject bounded alone
    alongside.<org>.sched.<name>.<id>         message schedules (stream EVENTS): the
                                              server publishes each to an event subject
                                              when its time comes
    alongside.<org>.decisionlog.<kind>.<subject>.<decision>
                                              the decision log (stream DECISIONLOG,
                                              operators only)
    alongside.<org>.key.<client|supporter>.<id>
                                              a person's data key, wrapped (stream KEYS)

An organisation's own subscribers read its events from the stream ``EVENTS-<org>`` (a
copy of its part of ``EVENTS``), and each of its credentials receives replies on its own
inboxes, ``_INBOX_org.<org>.<name>``: both are named so that NATS permissions can confine a
credential to one organisation, and its replies to that credential.
"""

from __future__ import annotations

import re

PREFIX = "alongside"

# The org and id patterns keep every value a single, safe subject/KV token.
ORG_PATTERN = r"^[a-z0-9][a-z0-9-]{1,31}$"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
_ORG_RE = re.compile(ORG_PATTERN)


class SubjectError(ValueError):
    """A subject that is not one of ours."""


def _org(org: str) -> str:
    if not _ORG_RE.match(org):
        raise SubjectError(f"org {org!r} is not a valid organisation token")
    return org


# Who sends a command is its subject's last token, and each credential's permissions allow
# it only its own (runtime/access.py): the server vouches for it, not the envelope. The
# console's credential of each organisation sends as ``CONSOLE``, a service as its own name,
# the operator's as ``OPERATOR``; an organisation's other credentials as their names, which
# may be none of these.
CONSOLE = "console"
OPERATOR = "operator"


def command(org: str, service: str, command_type: str, sender: str) -> str:
    return f"{PREFIX}.{_org(org)}.cmd.{service}.{command_type}.{sender}"


# The organisation token of the request a starting service sends itself to know it answers
# (never registered, so answered with a refusal and nothing stored).
READINESS_PROBE_ORG = "readiness-probe"


def commands(org: str) -> str:
    """Wildcard for every command of one organisation."""
    return f"{PREFIX}.{_org(org)}.cmd.>"


def commands_of(service: str, org: str = "*", command_type: str = "*", sender: str = "*") -> str:
    """Wildcard for the commands a service answers (one org, or all; one type, or all; from
    one sender, or any)."""
    return f"{PREFIX}.{org}.cmd.{service}.{command_type}.{sender}"


def command_type_of(subject: str) -> str:
    """The command type a command subject names."""
    tokens = subject.split(".")
    return tokens[4] if len(tokens) == 6 else tokens[-1]


def sender_of(subject: str) -> str:
    """Who sent a command, as the server holds each credential to its own (``command``)."""
    tokens = subject.split(".")
    return tokens[5] if len(tokens) == 6 else ""


def event(org: str, event_type: str) -> str:
    return f"{PREFIX}.{_org(org)}.evt.{event_type}"


def events(org: str = "*", event_type: str = "*") -> str:
    """Wildcard for the events of one org, or of all orgs (of one type, or of all)."""
    return f"{PREFIX}.{org}.evt.{event_type}"


def schedule(org: str, name: str, entity_id: str) -> str:
    """A message schedule's own subject: one schedule per subject, replaced by republishing."""
    return f"{PREFIX}.{_org(org)}.sched.{name}.{entity_id}"


def schedules(org: str = "*") -> str:
    return f"{PREFIX}.{org}.sched.>"


# Who a dead letter came from when it is an event a service could not use (a command's come
# from its sender): letters are bounded per subject, so one sender's flood drops only its own.
EVENTS_SENDER = "events"


def dead_letter(org: str, service: str, sender: str) -> str:
    return f"{PREFIX}.{_org(org)}.dlq.{service}.{sender}"


def dead_letters(org: str = "*", service: str | None = None) -> str:
    """An organisation's dead letters (every one's), of every service or one. (``>`` also
    holds letters kept before they named their sender: ``alongside.<org>.dlq.<service>``.)"""
    return f"{PREFIX}.{org}.dlq.{service}.*" if service else f"{PREFIX}.{org}.dlq.>"


def dead_letters_of(service: str) -> str:
    """Wildcard for the dead letters one service writes, for every organisation."""
    return f"{PREFIX}.*.dlq.{service}.*"


def decision_log(org: str, kind: str, subject_id: str, decision_id: str) -> str:
    """Where one decision is logged."""
    return f"{PREFIX}.{_org(org)}.decisionlog.{kind}.{subject_id}.{decision_id}"


def decision_logs(
    org: str = "*", kind: str = "*", subject_id: str = "*", decision_id: str = "*"
) -> str:
    """Wildcard for logged decisions: all, an organisation's, one subject's or one by id."""
    return f"{PREFIX}.{org}.decisionlog.{kind}.{subject_id}.{decision_id}"


def person_key(org: str, person: str, person_id: str) -> str:
    """Where one person's wrapped data key is kept (``person``: client or supporter)."""
    return f"{PREFIX}.{_org(org)}.key.{person}.{person_id}"


def person_keys(org: str = "*", holder: str | None = None) -> str:
    """Every key of an organisation (``holder``: only a client's, a supporter's or a day's
    dead letters)."""
    return f"{PREFIX}.{org}.key.{holder}.*" if holder else f"{PREFIX}.{org}.key.>"


def org_events_stream(org: str) -> str:
    """The stream an organisation's subscribers read: its events, and no one else's."""
    return f"EVENTS-{_org(org)}"


def org_inbox(org: str, name: str) -> str:
    """The inbox prefix a client holding an organisation's credential ``name`` must use
    (nats-py ``inbox_prefix``, nats.js ``inboxPrefix``): its replies reach it under this
    prefix only, and no other credential may subscribe to it."""
    return f"_INBOX_org.{_org(org)}.{name}"


def service_inbox(service: str) -> str:
    """The inbox prefix of a service's own connection."""
    return f"_INBOX_svc.{service}"


def org_of(subject: str) -> str:
    """The organisation token of one of our subjects."""
    tokens = subject.split(".")
    if len(tokens) < 3 or tokens[0] != PREFIX or not _ORG_RE.match(tokens[1]):
        raise SubjectError(f"{subject!r} is not an Alongside subject")
    return tokens[1]


def last_token(subject: str) -> str:
    return subject.rsplit(".", 1)[-1]


def matches(pattern: str, subject: str) -> bool:
    """Whether ``subject`` is one of those ``pattern`` names, as NATS reads wildcards: ``*``
    is one token, ``>`` the rest."""
    wanted, tokens = pattern.split("."), subject.split(".")
    for i, token in enumerate(wanted):
        if token == ">":
            return len(tokens) > i
        if i >= len(tokens) or token not in ("*", tokens[i]):
            return False
    return len(tokens) == len(wanted)
