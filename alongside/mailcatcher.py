"""An SMTP server that keeps every message it is sent, for ``alongside up``, the demo and the
tests: each message is saved as an ``.eml`` file (open it in any mail client) and kept in
memory for whoever waits on it.

It runs ``aiosmtpd`` on its own thread and event loop, so a test's or the demo's loop can
send to it and wait for it alike. It can be stopped and started again on the same port (a
mail server that is down, then back), and told to refuse a recipient with a given code.
Files are numbered on from those already in the folder, never overwritten or deleted.
"""

from __future__ import annotations

import asyncio
import email
import logging
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

_NUMBERED = re.compile(r"^(\d+)-.*\.eml$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# aiosmtpd logs each command line, senders and recipients included, at INFO.
_SMTPD_LOG = "mail.log"


@dataclass(frozen=True)
class Caught:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    path: Path
    # When the server accepted it (``time.perf_counter``, this process's clock): the end of
    # a send, for a benchmark's latency.
    arrived_at: float | None = None


class MailCatcher:
    def __init__(
        self,
        folder: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        refuse: Callable[[str], int | None] | None = None,
        remember: bool = True,
    ) -> None:
        """``refuse`` is asked about each recipient: an SMTP code to answer RCPT with (550
        for an address that bounces, 451 for one to try later), or None to accept it.
        ``remember``: keep each message in ``received`` too (tests, the demo); ``alongside
        up``, which runs for days, keeps them only as files."""
        self.folder = folder
        self._remember = remember
        self.received: list[Caught] = []
        self._host = host
        self._port = port
        self._refuse = refuse
        self._controller: _Controller | None = None
        self._arrival = threading.Condition()
        self._next = 1

    @property
    def port(self) -> int:
        """The port listened on; with port 0, the one picked at the first start."""
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"smtp://{host}:{self._port}"

    def start(self) -> None:
        if self._controller is not None:
            raise RuntimeError("the mail catcher is already running")
        self.folder.mkdir(parents=True, exist_ok=True)
        self._next = 1 + max(
            (int(m.group(1)) for p in self.folder.iterdir() if (m := _NUMBERED.match(p.name))),
            default=0,
        )
        logging.getLogger(_SMTPD_LOG).setLevel(logging.WARNING)
        # Bound here rather than by aiosmtpd, which cannot say which port 0 became.
        listener = _listener(self._host, self._port)
        self._port = listener.getsockname()[1]
        controller = _Controller(_Handler(self), listener)
        try:
            controller.start()
        except BaseException:
            listener.close()
            raise
        self._controller = controller

    def stop(self) -> None:
        """Stops listening: a sender now finds nothing on the port."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Caught]:
        """The first ``count`` messages, once they have arrived (blocking)."""
        with self._arrival:
            if not self._arrival.wait_for(lambda: len(self.received) >= count, timeout_s):
                raise TimeoutError(self._short_of(count, timeout_s))
            return self.received[:count]

    async def arrived(self, count: int, timeout_s: float = 10.0) -> list[Caught]:
        """The first ``count`` messages, once they have arrived, without blocking the loop."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._arrival:
                if len(self.received) >= count:
                    return self.received[:count]
            if time.monotonic() >= deadline:
                raise TimeoutError(self._short_of(count, timeout_s))
            await asyncio.sleep(0.01)

    def take(self) -> list[Caught]:
        """Every message arrived since the last ``take``, no longer held in ``received``: for
        a long run that must not keep every message in memory. (The counts ``wait_for`` and
        ``arrived`` wait on are of what ``received`` still holds.)"""
        with self._arrival:
            taken, self.received = self.received, []
            return taken

    def _short_of(self, count: int, timeout_s: float) -> str:
        return f"{len(self.received)} of {count} messages arrived within {timeout_s}s"

    def _rcpt_code(self, address: str) -> int | None:
        return self._refuse(address) if self._refuse is not None else None

    def _keep(self, envelope: Envelope) -> None:
        arrived_at = time.perf_counter()
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, _class=EmailMessage, policy=default)
        local = str(message.get("Message-ID", "")).strip().strip("<>").partition("@")[0]
        stem = _UNSAFE.sub("_", local)[:64] or "message"
        with self._arrival:
            while True:
                path = self.folder / f"{self._next:06d}-{stem}.eml"
                self._next += 1
                try:
                    with path.open("xb") as file:  # never over a file already there
                        file.write(raw)
                    break
                except FileExistsError:
                    continue
            if self._remember:
                self.received.append(
                    Caught(
                        mail_from=envelope.mail_from or "",
                        rcpt_tos=list(envelope.rcpt_tos),
                        message=message,
                        path=path,
                        arrived_at=arrived_at,
                    )
                )
            self._arrival.notify_all()


def _listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket that names its protocol: asyncio turns Nagle's algorithm off
    (TCP_NODELAY) only on a connection whose socket says it is TCP, and an accepted socket
    takes the listener's (``socket.create_server`` names none). Without it aiosmtpd's EHLO
    answer, written a line at a time, waits out the sender's delayed ACK: 40 ms on every
    connection. SO_REUSEADDR lets a restart take the same port while the last run's
    connections wait out TIME_WAIT."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        listener.bind((host, port))
        listener.listen()
    except BaseException:
        listener.close()
        raise
    return listener


class _Handler:
    """aiosmtpd's hooks, called on the catcher's own thread."""

    def __init__(self, catcher: MailCatcher) -> None:
        self._catcher = catcher

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        code = self._catcher._rcpt_code(address)
        if code is not None:
            return f"{code} {'Mailbox unavailable' if code >= 500 else 'Try again later'}"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        self._catcher._keep(envelope)
        return "250 Message accepted for delivery"


class _Controller(Controller):
    """aiosmtpd's threaded controller, serving on a socket already bound."""

    def __init__(self, handler: _Handler, listener: socket.socket) -> None:
        host, port = listener.getsockname()[:2]
        # A fixed greeting name: the default looks up this machine's FQDN, which can stall.
        super().__init__(handler, hostname=host, port=port, server_hostname="mailcatcher.local")
        self._listener = listener

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        return self.loop.create_server(self._factory_invoker, sock=self._listener)
