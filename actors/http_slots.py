"""Fair shares of outgoing HTTP: at most so many connections per run and per workspace (CONTRACT §11).

Every request of an http block or agent http tool holds one slot from before
it resolves its host until its answer is read (redirect hops reuse it). A
request that finds its run's or its workspace's slots all taken waits; the
wait is part of its timeout and ends at once when the block is cancelled
(the request's task is cancelled). Workspaces never wait for each other.

Requests wait on the HTTP loop (actors/http_loop), so a waiter is a future,
not a thread. A freed slot wakes one waiter, the longest waiting whose run
has room, not all of them: with thousands of runs in a workspace, waking
every waiter for one slot would cost each release thousands of wake-ups.
"""

import asyncio
import contextlib
import threading


class _Space:
    """One workspace's slots: in use, per run, and who waits for one."""

    def __init__(self):
        self.lock = threading.Lock()
        self.in_use = 0
        self.runs = {}          # execution id -> slots it holds
        self.waiting = []       # _Waiter, longest waiting first
        self.pins = 0           # requests holding or waiting: the entry stays while any do


class _Waiter:
    """One request waiting for a slot: woken alone, by a freed slot."""

    def __init__(self, run):
        self.run = run
        self.future = None      # set while it waits
        self.woken = False      # a freed slot was meant for it: the next one goes to another

    def wake(self):
        if self.future is not None and not self.future.done():
            self.future.set_result(None)


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

    @contextlib.asynccontextmanager
    async def hold(self, workspace, run, phase):
        """Hold one slot for the body of the `async with`; on the HTTP loop only.

        While it waits, `phase.waiting` says why (a phrase, for the timeout's
        message). Cancelling the task ends the wait at once.
        """
        space = self._space(workspace)
        waiter = _Waiter(run)
        try:
            while True:
                with space.lock:
                    why = self._full(space, run)
                    if why is None:
                        if waiter in space.waiting:
                            space.waiting.remove(waiter)
                        space.in_use += 1
                        space.runs[run] = space.runs.get(run, 0) + 1
                        break
                    if waiter.woken:
                        waiter.woken = False    # its slot went to a request that came meanwhile
                    else:
                        space.waiting.append(waiter)
                    waiter.future = asyncio.get_running_loop().create_future()
                phase.waiting = why
                await waiter.future
                phase.waiting = None
        except BaseException:
            with space.lock:
                if waiter in space.waiting:
                    space.waiting.remove(waiter)
                    if waiter.woken:            # leaving: the slot meant for it goes on
                        self._wake_next(space)
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
                waiter.wake()
                return
