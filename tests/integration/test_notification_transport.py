"""Email and webhook sending against real servers on loopback: the mail catcher (aiosmtpd)
and a plain HTTP server. No NATS: what is proved is the wire, and what each answer means
for the caller (sent, try again later, bounced)."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from alongside.mailcatcher import MailCatcher
from services.notifications.email import CalendarInvite, Outgoing, compose
from services.notifications.transport import Outcome, SmtpSender, WebhookSender

ZONE = "Pacific/Auckland"
SENT_AT = datetime(2026, 3, 9, 9, 30, tzinfo=ZoneInfo(ZONE))
START = datetime(2026, 3, 12, 10, 0, tzinfo=ZoneInfo(ZONE))
UNSUBSCRIBE = "https://alongside.example/u/tok-123?kind=reminders"
CLIENT = "ana@client.example"
NUMBER = "+64 21 555 0101"
TEXT = "Your first meeting is on Thursday at 10am."
REFUSED = {"gone@client.example": 550, "busy@client.example": 451}


def outgoing(
    message_id: str = "msg-1",
    to_address: str = CLIENT,
    invitation: CalendarInvite | None = None,
    unsubscribe_url: str | None = UNSUBSCRIBE,
) -> Outgoing:
    return Outgoing(
        message_id=message_id,
        to_address=to_address,
        from_address="notifications@harbour.example",
        from_name="Harbour Ombudsman",
        subject="Your first meeting",
        text=TEXT,
        sent_at=SENT_AT,
        unsubscribe_url=unsubscribe_url,
        invitation=invitation,
    )


def invite(method: str = "REQUEST", sequence: int = 0) -> CalendarInvite:
    return CalendarInvite(
        uid="m1-case7@alongside",
        method="CANCEL" if method == "CANCEL" else "REQUEST",
        sequence=sequence,
        start=START,
        end=START + timedelta(hours=1),
        summary="Peer support: first meeting",
        time_zone=ZONE,
        stamp=SENT_AT,
    )


@pytest.fixture
def catcher(tmp_path: Path) -> Iterator[MailCatcher]:
    mail = MailCatcher(tmp_path / "mail", refuse=REFUSED.get)
    mail.start()
    yield mail
    mail.stop()


def saved(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.eml"))


def parsed(path: Path) -> EmailMessage:
    message = BytesParser(policy=default).parsebytes(path.read_bytes())
    assert isinstance(message, EmailMessage)
    return message


def calendar_part(message: EmailMessage) -> tuple[EmailMessage, Calendar]:
    [part] = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert isinstance(part, EmailMessage)
    return part, Calendar.from_ical(part.get_content())


async def test_an_invitation_arrives_as_composed_and_its_cancel_replaces_it(
    catcher: MailCatcher,
) -> None:
    sender = SmtpSender(timeout_s=2)
    request = compose(outgoing(invitation=invite()))

    result = await sender.send(request, catcher.url)

    assert result.outcome is Outcome.SENT
    [caught] = await catcher.arrived(1, timeout_s=2)
    assert saved(catcher.folder) == [caught.path]
    assert caught.rcpt_tos == [CLIENT]
    on_disk = parsed(caught.path)
    # RFC 8058: the URL in angle brackets, and the one exact POST body a client sends.
    assert on_disk["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert on_disk["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert on_disk["Message-ID"] == request["Message-ID"] == "<msg-1@harbour.example>"
    assert on_disk["Auto-Submitted"] == "auto-generated"
    assert on_disk["Date"].datetime == SENT_AT
    assert on_disk.get_content_type() == "multipart/mixed"
    [alternative, attachment] = on_disk.iter_parts()
    assert [p.get_content_type() for p in alternative.iter_parts()] == [
        "text/plain",
        "text/calendar",
    ]
    part, calendar = calendar_part(on_disk)
    assert part.get_param("method") == "REQUEST"
    assert part.get_content_charset() == "utf-8"
    assert calendar["METHOD"] == "REQUEST"
    [event] = calendar.walk("VEVENT")
    assert str(event["UID"]) == "m1-case7@alongside"
    assert event["SEQUENCE"] == 0
    assert event["STATUS"] == "CONFIRMED"
    assert event.decoded("DTSTART") == START
    assert str(event["DTSTART"].params["TZID"]) == ZONE
    assert str(event["ORGANIZER"]) == "mailto:notifications@harbour.example"
    assert str(event["ATTENDEE"]) == f"mailto:{CLIENT}"
    assert event["ATTENDEE"].params["RSVP"] == "FALSE"
    # The same calendar attached, for clients that ignore the inline part.
    assert attachment.get_content_type() == "application/ics"
    assert attachment.get_filename() == "invite.ics"
    assert Calendar.from_ical(attachment.get_content()) == calendar

    cancel = compose(outgoing("msg-2", invitation=invite("CANCEL", sequence=1)))
    assert (await sender.send(cancel, catcher.url)).outcome is Outcome.SENT
    first, second = await catcher.arrived(2, timeout_s=2)
    assert saved(catcher.folder) == [first.path, second.path]  # in arrival order
    part, calendar = calendar_part(parsed(second.path))
    assert part.get_param("method") == "CANCEL"
    [event] = calendar.walk("VEVENT")
    assert (str(event["UID"]), event["SEQUENCE"], event["STATUS"]) == (
        "m1-case7@alongside",
        1,
        "CANCELLED",
    )


async def test_a_mail_server_that_is_down_is_tried_again_and_then_takes_the_message(
    catcher: MailCatcher,
) -> None:
    sender = SmtpSender(timeout_s=2)
    message = compose(outgoing())
    port = catcher.port
    catcher.stop()

    down = await sender.send(message, catcher.url)

    assert down.outcome is Outcome.RETRY
    catcher.start()
    assert catcher.port == port
    back = await sender.send(message, catcher.url)
    assert back.outcome is Outcome.SENT
    [caught] = await catcher.arrived(1, timeout_s=2)
    assert caught.message["Message-ID"] == message["Message-ID"]
    for result in (down, back):
        assert CLIENT not in result.detail


async def test_a_kept_connection_is_used_again_and_replaced_once_the_server_restarts(
    catcher: MailCatcher,
) -> None:
    sender = SmtpSender(timeout_s=2)
    first = await sender.send(compose(outgoing("msg-a")), catcher.url)
    again = await sender.send(compose(outgoing("msg-b")), catcher.url)
    assert (first.outcome, again.outcome) == (Outcome.SENT, Outcome.SENT)
    assert len(sender._idle[catcher.url]) == 1, "one connection carried both"
    catcher.stop()  # the kept connection dies with the server
    catcher.start()
    after = await sender.send(compose(outgoing("msg-c")), catcher.url)
    assert after.outcome is Outcome.SENT
    caught = await catcher.arrived(3, timeout_s=2)
    assert [c.message["Message-ID"].split("@")[0] for c in caught] == ["<msg-a", "<msg-b", "<msg-c"]


@pytest.mark.parametrize(
    ("to_address", "outcome"),
    [("gone@client.example", Outcome.BOUNCED), ("busy@client.example", Outcome.RETRY)],
)
async def test_a_refused_recipient_bounces_on_5xx_and_waits_on_4xx(
    catcher: MailCatcher, to_address: str, outcome: Outcome
) -> None:
    result = await SmtpSender(timeout_s=2).send(
        compose(outgoing(to_address=to_address)), catcher.url
    )

    assert result.outcome is outcome
    assert str(REFUSED[to_address]) in result.detail
    assert to_address not in result.detail
    assert catcher.received == []
    assert saved(catcher.folder) == []


async def test_a_new_catcher_numbers_on_from_the_files_already_there(
    catcher: MailCatcher, tmp_path: Path
) -> None:
    sender = SmtpSender(timeout_s=2)
    assert (await sender.send(compose(outgoing("one")), catcher.url)).outcome is Outcome.SENT
    [first] = await catcher.arrived(1, timeout_s=2)
    catcher.stop()

    again = MailCatcher(catcher.folder)
    again.start()
    try:
        assert (await sender.send(compose(outgoing("two")), again.url)).outcome is Outcome.SENT
        [second] = await again.arrived(1, timeout_s=2)
    finally:
        again.stop()
    assert first.path.read_bytes()  # kept
    assert saved(catcher.folder) == [first.path, second.path]
    assert second.path.name.endswith("-two.eml")


@dataclass
class Webhook:
    url: str
    status: int = 200
    posts: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hook.posts.append({"path": self.path, "json": json.loads(body)})
            self.send_response(hook.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the request line is test noise on stderr

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    hook.url = f"json://127.0.0.1:{server.server_address[1]}/sms"
    yield hook
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


async def test_the_webhook_gets_the_text_with_the_number_and_the_message_id(
    webhook: Webhook,
) -> None:
    result = await WebhookSender(timeout_s=2).send(webhook.url, NUMBER, TEXT, "msg-9")

    assert result.outcome is Outcome.SENT
    [post] = webhook.posts
    assert post["path"] == "/sms"
    payload = post["json"]
    assert (payload["message"], payload["to"], payload["message_id"]) == (TEXT, NUMBER, "msg-9")


async def test_a_webhook_answering_500_or_not_listening_is_tried_again(
    webhook: Webhook,
) -> None:
    sender = WebhookSender(timeout_s=2)
    webhook.status = 500

    failed = await sender.send(webhook.url, NUMBER, TEXT, "msg-9")

    assert failed.outcome is Outcome.RETRY
    assert len(webhook.posts) == 1
    with socket.socket() as probe:  # a port just free: nothing listens on it
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    unreachable = await sender.send(f"json://127.0.0.1:{free}/sms", NUMBER, TEXT, "msg-9")
    assert unreachable.outcome is Outcome.RETRY
    for result in (failed, unreachable):
        assert NUMBER not in result.detail
        assert TEXT not in result.detail


async def test_sending_logs_no_address_number_or_words(
    catcher: MailCatcher, webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    webhook.status = 500
    with caplog.at_level(logging.DEBUG):
        await SmtpSender(timeout_s=2).send(compose(outgoing()), catcher.url)
        await SmtpSender(timeout_s=2).send(
            compose(outgoing(to_address="gone@client.example")), catcher.url
        )
        # Apprise logs the whole payload at DEBUG, and the failure at WARNING.
        await WebhookSender(timeout_s=2).send(webhook.url, NUMBER, TEXT, "msg-9")

    logged = caplog.text + "".join(str(record.args) for record in caplog.records)
    for personal in (CLIENT, "gone@client.example", NUMBER, "555 0101", TEXT):
        assert personal not in logged
