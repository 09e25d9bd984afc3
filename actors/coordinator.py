"""The coordinator: one actor per run. It alone decides, persists and publishes.

It starts one block actor per block when that block is ready, hands it the
block's rendered config, and hears back by `tell`. Every decision's writes and
events are flushed together to the writer, which commits them and only then
publishes the events (through the bridge) to whoever watches the run.
"""

import functools
import json
import logging
import time

import pykka

from models.base import JSONText, compact_json, utcnow
from actors.errors import BlockError
from . import dag
from .block import start_block
from .context import CancelFlag
from .events import end_event
from .launches import LaunchBudget
from .threads import ACTOR_STOP, PooledActor
from .messages import BlockChunk, BlockDone, Cancel, Idle, RunBlock
from .persist import RunWriter, fail_unstarted
from .templates import Scope, render

log = logging.getLogger(__name__)

STOPPED_MESSAGE = "server stopped before the run finished"
FLUSH_AT = 500  # ops and events held back at most while more messages wait
# A block just started often ends within microseconds (a long chain of quick
# blocks): wait this long for its news before flushing, so a chain's steps
# share a commit; but never hold writes longer than HOLD_MAX in all.
LINGER = 0.002
HOLD_MAX = 0.02
# Runs whose caller hears of the start at once (a 202, the stream's first
# event): their start is flushed on its own, before anything else is done. The
# others (/execute, sub-runs, schedules) answer at the end, so their start may
# share the first commit.
ANNOUNCED = ("stream", "webhook")


class Engine:
    """What every coordinator shares: registry, writer, timers, services, settings."""

    def __init__(self, *, registry, writer, timers, settings, owner, services=None, after_published=None):
        """`after_published(fn)` (from any thread) calls `fn()` once what the engine has
        published so far has been handed on to the runs' watchers; by default at once."""
        self.registry = registry
        self.after_published = after_published or (lambda fn: fn())
        self.writer = writer
        self.timers = timers
        self.settings = settings
        self.owner = owner
        self.services = services if services is not None else {}
        self.launches = LaunchBudget(getattr(settings, "max_block_threads", 256))


