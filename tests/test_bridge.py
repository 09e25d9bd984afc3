"""The bridge against a fake loop: callbacks from any thread run in order, one wake-up per batch."""

import threading

from server.bridge import Bridge


class FakeLoop:
    def __init__(self):
        self.wakeups = []

    def add_callback(self, fn):
        self.wakeups.append(fn)

    def run_once(self):
        wakeups, self.wakeups = self.wakeups, []
        for fn in wakeups:
            fn()


def test_calls_run_in_order_with_one_wakeup_per_batch():
    loop, seen = FakeLoop(), []
    bridge = Bridge(loop)
    for i in range(5):
        bridge.call(seen.append, i)
    assert len(loop.wakeups) == 1 and seen == []    # nothing runs off the loop
    loop.run_once()
    assert seen == [0, 1, 2, 3, 4]
    bridge.call(seen.append, 5)                     # a new batch wakes the loop again
    assert len(loop.wakeups) == 1
    loop.run_once()
    assert seen == [0, 1, 2, 3, 4, 5]


def test_a_failing_callback_does_not_stop_the_rest(caplog):
    loop, seen = FakeLoop(), []
    bridge = Bridge(loop)
    bridge.call(lambda: 1 / 0)
    bridge.call(seen.append, "after")
    loop.run_once()
    assert seen == ["after"] and "callback on the IOLoop failed" in caplog.text


def test_calls_from_many_threads_all_arrive_each_thread_in_order():
    loop, seen = FakeLoop(), []
    bridge = Bridge(loop)

    def send(t):
        for i in range(200):
            bridge.call(seen.append, (t, i))

    threads = [threading.Thread(target=send, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    while loop.wakeups:
        loop.run_once()
    assert len(seen) == 800
    for t in range(4):
        assert [i for s, i in seen if s == t] == list(range(200))
