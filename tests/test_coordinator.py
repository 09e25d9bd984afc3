"""The coordinator against a fake store and a fake clock: no database, no server, no waiting."""

import threading

import peewee
import pykka
import pytest

from actors.blocks import BlockType, checks, default_registry
from actors.coordinator import Coordinator, Engine
from actors import coordinator as coordinator_module
from actors import threads
from actors.threads import PooledActor
from actors.plan import plan_run
from server.settings import Settings
from tests.blocktypes import TEST_TYPES, WAIT_CALLERS
from tests.helpers import START, edge
from tests.processes import wait_until


class FakeWriter:
    """Stores nothing: keeps the journal ops it is given and reports each job committed at once."""

    def __init__(self):
        self.ops = []
        self.jobs = []   # (fn, ops, the submitting thread), in order
        self._lock = threading.Lock()

    def submit(self, fn, args=(), done=None):
        self.jobs.append((fn, list(args[0]) if args else [], threading.current_thread()))
        result = None
        if getattr(fn, "__name__", None) == "_write":    # a run's batch (persist.RunWriter)
            with self._lock:
                self.ops.extend(args[0])
            result = True
        if done is not None:
            done(result, None)

    def submit_until_stored(self, fn, args=()):
        self.jobs.append((fn, list(args), threading.current_thread()))


class HeldWriter(FakeWriter):
    """Takes jobs but commits none until `release()`: a run's first batch stays at the writer."""

    def __init__(self):
        super().__init__()
        self.held = []

    def submit(self, fn, args=(), done=None):
        if self.held is None:
            super().submit(fn, args, done)
        else:
            self.held.append((fn, args, done))

    def release(self):
        held, self.held = self.held, None
        for job in held:
            super().submit(*job)


class RefusingWriter(FakeWriter):
    """Refuses every run batch, as a store locked past its busy timeout does."""

    def submit(self, fn, args=(), done=None):
        self.jobs.append((fn, list(args[0]) if args else [], threading.current_thread()))
        if done is not None:
            done(None, peewee.OperationalError("database is locked"))


class FakeTimers:
    """Deadlines fire only when the test says so."""

    def __init__(self):
        self.pending = []

    def call_later(self, delay, fn, *args):
        timer = FakeTimer(delay, fn, args)
        self.pending.append(timer)
        return timer


class FakeTimer:
    def __init__(self, delay, fn, args):
        self.delay, self.fn, self.args, self.cancelled = delay, fn, args, False

    def cancel(self):
        self.cancelled = True

    def fire(self):
        self.fn(*self.args)


class Watcher:
    """What the coordinator publishes (after its writes 'committed'), and the run's end."""

    def __init__(self):
        self.events, self.result, self.threads = [], None, []
        self.ended = threading.Event()

    def __call__(self, execution_id, events, result):
        self.events.extend(event for _, event, _ in events)
        self.threads.extend((event["type"], threading.current_thread()) for _, event, _ in events)
        if result is not None:
            self.result = result
            self.ended.set()


@pytest.fixture
def engine():
    engine = Engine(registry=default_registry().extended(*TEST_TYPES), writer=FakeWriter(),
                    timers=FakeTimers(), settings=Settings(), owner="test-process")
    yield engine
    for timer in engine.timers.pending:   # every run ends, so every block is told to stop
        if not timer.cancelled:
            timer.fire()
    assert wait_until(lambda: not pykka.ActorRegistry.get_all(), 30)


def start(engine, blocks, edges, variables=None, timeout=300.0, trigger="api", on_caller=False):
    blocks = [{"config": {}, **block} for block in blocks]   # as a saved graph has them
    plan = plan_run(execution_id="e1", workflow_id="w1", workspace="default", blocks=blocks,
                    edges=edges, variables=variables or {}, trigger=trigger, timeout=timeout,
                    on_caller=on_caller)
    watcher = Watcher()
    watcher.ref = Coordinator.start(plan, engine, watcher)
    return watcher