class Coordinator(PooledActor):
    """One run: holds a thread only while it has news to handle (see PooledActor)."""

    def __init__(self, plan, engine: Engine, publish):
        """`publish(execution_id, events, result)` is called on the writer thread once a
        batch of the run's events has committed (whoever started the run watches it);
        chunks, which are not stored, may be published from this actor's thread."""
        super().__init__()
        self.plan = plan
        self.engine = engine
        self.graph = plan.graph
        self.state = dag.RunState(plan.graph)
        self.seq = 0
        self.log_seq = 0
        self.ops = []
        self.events = []
        self.result = None
        self.over = False
        self.held_since = None   # when the oldest write not yet flushed was made
        self.launched = False    # a block was started while handling this message
        self.starts = []         # block starts decided while handling this message: done last
        self.cancel_events = {}
        self.started = {}
        self.config_of = {}
        self.t0 = time.monotonic()
        self.attempts_before = {}  # resumed blocks: attempts made before the server stopped
        self.timer = None
        self.responses = [b for b in self.graph.order if self.graph.blocks[b]["type"] == "response"]
        self.response_texts = {}  # a completed response block's output JSON: the run's output, encoded
        self.writes = RunWriter(engine, plan.execution_id, self.actor_ref, publish,
                                seq=plan.resume.seq if plan.resume is not None else 0)
        self.begun = None  # (ready, skipped) when the run's start was written from here
        announced = _announced(plan)
        # A run whose first turn is small (actors.run_cost) takes that turn on the thread
        # that starts it (a streamed one: that releases it, once its start is published),
        # not a pooled one: no hand-off there and back. Only news of its inline blocks is
        # handled there; any other hands the rest over to a pooled thread (fits_here).
        self.turn_here = plan.on_caller and plan.resume is None
        if plan.expect_version and not checks_in_time(plan, engine.registry):
            raise ValueError("this run's blocks could act before its start checks the workflow's version")
        if announced:
            # Its caller waits for this first commit alone: it goes to the writer from
            # the starting thread (this runs in `start()`), and this actor's first turn
            # (which starts the blocks) waits until that news has been handed on (the
            # stream's first event, the webhook's 202). Blocks run meanwhile would only
            # compete for the GIL with the commit and the answer, and they would be
            # running for a run not yet stored.
            self.hold_first_turn()
            self.writes.on_first_report = self._first_reported
            self.begun = self._begin()
            self._flush()

    def fits_here(self, message):
        """On the starting thread: the run's timer, a cancel, its inline blocks' news and
        its own stop only. An inline block's output is bounded with the graph (run_cost);
        another's is not. (Handing the stop over would cost a /execute run a hand-off.)"""
        if isinstance(message, BlockDone):
            block = self.graph.blocks.get(message.block_id)
            return block is not None and self.engine.registry[block["type"]].inline
        return isinstance(message, (Idle, Cancel)) or message.__class__ is ACTOR_STOP

    def light(self, message):
        """A block's chunk (and the turn's Idle): told while this actor is idle, it is
        handled on the block's thread that tells it, not on one more woken for each token."""
        return message.__class__ is BlockChunk or message.__class__ is Idle

    def _start_actor_loop(self):
        try:
            super()._start_actor_loop()
        except BaseException as exc:
            self._not_started(exc)
            raise

    def _first_reported(self):
        """On the writer thread: the run's start is stored (or refused) and published."""
        try:
            self.engine.after_published(self._release)
        except Exception:  # the loop is gone (shutting down): nothing to wait for
            self._release()

    def _release(self):
        try:
            self.release_first_turn()
        except Exception as exc:  # no thread for the first turn, after the start was stored
            pykka.ActorRegistry.unregister(self.actor_ref)
            self.writes.end_unstarted(f"internal error: the run could not start: {exc}")

    def _not_started(self, exc):
        pykka.ActorRegistry.unregister(self.actor_ref)
        if self.begun is not None:
            # Its row is at the writer already and no thread will ever end it: end it there.
            fail_unstarted(self.engine.writer, self.plan.execution_id,
                           f"internal error: the run could not start: {exc}")

    # -- lifecycle -----------------------------------------------------------

    def on_start(self):
        plan = self.plan
        left = plan.timeout if plan.resume is None else plan.resume.remaining
        self.timer = self.engine.timers.call_later(
            max(0.0, left), self._tell_self,
            Cancel("timeout", f"execution timed out after {plan.timeout:g}s"))
        if self.begun is not None:
            ready, skipped = self.begun
            self.begun = None
        elif plan.resume is None:
            ready, skipped = self._begin()
        else:
            ready, skipped = self._resume(plan.resume)
        if not self.over and not self.writes.refused:  # refused: its Cancel is next in the inbox
            self._decide(ready, skipped)
        if self.launched and not self.over and (plan.trigger not in ANNOUNCED or self.turn_here):
            self.actor_inbox.linger = LINGER
        else:
            self._flush()
        self._start_blocks()

    def _begin(self):
        plan = self.plan
        if plan.start_stored:
            # Stored with the call that started it: published with the first batch only.
            self._event(started_event(plan), persist=False)
        else:
            ops, (self.seq, event, text) = first_writes(plan, self.engine.owner)
            self.ops.extend(ops)
            self.events.append((self.seq, event, text))
            self.held_since = time.monotonic()
        return dag.start(self.state, plan.entries)

    def _resume(self, resume):
        """Go on from the stored logs (the run's server stopped): the same run, the same numbers."""
        restored = dag.restore(self.graph, resume.logs)
        self.state = restored.state
        self.seq, self.log_seq = resume.seq, resume.log_seq
        self.t0 = time.monotonic() - resume.elapsed
        tried = {row["block_id"]: row["attempts"] or 0 for row in resume.logs}
        # The stopped attempt counts: the block ran at least once more than its log says.
        self.attempts_before = {b: tried.get(b, 0) + 1 for b in restored.restart}
        self._event({"type": "execution_resumed", "execution_id": self.plan.execution_id,
                     "workflow_id": self.plan.workflow_id, "block_ids": list(restored.restart)})
        if restored.failed is not None:
            self._end("failed", f"block '{restored.failed}' failed", block_id=restored.failed)
        elif resume.remaining <= 0:
            self._end("timeout", f"execution timed out after {self.plan.timeout:g}s",
                      code="EXECUTION_TIMEOUT")
        else:
            refused = [b for b in restored.restart
                       if self.graph.blocks[b].get("config", {}).get("on_resume") == "fail"]
            if refused:
                self._refuse_resume(refused[0])
        return list(restored.restart) + list(restored.ready), list(restored.skipped)

    def _refuse_resume(self, block_id):
        error = "the server stopped while this block was running, and it has on_resume: fail"
        block = self.graph.blocks[block_id]
        self.ops.append(("log_update", self.plan.execution_id, block_id, {
            "status": "failed", "error": error, "finished_at": utcnow(), "resumed": True,
            "attempts": self.attempts_before[block_id]}))
        self._event({"type": "block_failed", "block_id": block_id, "block_type": block["type"],
                     "error": error, "duration_ms": 0})
        dag.finished(self.state, block_id, dag.FAILED)
        self._end("failed", f"block '{block_id}' failed: {error}", block_id=block_id)

    def on_receive(self, message):
        if self.over:
            return
        self.launched = False
        if isinstance(message, Idle):
            pass  # the wait for more news is over: flush below
        elif isinstance(message, BlockDone):
            self._block_done(message)
        elif isinstance(message, BlockChunk):
            if self.state.status.get(message.block_id) == dag.RUNNING:
                self._event({"type": "block_chunk", "block_id": message.block_id,
                             "chunk": message.chunk}, persist=False)
        elif isinstance(message, Cancel):
            status = {"timeout": "timeout", "cancelled": "cancelled"}.get(message.reason, "failed")
            self._end(status, message.message, code="EXECUTION_TIMEOUT" if status == "timeout" else None)
        # More news already waiting (a fan-out's blocks ending together), or likely
        # soon (a block just started): take it first, so one commit and one wake-up
        # of the loop carry them all.
        if self.over or len(self.ops) + len(self.events) >= FLUSH_AT:
            self._flush()
        elif not self.actor_inbox.empty():
            pass
        elif self.launched and self.held_since is not None and time.monotonic() - self.held_since < HOLD_MAX:
            self.actor_inbox.linger = LINGER
        else:
            self._flush()
        self._start_blocks()

    def on_failure(self, exc_type, exc_value, tb):
        # A bug in the coordinator must still end the run, not leave it hanging.
        self.starts = []  # never launched: nothing holds a slot for them
        if not self.over:
            self._end("failed", f"internal error: {exc_type.__name__}: {exc_value}")
            self._flush()

    def on_stop(self):
        if self.timer is not None:
            self.timer.cancel()
        self._flush()  # anything held back for messages that will not be handled now
        for event in self.cancel_events.values():
            event.set()  # blocks still queued for a slot are dropped; running ones end

    def _tell_self(self, message):
        try:
            self.actor_ref.tell(message)
        except pykka.ActorDeadError:
            pass

    # -- decisions -----------------------------------------------------------

    def _decide(self, ready, skipped):
        for block_id in skipped:
            self._skip(block_id)
        for block_id in ready:
            self._launch(block_id)
        if not self.over and dag.is_over(self.state):
            output = dag.run_output(self.state, self.responses)
            text = self.response_texts.get(dag.output_block(self.state, self.responses))
            self._end("completed", None, output=output, output_text=text)

    def _skip(self, block_id):
        block = self.graph.blocks[block_id]
        self.log_seq += 1
        self.ops.append(("log", _log_row(self.plan.execution_id, self.log_seq, block, "skipped")))
        self._event({"type": "block_skipped", "block_id": block_id, "block_type": block["type"]})

    def _launch(self, block_id):
        if self.over:
            return
        self.launched = True
        block = self.graph.blocks[block_id]
        block_type = self.engine.registry[block["type"]]
        before = self.attempts_before.get(block_id, 0)
        self.started[block_id] = time.monotonic()
        if before:
            # Started again after a stop: its log row exists; it says so and counts on.
            row = {"status": "running", "started_at": utcnow(), "finished_at": None,
                   "duration_ms": None, "error": None, "attempts": before, "resumed": True}
        else:
            self.log_seq += 1
            row = _log_row(self.plan.execution_id, self.log_seq, block, "running")
            row["started_at"] = utcnow()
        started = {"type": "block_started", "block_id": block_id, "block_type": block["type"]}
        if before:
            started["resumed"] = True
        try:
            config = render(block["config"], self._scope(block_id), skip_keys=block_type.raw_keys,
                            limit=self.engine.settings.max_value_bytes,
                            what=f"rendered config of block '{block_id}'")
            timeout, retries, delay = _limits(config)
        except BlockError as exc:
            row["input"] = {k: v for k, v in block["config"].items() if k not in block_type.secret_keys}
            self._log_started(block_id, row, before)
            self._event(started)
            self._block_done(BlockDone(block_id, False, None, exc.message, 0, None))
            return
        row["input"] = {k: v for k, v in config.items() if k not in block_type.secret_keys} \
            if block_type.secret_keys else config
        self.config_of[block_id] = config
        self._log_started(block_id, row, before)
        self._event(started)
        cancelled = CancelFlag()
        self.cancel_events[block_id] = cancelled
        message = RunBlock(
            block_id=block_id, block_type=block["type"], config=config,
            inputs=self._inputs(block_id) if block_type.uses_inputs else {},
            variables=self.plan.variables,
            trigger=self.plan.trigger_payload, timeout=timeout, retries=max(0, retries - before),
            retry_delay=delay, cancelled=cancelled)
        inline = block_type.inline and message.retries == 0  # see BlockType.inline
        budget = None if block_type.waits_on_runs or inline else self.engine.launches
        release = budget and functools.partial(budget.release, self.plan.workspace)
        start = _starter(message, release, inline, self.actor_ref, block_type,
                         self.engine.services, self.engine.settings, self.plan.workspace,
                         self.plan.execution_id, self.plan.depth)
        self.starts.append((budget, start))

    def _start_blocks(self):
        """Start the blocks decided on, as the last thing before waiting for news again:
        a block thread woken earlier would wake only to wait for the GIL."""
        starts, self.starts = self.starts, []
        for budget, start in starts:
            if budget is None:
                start()
            else:
                budget.launch(start, self.plan.workspace)  # now, or when a block thread ends somewhere

    def _log_started(self, block_id, row, resumed):
        if resumed:
            self.ops.append(("log_update", self.plan.execution_id, block_id, row))
        else:
            self.ops.append(("log", row))

    def _block_done(self, msg: BlockDone):
        if self.state.status.get(msg.block_id) != dag.RUNNING:
            return
        self.cancel_events.pop(msg.block_id, None)
        block = self.graph.blocks[msg.block_id]
        took = _ms(time.monotonic() - self.started.get(msg.block_id, time.monotonic()))
        fields = {"finished_at": utcnow(), "duration_ms": took, "stdout": msg.stdout,
                  "attempts": msg.attempts + self.attempts_before.get(msg.block_id, 0)}
        if msg.ok:
            # The output's JSON, made once (by the block, as a rule): stored and sent as is.
            text = compact_json(msg.output) if msg.output_text is None else msg.output_text
            if msg.block_id in self.responses:
                self.response_texts[msg.block_id] = text
            fields.update(status="completed", output=JSONText(text))
            self.ops.append(("log_update", self.plan.execution_id, msg.block_id, fields))
            event = {"type": "block_completed", "block_id": msg.block_id,
                     "block_type": block["type"], "output": msg.output, "duration_ms": took}
            self._event(event, text=completed_text(event, text))
            self._decide(*dag.finished(self.state, msg.block_id, dag.COMPLETED, msg.output))
            return
        error = msg.error or "failed"
        continues = bool(self.config_of.get(msg.block_id, {}).get("continue_on_error"))
        output = {"error": error} if continues else None
        fields.update(status="failed", error=error, output=output)
        self.ops.append(("log_update", self.plan.execution_id, msg.block_id, fields))
        self._event({"type": "block_failed", "block_id": msg.block_id,
                     "block_type": block["type"], "error": error, "duration_ms": took})
        if continues:
            self._decide(*dag.finished(self.state, msg.block_id, dag.FAILED, output,
                                       continue_on_error=True))
        else:
            dag.finished(self.state, msg.block_id, dag.FAILED)
            self._end("failed", f"block '{msg.block_id}' failed: {error}", block_id=msg.block_id)

    def _end(self, status, error, output=None, block_id=None, code=None, output_text=None):
        """End the run. `output_text`, when given, is `output`'s JSON: stored, sent and
        answered as it is, not encoded again."""
        if self.over:
            return
        self.over = True
        now = utcnow()
        for running in dag.cancel_rest(self.state):
            event = self.cancel_events.pop(running, None)
            if event is not None:
                event.set()
            took = _ms(time.monotonic() - self.started.get(running, time.monotonic()))
            self.ops.append(("log_update", self.plan.execution_id, running, {
                "status": "cancelled", "finished_at": now, "duration_ms": took,
                "error": error or "cancelled"}))
        duration = _ms(time.monotonic() - self.t0)
        eid = self.plan.execution_id
        self.ops.append(("run_update", eid, {
            "status": status, "output": output if output_text is None else JSONText(output_text),
            "error": error, "error_block": block_id, "finished_at": now, "duration_ms": duration}))
        event = end_event(eid, status, output, error, duration, block_id, code)
        self._event(event, text=None if output_text is None else completed_run_text(event, output_text))
        self.result = {"status": status, "output": output, "error": error,
                       "block_id": block_id, "duration_ms": duration, "output_text": output_text}
        if self.timer is not None:
            self.timer.cancel()
        _stop_quietly(self)

    # -- plumbing ------------------------------------------------------------

    def _scope(self, block_id):
        graph = self.graph
        return Scope(block_id, self.plan.variables, self.state.outputs, graph.blocks,
                     lambda other: graph.is_ancestor(other, block_id), self.state.skipped)

    def _inputs(self, block_id):
        graph = self.graph
        return {b: out for b, out in self.state.outputs.items() if graph.is_ancestor(b, block_id)}

    def _event(self, event, persist=True, text=None):
        if self.held_since is None:
            self.held_since = time.monotonic()
        self.seq += 1
        if text is None:
            text = compact_json(event)
        self.events.append((self.seq, event, text))
        if persist:
            self.ops.append(("event", {"execution": self.plan.execution_id, "seq": self.seq,
                                       "data": text}))

    def _flush(self):
        if not self.ops and not self.events:
            return
        ops, events, result = self.ops, tuple(self.events), self.result
        self.ops, self.events, self.result = [], [], None
        self.held_since = None
        self.writes.flush(ops, events, result)


