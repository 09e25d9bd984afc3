"""What a block type's `run` function is given: its inputs and a way out."""

import copy
import json
import threading
import time

from actors.errors import BlockError
from models.base import compact_json
from .flags import Flag
from .timers import shared_timers

WATCH_POLL = 0.2            # how soon `on_cancel` notices a plain Event was set


class BlockCancelled(BlockError):
    """The run was cancelled (failure elsewhere, run timeout, shutdown, delete)."""


class BlockTimeout(BlockError):
    """The block ran past its own `timeout`."""


def own_copy(value):
    """A deep copy of a JSON value (any value, more slowly)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    try:
        return json.loads(compact_json(value))
    except (TypeError, ValueError):
        return copy.deepcopy(value)


class _Own:
    """An attribute copied from the run's value on first read, so the block's changes stay its own.

    The coordinator, the writer and other blocks hold the same values; most
    blocks never read most of them, so nothing is copied until it is read.
    """

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, ctx, owner=None):
        if ctx is None:
            return self
        value = ctx.__dict__[self.name] = own_copy(ctx._shared[self.name])  # later reads skip this
        return value


class CancelFlag(Flag):
    """A block's `cancelled` event (set once) that also calls back when set.

    A waiter that is not a thread of its own (a guarded HTTP request) hears
    of the cancel at once, without polling the event.
    """

    __slots__ = ("_calls",)

    def __init__(self):
        super().__init__()
        self._calls = []          # None once set

    def set(self):
        with _calls_lock:
            super().set()
            calls, self._calls = self._calls, None
        for fn in calls or ():
            fn()

    def on_set(self, fn):
        """Call `fn()` once when set (now, if it is). Returns a function that drops the call."""
        with _calls_lock:
            if self._calls is not None:
                self._calls.append(fn)
                return lambda: self._drop(fn)
        fn()
        return _nothing

    def _drop(self, fn):
        with _calls_lock:
            if self._calls is not None and fn in self._calls:
                self._calls.remove(fn)


def on_cancel(event, fn):
    """Call `fn()` once when `event` is set (from the setting thread); returns a function that stops it.

    A CancelFlag calls back; a plain Event is looked at every WATCH_POLL seconds.
    """
    if hasattr(event, "on_set"):
        return event.on_set(fn)
    state = {"timer": None, "over": False}

    def look():
        if state["over"]:
            return
        if event.is_set():
            fn()
        else:
            state["timer"] = shared_timers().call_later(WATCH_POLL, look)

    def stop():
        state["over"] = True
        if state["timer"] is not None:
            state["timer"].cancel()
    look()
    return stop


# One lock for every flag's calls: each holds it for a list operation only.
_calls_lock = threading.Lock()


def _nothing():
    pass


class BlockContext:
    """Everything one attempt of one block may use.

    `config` is already rendered (templates resolved); `inputs` maps each
    ancestor block id to its output; `emit(chunk)` sends partial output to
    stream watchers; `cancelled` is set when the run no longer wants the
    result; `deadline` is a `time.monotonic()` instant or None.
    `config`, `inputs`, `variables` and `trigger` are this attempt's own
    copies: changing them changes nothing anyone else sees.
    A block fails by raising `BlockError(message)`; it sets `stdout` to keep
    printed text in its log. `depth` is the run's depth (see plan.DEPTH_HEADER).
    `attempt` counts this block's tries in this run (1, then 2 on the first retry).
    """

    config = _Own()
    inputs = _Own()
    variables = _Own()
    trigger = _Own()

    def __init__(self, *, block_id, block_type, config, inputs, variables, trigger=None,
                 settings=None, services=None, emit=None, cancelled=None, deadline=None,
                 workspace=None, execution_id=None, depth=0, attempt=1):
        self.block_id = block_id
        self.block_type = block_type
        self._shared = {"config": config, "inputs": inputs, "variables": variables, "trigger": trigger}
        self.settings = settings
        self.services = services or {}
        self.workspace = workspace
        self.execution_id = execution_id
        self.depth = depth
        self.attempt = attempt
        self._emit = emit
        self.cancelled = cancelled if cancelled is not None else CancelFlag()
        self.deadline = deadline
        self.stdout = None

    def shared(self, name):
        """The run's own `config`, `inputs`, `variables` or `trigger`: not a copy.

        Only for a block that changes nothing in it and lets nothing else do so
        (an expression could): a block's output is copied on its way out anyway.
        """
        return self._shared[name]

    def emit(self, chunk):
        """Send partial output (a token, a step) to whoever watches the run."""
        if self._emit is not None:
            self._emit(chunk)

    def remaining(self, cap=None):
        """Seconds left before the deadline (None: no deadline), at most `cap`."""
        if self.deadline is None:
            return cap
        left = max(0.0, self.deadline - time.monotonic())
        return left if cap is None else min(left, cap)

    def check(self):
        """Raise if the run was cancelled or the block's time is up."""
        if self.cancelled.is_set():
            raise BlockCancelled("cancelled")
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise BlockTimeout(self.timeout_message())

    def wait(self, seconds):
        """Sleep up to `seconds`, waking early (and raising) on cancel or deadline."""
        limit = self.remaining(seconds)
        self.cancelled.wait(limit)
        self.check()

    def timeout_message(self):
        return f"block '{self.block_id}' timed out"
