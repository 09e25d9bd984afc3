"""The process's memory: fewer collector passes under load, memory handed back when idle.

Every run in flight holds a few hundred container objects (its HTTP request,
its actors and threads' objects), and the cyclic garbage collector rescans
all of them on each full pass: with the default thresholds a burst of 3,000
runs spent 6 of its 9 CPU seconds in the collector. So, once at start-up:

- what start-up loaded (modules, the routes, the settings) is frozen: the
  collector never scans it again (gc.freeze);
- a young-generation pass comes every GEN0 new containers rather than 700,
  so older generations (and full passes) come that much less often.

While runs pile up (a burst of thousands in flight), every container a young
pass looks at is alive, and each is looked at again by every older pass it
reaches: a burst of 5,000 streamed runs and its drain spent 2.4 s in the
collector, whose passes freed nothing while the runs piled up. So, while
PILE or more runs are live, `Pacer` freezes whatever survives a young pass
that freed (almost) nothing: the
older passes no longer rescan it. A frozen object is still freed by
reference counting, which is how a finished run's objects go
(tests/test_memory.py); only a cycle among frozen objects waits, so after
SWEEP_AFTER runs have ended, a sweep thaws, collects and freezes again.

When the last live run has ended, `Housekeeper.idle()` waits IDLE_DELAY
seconds, and if still no run is live, a thread thaws, collects and freezes
what is left, and gives free heap pages back to the OS (glibc's
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
FREEZE_IF_FREED = 100   # a young pass (of GEN0 containers) that freed no more found only live ones
PILE = 500              # live runs from which such a pass's survivors are frozen
SWEEP_AFTER = 5000      # runs ended while objects are frozen before a sweep frees frozen cycles


def tune_collector(live_runs):
    """Freeze what start-up made, space the collector's passes out and pace them.

    `live_runs()` counts the runs in flight. Call once, after start-up.
    Returns the installed Pacer.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0, gen1, gen2)
    pacer = Pacer(live_runs)
    pacer.install()
    return pacer


class Pacer:
    """Freezes what young collector passes find alive while runs pile up (see the module's doc).

    `after_pass` runs on whichever thread the collector runs on, `run_ended`
    on the loop, a sweep on a thread of its own. Freezing and thawing are
    single steps under the GIL, so a race costs at most an early or late sweep.
    """

    def __init__(self, live_runs, pile=PILE, sweep_after=SWEEP_AFTER):
        self.live_runs = live_runs
        self.pile = pile
        self.sweep_after = sweep_after
        self.frozen = False     # young passes' survivors are frozen: cycles among them wait
        self.ended = 0          # runs ended since then
        self._sweeping = False

    def install(self):
        gc.callbacks.append(self.after_pass)

    def uninstall(self):
        gc.callbacks.remove(self.after_pass)

    def after_pass(self, phase, info):
        """gc's callback: a young pass that freed (almost) nothing while runs pile up -> freeze."""
        if (phase == "stop" and info["generation"] == 0 and info["collected"] <= FREEZE_IF_FREED
                and self.live_runs() >= self.pile):
            gc.freeze()
            if not self.frozen:
                self.frozen, self.ended = True, 0

    def run_ended(self):
        """A run has ended: its frozen objects may be cycles now. Loop thread."""
        self.ended += 1
        if self.frozen and self.ended >= self.sweep_after and not self._sweeping:
            self._sweeping = True
            threading.Thread(target=self.sweep, name="actorflow-sweep", daemon=True).start()

    def sweep(self, freeze_all=False):
        """Thaw everything, collect, and freeze again what is left: all of it with
        `freeze_all` (as start-up did), else only if runs still pile up."""
        try:
            self.frozen = False
            gc.unfreeze()
            gc.collect()
            if freeze_all:
                gc.freeze()
            elif self.live_runs() >= self.pile:
                gc.freeze()
                self.frozen, self.ended = True, 0
        finally:
            self._sweeping = False


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
        self._idle_since = 0.0      # when the last live run ended (the loop's clock)
        self._trim = _malloc_trim()
        self.pacer = None           # the process's Pacer, once tune_collector() has installed it

    def run_ended(self):
        """A run has ended (loop thread)."""
        if self.pacer is not None:
            self.pacer.run_ended()

    def idle(self):
        """The last live run just ended: tidy up once none has been live for IDLE_DELAY seconds."""
        self._idle_since = self._loop.time()
        if self._pending is None:
            self._pending = self._loop.call_later(IDLE_DELAY, self._check)

    def stop(self):
        """Drop the pending tidy-up: a stopped server's loop must not hold it (and its runtime) alive."""
        if self._pending is not None:
            self._loop.remove_timeout(self._pending)
            self._pending = None

    def _check(self):
        self._pending = None
        if not self._is_idle():
            return  # the next idle() starts the wait again
        # Runs that came and went meanwhile moved the wait's start: one after another
        # (a client calling in a loop) they would otherwise pay a full collection and a
        # trimmed heap every IDLE_DELAY seconds.
        left = self._idle_since + IDLE_DELAY - self._loop.time()
        if left > 0:
            self._pending = self._loop.call_later(left, self._check)
            return
        self._start_tidy()

    def _start_tidy(self):
        threading.Thread(target=self._tidy, name="actorflow-tidy", daemon=True).start()

    def _tidy(self):
        pacer = self.pacer
        if pacer is None:
            gc.collect()
        else:
            pacer.sweep(freeze_all=True)   # frozen cycles too
        if self._trim is not None:
            self._trim(0)
