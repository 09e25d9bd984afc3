"""The webhook failure limiter against a fake clock: no waiting."""

from server.ratelimit import FailureLimiter
from tests.helpers import FakeClock


def test_failures_past_the_limit_are_throttled_until_the_window_slides():
    clock = FakeClock(1000.0)
    limiter = FailureLimiter(3, window=60.0, clock=clock)
    assert [limiter.fail("hook").throttled for _ in range(3)] == [False, False, False]
    verdict = limiter.fail("hook")
    assert verdict.throttled and verdict.first and verdict.retry_after == 60.0
    clock.now += 10
    verdict = limiter.fail("hook")   # still guessing: still throttled, logged once
    assert verdict.throttled and not verdict.first and verdict.retry_after == 50.0
    assert not limiter.fail("other").throttled   # per key
    clock.now += 61                  # a pause longer than the window
    assert not limiter.fail("hook").throttled


def test_a_limit_of_zero_turns_throttling_off():
    limiter = FailureLimiter(0, clock=FakeClock(1000.0))
    assert not any(limiter.fail("hook").throttled for _ in range(100))


def test_the_number_of_keys_stays_bounded():
    clock = FakeClock(1000.0)
    limiter = FailureLimiter(1, window=60.0, clock=clock, max_keys=10)
    for i in range(10):
        limiter.fail(f"old{i}")
    clock.now += 61                  # all stale: pruned when a new key needs room
    limiter.fail("new")
    assert set(limiter._failures) == {"new"}
    for i in range(20):              # all fresh: forgotten wholesale rather than grow
        limiter.fail(f"busy{i}")
    assert len(limiter._failures) <= 10
