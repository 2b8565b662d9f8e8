"""Credential kinds as issued: the names they may take, and who each file says it is.
(What the server lets each kind do is tried in tests/integration/test_isolation.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from contracts import subjects
from contracts.catalogue import COMMANDS, INTEGRATION_COMMANDS
from runtime.access import (
    OPERATOR_PRINCIPAL,
    RESERVED_NAMES,
    AccessError,
    AuthDir,
    CredentialKind,
    credential_name,
    org_permissions,
    org_user,
    principal,
)


def test_an_integration_sends_intake_and_never_a_view_an_export_or_an_erasure() -> None:
    assert {COMMANDS[c].service for c in INTEGRATION_COMMANDS} == {"intake"}
    assert "SubmitIntake" in INTEGRATION_COMMANDS
    for sensitive in (
        "ViewCase",
        "ViewSupporter",
        "ViewDecision",
        "ExportPersonData",
        "EraseClient",
        "EraseSupporter",
    ):
        assert sensitive not in INTEGRATION_COMMANDS


def test_the_names_the_server_vouches_for_cannot_be_taken() -> None:
    assert credential_name("console", None) == subjects.CONSOLE
    with pytest.raises(AccessError, match="always named 'console'"):
        credential_name("console", "desk")
    with pytest.raises(AccessError, match="needs a name"):
        credential_name("subscriber", None)
    for reserved in RESERVED_NAMES:
        with pytest.raises(AccessError, match="reserved"):
            credential_name("integration", reserved)
    assert credential_name("integration", "case-form") == "case-form"


@pytest.mark.parametrize("kind", get_args(CredentialKind))
def test_a_credential_says_its_inbox_sender_and_kind(kind: str, tmp_path: Path) -> None:
    auth = AuthDir.init(tmp_path / "auth", [], 1_700_000_000)
    name = credential_name(kind, None if kind == "console" else "feed")  # type: ignore[arg-type]
    issued = auth.issue(
        org_user("acme", kind, name),  # type: ignore[arg-type]
        org_permissions("acme", kind, name),  # type: ignore[arg-type]
        1_700_000_000,
    )
    path = tmp_path / "one.creds"
    path.write_text(issued.text)

    found = principal(path)

    assert (found.inbox_prefix, found.sender, found.kind) == (
        f"_INBOX_org.acme.{name}",
        name,
        kind,
    )
    # Small enough for nats-server's CONNECT line (4 KiB by default) with room to spare.
    assert len(issued.text) < 3000


def test_a_credential_from_before_kinds_keeps_an_inbox_its_permissions_allow(
    tmp_path: Path,
) -> None:
    auth = AuthDir.init(tmp_path / "auth", [], 1_700_000_000)
    old = auth.issue("org:acme:desk", org_permissions("acme", "integration", "desk"), 0)
    path = tmp_path / "old.creds"
    path.write_text(old.text)

    found = principal(path)

    assert (found.inbox_prefix, found.sender, found.kind) == ("_INBOX_org.acme.desk", "desk", None)
    assert principal(None) == OPERATOR_PRINCIPAL
    assert principal(auth.credentials("admin")) == OPERATOR_PRINCIPAL
