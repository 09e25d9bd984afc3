"""Engine threads (actors/threads.py): waiting threads keep nothing alive."""

import threading
import weakref

from actors import threads
from actors.threads import PARKED_NAME, start_daemon
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
