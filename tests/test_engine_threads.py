"""Engine threads (actors/threads.py): waiting threads keep nothing alive; pooled actors
hold a thread only while they have messages, and handle them in order."""

import threading
import weakref

import pykka

from actors import threads
from actors.threads import PARKED_NAME, PooledActor, start_daemon
from tests.helpers import wait_until


def test_a_waiting_thread_keeps_nothing_of_what_it_ran(monkeypatch):
    monkeypatch.setattr(threads, "PARK_SECONDS", 30.0)   # it waits for the whole test
    monkeypatch.setattr(threads, "_parked", [])          # a new thread, not one already waiting
    ran_on = []

    class Work:
        def run(self):
            ran_on.append(threading.current_thread())

    work = Work()
    gone = weakref.ref(work)
    start_daemon(work.run, "test-work")
    del work
    assert wait_until(lambda: ran_on and ran_on[0].name == PARKED_NAME, 30)
    assert ran_on[0].is_alive()
    assert gone() is None   # freed while its thread waits for the next work
    threads._parked[0].put((lambda: None, "test-done"))  # let it go on: it ends after PARK_SECONDS


class Counter(PooledActor):
    def __init__(self):
        super().__init__()
        self.seen = []
        self.threads = set()

    def on_receive(self, message):
        self.threads.add(threading.current_thread().name)
        if message == "boom":
            raise ValueError("boom")
        self.seen.append(message)
        return len(self.seen)


def test_a_pooled_actor_handles_its_messages_in_order_and_holds_no_thread_between():
    ref = Counter.start()
    actor = ref._actor_weakref()
    try:
        for i in range(200):
            ref.tell(i)
        assert wait_until(lambda: len(actor.seen) == 200, 30)
        assert actor.seen == list(range(200))
        assert wait_until(lambda: not actor.actor_inbox.running, 30)   # its turn is over
        # News from several threads at once: each message once, none lost.
        senders = [threading.Thread(target=lambda k=k: [ref.tell((k, i)) for i in range(100)])
                   for k in range(4)]
        for t in senders:
            t.start()
        for t in senders:
            t.join(30)
        assert wait_until(lambda: len(actor.seen) == 600, 30)
        for k in range(4):
            assert [m for m in actor.seen if isinstance(m, tuple) and m[0] == k] == [(k, i) for i in range(100)]
        assert "Counter" in actor.threads
    finally:
        ref.stop()
    assert not ref.is_alive() and actor.actor_inbox.wake is None


def test_a_pooled_actor_answers_asks_and_stops_on_a_failure():
    ref = Counter.start()
    try:
        assert ref.ask("a", timeout=30) == 1
        ref.tell("boom")   # pykka's rule: an unhandled failure stops the actor
        assert wait_until(lambda: not ref.is_alive(), 30)
    finally:
        if ref.is_alive():
            ref.stop()
    assert ref not in pykka.ActorRegistry.get_all()


class Plain(threads.EngineActor):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_receive(self, message):
        self.seen.append(message)
        return message

    def double(self, n):
        return 2 * n


def test_an_engine_actor_is_registered_while_it_lives_and_answers_pykka_calls():
    # EngineActor starts and stops without pykka's own start and _stop (their debug
    # lines), and hands our messages straight to on_receive: pykka's still work.
    ref = Plain.start()
    try:
        assert ref in pykka.ActorRegistry.get_all()
        assert ref.ask({"n": 1}, timeout=30) == {"n": 1}
        proxy = ref.proxy()
        assert proxy.double(21).get(timeout=30) == 42
        assert proxy.seen.get(timeout=30) == [{"n": 1}]
        proxy.seen = ["set"]
        assert ref.ask("x", timeout=30) == "x"
        assert proxy.seen.get(timeout=30) == ["set", "x"]   # the inbox keeps the order
    finally:
        ref.stop(timeout=30)
    assert not ref.is_alive()
    assert ref not in pykka.ActorRegistry.get_all()
