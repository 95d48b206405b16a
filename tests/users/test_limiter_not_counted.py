"""A right password refused for another reason: not counted, but answered as late."""

from __future__ import annotations

from gateway.users.database.limiter import LimiterSettings, LoginLimiter

ADDRESS = "192.0.2.7"


def test_not_counted_waits_as_a_failure_and_counts_nothing() -> None:
    limiter = LoginLimiter(LimiterSettings(base_delay=0.5, factor=2, max_delay=8, ban_after=3))
    assert limiter.begin(ADDRESS, "alice").failed() == 0.5
    assert limiter.begin(ADDRESS, "alice").failed() == 1.0
    # a third failure would answer after 2 s and ban: the refused right password waits
    # the same 2 s, and bans nothing, however often it comes
    for _ in range(5):
        assert limiter.begin(ADDRESS, "alice").not_counted() == 2.0
    assert limiter.ban_remaining(ADDRESS) == 0
    # the earlier failures are not forgotten either: the next one bans
    limiter.begin(ADDRESS, "alice").failed()
    assert limiter.ban_remaining(ADDRESS) > 0


def test_not_counted_on_a_fresh_network_waits_the_first_delay() -> None:
    limiter = LoginLimiter(LimiterSettings(base_delay=0.25))
    attempt = limiter.begin(ADDRESS)
    assert attempt.not_counted() == 0.25
    assert attempt.not_counted() == 0.0  # settled once
    assert limiter.begin(ADDRESS).failed() == 0.25  # still the first failure
