"""The thread behind every engine actor: pykka's, made cheaper to start.

A run starts one actor per block, so actor start-up is the engine's own
largest cost. Two changes keep pykka's semantics and cut it:

- the inbox is a `queue.SimpleQueue` (pykka only needs put/get/empty; the
  full `queue.Queue` also tracks tasks and takes a lock per call);
- the thread is started without `Thread.start()`'s handshake, which makes
  the starting thread (the coordinator, or the IOLoop for a coordinator)
  wait until the new thread has been scheduled. Only on CPython versions
  whose `threading` internals this was checked against; elsewhere the
  ordinary `start()`.
"""

import _thread
import queue
import sys
import threading

import pykka

_NO_HANDSHAKE = sys.version_info[:2] in ((3, 11), (3, 12)) and hasattr(threading, "_limbo")


def start_daemon(target, name):
    """Start `target()` on a new daemon thread; do not wait for it to be scheduled."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    if not _NO_HANDSHAKE:
        thread.start()
        return thread
    # What Thread.start() does, minus waiting on `_started`: the thread still
    # registers itself in `threading` from its own bootstrap.
    with threading._active_limbo_lock:
        threading._limbo[thread] = thread
    try:
        _thread.start_new_thread(thread._bootstrap, ())
    except Exception:
        with threading._active_limbo_lock:
            threading._limbo.pop(thread, None)
        raise
    return thread


class EngineActor(pykka.ThreadingActor):
    """A pykka ThreadingActor on a daemon thread, with a cheaper inbox and start."""

    use_daemon_thread = True  # a stuck block must never keep the process alive

    @staticmethod
    def _create_actor_inbox():
        return queue.SimpleQueue()

    def _start_actor_loop(self):
        start_daemon(self._actor_loop, f"{type(self).__name__}")
