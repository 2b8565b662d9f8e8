"""``alongside notifications``: an organisation's channels set, a mistake named in plain
words, and a person's links turned off, against the suite's server."""

from __future__ import annotations

import asyncio

from typer.testing import CliRunner, Result

from alongside.cli import app
from alongside.client import AlongsideClient
from tests.conftest import Start
from tests.support import wait_for

runner = CliRunner()


async def test_configure_then_revoke_through_the_cli(
    start: Start, env: dict[str, str], org: str, client: AlongsideClient
) -> None:
    await start("notifications")

    def invoke(*args: str) -> Result:
        return runner.invoke(app, ["notifications", *args], env=env)

    configured = await asyncio.to_thread(
        invoke,
        "configure",
        org,
        "--from",
        "hello@peersupport.example",
        "--pages-url",
        "https://console.example",
        "--webhook-url",
        "jsons://sms.example/send",
    )
    assert configured.exit_code == 0, configured.output
    assert "pages at https://console.example" in configured.output
    [done] = await wait_for(client, org, "NotificationsConfigured")
    assert done.data == {"by_mail": False, "by_webhook": True}

    wrong = await asyncio.to_thread(
        invoke, "configure", org, "--from", "not an address", "--pages-url", "https://x"
    )
    assert wrong.exit_code != 0
    assert "--from: must be an email address" in str(wrong.exception)

    revoked = await asyncio.to_thread(invoke, "revoke", org, "--party", "c1:p1")
    assert revoked.exit_code == 0, revoked.output
    [gone] = await wait_for(client, org, "LinksRevoked")
    assert gone.data["person"] == {
        "kind": "party",
        "case_id": "c1",
        "party_id": "p1",
        "supporter_id": None,
    }
    nobody = await asyncio.to_thread(invoke, "revoke", org)
    assert nobody.exit_code != 0
