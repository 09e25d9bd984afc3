"""The journal on a plain SQLite file, no server: what a batch of ops leaves on disk."""

import datetime
import sqlite3

import pytest

from models import db as models_db
from models import journal
from models.base import database


@pytest.fixture
def path(tmp_path):
    path = str(tmp_path / "journal.db")
    models_db.open_database(f"sqlite:///{path}")
    models_db.migrate()
    yield path
    database.close()


def batch(ops):
    with database.atomic():
        journal.apply(ops)


def rows(path, sql, args=()):
    with sqlite3.connect(path) as other:
        return other.execute(sql, args).fetchall()


def run_row(eid, **fields):
    row = {"id": eid, "workflow": "wf", "workspace": "ws", "status": "running", "trigger": "api",
           "variables": {"k": "v"}, "output": None, "error": None, "error_block": None,
           "owner": "me", "started_at": datetime.datetime(2026, 12, 2, 12, 0, 0),
           "finished_at": None, "duration_ms": None, "graph_version": 1, "timeout": 30.0,
           "trigger_payload": None, "parent_execution_id": None, "parent_block_id": None,
           "parent_index": None, "depth": 0}
    return dict(row, **fields)


def log_row(eid, seq, block_id, status="running"):
    return {"execution": eid, "seq": seq, "block_id": block_id, "block_type": "code",
            "status": status, "started_at": None, "finished_at": None, "duration_ms": None,
            "input": None, "output": None, "error": None, "attempts": 0, "stdout": None}


def event(eid, seq, text):
    return ("event", {"execution": eid, "seq": seq, "data": text})


def test_a_row_inserted_and_updated_in_one_batch_lands_once_with_its_final_values(path):
    log = log_row("e1", 1, "a")
    batch([("run", run_row("e1")), ("log", log),
           ("log_update", "e1", "a", {"status": "completed", "output": {"x": 1}, "attempts": 1}),
           ("run_update", "e1", {"status": "completed", "output": {"a": {"x": 1}}}),
           event("e1", 1, '{"type":"execution_started"}'), event("e1", 2, '{"type":"x"}')])
    assert rows(path, "SELECT status, output, variables FROM execution") == [
        ("completed", '{"a":{"x":1}}', '{"k":"v"}')]
    assert rows(path, "SELECT block_id, status, output, attempts FROM block_log") == [
        ("a", "completed", '{"x":1}', 1)]
    assert rows(path, "SELECT seq, data FROM execution_event ORDER BY seq") == [
        (1, '{"type":"execution_started"}'), (2, '{"type":"x"}')]
    assert log["status"] == "running"   # the caller's row is not changed by the merge


def test_nulls_and_booleans_are_stored_as_sqlite_stores_them(path):
    # models.db registers adapters for None and bool (to skip sqlite3's adapter
    # search); what lands must be what sqlite3 stores without them: NULL, 1, 0.
    log = dict(log_row("e1", 1, "a"), resumed=True)
    batch([("run", run_row("e1")), ("log", log), ("log", dict(log_row("e1", 2, "b"), resumed=False))])
    assert rows(path, "SELECT block_id, typeof(resumed), resumed, typeof(error), typeof(output) "
                      "FROM block_log ORDER BY seq") == [("a", "integer", 1, "null", "null"),
                                                         ("b", "integer", 0, "null", "null")]
    with sqlite3.connect(":memory:") as plain:  # a connection of its own, as any other program's
        assert plain.execute("SELECT ?, ?, ?, typeof(?)", (True, False, None, None)).fetchall() == [
            (1, 0, None, "null")]


def test_times_and_foreign_keys_are_stored_as_peewee_stores_them(path):
    # The journal hands datetimes and foreign-key ids to the driver without their
    # fields' db_value (which returns them unchanged): the columns must read the same.
    from models.execution import BlockLog, Execution
    times = [datetime.datetime(2026, 12, 3, 17, 5, 1, 123456), datetime.datetime(2026, 12, 3, 17, 5, 1)]
    for i, when in enumerate(times):
        batch([("run", run_row(f"j{i}", started_at=when)), ("log", dict(log_row(f"j{i}", 1, "a"), started_at=when))])
        with database.atomic():
            Execution.insert(**run_row(f"p{i}", started_at=when)).execute()
            BlockLog.insert(**dict(log_row(f"p{i}", 1, "a"), started_at=when)).execute()
    runs = rows(path, "SELECT id, started_at, typeof(started_at) FROM execution ORDER BY id")
    logs = rows(path, "SELECT execution, started_at, typeof(started_at), typeof(execution) FROM block_log "
                      "ORDER BY execution")
    assert [r[1:] for r in runs if r[0][0] == "j"] == [r[1:] for r in runs if r[0][0] == "p"] == [
        ("2026-12-03 17:05:01.123456", "text"), ("2026-12-03 17:05:01", "text")]
    assert [r[1:] for r in logs if r[0][0] == "j"] == [r[1:] for r in logs if r[0][0] == "p"]
    assert [r[0] for r in logs] == ["j0", "j1", "p0", "p1"]


def test_a_value_given_as_its_json_text_is_stored_as_that_text(path):
    from models.base import JSONText
    batch([("run", run_row("e1")), ("log", log_row("e1", 1, "a")),
           ("log_update", "e1", "a", {"status": "completed", "output": JSONText('{"x":[1,"é"]}')})])
    assert rows(path, "SELECT output FROM block_log") == [('{"x":[1,"é"]}',)]


