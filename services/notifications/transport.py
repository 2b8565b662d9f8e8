"""Sending one message, and what came of it: sent, worth another try later, or bounced.

Email goes to the organisation's SMTP server with ``aiosmtplib``; SMS and the like go to its
webhook, an Apprise URL, with ``apprise``. A ``Result``'s detail is written to logs and
events, so it says what happened in plain words and never holds an address, a number, or
the message's words; nor do the servers' own answers, which often repeat the address.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from email.message import EmailMessage
from enum import StrEnum
from urllib.parse import SplitResult, quote, unquote, urlsplit, urlunsplit

import aiosmtplib
import apprise

# Apprise URLs whose payload takes extra fields as ":key=value" arguments.
_PAYLOAD_SCHEMES = frozenset({"json", "jsons", "form", "forms", "xml", "xmls"})
# Arguments the sender sets on every webhook URL, replacing any the organisation gave.
_OURS = frozenset({":to", ":message_id", "to", "cto", "rto"})


class Outcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    BOUNCED = "bounced"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    detail: str  # plain words for logs: no address, no number, no message text


class SmtpSender:
    """Sends to ``smtp://host:port`` (plain; ``?starttls=1`` to upgrade) or
    ``smtps://user:pass@host:port`` (implicit TLS), user and password URL-encoded.

    Connections are kept open between messages, a few a server (``POOL``), each for at most
    ``IDLE_S`` idle: a connection, its greeting, TLS and login cost more than a message. A
    kept connection the server has closed meanwhile is replaced once, at once."""

    POOL = 4
    IDLE_S = 30.0

    def __init__(self, timeout_s: float = 10.0) -> None:
        self._timeout_s = timeout_s
        self._idle: dict[str, list[tuple[aiosmtplib.SMTP, float]]] = {}

    async def send(self, message: EmailMessage, smtp_url: str) -> Result:
        try:
            server = _smtp_server(smtp_url)
        except ValueError as error:
            return Result(Outcome.RETRY, f"the SMTP URL is not usable: {error}")
        try:
            refused = await self._deliver(message, smtp_url, server)
        except aiosmtplib.SMTPRecipientsRefused as error:
            return _refused([each.code for each in error.recipients])
        except aiosmtplib.SMTPDataError as error:
            return _refused([error.code], "the message")
        except aiosmtplib.SMTPTimeoutError:
            return Result(Outcome.RETRY, "the mail server did not answer in time")
        except aiosmtplib.SMTPConnectResponseError as error:
            return Result(Outcome.RETRY, f"the mail server refused the connection ({error.code})")
        except aiosmtplib.SMTPConnectError:
            return Result(Outcome.RETRY, "the mail server could not be reached")
        except aiosmtplib.SMTPServerDisconnected:
            return Result(Outcome.RETRY, "the mail server disconnected")
        except aiosmtplib.SMTPAuthenticationError as error:
            return Result(Outcome.RETRY, f"the mail server refused the login ({error.code})")
        except aiosmtplib.SMTPResponseException as error:
            # The sender refused, or a greeting or command failed: the sending side's
            # trouble, not the recipient's, so the message waits for it to be put right.
            return Result(Outcome.RETRY, f"the mail server answered {error.code}")
        except aiosmtplib.SMTPException as error:
            return Result(Outcome.RETRY, f"SMTP failed ({type(error).__name__})")
        except TimeoutError:
            return Result(Outcome.RETRY, "the mail server did not answer in time")
        except OSError as error:  # TLS and socket failures
            return Result(Outcome.RETRY, f"network error ({type(error).__name__})")
        if refused:
            # Only with several recipients does a refusal come back instead of raising.
            return _refused([answer.code for answer in refused.values()])
        return Result(Outcome.SENT, "accepted by the mail server")

    async def _deliver(
        self, message: EmailMessage, url: str, server: _SmtpServer
    ) -> dict[str, aiosmtplib.SMTPResponse]:
        """Send on a kept connection, or a new one; raises what ``aiosmtplib`` raises."""
        kept = self._take(url)
        if kept is not None:
            try:
                refused, _ = await kept.send_message(message)
            except aiosmtplib.SMTPServerDisconnected:
                kept.close()  # closed while idle: try once on a new connection
            except BaseException:
                kept.close()
                raise
            else:
                self._keep(url, kept)
                return refused
        client = aiosmtplib.SMTP(
            hostname=server.host,
            port=server.port,
            username=server.username,
            password=server.password,
            use_tls=server.use_tls,
            start_tls=server.start_tls,
            timeout=self._timeout_s,
        )
        await client.connect()
        try:
            refused, _ = await client.send_message(message)
        except BaseException:
            client.close()
            raise
        self._keep(url, client)
        return refused

    def _take(self, url: str) -> aiosmtplib.SMTP | None:
        kept = self._idle.get(url, [])
        now = asyncio.get_running_loop().time()
        while kept:
            client, since = kept.pop()
            if client.is_connected and now - since < self.IDLE_S:
                return client
            client.close()
        return None

    def _keep(self, url: str, client: aiosmtplib.SMTP) -> None:
        kept = self._idle.setdefault(url, [])
        if len(kept) >= self.POOL or not client.is_connected:
            client.close()
            return
        kept.append((client, asyncio.get_running_loop().time()))


@dataclass(frozen=True)
class _SmtpServer:
    host: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    start_tls: bool


def _smtp_server(url: str) -> _SmtpServer:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("its scheme is not smtp or smtps")
    if not parts.hostname:
        raise ValueError("it names no host")
    implicit = parts.scheme == "smtps"
    query = {key: value for key, _, value in (p.partition("=") for p in parts.query.split("&"))}
    return _SmtpServer(
        host=parts.hostname,
        port=parts.port or (465 if implicit else 25),
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
        use_tls=implicit,
        # A loopback catcher offers no TLS; a server that does is asked for it explicitly.
        start_tls=not implicit and query.get("starttls") == "1",
    )


def _refused(codes: list[int], what: str = "the recipient") -> Result:
    """5xx is permanent (RFC 5321): the address or the message will never be taken as it is.
    Anything else (4xx: mailbox busy, greylisting) may pass later."""
    shown = ", ".join(str(code) for code in codes)
    if codes and all(500 <= code < 600 for code in codes):
        return Result(Outcome.BOUNCED, f"the mail server refused {what} ({shown})")
    return Result(Outcome.RETRY, f"the mail server deferred {what} ({shown})")


class WebhookSender:
    """Sends a text to the organisation's webhook, an Apprise URL: ``json://`` or
    ``jsons://host:port/path`` (also ``form://``, ``xml://``) POSTs the text with ``to`` (the
    number) and ``message_id`` added to its payload; a named gateway (``twilio://`` and the
    like) gets the number as its ``to=`` target, so its URL must name no target itself."""

    def __init__(self, timeout_s: float = 10.0) -> None:
        self._timeout_s = timeout_s
        _quiet_apprise()

    async def send(self, url: str, to_number: str, text: str, message_id: str) -> Result:
        try:
            addressed = _addressed(url, to_number, message_id, self._timeout_s)
        except ValueError as error:
            return Result(Outcome.RETRY, f"the webhook URL is not usable: {error}")
        notifier = apprise.Apprise()
        if not notifier.add(addressed):
            return Result(Outcome.RETRY, "the webhook URL is not one Apprise accepts")
        try:
            # Apprise bounds each request by cto/rto; this bounds the whole call, retries
            # and throttling included.
            sent = await asyncio.wait_for(
                notifier.async_notify(body=text, title=""), timeout=self._timeout_s * 2 + 1
            )
        except TimeoutError:
            return Result(Outcome.RETRY, "the webhook did not answer in time")
        if not sent:
            # Apprise tells only that it failed (refused, unreachable, an error status): the
            # gateway's answers are not ours to judge, so the message waits and goes again.
            return Result(Outcome.RETRY, "the webhook did not accept the message")
        return Result(Outcome.SENT, "accepted by the webhook")


def _addressed(url: str, to_number: str, message_id: str, timeout_s: float) -> str:
    """The organisation's URL with our arguments appended; theirs kept byte for byte, since
    Apprise reads them its own way (``+`` stays a plus, ``+name`` is a header)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if not scheme or not parts.netloc:
        raise ValueError("it has no scheme or no host")
    kept = [pair for pair in parts.query.split("&") if pair and _key(pair) not in _OURS]
    seconds = f"{timeout_s:g}"
    ours = {"cto": seconds, "rto": seconds}
    if scheme in _PAYLOAD_SCHEMES:
        ours |= {":to": to_number, ":message_id": message_id}
    else:
        ours["to"] = to_number
    # Every character quoted: a number's "+" must reach Apprise as a plus, not a space.
    kept += [f"{key}={quote(value, safe='')}" for key, value in ours.items()]
    return urlunsplit(SplitResult(parts.scheme, parts.netloc, parts.path, "&".join(kept), ""))


def _key(pair: str) -> str:
    return unquote(pair.partition("=")[0]).strip().lower()


def _quiet_apprise() -> None:
    """Apprise logs recipients (a dropped phone number, at WARNING) and, at DEBUG, whole
    payloads. None of it may reach a log, so its logger is set above every level: no
    record is even made (a handler attached to every logger, as pytest's is, gets none).
    The ``Result`` says what the caller needs to know."""
    log = logging.getLogger("apprise")
    log.setLevel(logging.CRITICAL + 1)
    log.propagate = False
