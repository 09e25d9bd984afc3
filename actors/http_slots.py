"""Fair shares of outgoing HTTP: at most so many connections per run and per workspace (CONTRACT §11).

Every request of an http block or agent http tool holds one slot from before
it resolves its host until its answer is read (redirect hops reuse it). A
request that finds its run's or its workspace's slots all taken waits; the
wait is part of its timeout and ends at once when the block is cancelled,
because the request's Guard wakes it. Workspaces never wait for each other.

A freed slot wakes one waiter, the longest waiting whose run has room, not
all of them: with thousands of runs in a workspace, a hundred or more
threads wait, and waking them all for one slot cost each release a hundred
trips through the GIL.
"""

import contextlib
import threading

from .context import BlockTimeout


class _Space:
    """One workspace's slots: in use, per run, and who waits for one."""

    def __init__(self):
        self.lock = threading.Lock()
        self.in_use = 0
        self.runs = {}          # execution id -> slots it holds
        self.waiting = []       # _Waiter, longest waiting first
        self.pins = 0           # requests holding or waiting: the entry stays while any do


class _Waiter:
    """One request waiting for a slot: woken alone, by a freed slot or by its Guard."""

    def __init__(self, space, run):
        self.space = space
        self.run = run
        self.cond = threading.Condition(space.lock)
        self.woken = False      # a freed slot was meant for it: the next one goes to another

    def wake(self):
        with self.space.lock:
            self.cond.notify()


class HttpSlots:
    """The `http_slots` service. A limit of 0 means no limit."""

    def __init__(self, per_workspace, per_run):
        self.per_workspace = per_workspace
        self.per_run = per_run
        self._lock = threading.Lock()
        self._spaces = {}

    def _space(self, workspace):
        with self._lock:
            space = self._spaces.get(workspace)
            if space is None:
                space = self._spaces[workspace] = _Space()
            space.pins += 1
            return space

    def _unpin(self, workspace, space):
        with self._lock:
            space.pins -= 1
            if space.pins == 0:
                self._spaces.pop(workspace, None)

    def _full(self, space, run):
        """Why `run` must wait (a phrase), or None."""
        if self.per_workspace and space.in_use >= self.per_workspace:
            return f"all {self.per_workspace} of this workspace's connections are in use"
        if self.per_run and space.runs.get(run, 0) >= self.per_run:
            return f"all {self.per_run} of this run's connections are in use"
        return None

    @contextlib.contextmanager
    def hold(self, workspace, run, guard, late):
        """Hold one slot for the body of the `with`.

        `guard` (an http_client.Guard) stops the wait; then its error is
        raised, `late` plus why the request was waiting.
        """
        space = self._space(workspace)
        waiter = _Waiter(space, run)
        try:
            guard.on_fire(waiter.wake)
            with space.lock:
                try:
                    while True:
                        why = self._full(space, run)
                        if why is None:
                            break
                        if guard.fired or guard.ctx.cancelled.is_set():
                            try:
                                guard.raise_if_fired(f"{late} waiting for a connection: {why}")
                            except BlockTimeout as exc:
                                raise BlockTimeout(f"{exc.message} waiting for a connection: {why}") from None
                        if waiter.woken:
                            waiter.woken = False    # its slot went to a request that came meanwhile
                        else:
                            space.waiting.append(waiter)
                        waiter.cond.wait()
                except BaseException:
                    if waiter in space.waiting:
                        space.waiting.remove(waiter)
                        if waiter.woken:                # leaving: the slot meant for it goes on
                            self._wake_next(space)
                    raise
                if waiter in space.waiting:
                    space.waiting.remove(waiter)
                space.in_use += 1
                space.runs[run] = space.runs.get(run, 0) + 1
        except BaseException:
            self._unpin(workspace, space)
            raise
        try:
            yield
        finally:
            with space.lock:
                space.in_use -= 1
                left = space.runs[run] - 1
                if left:
                    space.runs[run] = left
                else:
                    del space.runs[run]
                self._wake_next(space)
            self._unpin(workspace, space)

    def _wake_next(self, space):
        """A slot is free: wake the longest waiting request that may take it. Holds space.lock."""
        for waiter in space.waiting:
            if not waiter.woken and self._full(space, waiter.run) is None:
                waiter.woken = True
                waiter.cond.notify()
                return
