"""The process's memory: fewer collector passes under load, memory handed back when idle.

Every run in flight holds a few hundred container objects (its HTTP request,
its actors and threads' objects), and the cyclic garbage collector rescans
all of them on each full pass: with the default thresholds a burst of 3,000
runs spent 6 of its 9 CPU seconds in the collector. So, once at start-up:

- what start-up loaded (modules, the routes, the settings) is frozen: the
  collector never scans it again (gc.freeze);
- a young-generation pass comes every GEN0 new containers rather than 700,
  so older generations (and full passes) come that much less often.

A finished run's objects are mostly cycles (tornado's request, pykka's actor
and its ref) that only the collector frees; so when the last live run has
ended, `Housekeeper.idle()` waits IDLE_DELAY seconds, and if still no run is
live, a thread collects and gives free heap pages back to the OS (glibc's
malloc_trim), so the process returns close to its idle size.
"""

import ctypes
import ctypes.util
import gc
import logging
import threading

log = logging.getLogger(__name__)

GEN0 = 10000
IDLE_DELAY = 2.0


def tune_collector():
    """Freeze what start-up made and space the collector's passes out. Call once, after start-up."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0, gen1, gen2)


def _malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc: collecting is all we can do


class Housekeeper:
    """Collects and trims once the engine has had no live run for IDLE_DELAY seconds. Loop thread only."""

    def __init__(self, io_loop, is_idle):
        self._loop = io_loop
        self._is_idle = is_idle     # () -> bool: no live run
        self._pending = None
        self._trim = _malloc_trim()

    def idle(self):
        """The last live run just ended: tidy up soon, unless runs start again."""
        if self._pending is None:
            self._pending = self._loop.call_later(IDLE_DELAY, self._check)

    def stop(self):
        """Drop the pending tidy-up: a stopped server's loop must not hold it (and its runtime) alive."""
        if self._pending is not None:
            self._loop.remove_timeout(self._pending)
            self._pending = None

    def _check(self):
        self._pending = None
        if self._is_idle():
            threading.Thread(target=self._tidy, name="actorflow-tidy", daemon=True).start()

    def _tidy(self):
        gc.collect()
        if self._trim is not None:
            self._trim(0)
