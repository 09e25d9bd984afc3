"""Every graph save keeps an immutable snapshot; each run records the version it ran."""

import json

import pytest

from models.db import MIGRATIONS, migrate, open_database
from tests.databases import query, sqlite_only
from tests.helpers import START, edge


def rows(settings, sql, args=()):
    return query(settings.database_url, sql, args)


def respond(value):
    return {"id": "out", "type": "response", "config": {"data": value}}


@pytest.mark.gen_test
async def test_each_save_is_a_version_and_runs_reference_theirs(api, settings):
    wf = await api.workflow([START, respond("one")], [edge("start", "out")])
    status, first = await api.execute(wf)
    assert status == 200 and first["output"] == "one"
    status, _ = await api.put(f"/api/workflows/{wf}/graph",
                              {"blocks": [START, respond("two")], "edges": [edge("start", "out")]})
    assert status == 200
    status, second = await api.execute(wf)
    assert second["output"] == "two"

    versions = rows(settings, "SELECT version, blocks, edges FROM graph_version WHERE workflow = ? "
                              "ORDER BY version", (wf,))
    assert [v for v, _, _ in versions] == [1, 2]
    assert [json.loads(b)[1]["config"]["data"] for _, b, _ in versions] == ["one", "two"]
    assert json.loads(versions[0][2]) == [edge("start", "out")]
    ran = dict(rows(settings, "SELECT id, graph_version FROM execution"))
    assert ran == {first["execution_id"]: 1, second["execution_id"]: 2}

    status, _ = await api.delete(f"/api/workflows/{wf}")
    assert status in (200, 204)
    assert rows(settings, "SELECT COUNT(*) FROM graph_version WHERE workflow = ?", (wf,)) == [(0,)]


@sqlite_only
def test_migration_gives_existing_databases_snapshots_and_columns(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    db = open_database(url)
    migrate()
    # Turn it back into a first-release database: no snapshots, no resume columns.
    db.execute_sql("DROP TABLE graph_version")
    for table, column in (("execution", "graph_version"), ("execution", "timeout"),
                          ("execution", "trigger_payload"), ("block_log", "resumed")):
        db.execute_sql(f'ALTER TABLE {table} DROP COLUMN "{column}"')
    db.execute_sql("DELETE FROM schema_version WHERE version > 1")
    db.execute_sql("INSERT INTO workflow (id, workspace, name, description, deployed, created_at, "
                   "updated_at, version) VALUES ('w1', 'default', 'old', '', 0, '2026-01-01', "
                   "'2026-01-01', 4)")
    db.execute_sql("INSERT INTO block (workflow, block_id, type, config, position, ordinal) "
                   "VALUES ('w1', 'start', 'starter', '{}', '{}', 0)")
    db.close()

    db = open_database(url)
    migrate()
    migrate()  # a second start changes nothing
    assert db.execute_sql("SELECT version FROM schema_version ORDER BY version").fetchall() == [
        (v,) for v in range(1, len(MIGRATIONS) + 1)]
    snap = db.execute_sql("SELECT workflow, version, blocks, edges FROM graph_version").fetchall()
    assert [(w, v, json.loads(b), json.loads(e)) for w, v, b, e in snap] == [
        ("w1", 4, [{"id": "start", "type": "starter", "config": {}, "position": {}}], [])]
    columns = {c.name for c in db.get_columns("execution")} | {c.name for c in db.get_columns("block_log")}
    assert {"graph_version", "timeout", "trigger_payload", "resumed"} <= columns
    db.close()
