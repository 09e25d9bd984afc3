"""SQLite's own CPU for one 3-block run's rows, with the run tables' indexes before and after migration 6.

    python bench/bench_run_indexes.py [--history 16000] [--rounds 15]

Storage only (no HTTP, so no bare handler to compare with): both schemas
come from a database `migrate()` made, one of them turned back to the five
older indexes. Each round inserts 200 batches of 8 runs (1 run row, 3 block
logs and 7 events each, as a 3-block run writes them) into each database in
turn, on top of `--history` runs already stored. Prints the median CPU per
run of each and their file sizes.
"""

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from models.db import migrate, open_database  # noqa: E402

OLD_INDEXES = [
    'DROP INDEX "execution_workflow_status"', 'DROP INDEX "execution_running_owner"',
    'DROP INDEX "execution_event_execution_seq"',
    'CREATE INDEX "execution_workflow" ON "execution" ("workflow")',
    'CREATE INDEX "execution_status" ON "execution" ("status")',
    'CREATE INDEX "execution_owner" ON "execution" ("owner")',
    'CREATE INDEX "block_log_execution" ON "block_log" ("execution")',
    'CREATE INDEX "execution_event_execution" ON "execution_event" ("execution")',
]
RUN = ("INSERT INTO execution (id, workflow, workspace, status, \"trigger\", variables, output, error, "
       "error_block, owner, started_at, finished_at, duration_ms, graph_version, timeout, trigger_payload, "
       "parent_execution_id, parent_block_id, parent_index, depth) VALUES (" + ", ".join("?" * 20) + ")")
LOG = ("INSERT INTO block_log (execution, seq, block_id, block_type, status, started_at, finished_at, "
       "duration_ms, input, output, error, attempts, stdout, resumed) VALUES (" + ", ".join("?" * 14) + ")")
EVENT = "INSERT INTO execution_event (execution, seq, data) VALUES (?, ?, ?)"
WORKFLOW, OWNER = str(uuid.uuid4()), uuid.uuid4().hex


def schema(path, old):
    db = open_database(f"sqlite:///{path}")
    migrate()
    for sql in OLD_INDEXES if old else ():
        db.execute_sql(sql)
    db.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("PRAGMA synchronous=normal")
    return conn


def batch(conn, runs=8):
    at, end = "2026-12-03 11:00:00.000", "2026-12-03 11:00:00.002"
    rows, logs, events = [], [], []
    for _ in range(runs):
        eid = str(uuid.uuid4())
        rows.append((eid, WORKFLOW, "default", "completed", "api", '{"n": 9}', '{"ok": true}', None, None,
                     OWNER, at, end, 2, 1, 300.0, None, None, None, None, 0))
        for seq, (block, kind) in enumerate((("start", "starter"), ("check", "condition"), ("out", "response"))):
            logs.append((eid, seq, block, kind, "completed", at, end, 0, '{"n": 9}', '{"ok": true}',
                         None, 1, None, None))
        for seq in range(1, 8):
            events.append((eid, seq, json.dumps({"type": "block_completed", "block_id": "check",
                                                 "output": {"ok": True}, "execution_id": eid})))
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(RUN, rows)
    conn.executemany(LOG, logs)
    conn.executemany(EVENT, events)
    conn.execute("COMMIT")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--history", type=int, default=16000, help="runs stored before timing")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="actorflow-bench-")
    conns = {name: schema(os.path.join(tmp, f"{name}.db"), name == "before")
             for name in ("before", "after")}
    for conn in conns.values():
        for _ in range(args.history // 8):
            batch(conn)
    cpu = {name: [] for name in conns}
    for _ in range(args.rounds):
        for name, conn in conns.items():
            t0 = time.process_time()
            for _ in range(200):
                batch(conn)
            cpu[name].append((time.process_time() - t0) / 1600 * 1e6)
    for name, conn in conns.items():
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = os.path.getsize(os.path.join(tmp, f"{name}.db")) / 2**20
        print(f"{name:<7} indexes: {statistics.median(cpu[name]):6.1f} µs CPU per run (median of "
              f"{args.rounds} rounds), file {size:.1f} MiB")
    print(f"after / before: {statistics.median(cpu['after']) / statistics.median(cpu['before']):.2f}")


if __name__ == "__main__":
    main()
