"""Durable runs: kill -9 under load, restart, and every run goes on where it stopped.

Real processes (`python run.py serve`), a real SQLite file, a real slow HTTP
server. The 50-run version is bench/crash_resume.py.
"""

import datetime
import signal
import threading

import pytest

from tests import crashload as cl
from tests.databases import database_url
from tests.echo_server import EchoServer
from tests.processes import ServerProcess, wait_until

KEY = "k" * 24
RUNS = 12


def serve(url, **env):
    base = {"ACTORFLOW_API_KEY": KEY, "ACTORFLOW_HEARTBEAT_INTERVAL": "1"}
    base.update(env)
    return ServerProcess(url, env=base)


def kill(server):
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)


def owner_of(path, pid):
    rows = cl.stored(path, "SELECT id FROM process_row WHERE pid = ?", (pid,))
    return rows[0][0] if rows else None


def beats(path, owner, count):
    """Wait (generously) until `owner`'s heartbeat has been written `count` more times."""
    seen = [cl.stored(path, "SELECT heartbeat_at FROM process_row WHERE id = ?", (owner,))]

    def more():
        now = cl.stored(path, "SELECT heartbeat_at FROM process_row WHERE id = ?", (owner,))
        if now != seen[-1]:
            seen.append(now)
        return len(seen) > count
    return wait_until(more, timeout=60, interval=0.02)


def long_sleeper(base, **config):
    status, wf = cl.http(base, "POST", "/api/workflows", {"name": "sleeper"}, KEY)
    status, _ = cl.http(base, "PUT", f"/api/workflows/{wf['id']}/graph", {
        "blocks": [cl.START, cl.block("nap", cl.code("import time\ntime.sleep(60)\nreturn 1", **config))],
        "edges": [cl.edge("start", "nap")]}, KEY)
    assert status == 200
    return wf["id"]


def test_kill_9_under_load_then_every_run_goes_on(tmp_path):
    path = url = database_url(tmp_path)
    echo = EchoServer().start()
    server = serve(url)
    try:
        workflows = cl.make_workflows(server.url, KEY, echo.url)
        # A block that must not run twice, and a run that will be past its deadline at restart.
        once = long_sleeper(server.url, on_resume="fail")
        slow = long_sleeper(server.url)
        runs = cl.start_load(server.url, KEY, workflows, RUNS)
        refused = cl.Watched(server.url, KEY, once, {}, None, "nap")
        assert wait_until(lambda: all(r.slow_started() for r in runs + [refused]), timeout=120)
        late = cl.Watched(server.url, KEY, slow, {}, None, "nap", timeout=10)
        assert wait_until(late.slow_started, timeout=60)
        http_runs = [r for r in runs if r.slow == ("call",)]
        assert wait_until(lambda: len(echo.requests) >= len(http_runs), timeout=60)
        kill(server)

        ids = [r.execution_id for r in runs]
        before = cl.finished_blocks(path, ids)
        status = dict(cl.stored(path, "SELECT id, status FROM execution"))
        cut = {i for i in ids if status[i] == "running"}
        assert cut, "no run was in flight at the kill"
        assert status[late.execution_id] == status[refused.execution_id] == "running"
        started = cl.stored(path, "SELECT started_at FROM execution WHERE id = ?", (late.execution_id,))[0][0]
        if not isinstance(started, datetime.datetime):
            started = datetime.datetime.fromisoformat(started)
        deadline = started + datetime.timedelta(seconds=10)
        wait_until(lambda: datetime.datetime.utcnow() > deadline, timeout=30)

        server = serve(url)
        for run in runs + [late, refused]:
            run.reattach(server.url, KEY)
        rows = cl.wait_all_over(server.url, KEY, runs + [late, refused])

        problems, resumed = cl.check_runs(server.url, KEY, path, runs, rows, before, echo, cut)
        assert problems == []
        assert resumed >= len(cut)

        assert rows[late.execution_id]["status"] == "timeout"
        assert late.events[-1][1]["error_code"] == "EXECUTION_TIMEOUT"
        status, logs = cl.http(server.url, "GET", f"/api/workflows/{late.workflow_id}/executions/"
                                                  f"{late.execution_id}/logs", key=KEY)
        assert ("nap", "cancelled") in [(e["block_id"], e["status"]) for e in logs["logs"]]

        assert rows[refused.execution_id]["status"] == "failed"
        assert "on_resume" in rows[refused.execution_id]["error"]
        status, logs = cl.http(server.url, "GET", f"/api/workflows/{once}/executions/"
                                                  f"{refused.execution_id}/logs", key=KEY)
        nap = logs["logs"][-1]
        assert nap["block_id"] == "nap" and nap["status"] == "failed" and nap["resumed"] is True
    finally:
        server.kill()
        echo.stop()


