"""Guessing passwords made slow: after a few wrong passwords for one email from one address,
that pair waits before it may try again, longer each time. In memory, per console replica
(each replica has its own count; a restart forgets them). Pure but for the clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from runtime.clock import Clock


def _who(email: str) -> str:
    """One account however its email is typed (spaces, capitals): as ``account_id`` reads it,
    so that no spelling of one email gets fresh tries."""
    return email.strip().lower()


FREE_TRIES = 5  # wrong passwords before any wait
FIRST_WAIT = timedelta(seconds=30)  # then doubled each time, up to
LONGEST_WAIT = timedelta(minutes=15)
FORGOTTEN_AFTER = timedelta(hours=1)  # a pair quiet this long starts again


@dataclass
class _Tries:
    wrong: int
    last: datetime
    until: datetime | None = None


class SignInThrottle:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._tries: dict[tuple[str, str], _Tries] = {}

    def wait(self, email: str, address: str) -> timedelta | None:
        """How long this pair must wait before trying again; None if it may try now."""
        tries = self._tries.get((_who(email), address))
        now = self.clock()
        if tries is None or tries.until is None or tries.until <= now:
            return None
        return tries.until - now

    def failed(self, email: str, address: str) -> None:
        now, key = self.clock(), (_who(email), address)
        tries = self._tries.get(key)
        if tries is None or now - tries.last > FORGOTTEN_AFTER:
            tries = self._tries[key] = _Tries(wrong=0, last=now)
        tries.wrong, tries.last = tries.wrong + 1, now
        if tries.wrong >= FREE_TRIES:
            wait = min(FIRST_WAIT * 2 ** (tries.wrong - FREE_TRIES), LONGEST_WAIT)
            tries.until = now + wait
        self._forget_old(now)

    def succeeded(self, email: str, address: str) -> None:
        self._tries.pop((_who(email), address), None)

    def _forget_old(self, now: datetime) -> None:
        if len(self._tries) > 10_000:  # bounded: an attacker cannot grow it without end
            self._tries = {k: t for k, t in self._tries.items() if now - t.last <= FORGOTTEN_AFTER}


WINDOW = timedelta(minutes=1)
MOST_ADDRESSES = 10_000  # addresses remembered at once, before the quiet ones are dropped


class RequestsPerMinute:
    """At most ``limit`` requests a minute from one address (people's pages: a link's token
    cannot be guessed, but each guess costs a lookup and a command). A fixed window per
    address, started by its first request; in memory, per replica, on the console's clock."""

    def __init__(self, clock: Clock, limit: int) -> None:
        self.clock = clock
        self.limit = limit
        self._windows: dict[str, tuple[datetime, int]] = {}

    def wait(self, address: str) -> timedelta | None:
        """Counts this request: None if it may go ahead, else how long until it may."""
        now = self.clock()
        started, count = self._windows.get(address, (now, 0))
        if now - started >= WINDOW:
            started, count = now, 0
        if count >= self.limit:
            return started + WINDOW - now
        if address not in self._windows and len(self._windows) >= MOST_ADDRESSES:
            self._windows = {a: w for a, w in self._windows.items() if now - w[0] < WINDOW}
            if len(self._windows) >= MOST_ADDRESSES:  # bounded, whatever the traffic
                self._windows.clear()
        self._windows[address] = (started, count + 1)
        return None