def test_updates_of_rows_stored_earlier_apply_in_order(path):
    batch([("run", run_row("e1")), ("log", log_row("e1", 1, "a"))])
    batch([("log_update", "e1", "a", {"status": "failed", "error": "first"}),
           ("log_update", "e1", "a", {"error": "second", "attempts": 2}),
           ("run_update", "e1", {"status": "failed", "error": "boom", "error_block": "a"})])
    assert rows(path, "SELECT status, error, attempts FROM block_log") == [("failed", "second", 2)]
    assert rows(path, "SELECT status, error, error_block FROM execution") == [("failed", "boom", "a")]


def test_rows_of_different_shapes_in_one_batch_are_all_inserted(path):
    # A merged update adds keys to one log row only: the batch holds rows of two shapes.
    batch([("run", run_row("e1")), ("run", run_row("e2", trigger="webhook")),
           ("log", log_row("e1", 1, "a")), ("log", log_row("e1", 2, "b")),
           ("log_update", "e1", "b", {"status": "completed"})])
    assert rows(path, "SELECT id, trigger FROM execution ORDER BY id") == [("e1", "api"), ("e2", "webhook")]
    assert rows(path, "SELECT block_id, status FROM block_log ORDER BY seq") == [
        ("a", "running"), ("b", "completed")]


def test_an_unknown_op_is_refused_before_anything_is_written(path):
    with pytest.raises(ValueError, match="unknown journal op"):
        batch([("run", run_row("e1")), ("nonsense", {})])
    assert rows(path, "SELECT COUNT(*) FROM execution") == [(0,)]


def test_fail_run_ends_a_running_run_and_its_blocks_after_its_last_event(path):
    batch([("run", run_row("e1")), ("log", log_row("e1", 1, "a")), event("e1", 1, "{}"),
           event("e1", 2, "{}")])
    now = datetime.datetime(2026, 12, 2, 12, 0, 5)
    with database.atomic():
        assert journal.fail_run("e1", None, "disk full", 1, '{"type":"error"}', now, 5000)
    assert rows(path, "SELECT status, error FROM execution") == [("failed", "disk full")]
    assert rows(path, "SELECT status FROM block_log") == [("cancelled",)]
    assert rows(path, "SELECT seq, data FROM execution_event ORDER BY seq")[-1] == (3, '{"type":"error"}')
    with database.atomic():     # already ended: nothing changes
        assert not journal.fail_run("e1", None, "again", 4, "{}", now, 5000)
    assert rows(path, "SELECT COUNT(*) FROM execution_event") == [(3,)]


def test_fail_run_stores_a_run_whose_first_row_never_landed(path):
    now = datetime.datetime(2026, 12, 2, 12, 0, 5)
    with database.atomic():
        assert journal.fail_run("e9", run_row("e9", variables={"s": "a\ud800b"}), "refused", 1,
                                '{"type":"error"}', now, 10)
    assert rows(path, "SELECT status, error FROM execution WHERE id = 'e9'") == [("failed", "refused")]
    assert "\ufffd" in rows(path, "SELECT variables FROM execution WHERE id = 'e9'")[0][0]


def test_take_arm_stores_the_run_with_the_arm_taken_or_neither(path):
    from models.base import utcnow
    from models.workflow import Workflow, take_arm
    later = utcnow() + datetime.timedelta(minutes=10)
    wf = Workflow.create(id="wf", workspace="ws", name="hooked", deployed=True, armed_until=later, version=3)

    def take(eid, version):
        with database.atomic():
            return take_arm(wf.pk, version, [("run", run_row(eid, trigger="webhook")),
                                             event(eid, 1, '{"type":"execution_started"}')])

    assert take("old", 2) is False  # the graph was saved since the call looked: nothing taken
    assert rows(path, "SELECT armed_until IS NOT NULL FROM workflow") == [(1,)]
    assert take("e1", 3) is True
    assert take("e2", 3) is False  # one call per arming
    assert rows(path, "SELECT armed_until FROM workflow") == [(None,)]
    assert rows(path, "SELECT id FROM execution") == [("e1",)]
    assert rows(path, "SELECT execution, seq FROM execution_event") == [("e1", 1)]
    Workflow.update(armed_until=utcnow() - datetime.timedelta(seconds=1)).execute()
    assert take("e3", 3) is False  # the window has closed
    Workflow.update(armed_until=later, deployed=False).execute()
    assert take("e4", 3) is False  # undeployed
    assert rows(path, "SELECT id FROM execution") == [("e1",)]


def test_a_start_that_expects_a_workflow_version_is_refused_whole_when_it_differs(path):
    from models.workflow import Workflow
    Workflow.create(id="wf", workspace="ws", name="w", version=3)
    start = [("run", run_row("r1", graph_version=3)), event("r1", 1, '{"type":"execution_started"}')]
    batch(start + [("expect_workflow", "ws", "wf", 3)])
    assert rows(path, "SELECT id FROM execution") == [("r1",)]
    for workspace, version in (("ws", 2), ("other", 3)):
        with pytest.raises(journal.StaleWorkflow):
            batch([("run", run_row("r2", graph_version=version)), event("r2", 1, "{}"),
                   ("expect_workflow", workspace, "wf", version)])
    Workflow.delete().execute()
    with pytest.raises(journal.StaleWorkflow):
        batch([("run", run_row("r3")), ("expect_workflow", "ws", "wf", 3)])
    assert rows(path, "SELECT id FROM execution") == [("r1",)]
    assert rows(path, "SELECT execution FROM execution_event") == [("r1",)]
