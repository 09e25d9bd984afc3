"""The run tables carry only the indexes their queries use, on new and upgraded databases."""

import peewee

from models.db import migrate, open_database
from models.execution import Execution
from tests.databases import database_url, sqlite_only

WANTED = {
    "execution": {"execution_id", "execution_workflow_status", "execution_running_owner",
                  "execution_parent_execution_id"},
    "block_log": {"block_log_execution_block_id"},
    "execution_event": {"execution_event_execution_seq"},
}

# What a database made before the change has (besides the primary keys).
OLD = [
    ('CREATE INDEX "execution_workflow" ON "execution" ("workflow")'),
    ('CREATE INDEX "execution_status" ON "execution" ("status")'),
    ('CREATE INDEX "execution_owner" ON "execution" ("owner")'),
    ('CREATE INDEX "block_log_execution" ON "block_log" ("execution")'),
    ('CREATE INDEX "execution_event_execution" ON "execution_event" ("execution")'),
]
NEW = ["execution_workflow_status", "execution_running_owner", "execution_event_execution_seq"]


def indexes(db):
    return {table: {i.name for i in db.get_indexes(table)} - {f"{table}_pkey"} for table in WANTED}


def test_a_new_database_has_the_lean_indexes(tmp_path):
    db = open_database(database_url(tmp_path))
    migrate()
    assert indexes(db) == WANTED
    db.close()


def test_an_older_database_is_moved_to_them_and_keeps_its_runs(tmp_path):
    url = database_url(tmp_path)
    db = open_database(url)
    migrate()
    for name in NEW:
        db.execute_sql(f'DROP INDEX "{name}"')
    for sql in OLD:
        db.execute_sql(sql)
    db.execute_sql("DELETE FROM schema_version WHERE version >= 6")
    Execution.insert(id="r1", workflow="w1", workspace="default", status="running", trigger="api",
                     owner="p1", started_at="2026-01-01 00:00:00").execute()
    assert indexes(db)["execution"] == {"execution_id", "execution_workflow", "execution_status",
                                        "execution_owner", "execution_parent_execution_id"}
    db.close()

    db = open_database(url)
    migrate()
    migrate()  # a second start changes nothing
    assert indexes(db) == WANTED
    running = Execution.select(Execution.id).where((Execution.status == "running")
                                                   & (Execution.owner == "p1"))
    assert [r.id for r in running] == ["r1"]
    db.close()


@sqlite_only  # PostgreSQL's planner scans a nearly empty table whatever indexes it has
def test_the_queries_use_them(tmp_path):
    db = open_database(database_url(tmp_path))
    migrate()

    def plan(query):
        sql, args = query.sql()
        return " ".join(str(row[-1]) for row in db.execute_sql("EXPLAIN QUERY PLAN " + sql, args))

    assert "execution_running_owner" in plan(
        Execution.select(Execution.owner).where((Execution.status == "running")
                                                & (Execution.owner != "me")).distinct())
    assert "execution_workflow_status" in plan(
        Execution.select(peewee.fn.COUNT(Execution.pk)).where((Execution.workflow == "w")
                                                              & (Execution.status == "failed")))
    db.close()
