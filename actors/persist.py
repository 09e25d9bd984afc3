"""A run's writes on their way to the store, and its end when the store refuses one.

The coordinator hands each batch of ops and events to `RunWriter.flush`; the
writer thread commits them and only then publishes the events to the run's
watchers. When the store refuses a batch (locked past the busy timeout, disk
full, a value it cannot encode):

- the watchers hear at once that the run failed with STORAGE_UNAVAILABLE
  (a run whose first row never landed was never acknowledged as started);
- the run's later writes are dropped, and its coordinator is told to stop;
- the writer keeps trying one write that marks the run `failed` (storing its
  first row if needed) until the store takes it, so no run stays `running`.

One refusal is not a failure: a start planned from a cached graph that the
workflow no longer has (StaleWorkflow) is withdrawn. Nothing of the run was
stored or run, nothing is written for it, and its starter hears of it (a
result with WITHDRAWN_CODE) and starts the run again from the store.

A run has at most one batch at the writer at a time: what the coordinator
flushes meanwhile is held and goes as one batch once that one has committed.
So a long chain whose steps come faster than commits is written in fewer,
larger transactions, with no extra wait when the writer is idle.

All state below except `run_row` and the held batch (under `_lock`) is
touched on the writer thread only.
"""

import json
import logging
import threading
import time

import pykka

from models.base import utcnow
from models.journal import apply as apply_journal
from models.journal import StaleWorkflow, fail_run
from models.writer import refusal
from .events import end_event
from .messages import Cancel

log = logging.getLogger(__name__)

STORAGE_CODE = "STORAGE_UNAVAILABLE"
WITHDRAWN_CODE = "STALE_WORKFLOW"  # never shown to a client: the run is started again


def fail_unstarted(writer, execution_id, reason):
    """A stored run that never got a coordinator: end it `failed` with `reason` once the store takes it."""
    event = end_event(execution_id, "failed", error=reason, duration_ms=0)
    text = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    writer.submit_until_stored(fail_run, (execution_id, None, reason, 2, text, utcnow(), 0))


class RunWriter:
    def __init__(self, engine, execution_id, coordinator, publish, seq=0):
        self.engine = engine
        self.publish = publish
        self.execution_id = execution_id
        self.coordinator = coordinator
        self.t0 = time.monotonic()
        self.run_row = None        # the run's first row, until it is stored
        self.refused = False       # a write of this run was refused: drop the rest
        self.cause = None          # why, when a job found out itself
        self.told = False          # the watchers have heard of it
        self.published_seq = seq  # a resumed run's events go on after its stored ones
        self._lock = threading.Lock()
        self._busy = False         # a batch of this run is at the writer
        self._held = None          # [ops, events, result] flushed meanwhile
        self.on_first_report = None  # called once, on the writer thread, after the first batch is reported

    def flush(self, ops, events, result):
        """Queue a batch of the run's writes; its events are published once they commit.

        Called on the coordinator's thread. A batch of chunks alone is published
        from here at once when nothing of the run is at the writer.
        """
        if ops and ops[0][0] == "run":
            self.run_row = ops[0][1]
        with self._lock:
            if self._busy:
                if self._held is None:
                    self._held = [list(ops), list(events), result]
                else:
                    self._held[0].extend(ops)
                    self._held[1].extend(events)
                    self._held[2] = result if result is not None else self._held[2]
                return
            # Only chunks (never stored), and no batch of the run at the writer: every
            # earlier event is committed and published already, so they need no writer hop.
            chunks_only = not ops and result is None
            if not chunks_only:
                self._busy = True
            elif self.refused:
                return
            elif events:
                self.published_seq = events[-1][0]
        if chunks_only:
            self.publish(self.execution_id, events, None)
        else:
            self._submit(ops, events, result)

    def _submit(self, ops, events, result):
        done = lambda written, error: self._done(events, result, written, error)  # noqa: E731
        if ops:
            self.engine.writer.submit(self._write, (ops,), done)
        else:
            self.engine.writer.submit(None, (), done)

    def _next(self):
        """On the writer thread, after a batch was reported: send the held one, if any."""
        with self._lock:
            held, self._held = self._held, None
            if held is None:
                self._busy = False
                return
        self._submit(held[0], tuple(held[1]), held[2])

    def _write(self, ops):
        """Writer job. False when dropped (an earlier write of the run was refused)."""
        if self.refused:
            return False
        try:
            apply_journal(ops)
        except Exception as exc:
            self.refused, self.cause = True, exc  # the next jobs of this batch already see it
            raise
        return True

    def _done(self, events, result, written, error):
        try:
            if error is not None or (self.refused and not self.told):
                self._refuse(error or self.cause)
                return
            if self.refused:
                return
            self.run_row = None
            if events:
                self.published_seq = events[-1][0]
            self.publish(self.execution_id, events, result)
        finally:
            then, self.on_first_report = self.on_first_report, None
            if then is not None:
                then()
            self._next()

    def end_unstarted(self, reason):
        """The run's start is stored but its coordinator never ran: end it `failed`, and say so."""
        self.refused = self.told = True  # nothing more of this run is written or told
        self._end_failed(reason)

    def _refuse(self, error):
        self.refused = True
        if self.told:
            return
        self.told = True
        if isinstance(error, StaleWorkflow) and self.run_row is not None:
            self._withdraw()
            return
        problem = refusal(error)
        reason = problem.message if problem is not None else f"storage unavailable: {error}"
        log.error("store refused a write of run %s: %s", self.execution_id, error,
                  extra={"execution_id": self.execution_id})
        try:
            self.coordinator.tell(Cancel("storage", reason))
        except pykka.ActorDeadError:
            pass  # it had ended already: that end was the refused write
        self._end_failed(reason, STORAGE_CODE)

    def _withdraw(self):
        """The start's check found the workflow changed: stop the run, write nothing, tell the starter."""
        try:
            self.coordinator.tell(Cancel("storage", "withdrawn"))  # its first turn, then this: it ends
        except pykka.ActorDeadError:
            pass
        self.publish(self.execution_id, (), {
            "status": "withdrawn", "code": WITHDRAWN_CODE, "output": None, "block_id": None,
            "error": "the workflow changed before the run's start was stored", "duration_ms": 0})

    def _end_failed(self, reason, code=None):
        """Its watchers hear at once that the run failed; its row is ended once the store takes it."""
        eid, seq = self.execution_id, self.published_seq + 1
        duration = int(round((time.monotonic() - self.t0) * 1000))
        event = end_event(eid, "failed", error=reason, duration_ms=duration, code=code)
        text = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        self.engine.writer.submit_until_stored(
            fail_run, (eid, self.run_row, reason, seq, text, utcnow(), duration))
        result = {"status": "failed", "output": None, "error": reason, "block_id": None,
                  "duration_ms": duration}
        if code is not None:
            result["code"] = code
        self.publish(eid, ((seq, event, text),), result)
