"""Live runs, as the IOLoop sees them: start, watch, cancel, shut down.

Call everything here on the IOLoop thread. The one exception is what the
coordinators publish to: the writer thread calls it once a batch has
committed (a coordinator's thread, for chunks alone), and it only hands the
batch to the loop (server/bridge.py), so runs see their events on the loop,
in order, after their writes.
"""

import asyncio
import logging

import pykka

from actors.coordinator import STOPPED_MESSAGE, Coordinator
from actors.messages import Cancel
from actors.persist import STORAGE_CODE, WITHDRAWN_CODE
from models.errors import ExecutionTimeout, StorageUnavailable
from models.journal import StaleWorkflow
from models.base import new_id

log = logging.getLogger(__name__)

MAX_BUFFERED_EVENTS = 20000


class LiveRun:
    """One run's event buffer (chunks included), its watchers and its end."""

    def __init__(self, execution_id, workflow_id, coordinator):
        self.execution_id = execution_id
        self.workflow_id = workflow_id
        self.coordinator = coordinator
        self.events = []          # (seq, event, text)
        self.listeners = set()    # callables(events)
        self.result = None
        loop = asyncio.get_running_loop()
        self.started = loop.create_future()   # resolved once the run row is committed
        self.finished = loop.create_future()  # resolved with the result at the end
        self.had_chunks = False
        self.first_seq = 1        # a resumed run's buffer begins after its stored events
        self.checking = None      # the trigger, while a start that checks the graph version is unconfirmed
        self._end_waits = []      # (future, timer) of wait_end callers

    @property
    def over(self):
        return self.result is not None

    def add(self, events, result):
        if not self.started.done():
            code = result.get("code") if result is not None else None
            if code == STORAGE_CODE:
                # Its first row never landed: the run was never acknowledged as started.
                self.started.set_exception(StorageUnavailable(result["error"],
                                                              execution_id=self.execution_id))
                self.started.exception()  # seen: not every caller waits for the start
            elif code == WITHDRAWN_CODE:
                self.started.set_exception(StaleWorkflow(self.workflow_id))
                self.started.exception()
            else:
                self.started.set_result(self.execution_id)
        self.events.extend(events)
        if not self.had_chunks:
            self.had_chunks = any(e[1]["type"] == "block_chunk" for e in events)
        if len(self.events) > MAX_BUFFERED_EVENTS:
            # Chunks are the only events not stored; past the bound, forget them here.
            self.events = [e for e in self.events if e[1]["type"] != "block_chunk"]
        for listener in list(self.listeners):
            try:
                listener(events)
            except Exception:
                log.exception("run listener failed")
        if result is not None:
            self.result = result
            if not self.finished.done():
                self.finished.set_result(result)
            waits, self._end_waits = self._end_waits, []
            for waiter, timer in waits:
                timer.cancel()
                if not waiter.done():
                    waiter.set_result(result)

    def wait_end(self, seconds) -> asyncio.Future:
        """A future of the run's result, or of ExecutionTimeout once `seconds` pass first.

        The coordinator enforces the run's own timeout; this is a caller's safety
        net. Resolved where the run ends, so the caller wakes on the loop's next
        turn (`wait_for` over a `shield` of `finished` took three).
        """
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        if self.result is not None:
            waiter.set_result(self.result)
            return waiter
        timer = loop.call_later(seconds, self._expire, waiter)
        self._end_waits.append((waiter, timer))
        return waiter

    def _expire(self, waiter):
        self._end_waits = [wait for wait in self._end_waits if wait[0] is not waiter]
        if not waiter.done():
            waiter.set_exception(ExecutionTimeout("execution timed out", execution_id=self.execution_id))


class Runs:
    def __init__(self, engine, bridge, retention):
        self.engine = engine
        self.bridge = bridge
        self.retention = retention
        self.live = {}
        self.accepting = True
        self.observer = None  # metrics: run_started(run, trigger), run_events(run, events, result)
        self.on_ended = None  # () -> None: called as each live run is forgotten
        self.on_idle = None   # () -> None: called when the last live run is forgotten

    def start(self, plan) -> LiveRun:
        """Start the run's coordinator. Call on the loop."""
        ref = Coordinator.start(plan, self.engine, self._publish_from_writer)
        run = LiveRun(plan.execution_id, plan.workflow_id, ref)
        if plan.resume is not None:
            run.first_seq = plan.resume.seq + 1
        self.live[plan.execution_id] = run
        if plan.expect_version:
            run.checking = plan.trigger  # counted once its start is stored: it may be withdrawn
        elif self.observer is not None:
            self.observer.run_started(run, plan.trigger)
        return run

    @staticmethod
    def new_execution_id():
        return new_id()

    def get(self, execution_id) -> LiveRun | None:
        return self.live.get(execution_id)

    def _publish_from_writer(self, execution_id, events, result):
        # On the writer thread (or a coordinator's, for chunks alone).
        self.bridge.call(self._publish, execution_id, events, result)

    def _publish(self, execution_id, events, result):
        run = self.live.get(execution_id)
        if run is None:
            return
        if run.checking is not None:
            trigger, run.checking = run.checking, None
            if result is not None and result.get("code") == WITHDRAWN_CODE:
                run.add(events, result)  # its starter hears of it, and starts the run again
                self._drop(execution_id)
                return
            if self.observer is not None:
                self.observer.run_started(run, trigger)
        run.add(events, result)
        if self.observer is not None:
            self.observer.run_events(run, events, result)
        if result is not None:
            if run.had_chunks:
                # Chunks are not stored: keep them replayable for a while.
                asyncio.get_running_loop().call_later(self.retention, self._forget, execution_id)
            else:
                # Everything else is on disk already; replays read it from there.
                self._drop(execution_id)

    def _forget(self, execution_id):
        run = self.live.get(execution_id)
        if run is not None and run.over:
            self._drop(execution_id)

    def _drop(self, execution_id):
        del self.live[execution_id]
        if self.on_ended is not None:
            self.on_ended()
        if not self.live and self.on_idle is not None:
            self.on_idle()

    def cancel(self, execution_id, reason="cancelled", message="execution cancelled"):
        run = self.live.get(execution_id)
        if run is None or run.over:
            return None
        try:
            run.coordinator.tell(Cancel(reason, message))
        except pykka.ActorDeadError:
            pass
        return run

    async def cancel_workflow(self, workflow_id, wait=10.0):
        """Cancel every live run of a workflow and wait until each has ended."""
        runs = [self.cancel(eid) for eid, run in list(self.live.items())
                if run.workflow_id == workflow_id]
        waits = [r.finished for r in runs if r is not None]
        if waits:
            await asyncio.wait(waits, timeout=wait)

    async def shutdown(self, grace):
        """Let live runs finish within `grace` seconds, then fail the rest."""
        self.accepting = False
        pending = [r.finished for r in self.live.values() if not r.over]
        if pending:
            log.info("waiting up to %ss for %d running executions", grace, len(pending))
            await asyncio.wait(pending, timeout=grace)
        rest = [self.cancel(eid, "shutdown", STOPPED_MESSAGE) for eid in list(self.live)]
        rest = [r.finished for r in rest if r is not None]
        if rest:
            await asyncio.wait(rest, timeout=5)
