"""Durable runs: kill -9 under load, restart, and every run goes on where it stopped.

Real processes (`python run.py serve`), a real SQLite file, a real slow HTTP
server. The 50-run version is bench/crash_resume.py.
"""

import datetime
import signal
import time

from tests import crashload as cl
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


def test_kill_9_under_load_then_every_run_goes_on(tmp_path):
    path = tmp_path / "af.db"
    url = f"sqlite:///{path}"
    echo = EchoServer().start()
    server = serve(url)
    try:
        workflows = cl.make_workflows(server.url, KEY, echo.url)
        # A block that must not run twice, and a run that will be past its deadline.
        status, wf = cl.http(server.url, "POST", "/api/workflows", {"name": "once"}, KEY)
        once = wf["id"]
        cl.http(server.url, "PUT", f"/api/workflows/{once}/graph", {
            "blocks": [cl.START, cl.block("pay", cl.code(cl.SLEEP + "return 1", on_resume="fail"))],
            "edges": [cl.edge("start", "pay")]}, KEY)
        runs = cl.start_load(server.url, KEY, workflows, RUNS)
        refused = cl.Watched(server.url, KEY, once, {}, None, "pay")
        assert wait_until(lambda: all(r.slow_started() for r in runs + [refused]), timeout=120)
        late = cl.Watched(server.url, KEY, workflows["chain"][0], {"n": 1}, None, "nap", timeout=5)
        assert wait_until(late.slow_started, timeout=60)
        http_runs = [r for r in runs if r.slow == ("call",)]
        assert wait_until(lambda: len(echo.requests) >= len(http_runs), timeout=60)
        kill(server)

        ids = [r.execution_id for r in runs]
        before = cl.finished_blocks(path, ids)
        running = dict(cl.stored(path, "SELECT id, status FROM execution"))
        assert all(running[i] == "running" for i in ids + [late.execution_id, refused.execution_id])
        started = cl.stored(path, "SELECT started_at FROM execution WHERE id = ?", (late.execution_id,))[0][0]
        deadline = datetime.datetime.fromisoformat(started) + datetime.timedelta(seconds=5)
        wait_until(lambda: datetime.datetime.utcnow() > deadline, timeout=30)

        server = serve(url)
        for run in runs + [late, refused]:
            run.reattach(server.url, KEY)
        rows = cl.wait_all_over(server.url, KEY, runs + [late, refused])

        for run in runs:
            assert rows[run.execution_id]["status"] == "completed", rows[run.execution_id]
            assert rows[run.execution_id]["output"] == run.expected
        # No finished block ran again; the ones that were running say so.
        resumed = 0
        for run in runs:
            status, logs = cl.http(server.url, "GET", f"/api/workflows/{run.workflow_id}/executions/"
                                                      f"{run.execution_id}/logs", key=KEY)
            for entry in logs["logs"]:
                mark = before.get((run.execution_id, entry["block_id"]))
                if mark is not None:
                    assert not entry.get("resumed") and entry["status"] == mark[0]
                    assert entry["attempts"] == mark[2]
                elif entry.get("resumed"):
                    resumed += 1
                    assert entry["attempts"] >= 2 and entry["status"] == "completed"
            after = cl.finished_blocks(path, [run.execution_id])
            assert all(after[k] == v for k, v in before.items() if k[0] == run.execution_id)
        assert resumed >= len(runs) // 2
        # Each http block's key came at most twice: before the kill and after it.
        keys = cl.idempotency_keys(echo)
        assert keys and max(keys.values()) <= 2
        assert {f"{r.execution_id}:call" for r in http_runs} == set(keys)
        # Every stream, across the restart, without gaps or repeats.
        assert cl.check_streams(runs) == []
        for run in runs:
            seams = [e for _, e in run.events if e["type"] == "execution_resumed"]
            assert len(seams) == 1 and set(seams[0]["block_ids"]) <= set(run.slow) | {"c"}

        assert rows[late.execution_id]["status"] == "timeout"
        assert late.events[-1][1]["error_code"] == "EXECUTION_TIMEOUT"
        status, logs = cl.http(server.url, "GET", f"/api/workflows/{late.workflow_id}/executions/"
                                                  f"{late.execution_id}/logs", key=KEY)
        assert ("nap", "cancelled") in [(e["block_id"], e["status"]) for e in logs["logs"]]

        assert rows[refused.execution_id]["status"] == "failed"
        assert "on_resume" in rows[refused.execution_id]["error"]
        status, logs = cl.http(server.url, "GET", f"/api/workflows/{once}/executions/"
                                                  f"{refused.execution_id}/logs", key=KEY)
        pay = logs["logs"][-1]
        assert pay["block_id"] == "pay" and pay["status"] == "failed" and pay["resumed"] is True
    finally:
        server.kill()
        echo.stop()


def test_a_second_process_takes_over_a_killed_ones_runs(tmp_path):
    path = tmp_path / "af.db"
    url = f"sqlite:///{path}"
    echo = EchoServer().start()
    a = serve(url)
    b = serve(url)
    try:
        workflows = cl.make_workflows(a.url, KEY, echo.url)
        runs = cl.start_load(a.url, KEY, workflows, 6)
        assert wait_until(lambda: all(r.slow_started() for r in runs), timeout=120)
        me_b = owner_of(path, b.proc.pid)
        kill(a)
        killed = time.monotonic()
        ids = [r.execution_id for r in runs]
        marks = ",".join("?" * len(ids))

        def taken():
            owners = {o for (o,) in cl.stored(path, f"SELECT owner FROM execution WHERE id IN ({marks})", ids)}
            return owners == {me_b}
        assert wait_until(taken, timeout=30, interval=0.02)
        took = time.monotonic() - killed
        # One heartbeat interval (1 s) is the aim; allow for a loaded machine.
        assert took < 10, took
        rows = cl.wait_all_over(b.url, KEY, runs)
        assert {r.execution_id: rows[r.execution_id]["output"] for r in runs} == \
            {r.execution_id: r.expected for r in runs}
    finally:
        a.kill()
        b.kill()
        echo.stop()
