"""A map whose server is killed (kill -9): on restart, finished items are not run again.

Real processes, a real SQLite file. Items a, b, c finish before the kill;
"slow" is still running. After the restart the parent's map block takes a, b
and c from their stored child runs, and waits for the slow child (resumed by
the same server) instead of starting it twice.
"""

import threading

from tests import crashload as cl
from tests.processes import wait_until
from tests.test_durable import KEY, _quietly, kill, serve
from tests.databases import database_url

CHILD = ("import time\n"
         "if variables['item'] == 'slow':\n"
         "    time.sleep(120)\n"
         "return {'item': variables['item'], 'index': variables['index']}")


def make(base, blocks, edges):
    status, wf = cl.http(base, "POST", "/api/workflows", {"name": "wf"}, KEY)
    status, body = cl.http(base, "PUT", f"/api/workflows/{wf['id']}/graph",
                           {"blocks": blocks, "edges": edges}, KEY)
    assert status == 200, body
    return wf["id"]


def children(path, parent_eid):
    return cl.stored(path, "SELECT id, parent_index, status FROM execution "
                           "WHERE parent_execution_id = ? ORDER BY parent_index", (parent_eid,))


def test_map_resumed_after_kill_does_not_rerun_finished_items(tmp_path):
    path = url = database_url(tmp_path)
    server = serve(url)
    try:
        child = make(server.url, [cl.START, cl.block("work", cl.code(CHILD))], [cl.edge("start", "work")])
        parent = make(server.url, [cl.START, {"id": "each", "type": "map", "config": {
            "items": ["a", "b", "c", "slow"], "workflow_id": child, "concurrency": 4,
            "on_error": "collect"}}], [cl.edge("start", "each")])
        base = server.url
        threading.Thread(target=lambda: _quietly(cl.http, base, "POST", f"/api/workflows/{parent}/execute",
                                                 {"timeout": 600}, KEY, timeout=600), daemon=True).start()

        def parent_id():
            rows = cl.stored(path, "SELECT id FROM execution WHERE workflow = ?", (parent,))
            return rows[0][0] if rows else None

        assert wait_until(parent_id, timeout=60)
        eid = parent_id()
        assert wait_until(lambda: [s for _, _, s in children(path, eid)]
                          == ["completed", "completed", "completed", "running"], timeout=120), \
            children(path, eid)
        kill(server)
        before = children(path, eid)

        server = serve(url)
        slow = before[3][0]
        # The slow child was resumed here; the map waits for it rather than starting it again.
        assert wait_until(lambda: cl.stored(path, "SELECT COUNT(*) FROM block_log WHERE execution = ? "
                                                  "AND resumed = ?", (slow, True))[0][0] == 1, timeout=60)
        status, body = cl.http(server.url, "POST", f"/api/workflows/{child}/executions/{slow}/cancel",
                               None, KEY)
        assert status == 200, body
        assert wait_until(lambda: cl.stored(path, "SELECT status FROM execution WHERE id = ?", (eid,))[0][0]
                          != "running", timeout=60)
        status, run = cl.http(server.url, "GET", f"/api/workflows/{parent}/executions/{eid}", None, KEY)
        assert run["status"] == "completed", run
        out = run["output"]["each"]
        assert out[:3] == [{"work": {"item": x, "index": i}} for i, x in enumerate("abc")]
        assert "cancelled" in out[3]["error"]
        assert children(path, eid) == [row if row[1] != 3 else (slow, 3, "cancelled") for row in before]
    finally:
        server.kill()


def test_workflow_block_resumed_after_kill_waits_for_its_child_instead_of_starting_another(tmp_path):
    path = url = database_url(tmp_path)
    server = serve(url)
    try:
        child = make(server.url, [cl.START, cl.block("work", cl.code(CHILD))], [cl.edge("start", "work")])
        parent = make(server.url, [cl.START, {"id": "sub", "type": "workflow", "config": {
            "workflow_id": child, "variables": {"item": "slow", "index": 0}}}], [cl.edge("start", "sub")])
        base = server.url
        threading.Thread(target=lambda: _quietly(cl.http, base, "POST", f"/api/workflows/{parent}/execute",
                                                 {"timeout": 600}, KEY, timeout=600), daemon=True).start()

        def child_rows():
            return cl.stored(path, "SELECT id, status, parent_execution_id FROM execution WHERE workflow = ?",
                             (child,))

        assert wait_until(lambda: [s for _, s, _ in child_rows()] == ["running"], timeout=120), child_rows()
        [(kid, _, eid)] = child_rows()
        kill(server)

        server = serve(url)
        # Both runs are resumed; the parent's block joins its child rather than starting it again.
        assert wait_until(lambda: cl.stored(path, "SELECT COUNT(*) FROM block_log WHERE execution = ? "
                                                  "AND resumed = ?", (kid, True))[0][0] == 1, timeout=60)
        status, body = cl.http(server.url, "POST", f"/api/workflows/{child}/executions/{kid}/cancel", None, KEY)
        assert status == 200, body
        assert wait_until(lambda: cl.stored(path, "SELECT status FROM execution WHERE id = ?", (eid,))[0][0]
                          != "running", timeout=60)
        status, run = cl.http(server.url, "GET", f"/api/workflows/{parent}/executions/{eid}", None, KEY)
        assert run["status"] == "failed" and "cancelled" in run["error"], run
        assert [(i, s) for i, s, _ in child_rows()] == [(kid, "cancelled")]     # never started twice
    finally:
        server.kill()
