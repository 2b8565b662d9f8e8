"""Notifications over a real nats-server, a real SMTP server (aiosmtpd on loopback) and a
real local HTTP server for the webhook: what reaches people, once, and what waits."""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from nats.aio.client import Client

from alongside import sample
from alongside.client import AlongsideClient
from alongside.mailcatcher import Caught, MailCatcher
from contracts import subjects
from contracts.envelope import RawEnvelope
from contracts.intake import Contact, SubmitIntake, Supervision
from contracts.matching import AcceptProposal
from contracts.notifications import (
    Channel,
    ChannelSettings,
    ConfigureNotifications,
    ContactPreferences,
    OpenLink,
    Person,
    RevokeLinks,
    SendCode,
    SetContactPreferences,
    Window,
)
from contracts.replies import CommandRejected
from runtime import topology
from runtime.clock import ManualClock
from services.notifications import sweeps
from services.notifications.gathering import NotificationsDeps
from tests.conftest import Start
from tests.support import accepted, eligible, event_where, intake, org_today, supporter

PAGES = "http://127.0.0.1:8000"
LINK = re.compile(r"http://127\.0\.0\.1:8000/p/([A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{22})")
CLIENT_EMAIL = "rua@clients.example.org"


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:  # quiet
        return


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Hook", (_Hook,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"json://127.0.0.1:{server.server_address[1]}/sms", received
    server.shutdown()
    server.server_close()


def reachable_intake(
    case_id: str, email: str | None = CLIENT_EMAIL, may: bool = True
) -> SubmitIntake:
    command = intake(case_id, ["sm"])
    contact = Contact(email=email, phone="+64 21 555 0101", may_contact=may)
    client = command.client.model_copy(update={"contact": contact})
    return command.model_copy(update={"client": client})


async def configure(
    client: AlongsideClient, org: str, catcher: MailCatcher, webhook_url: str | None = None
) -> None:
    settings = ChannelSettings(
        from_address="support@peers.example.org",
        smtp_url=catcher.url,
        webhook_url=webhook_url,
        pages_url=PAGES,
    )
    await accepted(client, org, ConfigureNotifications(settings=settings))


async def proposed_to(
    client: AlongsideClient, org: str, clock: ManualClock, command: SubmitIntake
) -> None:
    await supporter(client, org, "s1", ["sm"], cap=2, today=org_today(clock))
    await eligible(client, org, 1)
    await accepted(client, org, command)


def deps_of(running: Any) -> NotificationsDeps:
    deps: NotificationsDeps = running.deps["notifications"]
    return deps


async def test_proposals_reach_the_client_once_and_a_redelivered_event_sends_no_more(
    start: Start,
    client: AlongsideClient,
    org: str,
    clock: ManualClock,
    catcher: MailCatcher,
    nc: Client,
) -> None:
    await start()
    await configure(client, org, catcher)
    await proposed_to(client, org, clock, reachable_intake("c1"))
    [mail] = await catcher.arrived(1)
    assert mail.rcpt_tos == [CLIENT_EMAIL]
    text = mail.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert LINK.search(text), "the message carries the person's link"
    assert mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Ombudsman" not in str(mail.message["Subject"])
    assert "c1" not in text
    assert mail.path.exists()
    assert mail.path.suffix == ".eml"
    sent = await event_where(
        client, org, "NotificationSent", lambda d: d["person"]["case_id"] == "c1"
    )
    assert sent.data["attempt"] == 1

    # The consumer gets MatchProposed again (as after a crash before its ack): one message.
    proposed = await event_where(client, org, "MatchProposed", lambda d: d["case_id"] == "c1")
    again = RawEnvelope.model_validate(proposed.model_dump())
    js = nc.jetstream()
    await js.publish(
        subjects.event(org, "MatchProposed"),
        again.model_dump_json().encode(),
        stream=topology.EVENTS_STREAM,
        headers={"Nats-Msg-Id": f"redelivered-{again.id}"},
    )
    await event_where(client, org, "MatchProposed", lambda d: d["case_id"] == "c1", timeout=5)
    with pytest.raises(TimeoutError):
        await catcher.arrived(2, timeout_s=3)
    assert len(catcher.received) == 1


