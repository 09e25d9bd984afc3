"""Resume as a pure function: a run's state rebuilt from its stored block logs. No threads."""

import datetime

from actors import dag
from actors.plan import plan_resume
from tests.test_dag import graph


def log(block_id, status, output=None, attempts=0):
    return {"block_id": block_id, "status": status, "output": output, "attempts": attempts}


def replay(g, entries, events):
    """Run the scheduler as a coordinator would and record the logs it would store."""
    state = dag.RunState(g)
    logs = {}
    ready, skipped = dag.start(state, entries)
    for b in ready:
        logs[b] = log(b, "running")
    for b in skipped:
        logs[b] = log(b, "skipped")
    for block_id, status, output in events:
        logs[block_id] = log(block_id, status, output)
        ready, skipped = dag.finished(state, block_id, status, output,
                                      continue_on_error=status == dag.FAILED and output is not None)
        for b in ready:
            logs[b] = log(b, "running")
        for b in skipped:
            logs[b] = log(b, "skipped")
    return state, list(logs.values())


def test_chain_restarts_the_running_block_and_keeps_outputs():
    g = graph({"s": "starter", "a": "x", "b": "x", "c": "x"}, [("s", "a"), ("a", "b"), ("b", "c")])
    _, logs = replay(g, ["s"], [("s", "completed", {"n": 1}), ("a", "completed", 2)])
    r = dag.restore(g, logs)
    assert r.restart == ("b",) and r.ready == () and r.skipped == () and r.failed is None
    assert r.state.outputs == {"s": {"n": 1}, "a": 2}
    assert r.state.status["c"] == dag.PENDING and r.state.running == {"b"}
    # From here the run goes on exactly as a live one would.
    assert dag.finished(r.state, "b", dag.COMPLETED, 3) == (["c"], [])


def test_fan_out_with_join_waits_for_every_branch():
    g = graph({"s": "starter", "a": "x", "b": "x", "c": "x", "j": "x"},
              [("s", "a"), ("s", "b"), ("s", "c"), ("a", "j"), ("b", "j"), ("c", "j")])
    _, logs = replay(g, ["s"], [("s", "completed", {}), ("b", "completed", "B")])
    r = dag.restore(g, logs)
    assert r.restart == ("a", "c") and r.ready == ()
    assert dag.finished(r.state, "a", dag.COMPLETED, "A") == ([], [])
    assert dag.finished(r.state, "c", dag.COMPLETED, "C") == (["j"], [])


def test_skipped_branch_stays_skipped():
    g = graph({"s": "starter", "if": "condition", "yes": "x", "no": "x", "after": "x"},
              [("s", "if"), ("if", "yes", "y"), ("if", "no", "else"), ("no", "after")])
    _, logs = replay(g, ["s"], [("s", "completed", {}), ("if", "completed", {"branch": "y"})])
    assert [(l["block_id"], l["status"]) for l in logs] == [
        ("s", "completed"), ("if", "completed"), ("yes", "running"), ("no", "skipped"), ("after", "skipped")]
    r = dag.restore(g, logs)
    assert r.restart == ("yes",)
    assert r.state.skipped == {"no", "after"}
    dag.finished(r.state, "yes", dag.COMPLETED, 1)
    assert dag.is_over(r.state) and dag.run_output(r.state, []) == {"yes": 1}


def test_decisions_that_were_not_stored_are_taken_now():
    # The last block finished but its successors were not logged (the crash came between).
    g = graph({"s": "starter", "if": "condition", "yes": "x", "no": "x"},
              [("s", "if"), ("if", "yes", "y"), ("if", "no", "else")])
    logs = [log("s", "completed", {}), log("if", "completed", {"branch": "else"})]
    r = dag.restore(g, logs)
    assert r.restart == () and r.ready == ("no",) and r.skipped == ("yes",)
    assert r.state.running == {"no"}


def test_continued_failure_keeps_its_edges_live_and_a_plain_failure_is_reported():
    g = graph({"s": "starter", "a": "x", "b": "x"}, [("s", "a"), ("a", "b")])
    r = dag.restore(g, [log("s", "completed", {}), log("a", "failed", {"error": "boom"})])
    assert r.ready == ("b",) and r.failed is None and r.state.outputs["a"] == {"error": "boom"}
    r = dag.restore(g, [log("s", "completed", {}), log("a", "failed", None)])
    assert r.failed == "a" and r.ready == ()


def test_other_entry_roots_stay_skipped_and_cancelled_blocks_start_again():
    g = graph({"s": "starter", "hook": "webhook", "a": "x", "h2": "x"}, [("s", "a"), ("hook", "h2")])
    _, logs = replay(g, ["s"], [("s", "completed", {})])
    logs[-1] = log("a", "cancelled")
    r = dag.restore(g, logs)
    assert r.restart == ("a",) and r.state.skipped == {"hook", "h2"}


def test_a_finished_run_restores_to_over():
    g = graph({"s": "starter", "a": "x"}, [("s", "a")])
    _, logs = replay(g, ["s"], [("s", "completed", {}), ("a", "completed", 1)])
    r = dag.restore(g, logs)
    assert r.restart == r.ready == () and dag.is_over(r.state)


T0 = datetime.datetime(2026, 12, 2, 12, 0, 0)


def stored_run(**changes):
    row = {"id": "e1", "workflow": "w1", "workspace": "default", "trigger": "api",
           "variables": {"x": 1}, "trigger_payload": None, "started_at": T0, "timeout": 60.0,
           "graph_version": 3}
    row.update(changes)
    return {"run": row, "logs": [log("start", "completed", {"x": 1}), log("a", "running", attempts=0)],
            "seq": 7, "log_seq": 2,
            "blocks": [{"id": "start", "type": "starter", "config": {}},
                       {"id": "a", "type": "code", "config": {"code": "return 1"}}],
            "edges": [{"source": "start", "target": "a"}]}


def test_plan_resume_keeps_the_original_deadline():
    plan = plan_resume(stored_run(), now=T0 + datetime.timedelta(seconds=45))
    assert plan.execution_id == "e1" and plan.graph_version == 3 and plan.timeout == 60.0
    assert plan.resume.remaining == 15.0 and plan.resume.elapsed == 45.0
    assert plan.resume.seq == 7 and plan.resume.log_seq == 2
    late = plan_resume(stored_run(), now=T0 + datetime.timedelta(seconds=61))
    assert late.resume.remaining <= 0
