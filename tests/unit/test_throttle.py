"""Password guessing is slowed per email and address, and forgiven by a right password."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from runtime.clock import ManualClock
from services.console.throttle import FREE_TRIES, LONGEST_WAIT, SignInThrottle


def test_after_a_few_wrong_passwords_the_pair_waits_longer_each_time() -> None:
    clock = ManualClock(datetime(2026, 11, 29, 9, 0, tzinfo=UTC))
    throttle = SignInThrottle(clock)
    for _ in range(FREE_TRIES - 1):
        throttle.failed("Ana@example.org", "10.0.0.1")
        assert throttle.wait("ana@example.org", "10.0.0.1") is None
    throttle.failed("ana@example.org", "10.0.0.1")
    assert throttle.wait("ana@example.org", "10.0.0.1") == timedelta(seconds=30)
    assert throttle.wait("ana@example.org", "10.0.0.2") is None  # another address
    assert throttle.wait("sam@example.org", "10.0.0.1") is None  # another account

    clock.set(clock() + timedelta(seconds=31))
    assert throttle.wait("ana@example.org", "10.0.0.1") is None
    throttle.failed("ana@example.org", "10.0.0.1")
    assert throttle.wait("ana@example.org", "10.0.0.1") == timedelta(seconds=60)
    for _ in range(20):
        throttle.failed("ana@example.org", "10.0.0.1")
    assert throttle.wait("ana@example.org", "10.0.0.1") == LONGEST_WAIT

    throttle.succeeded("ana@example.org", "10.0.0.1")
    assert throttle.wait("ana@example.org", "10.0.0.1") is None


def test_no_spelling_of_one_email_gets_fresh_tries() -> None:
    throttle = SignInThrottle(ManualClock(datetime(2026, 11, 29, 9, 0, tzinfo=UTC)))
    for n in range(FREE_TRIES):
        throttle.failed(" " * n + "ANA@example.org" + " " * n, "10.0.0.1")
    assert throttle.wait("ana@example.org", "10.0.0.1") == timedelta(seconds=30)