def completed_text(event, output_text):
    """`compact_json(event)` of a block_completed event whose output's JSON is `output_text`
    (the output is not encoded again). Keys in the event's order."""
    return (f'{{"type":"block_completed","block_id":{_string(event["block_id"])},'
            f'"block_type":{_string(event["block_type"])},"output":{output_text},'
            f'"duration_ms":{event["duration_ms"]:d}}}')


def completed_run_text(event, output_text):
    """`compact_json(event)` of an execution_completed event whose output's JSON is `output_text`."""
    return (f'{{"type":"execution_completed","execution_id":{_string(event["execution_id"])},'
            f'"output":{output_text},"duration_ms":{event["duration_ms"]:d}}}')


_string = json.encoder.encode_basestring  # a JSON string, non-ASCII kept (as compact_json writes it)


def started_event(plan):
    return {"type": "execution_started", "execution_id": plan.execution_id,
            "workflow_id": plan.workflow_id}


def _announced(plan):
    return plan.resume is None and plan.trigger in ANNOUNCED and not plan.start_stored


def checks_in_time(plan, registry) -> bool:
    """Whether a start that checks the workflow's version (plan.expect_version) does so
    before any of its blocks could act: an announced run's blocks wait for its start's
    commit, and inline blocks (no I/O) change nothing outside the run if they ran on a
    graph that turns out stale."""
    return _announced(plan) or inline_only(plan.graph, registry)


