"""Work the loop takes up when idle (server/idle_work.py), on a real asyncio loop, no sleeps."""

import asyncio
import socket

from server.idle_work import IdleWork


class Order(list):
    """What ran, in order; `wait(n)` turns the loop until n things have (the wait itself
    queues nothing on the loop, so it never keeps the loop busy)."""

    def __init__(self, loop):
        super().__init__()
        self.loop = loop
        self.goal = None

    def append(self, item):
        super().append(item)
        if self.goal is not None and len(self) >= self.goal[0] and not self.goal[1].done():
            self.goal[1].set_result(None)

    def wait(self, n):
        self.goal = (n, self.loop.create_future())
        if len(self) >= n:
            return
        self.loop.run_until_complete(asyncio.wait_for(self.goal[1], 10))


def busy_chain(loop, order, steps):
    """A callback that queues itself again `steps` times: the loop has something ready all along."""
    def step(i):
        order.append(f"busy{i}")
        if i + 1 < steps:
            loop.call_soon(step, i + 1)
    loop.call_soon(step, 0)


def test_work_runs_once_the_loop_is_idle():
    loop = asyncio.new_event_loop()
    try:
        work, order = IdleWork(loop), Order(loop)
        work.add(lambda: order.append("job"))
        order.wait(1)
        assert order == ["job"] and len(work) == 0
    finally:
        loop.close()


def test_work_waits_behind_whatever_else_is_ready_and_keeps_its_order():
    loop = asyncio.new_event_loop()
    try:
        work, order = IdleWork(loop), Order(loop)
        busy_chain(loop, order, 50)
        for name in ("a", "b", "c"):
            work.add(lambda name=name: order.append(name))
        order.wait(53)
        assert order == [f"busy{i}" for i in range(50)] + ["a", "b", "c"]
    finally:
        loop.close()


def test_work_waits_until_the_loop_has_looked_at_its_sockets():
    loop = asyncio.new_event_loop()
    a, b = socket.socketpair()
    try:
        work, order = IdleWork(loop), Order(loop)
        b.send(b"x")    # readable already; the loop hears of it at its next poll
        loop.add_reader(a, lambda: (order.append("read"), loop.remove_reader(a)))
        work.add(lambda: order.append("job"))
        order.wait(2)
        assert order == ["read", "job"]
    finally:
        a.close()
        b.close()
        loop.close()


def test_work_that_waited_too_long_runs_while_the_loop_is_busy_one_per_turn():
    loop = asyncio.new_event_loop()
    try:
        now = [0.0]
        work, order = IdleWork(loop, clock=lambda: now[0], max_wait=1.0), Order(loop)
        for name in ("a", "b"):
            work.add(lambda name=name: order.append(name))
        now[0] = 1.0
        busy_chain(loop, order, 6)
        order.wait(8)
        # Each overdue job runs in a turn of its own, between the busy chain's steps.
        assert [x for x in order if not x.startswith("busy")] == ["a", "b"]
        assert order.index("b") - order.index("a") == 2
        assert order[-1].startswith("busy")
    finally:
        loop.close()


def test_a_failing_job_is_logged_and_the_next_one_runs(caplog):
    loop = asyncio.new_event_loop()
    try:
        work, order = IdleWork(loop), Order(loop)
        work.add(lambda: 1 / 0)
        work.add(lambda: order.append("next"))
        order.wait(1)
        assert order == ["next"]
        assert "callback on the IOLoop failed" in caplog.text
    finally:
        loop.close()