def test_a_run_publishes_its_events_in_order_after_their_writes(engine):
    watcher = start(engine, [START, {"id": "a", "type": "echo", "config": {"x": "{{ variables.v }}"}},
                             {"id": "out", "type": "response", "config": {"data": "{{ a.config.x }}"}}],
                    [edge("start", "a"), edge("a", "out")], {"v": 7})
    assert watcher.ended.wait(30)
    assert watcher.result["status"] == "completed" and watcher.result["output"] == 7
    kinds = [(e["type"], e.get("block_id")) for e in watcher.events]
    assert kinds == [("execution_started", None),
                     ("block_started", "start"), ("block_completed", "start"),
                     ("block_started", "a"), ("block_completed", "a"),
                     ("block_started", "out"), ("block_completed", "out"),
                     ("execution_completed", None)]
    ops = engine.writer.ops
    assert ops[0][0] == "run" and ops[0][1]["status"] == "running"
    logs = [op[1]["block_id"] for op in ops if op[0] == "log"]
    assert logs == ["start", "a", "out"]
    assert [op[2]["status"] for op in ops if op[0] == "run_update"] == ["completed"]
    timer = engine.timers.pending[0]
    assert timer.delay == 300.0
    assert wait_until(lambda: timer.cancelled, 30)     # the run's deadline, dropped as it stops


def test_the_run_deadline_ends_it_as_timeout_without_waiting(engine):
    watcher = start(engine, [START, {"id": "slow", "type": "sleep", "config": {"seconds": 3600}}],
                    [edge("start", "slow")], timeout=5.0)
    assert wait_until(lambda: any(e["type"] == "block_started" and e["block_id"] == "slow"
                                  for e in watcher.events), 30)
    deadline = engine.timers.pending[0]
    assert deadline.delay == 5.0
    deadline.fire()                              # five seconds pass, as far as the run knows
    assert watcher.ended.wait(30)
    assert watcher.result["status"] == "timeout"
    assert watcher.events[-1]["type"] == "error" and watcher.events[-1]["error_code"] == "EXECUTION_TIMEOUT"
    assert [op[2]["status"] for op in engine.writer.ops if op[0] == "run_update"] == ["timeout"]


SMALL = ([START, {"id": "check", "type": "condition",
                  "config": {"conditions": [{"id": "big", "expression": "start.n > 5"}]}},
          {"id": "out", "type": "response", "config": {"data": {"n": "{{ start.n }}"}}}],
         [edge("start", "check"), edge("check", "out", "big")])


def test_a_small_run_on_the_caller_is_over_within_its_start_in_one_batch(engine):
    watcher = start(engine, *SMALL, {"n": 9}, on_caller=True)
    # The fake writer commits at once, so the whole run was handled by Coordinator.start's
    # caller, its stop too.
    assert watcher.ended.is_set() and not watcher.ref.is_alive()
    assert watcher.result["status"] == "completed" and watcher.result["output"] == {"n": 9}
    assert [thread for _, _, thread in engine.writer.jobs] == [threading.current_thread()]
    kinds = [op[0] for op in engine.writer.jobs[0][1]]
    assert kinds.count("log") == 3 and kinds[0] == "run"   # held until the end: one batch


def test_a_small_run_otherwise_takes_a_pooled_thread(engine):
    watcher = start(engine, *SMALL, {"n": 9})
    assert watcher.ended.wait(30)
    assert watcher.result["output"] == {"n": 9}
    assert engine.writer.jobs[0][2] is not threading.current_thread()


def test_a_run_on_the_caller_never_makes_it_wait(engine):
    # Were it ever given a block that waits, the caller (the IOLoop) is back at once:
    # the block runs on its own thread, and the rest of the run on pooled ones.
    watcher = start(engine, [START, {"id": "slow", "type": "sleep", "config": {"seconds": 3600}}],
                    [edge("start", "slow")], timeout=5.0, on_caller=True)
    assert not watcher.ended.is_set()
    assert wait_until(lambda: any(e["type"] == "block_started" and e["block_id"] == "slow"
                                  for e in watcher.events), 30)
    engine.timers.pending[0].fire()
    assert watcher.ended.wait(30)
    assert watcher.result["status"] == "timeout"


def test_a_small_streamed_run_takes_its_first_turn_where_its_start_is_released(engine):
    # The fake writer reports at once, on the caller: the start is published and the
    # first turn released there, so the whole run is over within Coordinator.start.
    watcher = start(engine, *SMALL, {"n": 9}, trigger="stream", on_caller=True)
    assert watcher.ended.is_set() and watcher.result["output"] == {"n": 9} and not watcher.ref.is_alive()
    assert {thread for _, _, thread in engine.writer.jobs} == {threading.current_thread()}
    assert [e["type"] for e in watcher.events][:2] == ["execution_started", "block_started"]
    # Two commits: the start, which the stream's first event waits for, then the rest.
    writes = [ops for fn, ops, _ in engine.writer.jobs if fn is not None]
    assert len(writes) == 2 and [op[0] for op in writes[0]] == ["run", "event"]