async def test_a_mail_server_down_then_up_loses_nothing(
    start: Start, client: AlongsideClient, org: str, clock: ManualClock, catcher: MailCatcher
) -> None:
    running = await start()
    await configure(client, org, catcher)
    catcher.stop()
    await proposed_to(client, org, clock, reachable_intake("c2"))
    deferred = await event_where(
        client, org, "NotificationDeferred", lambda d: d["because"] == "channel_unavailable"
    )
    assert deferred.data["person"] == {
        "kind": "client",
        "case_id": "c2",
        "party_id": None,
        "supporter_id": None,
    }
    catcher.start()
    clock.advance(timedelta(minutes=1))
    assert await sweeps.send_due(deps_of(running)) >= 1
    [mail] = await catcher.arrived(1)
    assert mail.rcpt_tos == [CLIENT_EMAIL]
    sent = await event_where(
        client, org, "NotificationSent", lambda d: d["person"]["case_id"] == "c2"
    )
    assert sent.data["attempt"] == 2


async def test_without_consent_to_contact_nothing_is_sent_and_the_reason_is_kept(
    start: Start, client: AlongsideClient, org: str, clock: ManualClock, catcher: MailCatcher
) -> None:
    await start()
    await configure(client, org, catcher)
    await proposed_to(client, org, clock, reachable_intake("c3", may=False))
    withheld = await event_where(
        client, org, "NotificationWithheld", lambda d: d["person"]["case_id"] == "c3"
    )
    assert withheld.data["because"] == "no_consent_to_contact"
    assert catcher.received == []


async def test_do_not_contact_wins_over_everything(
    start: Start, client: AlongsideClient, org: str, clock: ManualClock, catcher: MailCatcher
) -> None:
    await start()
    await configure(client, org, catcher)
    person = Person(kind="client", case_id="c4")
    safe = ContactPreferences(do_not_contact=True)
    await accepted(client, org, SetContactPreferences(person=person, preferences=safe))
    await proposed_to(client, org, clock, reachable_intake("c4"))
    withheld = await event_where(
        client, org, "NotificationWithheld", lambda d: d["person"]["case_id"] == "c4"
    )
    assert withheld.data["because"] == "do_not_contact"
    assert catcher.received == []


async def test_sms_goes_through_the_webhook(
    start: Start,
    client: AlongsideClient,
    org: str,
    clock: ManualClock,
    catcher: MailCatcher,
    webhook: tuple[str, list[dict[str, Any]]],
) -> None:
    url, received = webhook
    await start()
    await configure(client, org, catcher, webhook_url=url)
    person = Person(kind="client", case_id="c5")
    by_text = ContactPreferences(channel=Channel.SMS)
    await accepted(client, org, SetContactPreferences(person=person, preferences=by_text))
    await proposed_to(client, org, clock, reachable_intake("c5"))
    await event_where(client, org, "NotificationSent", lambda d: d["person"]["case_id"] == "c5")
    [posted] = received
    assert posted["to"] == "+64 21 555 0101"
    assert LINK.search(posted["message"])
    assert catcher.received == []


async def test_quiet_hours_defer_until_they_end(
    start: Start, client: AlongsideClient, org: str, clock: ManualClock, catcher: MailCatcher
) -> None:
    running = await start()
    await configure(client, org, catcher)
    # Quiet for every hour but the one ending now + 2 h: the message waits.
    local = clock().astimezone(ZoneInfo("Pacific/Auckland"))
    opens = (local + timedelta(hours=2)).time().replace(second=0, microsecond=0)
    closes = (local + timedelta(hours=3)).time().replace(second=0, microsecond=0)
    quiet = ContactPreferences(quiet_hours=Window(starts=closes, ends=opens))
    person = Person(kind="client", case_id="c6")
    await accepted(client, org, SetContactPreferences(person=person, preferences=quiet))
    await proposed_to(client, org, clock, reachable_intake("c6"))
    deferred = await event_where(
        client, org, "NotificationDeferred", lambda d: d["person"]["case_id"] == "c6"
    )
    assert deferred.data["because"] == "quiet_hours"
    assert catcher.received == []
    clock.advance(timedelta(hours=2, minutes=1))
    await sweeps.send_due(deps_of(running))
    [mail] = await catcher.arrived(1)
    assert mail.rcpt_tos == [CLIENT_EMAIL]