def test_a_second_process_takes_over_a_killed_ones_runs(tmp_path):
    path = url = database_url(tmp_path)
    echo = EchoServer().start()
    a = serve(url)
    b = serve(url)
    try:
        workflows = cl.make_workflows(a.url, KEY, echo.url)
        runs = cl.start_load(a.url, KEY, workflows, 6)
        assert wait_until(lambda: all(r.slow_started() for r in runs), timeout=120)
        me_b = owner_of(path, b.proc.pid)
        kill(a)
        ids = [r.execution_id for r in runs]
        marks = ",".join("?" * len(ids))
        cut = [i for (i,) in cl.stored(path, f"SELECT id FROM execution WHERE id IN ({marks}) "
                                             f"AND status = 'running'", ids)]
        assert cut, "no run was in flight at the kill"

        def taken():
            owners = cl.stored(path, f"SELECT owner FROM execution WHERE id IN ({','.join('?' * len(cut))})", cut)
            return {o for (o,) in owners} == {me_b}
        # Within one heartbeat interval, counted in b's beats rather than wall-clock time: b
        # queues each heartbeat write, then its look for dead owners, and its writer takes
        # them in order. The first beat written after the kill is followed by a look that
        # ran after it (and so sees a dead), committed no later than the next beat.
        assert beats(path, me_b, 2)
        assert taken()
        rows = cl.wait_all_over(b.url, KEY, runs)
        assert {r.execution_id: rows[r.execution_id]["output"] for r in runs} == \
            {r.execution_id: r.expected for r in runs}
    finally:
        a.kill()
        b.kill()
        echo.stop()


@pytest.mark.gen_test
async def test_on_resume_is_checked_when_saved(api):
    status, wf = await api.post("/api/workflows", {"name": "x"})
    for value, expected in (("fail", 200), ("run", 200), ("never", 400), (True, 400)):
        status, body = await api.put(f"/api/workflows/{wf['id']}/graph", {
            "blocks": [cl.START, cl.block("pay", cl.code("return 1", on_resume=value))],
            "edges": [cl.edge("start", "pay")]})
        assert status == expected, body
        if status == 400:
            assert "on_resume" in str(body)


def test_a_resumed_run_keeps_its_depth(tmp_path):
    """X-Actorflow-Depth 5 at the start: the http block sends 6, before the kill and after the resume."""
    url = database_url(tmp_path)
    echo = EchoServer().start()
    server = serve(url)
    try:
        wf = cl.make_workflows(server.url, KEY, echo.url)["http"][0]
        base = server.url
        threading.Thread(target=lambda: _quietly(cl.http, base, "POST", f"/api/workflows/{wf}/execute",
                                                 {"variables": {"n": 1}}, KEY,
                                                 headers={"X-Actorflow-Depth": "5"}),
                         daemon=True).start()
        assert wait_until(lambda: len(echo.requests) == 1, timeout=60)
        kill(server)
        [(eid, depth)] = cl.stored(url, "SELECT id, depth FROM execution")
        assert depth == 5

        server = serve(url)
        assert wait_until(lambda: cl.stored(url, "SELECT status FROM execution")[0][0] != "running",
                          timeout=120)
        status, row = cl.http(server.url, "GET", f"/api/workflows/{wf}/executions/{eid}", key=KEY)
        assert row["status"] == "completed" and row["output"] == {"got": 1}, row
        assert [r["headers"]["x-actorflow-depth"] for r in echo.requests] == ["6", "6"]
    finally:
        server.kill()
        echo.stop()


def _quietly(call, *args, **kw):
    try:
        call(*args, **kw)
    except Exception:
        pass   # the server is killed under it