def test_news_of_a_block_that_is_not_inline_is_handed_to_a_pooled_thread(engine, monkeypatch):
    # Told while the first turn is still on the caller (this block fails to start at
    # once), it is left, with what follows, to a pooled thread: its output is not bounded.
    real = coordinator_module.start_block

    def failing(coordinator, message, block_type, *args, **kwargs):
        if block_type.name == "echo":
            raise RuntimeError("no room")
        return real(coordinator, message, block_type, *args, **kwargs)
    monkeypatch.setattr(coordinator_module, "start_block", failing)
    watcher = start(engine, [START, {"id": "a", "type": "echo", "config": {}}], [edge("start", "a")],
                    on_caller=True)
    assert watcher.ended.wait(30)
    assert watcher.result["status"] == "failed" and "no room" in watcher.result["error"]
    assert engine.writer.jobs[-1][2] is not threading.current_thread()


def test_a_waiting_block_starts_its_request_on_the_thread_that_launches_it(engine):
    # Its first turn only starts a coroutine on the HTTP loop: no pooled thread for that.
    watcher = start(engine, [START, {"id": "w", "type": "waits", "config": {}}], [edge("start", "w")],
                    on_caller=True)
    assert WAIT_CALLERS.pop(("e1", "w")) is threading.current_thread()
    assert watcher.ended.wait(30)
    assert watcher.result["status"] == "completed"
    [done] = [e for e in watcher.events if e["type"] == "block_completed" and e["block_id"] == "w"]
    assert done["output"] == {"answered": True}


def test_a_waiting_block_that_ends_in_its_first_turn_ends_on_a_pooled_thread(engine, monkeypatch):
    # Its end passes its launch slot on, which may start the next block in line: that must
    # not happen inside the start of the block that launched it (nor on the IOLoop).
    released = []
    real = engine.launches.release

    def release(*args):
        released.append(threading.current_thread())
        return real(*args)
    monkeypatch.setattr(engine.launches, "release", release)
    watcher = start(engine, [START, {"id": "w", "type": "waits", "config": {"refuse": True}}],
                    [edge("start", "w")], on_caller=True)
    assert WAIT_CALLERS.pop(("e1", "w")) is threading.current_thread()
    assert watcher.ended.wait(30)
    assert watcher.result["status"] == "failed" and "refused before the request" in watcher.result["error"]
    assert released and threading.current_thread() not in released


def test_a_chunk_told_to_an_idle_coordinator_is_handled_on_the_telling_thread(engine):
    # No pooled thread is woken for each token of a streamed reply; the block's end
    # (not light news) still goes to one.
    go, told = threading.Event(), []

    def talks(ctx):
        assert go.wait(30)
        told.append(threading.current_thread())
        ctx.emit("t0")
        return {"ok": True}
    engine.registry = engine.registry.extended(BlockType("talks", checks.common, talks))
    watcher = start(engine, [START, {"id": "t", "type": "talks"}], [edge("start", "t")])
    assert wait_until(lambda: any(e["type"] == "block_started" and e["block_id"] == "t"
                                  for e in watcher.events), 30)
    assert wait_until(lambda: not watcher.ref.actor_inbox.running, 30)   # the coordinator is idle
    go.set()
    assert watcher.ended.wait(30)
    assert watcher.result["status"] == "completed"
    threads = dict(watcher.threads)
    assert threads["block_chunk"] is told[0]
    assert threads["block_completed"] is not told[0]


def test_a_streamed_run_writes_its_start_alone_before_its_actor_runs(engine):
    # The stream's first event waits for this commit only: it must not wait for the
    # coordinator's thread to be scheduled, nor share a transaction with the first blocks.
    watcher = start(engine, [START, {"id": "out", "type": "response", "config": {"data": 1}}],
                    [edge("start", "out")], trigger="stream")
    assert watcher.ended.wait(30)
    fn, ops, thread = engine.writer.jobs[0]
    assert thread is threading.current_thread()     # sent from Coordinator.start's caller
    assert [op[0] for op in ops] == ["run", "event"]
    assert '"execution_started"' in ops[1][1]["data"] and ops[1][1]["seq"] == 1
    assert [e["type"] for e in watcher.events][:2] == ["execution_started", "block_started"]
    assert watcher.result["status"] == "completed"