def inline_only(graph, registry) -> bool:
    """Whether every block of `graph` is of an inline type (no I/O, no waiting)."""
    return all(registry[b["type"]].inline for b in graph.blocks.values())


def first_writes(plan, owner):
    """A new run's first writes, as journal ops: its row and its execution_started event.

    Returns (ops, (seq, event, text)), the event as the coordinator publishes it.
    """
    row = {
        "id": plan.execution_id, "workflow": plan.workflow_id, "workspace": plan.workspace,
        "status": "running", "trigger": plan.trigger, "variables": plan.variables,
        "output": None, "error": None, "error_block": None, "owner": owner,
        "started_at": utcnow(), "finished_at": None, "duration_ms": None,
        "graph_version": plan.graph_version, "timeout": plan.timeout,
        "trigger_payload": plan.trigger_payload,
        "parent_execution_id": plan.parent.execution_id if plan.parent else None,
        "parent_block_id": plan.parent.block_id if plan.parent else None,
        "parent_index": plan.parent.index if plan.parent else None,
        "depth": plan.depth,
    }
    event = started_event(plan)
    text = compact_json(event)
    ops = [("run", row), ("event", {"execution": plan.execution_id, "seq": 1, "data": text})]
    if plan.expect_version:
        ops.append(("expect_workflow", plan.workspace, plan.workflow_id, plan.graph_version))
    return ops, (1, event, text)


