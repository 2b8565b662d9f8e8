"""What the console decides on its own: who may send which command for which organisation,
and how a refusal reads as HTTP. Pure functions, no I/O."""

from __future__ import annotations

import math

from contracts.console import Problem
from contracts.records import ConsoleAccount
from contracts.replies import CommandRejected, CommandUnavailable, FieldError

# Commands that answer for the people's data or the organisation's settings: a supervisor's
# (or an operator's), never a coordinator's alone.
ACCESS_LOG = "ReadAccessLog"  # who saw which case or supporter: not a command, a read
OVERVIEW = "ReadOverview"  # the work lists, reports and rules history: ids and dates only
SUPERVISORS_ONLY = frozenset(
    {
        "ExportPersonData",
        "EraseClient",
        "EraseSupporter",
        "ConfigureScheduling",
        "ConfigureNotifications",
        "ViewDecision",
        ACCESS_LOG,
    }
)


# What a person does through their own link (``services/console/people.py``): never a
# signed-in account's, whatever its role.
PEOPLE_ONLY = frozenset({"OpenLink", "SendCode", "CheckCode", "StopNonEssential"})
TRY_AGAIN = "Try again shortly"
RETRY_AFTER_S = 5  # a service that did not answer: when to try again


def try_again(detail: str, command_id: str | None = None) -> Problem:
    """A 503: nothing was done (or it may have been: the same Idempotency-Key is safe);
    ``command_id``: the id it was sent with, to send it again with."""
    return Problem(
        title=TRY_AGAIN,
        status=503,
        detail=detail,
        command_id=command_id,
        retry_after_s=RETRY_AFTER_S,
    )


NOT_JUST_NOW = "Could not be done just now"
NOT_JUST_NOW_DETAIL = (
    "This could not be done just now, and nothing refused it: try again in a moment."
)


def unavailable(reply: CommandUnavailable) -> Problem:
    """A command its service could not carry out just now, even after the console sent it
    again: a 503 saying when to try again (whole seconds, as Retry-After takes them) and the
    id it was sent with (the Idempotency-Key to send again, so it takes effect once)."""
    return Problem(
        title=NOT_JUST_NOW,
        status=503,
        detail=NOT_JUST_NOW_DETAIL,
        command_id=reply.command_id,
        retry_after_s=max(1, math.ceil(reply.retry_after_s)),
    )


# A command its service refused, as its title says it (the errors say why, field by field).
REFUSED = "Not done: it was refused"

NOT_SIGNED_IN = Problem(
    title="Not signed in", status=401, detail="sign in first (POST /api/session)"
)


def refusal(account: ConsoleAccount | None, org: str, command_type: str) -> Problem | None:
    """Why this account may not send this command for this organisation; None if it may."""
    if account is None:
        return NOT_SIGNED_IN
    role = account.roles.get(org)
    if role is None:
        return Problem(
            title="Not your organisation", status=403, detail=f"this account has no role in {org}"
        )
    if command_type in PEOPLE_ONLY:
        return Problem(
            title="Only the person can do this",
            status=403,
            detail=f"{command_type} is sent from the person's own page, through their link",
        )
    if role == "coordinator" and command_type in SUPERVISORS_ONLY:
        return Problem(
            title="Needs a supervisor",
            status=403,
            detail=f"{command_type} is for a supervisor of {org}",
        )
    return None


def problem_of(reply: CommandRejected) -> Problem:
    """A service's refusal as problem details: each field relative to the request body
    (``client.contact.email``), with the service's reason. The status says what to do:
    409 the id was used for another command, 503 retry later, 403 the organisation is not
    served, else 422 fix the request."""
    errors = [
        FieldError(field=e.field.removeprefix("data."), reason=e.reason, label=e.label)
        for e in reply.errors
    ]
    fields = {e.field for e in reply.errors}
    reasons = " ".join(e.reason for e in reply.errors)
    if fields == {"id"} and "retry" in reasons:
        # The service said to retry, as services said it before CommandUnavailable.
        status, title = 503, TRY_AGAIN
    elif fields == {"id"}:
        status, title = 409, "That Idempotency-Key was used for another command"
    elif fields == {"org"}:
        status, title = 403, "Organisation not served"
    else:
        status, title = 422, REFUSED
    detail = "; ".join(f"{e.field}: {e.reason}" for e in errors)
    return Problem(
        title=title,
        status=status,
        detail=detail,
        errors=errors,
        command_id=reply.command_id,
        retry_after_s=RETRY_AFTER_S if status == 503 else None,
    )