def test_a_streamed_run_starts_its_blocks_only_once_its_start_is_stored(engine):
    # Blocks run meanwhile would compete with that commit, and the answer to it, for the GIL.
    engine.writer = writer = HeldWriter()
    watcher = start(engine, [START, {"id": "out", "type": "response", "config": {"data": 1}}],
                    [edge("start", "out")], trigger="stream")
    # The first turn (on_start: the run's deadline, then its first blocks) has not come.
    assert not wait_until(lambda: engine.timers.pending, 0.5)
    assert [op[0] for op in writer.held[0][1][0]] == ["run", "event"]
    writer.release()
    assert watcher.ended.wait(30)
    assert watcher.result["status"] == "completed"
    assert [e["type"] for e in watcher.events][:2] == ["execution_started", "block_started"]


def test_a_streamed_run_whose_start_is_refused_starts_no_block(engine):
    engine.writer = writer = RefusingWriter()
    watcher = start(engine, [START, {"id": "a", "type": "echo", "config": {}}], [edge("start", "a")],
                    trigger="stream")
    assert watcher.ended.wait(30)
    assert watcher.result["status"] == "failed" and watcher.result["code"] == "STORAGE_UNAVAILABLE"
    assert wait_until(lambda: not pykka.ActorRegistry.get_all(), 30)   # its Cancel ended it
    sent = [op[0] for _, ops, _ in writer.jobs for op in ops if isinstance(op, tuple)]
    assert "log" not in sent and not any(e["type"] == "block_started" for e in watcher.events)


def test_a_streamed_run_whose_thread_cannot_start_once_stored_is_ended_and_told(engine, monkeypatch):
    engine.writer = writer = HeldWriter()
    watcher = start(engine, [START], [], trigger="stream")   # its first turn waits for the writer

    def no_thread(*_args):
        raise RuntimeError("can't start new thread")
    monkeypatch.setattr(threads, "start_daemon", no_thread)
    writer.release()
    assert watcher.ended.wait(30)              # its stream is not left waiting
    assert watcher.result["status"] == "failed" and "can't start new thread" in watcher.result["error"]
    assert [e["type"] for e in watcher.events] == ["execution_started", "error"]
    fail, args, _ = writer.jobs[-1]
    assert fail.__name__ == "fail_run" and args[0] == "e1" and args[3] == 2   # after the started event
    assert not pykka.ActorRegistry.get_all()


def test_chunks_skip_the_writer_when_nothing_of_the_run_is_there(engine):
    chunks = {"id": "c", "type": "chunks", "config": {"chunks": ["a", "b", "c"], "delay": 0.05}}
    watcher = start(engine, [START, chunks], [edge("start", "c")], trigger="stream")
    assert watcher.ended.wait(30)
    kinds = [(e["type"], e.get("chunk")) for e in watcher.events if e.get("block_id") in ("c", None)]
    assert kinds == [("execution_started", None), ("block_started", None), ("block_chunk", "a"),
                     ("block_chunk", "b"), ("block_chunk", "c"), ("block_completed", None),
                     ("execution_completed", None)]
    # Every batch the writer got had something to store: chunks went straight to the watcher.
    assert all(ops for _, ops, _ in engine.writer.jobs)
    assert not any(op[0] == "event" and '"block_chunk"' in op[1]["data"] for op in engine.writer.ops)


def test_a_streamed_run_whose_thread_cannot_start_is_ended_at_the_writer(engine, monkeypatch):
    def no_thread(self):
        raise RuntimeError("can't start new thread")
    monkeypatch.setattr(PooledActor, "_start_actor_loop", no_thread)
    with pytest.raises(RuntimeError):
        start(engine, [START], [], trigger="stream")
    (_, first, _), (fail, args, _) = engine.writer.jobs
    assert [op[0] for op in first] == ["run", "event"]
    assert fail.__name__ == "fail_run" and args[0] == "e1" and "can't start new thread" in args[2]
    assert not pykka.ActorRegistry.get_all()