async def test_a_link_opens_once_bound_and_is_refused_when_tampered_revoked_or_expired(
    start: Start,
    client: AlongsideClient,
    org: str,
    other_org: str,
    clock: ManualClock,
    catcher: MailCatcher,
) -> None:
    await start()
    await configure(client, org, catcher)
    await proposed_to(client, org, clock, reachable_intake("c7"))
    [mail] = await catcher.arrived(1)
    text = mail.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    match = LINK.search(text)
    assert match is not None
    token = match.group(1)
    opened = await client.request(org, OpenLink(token=token))
    assert opened.type_name == "LinkOpened"
    assert opened.purpose == "choose_supporter"  # type: ignore[attr-defined]
    assert opened.person.case_id == "c7"  # type: ignore[attr-defined]
    [offer] = opened.offers  # type: ignore[attr-defined]
    assert offer.supporter_id == "s1"
    assert offer.first_name  # the first name, and nothing sensitive: the model has no place
    used = await event_where(client, org, "LinkUsed", lambda d: d["person"]["case_id"] == "c7")
    assert token not in used.model_dump_json()

    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    refused = await client.request(org, OpenLink(token=tampered))
    assert isinstance(refused, CommandRejected)
    assert "does not work" in refused.errors[0].reason

    elsewhere = await client.request(other_org, OpenLink(token=token))
    assert isinstance(elsewhere, CommandRejected), "another organisation's link opens nothing"

    clock.advance(timedelta(days=15))
    expired = await client.request(org, OpenLink(token=token))
    assert isinstance(expired, CommandRejected)
    assert "expired" in expired.errors[0].reason
    clock.advance(timedelta(days=-15))

    await accepted(client, org, RevokeLinks(person=Person(kind="client", case_id="c7")))
    revoked = await client.request(org, OpenLink(token=token))
    assert isinstance(revoked, CommandRejected)
    assert "turned off" in revoked.errors[0].reason


async def test_a_code_asked_for_twice_by_the_same_request_is_sent_once(
    start: Start, client: AlongsideClient, org: str, clock: ManualClock, catcher: MailCatcher
) -> None:
    await start()
    await configure(client, org, catcher)
    await proposed_to(client, org, clock, reachable_intake("c8"))
    [proposals] = await catcher.arrived(1)
    choose = LINK.search(text_of(proposals))
    assert choose is not None
    refused = await client.request(org, SendCode(token=choose.group(1)))
    assert isinstance(refused, CommandRejected), "codes are for consent links only"
    await accepted(client, org, AcceptProposal(case_id="c8", supporter_id="s1"))
    [asked] = await mail_where(
        catcher, lambda m: str(m.message["Subject"]) == "Please give your answer"
    )
    consent = LINK.search(text_of(asked))
    assert consent is not None
    token = consent.group(1)
    for _ in range(2):  # the same request again (a page posted twice): one code
        reply = await client.submit(org, SendCode(token=token), command_id="code-1")
        assert reply.status == "accepted", reply
    await mail_where(catcher, lambda m: str(m.message["Subject"]) == "Your code")
    other = await client.submit(org, SendCode(token=token), command_id="code-2")
    assert other.status == "accepted", other
    codes = await mail_where(catcher, lambda m: str(m.message["Subject"]) == "Your code", count=2)
    assert len(codes) == 2
    await asyncio.sleep(1)
    assert sum(str(m.message["Subject"]) == "Your code" for m in catcher.received) == 2


def text_of(caught: Caught) -> str:
    body = caught.message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


async def mail_where(
    catcher: MailCatcher, wanted: Callable[[Caught], bool], count: int = 1
) -> list[Caught]:
    for _ in range(100):
        found = [m for m in catcher.received if wanted(m)]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {count} such messages arrived")


async def test_a_supporter_is_told_once_when_a_check_comes_within_a_month_of_lapsing(
    start: Start, client: AlongsideClient, org: str, clock: ManualClock, catcher: MailCatcher
) -> None:
    running = await start("intake", "rules", "notifications")
    await configure(client, org, catcher)
    today = org_today(clock)
    rng = random.Random("s-lapse")
    await accepted(client, org, sample.supporter(rng, "s-lapse", reachable=True))
    for evidence in sample.vetting(rng, "s-lapse", today):
        if isinstance(evidence.evidence, Supervision):  # supervision 2 days ago: 40 days left
            attended = evidence.evidence.model_copy(
                update={"attended_on": today - timedelta(days=2)}
            )
            evidence = evidence.model_copy(update={"evidence": attended})
        await accepted(client, org, evidence)
    await eligible(client, org, 1)
    deps = deps_of(running)
    await sweeps.checks_lapsing(deps)  # 40 days away: not yet
    await asyncio.sleep(0.5)
    assert not [m for m in catcher.received if "runs out soon" in str(m.message["Subject"])]
    clock.advance(timedelta(days=15))
    await sweeps.checks_lapsing(deps)  # (every organisation's: other tests' too)
    [told] = await mail_where(catcher, lambda m: "runs out soon" in str(m.message["Subject"]))
    assert told.rcpt_tos == ["s-lapse@peers.example.org"]
    await sweeps.checks_lapsing(deps)  # an hour later: planned already, not sent again
    await asyncio.sleep(1)
    assert sum("runs out soon" in str(m.message["Subject"]) for m in catcher.received) == 1
