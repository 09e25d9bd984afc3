"""The key cache: a burst of requests for a key nobody has read lately reads it once."""

import asyncio

import pytest

from server.auth import AuthCache
from tests.helpers import FakeClock


class Reads:
    """A read of a key's workspace that waits until the test lets it answer."""

    def __init__(self, answer="ws", error=None):
        self.count = 0
        self.answer, self.error = answer, error
        self.go = asyncio.Event()

    async def __call__(self):
        self.count += 1
        await self.go.wait()
        if self.error is not None:
            raise self.error
        return self.answer


@pytest.mark.gen_test
async def test_requests_for_a_key_being_read_share_that_read():
    cache, reads = AuthCache(clock=FakeClock(10.0)), Reads()
    waiters = [asyncio.ensure_future(cache.read("k", reads)) for _ in range(200)]
    await asyncio.sleep(0)
    reads.go.set()
    assert await asyncio.gather(*waiters) == ["ws"] * 200
    assert reads.count == 1
    assert cache.peek("k") == (True, "ws")
    other = Reads(answer=None)
    other.go.set()
    assert await cache.read("other", other) is None and other.count == 1  # another key: its own read
    assert cache.peek("other") == (True, None)                            # a miss is remembered too


@pytest.mark.gen_test
async def test_a_failed_read_fails_its_waiters_and_is_not_remembered():
    cache, reads = AuthCache(clock=FakeClock(10.0)), Reads(error=OSError("store down"))
    waiters = [asyncio.ensure_future(cache.read("k", reads)) for _ in range(3)]
    await asyncio.sleep(0)
    reads.go.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert [str(r) for r in results] == ["store down"] * 3 and reads.count == 1
    assert cache.peek("k") == (False, None)
    again = Reads()
    again.go.set()
    assert await cache.read("k", again) == "ws" and again.count == 1


@pytest.mark.gen_test
async def test_a_cancelled_waiter_leaves_the_read_to_the_others():
    cache, reads = AuthCache(clock=FakeClock(10.0)), Reads()
    first = asyncio.ensure_future(cache.read("k", reads))
    second = asyncio.ensure_future(cache.read("k", reads))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    reads.go.set()
    assert await second == "ws" and reads.count == 1
    assert first.cancelled()


@pytest.mark.gen_test
async def test_what_was_read_expires_a_ttl_after_the_read_began():
    clock = FakeClock(10.0)
    cache, reads = AuthCache(ttl=2.0, clock=clock), Reads()
    waiter = asyncio.ensure_future(cache.read("k", reads))
    await asyncio.sleep(0)
    clock.now += 1.5  # the read takes a while
    reads.go.set()
    assert await waiter == "ws"
    clock.now += 0.4
    assert cache.peek("k") == (True, "ws")
    clock.now += 0.2  # 2.1 s after the read began
    assert cache.peek("k") == (False, None)
