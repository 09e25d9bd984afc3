"""Small things many test modules use: graph pieces, settings changes, polling, a fake clock."""

import asyncio
import time

import pytest

START = {"id": "start", "type": "starter"}


def edge(source, target, handle=None):
    e = {"source": source, "target": target}
    if handle is not None:
        e["source_handle"] = handle
    return e


def configure(**changes):
    """`@configure(name=value)` on a test changes its server's settings."""
    return pytest.mark.parametrize("settings", [changes], indirect=True)


def alive(pid):
    """Running (not gone, not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def wait_until(predicate, timeout=10, interval=0.05):
    """Poll `predicate` from a plain thread until it holds (True) or `timeout` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


async def wait_for(predicate, timeout=10.0, step=0.02):
    """On the loop: poll `predicate` (maybe a coroutine) until it gives a true value; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(step)
    raise AssertionError("condition not met in time")


class FakeClock:
    """A clock for the injectable `clock=` of timers, caches and limiters: time passes when told."""

    def __init__(self, now=0.0):
        self.now = now

    def __call__(self):
        return self.now