def _starter(message, on_exit, inline, coordinator, *actor_args):
    """The start of one block actor, run now or later (from another block's thread) by the budget.

    An inline one runs to its end within the start, on the calling (coordinator's) thread.

    Returns False when it started nothing: the run ended while it waited, or
    no thread could be started (then the block fails).
    """
    def start():
        if message.cancelled.is_set():
            return False
        try:
            start_block(coordinator, message, *actor_args, on_exit=on_exit, inline=inline)
        except Exception as exc:
            _tell(coordinator, BlockDone(message.block_id, False, None,
                                         f"could not start the block: {exc}", 0, None))
            return False
        return True
    return start


def _tell(ref, message):
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        pass


def _log_row(execution_id, seq, block, status):
    return {"execution": execution_id, "seq": seq, "block_id": block["id"],
            "block_type": block["type"], "status": status, "started_at": None,
            "finished_at": None, "duration_ms": None, "input": None, "output": None,
            "error": None, "attempts": 0, "stdout": None}


def _limits(config):
    """(timeout, retries, retry_delay) from a rendered config, checked."""
    timeout = config.get("timeout")
    retries = config.get("retries", 0) or 0
    delay = config.get("retry_delay", 1.0)
    try:
        timeout = float(timeout) if timeout not in (None, "") else None
        retries = int(retries)
        delay = float(delay) if delay is not None else 1.0
    except (TypeError, ValueError):
        raise BlockError("timeout, retries and retry_delay must be numbers")
    if (timeout is not None and timeout <= 0) or retries < 0 or delay < 0:
        raise BlockError("timeout must be > 0, retries and retry_delay >= 0")
    return timeout, min(retries, 100), delay


def _ms(seconds):
    return int(round(seconds * 1000))


def _stop_quietly(actor):
    # A plain tell: `ref.stop(block=False)` would also make two futures nobody reads.
    try:
        actor.stop()
    except pykka.ActorDeadError:
        pass
