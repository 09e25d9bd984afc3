"""Storage faults: values the store can't hold, a refusing store, a second process.

Each test talks HTTP to a real server, then reads back what was stored, and
checks that /api/health keeps answering within a second.
"""

import asyncio
import http.client
import json
import os
import resource
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from tests.databases import database_url, sqlite_only
from tests.helpers import START, configure, edge
from tests.processes import ServerProcess, wait_until
from tests.sse_client import SSEClient, types

KEY = "k" * 24


def code(block_id, source, **config):
    return {"id": block_id, "type": "code", "config": dict(config, code=source)}


async def healthy(api):
    t0 = time.monotonic()
    status, body = await api.get("/api/health", key=None, timeout=1)
    assert status == 200 and body["ok"], body
    return time.monotonic() - t0


def healthy_sync(url):
    with urllib.request.urlopen(url + "/api/health", timeout=1) as resp:
        assert resp.status == 200


def call(url, method="GET", body=None, timeout=30, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    headers = dict(headers or {}, Authorization=f"Bearer {KEY}")
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


# -- values made inside a run -------------------------------------------------

@pytest.mark.gen_test(timeout=60)
async def test_lone_surrogate_from_a_code_block_is_stored_as_replacement_character(api):
    wf = await api.workflow(
        [START, code("c", 'return {"text": "a\\ud800b", "\\udfff": ["x\\ud83d"]}'),
         {"id": "out", "type": "response", "config": {"data": {"echo": "{{ c.text }}!"}}}],
        [edge("start", "c"), edge("c", "out")])
    status, body = await api.execute(wf)
    assert status == 200, body
    assert body["output"] == {"echo": "a\ufffdb!"}
    eid = body["execution_id"]
    status, row = await api.get(f"/api/workflows/{wf}/executions/{eid}")
    assert status == 200 and row["status"] == "completed" and row["output"] == {"echo": "a\ufffdb!"}
    status, logs = await api.get(f"/api/workflows/{wf}/executions/{eid}/logs")
    out = {entry["block_id"]: entry for entry in logs["logs"]}
    assert out["c"]["output"] == {"text": "a\ufffdb", "\ufffd": ["x\ufffd"]}
    await healthy(api)


@pytest.mark.gen_test(timeout=60)
async def test_non_finite_number_from_a_block_fails_it_clearly(api):
    wf = await api.workflow([START, {"id": "n", "type": "number", "config": {"number": "inf"}}],
                            [edge("start", "n")])
    status, body = await api.execute(wf)
    assert status == 500 and body["error_code"] == "EXECUTION_FAILED", body
    assert body["error"] == "block 'n' failed: block output contains NaN or Infinity, which JSON cannot hold"
    eid = body["execution_id"]
    status, row = await api.get(f"/api/workflows/{wf}/executions/{eid}")
    assert row["status"] == "failed"
    await healthy(api)


# -- re-attaching to a run another process owns --------------------------------

def _cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, in clock ticks


def test_reattach_to_a_run_of_another_process_waits_and_ends_with_it(tmp_path):
    url = database_url(tmp_path)
    env = {"ACTORFLOW_API_KEY": KEY, "ACTORFLOW_KEEPALIVE_INTERVAL": "0.5", "ACTORFLOW_SHUTDOWN_GRACE": "1"}
    owner = ServerProcess(url, env=env)
    other = ServerProcess(url, env=env)
    try:
        status, wf = call(owner.url + "/api/workflows", "POST", {"name": "slow"})
        graph = {"blocks": [START, code("slow", "import time\ntime.sleep(3)\nreturn 7")],
                 "edges": [edge("start", "slow")]}
        assert call(owner.url + f"/api/workflows/{wf['id']}/graph", "PUT", graph)[0] == 200
        answer = {}
        runner = threading.Thread(target=lambda: answer.update(
            r=call(owner.url + f"/api/workflows/{wf['id']}/execute", "POST", {})))
        runner.start()
        listed = {}

        def running():
            listed.update(call(other.url + f"/api/workflows/{wf['id']}/executions")[1])
            return listed["total"] == 1
        assert wait_until(running, timeout=15)
        eid = listed["executions"][0]["id"]

        frames = []
        host, port = other.url.split("//")[1].split(":")

        def follow():
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            conn.request("GET", f"/api/workflows/{wf['id']}/executions/{eid}/stream",
                         headers={"Authorization": f"Bearer {KEY}"})
            resp = conn.getresponse()
            frames.append(resp.status)
            frames.append(resp.read().decode())
            conn.close()
        reader = threading.Thread(target=follow)
        cpu0, t0 = _cpu_seconds(other.proc.pid), time.monotonic()
        reader.start()
        while reader.is_alive() and time.monotonic() - t0 < 30:
            healthy_sync(other.url)  # the loop is free while it follows the run
            time.sleep(0.2)
        reader.join(1)
        assert not reader.is_alive(), "the re-attached stream did not end with the run"
        busy = _cpu_seconds(other.proc.pid) - cpu0
        took = time.monotonic() - t0
        assert busy < 0.5 * took, f"{busy:.2f}s CPU in {took:.2f}s: the poll loop spins"
        runner.join(30)
        assert answer["r"][0] == 200 and answer["r"][1]["output"] == {"slow": 7}
        status, text = frames
        events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
        assert status == 200 and events[-1]["type"] == "execution_completed", text
        assert events[-1]["output"] == {"slow": 7}
        healthy_sync(other.url)
        assert call(other.url + f"/api/workflows/{wf['id']}/executions/{eid}")[1]["status"] == "completed"

        # SIGTERM stops the follower while it follows a run of the owner (it was ignored
        # while the poll loop spun); the owner's run is not disturbed.
        graph["blocks"][1] = code("slow", "import time\ntime.sleep(60)\nreturn 7", timeout=120)
        assert call(owner.url + f"/api/workflows/{wf['id']}/graph", "PUT", graph)[0] == 200
        threading.Thread(target=call, args=(owner.url + f"/api/workflows/{wf['id']}/execute", "POST", {}),
                         kwargs={"timeout": 120}, daemon=True).start()
        assert wait_until(lambda: call(other.url + f"/api/workflows/{wf['id']}/executions")[1]["total"] == 2,
                          timeout=15)
        second = next(e["id"] for e in call(other.url + f"/api/workflows/{wf['id']}/executions")[1]["executions"]
                      if e["id"] != eid)
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.request("GET", f"/api/workflows/{wf['id']}/executions/{second}/stream",
                     headers={"Authorization": f"Bearer {KEY}"})
        assert conn.getresponse().status == 200
        assert other.stop(timeout=30) == 0
        conn.close()
        healthy_sync(owner.url)
    finally:
        other.stop()
        owner.stop()


# -- a store that refuses writes -----------------------------------------------

HOLD_LOCK = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("COMMIT")
"""

# PostgreSQL: every table locked against writes (reads still go), the same until released.
HOLD_PG_LOCK = """
import psycopg2, sys
db = psycopg2.connect(sys.argv[1])
cur = db.cursor()
cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
tables = ", ".join('"%s"' % name for (name,) in cur.fetchall())
cur.execute("LOCK TABLE " + tables + " IN EXCLUSIVE MODE")
print("locked", flush=True)
sys.stdin.readline()
db.commit()
"""


class LockHolder:
    """A second process holding the database's write lock until released.

    `target`: a SQLite file path or database URL (BEGIN EXCLUSIVE), or a
    PostgreSQL URL (LOCK TABLE ... IN EXCLUSIVE MODE on every table).
    """

    def __init__(self, target):
        target = str(target)
        if target.startswith(("postgres://", "postgresql://")):
            script = HOLD_PG_LOCK
        else:
            script, target = HOLD_LOCK, target.removeprefix("sqlite:///")
        self.proc = subprocess.Popen([sys.executable, "-c", script, target],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
        assert self.proc.wait(10) == 0


async def ended(api, wf, eid, deadline=30.0):
    """Poll the execution until it exists and is no longer running; returns its JSON."""
    end = time.monotonic() + deadline
    while True:
        status, body = await api.get(f"/api/workflows/{wf}/executions/{eid}")
        if status == 200 and body["status"] != "running":
            return body
        assert time.monotonic() < end, f"execution {eid} still running or missing: {body}"
        await asyncio.sleep(0.05)


ECHO = {"id": "out", "type": "response", "config": {"data": {"got": "{{ variables.x }}"}}}


@configure(db_busy_timeout=0.3)
@pytest.mark.gen_test(timeout=60)
async def test_locked_store_answers_503_and_the_run_ends_failed_once_it_is_free(api, server, settings):
    wf = await api.workflow([START, ECHO], [edge("start", "out")])
    holder = LockHolder(settings.database_url)
    try:
        status, body = await api.execute(wf, {"x": 1})
        assert status == 503, body
        assert body["error_code"] == "STORAGE_UNAVAILABLE" and "lock" in body["error"], body
        eid = body["execution_id"]
        assert await healthy(api) < 1
        # A plain route answers in the plain shape.
        status, plain = await api.post("/api/workflows", {"name": "later"})
        assert status == 503 and set(plain) == {"error"} and "storage unavailable" in plain["error"]
        # A stream never says the run started: its only event is the error.
        sse = await SSEClient.open(server.port, "POST", f"/api/workflows/{wf}/execute/stream",
                                   body={"variables": {"x": 2}})
        events = await sse.until_end()
        sse.close()
        assert types(events) == ["error"], events
        assert events[0]["data"]["error_code"] == "STORAGE_UNAVAILABLE"
        streamed = events[0]["data"]["execution_id"]
        status, row = await api.get(f"/api/workflows/{wf}/executions/{eid}")
        assert status == 404  # nothing stored yet, and nothing claimed it was
    finally:
        holder.release()
    for run_id in (eid, streamed):
        row = await ended(api, wf, run_id)
        assert row["status"] == "failed" and row["error"].startswith("storage unavailable"), row
        status, logs = await api.get(f"/api/workflows/{wf}/executions/{run_id}/logs")
        assert status == 200 and all(entry["status"] != "running" for entry in logs["logs"])
    assert row["variables"] == {"x": 2}
    # Re-attaching replays the stored end and stops.
    sse = await SSEClient.open(server.port, "GET", f"/api/workflows/{wf}/executions/{eid}/stream")
    events = await sse.until_end()
    sse.close()
    assert types(events) == ["error"] and events[0]["data"]["error_code"] == "STORAGE_UNAVAILABLE"
    # The store is back: runs work again.
    status, body = await api.execute(wf, {"x": 3})
    assert status == 200 and body["output"] == {"got": 3}, body
    assert await healthy(api) < 1


@configure(db_busy_timeout=0.3)
@pytest.mark.gen_test(timeout=60)
async def test_a_webhook_call_the_store_refuses_is_503_and_neither_arm_nor_run_is_written(
        api, server, settings):
    """The arm and the run's row commit in one transaction: a locked store takes neither."""
    status, hooked = await api.post("/api/workflows", {"name": "hooked"})
    graph = {"blocks": [{"id": "hook", "type": "webhook"},
                        {"id": "out", "type": "response", "config": {"data": "{{ hook.body.x }}"}}],
             "edges": [edge("hook", "out")]}
    assert (await api.put(f"/api/workflows/{hooked['id']}/graph", graph))[0] == 200
    assert (await api.post(f"/api/workflows/{hooked['id']}/deploy"))[0] == 200
    status, armed = await api.post(f"/api/workflows/{hooked['id']}/arm")
    config = (await api.get(f"/api/workflows/{hooked['id']}"))[1]["blocks"][0]["config"]
    path = f"/api/webhooks/{config['webhook_id']}"
    secret = {"X-Webhook-Secret": config["webhook_secret"], "Content-Type": "application/json"}
    holder = LockHolder(settings.database_url)
    try:
        status, body, _ = await api.call("POST", path, raw=b'{"x": 1}', key=None, headers=secret)
        assert status == 503 and set(body) == {"error"} and "lock" in body["error"], body
    finally:
        holder.release()
    # Nothing was taken and nothing is left to finish: the arm is as it was, no run exists.
    status, wf = await api.get(f"/api/workflows/{hooked['id']}")
    assert wf["armed_until"] == armed["armed_until"], wf
    status, page = await api.get(f"/api/workflows/{hooked['id']}/executions")
    assert page["total"] == 0, page
    status, body, _ = await api.call("POST", path + "?wait=true", raw=b'{"x": 2}', key=None, headers=secret)
    assert status == 200 and body["output"] == 2, body


@sqlite_only
def test_full_disk_fails_only_what_does_not_fit_and_gives_the_webhook_arm_back(tmp_path):
    path = tmp_path / "af.db"
    server = ServerProcess(f"sqlite:///{path}", env={"ACTORFLOW_API_KEY": KEY})
    url = server.url
    try:
        status, wf = call(url + "/api/workflows", "POST", {"name": "echo"})
        graph = {"blocks": [START, ECHO], "edges": [edge("start", "out")]}
        assert call(url + f"/api/workflows/{wf['id']}/graph", "PUT", graph)[0] == 200
        status, makes = call(url + "/api/workflows", "POST", {"name": "makes"})
        graph = {"blocks": [START, code("c", "return 'z' * 600000")], "edges": [edge("start", "c")]}
        assert call(url + f"/api/workflows/{makes['id']}/graph", "PUT", graph)[0] == 200
        status, hooked = call(url + "/api/workflows", "POST", {"name": "hooked"})
        graph = {"blocks": [{"id": "hook", "type": "webhook"},
                            {"id": "out", "type": "response", "config": {"data": "{{ hook.body.x }}"}}],
                 "edges": [edge("hook", "out")]}
        assert call(url + f"/api/workflows/{hooked['id']}/graph", "PUT", graph)[0] == 200
        assert call(url + f"/api/workflows/{hooked['id']}/deploy", "POST")[0] == 200
        status, armed = call(url + f"/api/workflows/{hooked['id']}/arm", "POST")
        assert status == 200, armed
        hook = call(url + f"/api/workflows/{hooked['id']}")[1]["blocks"][0]["config"]
        webhook = url + f"/api/webhooks/{hook['webhook_id']}"
        secret = {"X-Webhook-Secret": hook["webhook_secret"], "Content-Type": "application/json"}

        # The disk is "full": no file of the server may grow past what it has plus 256 KiB.
        sizes = [os.path.getsize(p) for p in (path, f"{path}-wal") if os.path.exists(p)]
        limit = max(sizes) + 256 * 1024
        # (the soft limit only: raising a hard limit again needs privileges)
        resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        big = "x" * 600_000
        answers = {}

        def execute(name, value):
            answers[name] = call(url + f"/api/workflows/{wf['id']}/execute", "POST",
                                 {"variables": {"x": value}})
        threads = [threading.Thread(target=execute, args=("big", big))] + [
            threading.Thread(target=execute, args=(f"small{i}", i)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        healthy_sync(url)
        status, body = answers["big"]
        assert status == 503 and body["error_code"] == "STORAGE_UNAVAILABLE", body
        big_run = body["execution_id"]
        for i in range(3):  # the writer survived the batch: the runs that fit were stored
            status, body = answers[f"small{i}"]
            assert status == 200 and body["output"] == {"got": i}, body
            assert call(url + f"/api/workflows/{wf['id']}/executions/{body['execution_id']}")[1][
                "status"] == "completed"
        # A run whose first row fits but whose output does not: its answer waits for its
        # final rows, so it is 503, not 200 (and nothing claims it completed).
        status, body = call(url + f"/api/workflows/{makes['id']}/execute", "POST", {})
        assert status == 503 and body["error_code"] == "STORAGE_UNAVAILABLE", (status, str(body)[:300])
        made = body["execution_id"]
        # A webhook call whose run does not fit is refused, and does not use up the arm:
        # the arm and the run's row are one transaction, so neither was written.
        status, body = call(webhook, "POST", {"x": big}, headers=secret)
        assert status == 503 and set(body) == {"error"}, body
        assert call(url + f"/api/workflows/{hooked['id']}")[1]["armed_until"] == armed["armed_until"]
        healthy_sync(url)

        resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        assert wait_until(lambda: call(url + f"/api/workflows/{wf['id']}/executions/{big_run}")[1].get(
            "status") == "failed", timeout=15)
        row = call(url + f"/api/workflows/{wf['id']}/executions/{big_run}")[1]
        assert row["error"].startswith("storage unavailable") and row["variables"] == {"x": big}
        assert wait_until(lambda: call(url + f"/api/workflows/{makes['id']}/executions/{made}")[1].get(
            "status") == "failed", timeout=15)
        row = call(url + f"/api/workflows/{makes['id']}/executions/{made}")[1]
        assert row["error"].startswith("storage unavailable"), row
        logs = call(url + f"/api/workflows/{makes['id']}/executions/{made}/logs")[1]["logs"]
        assert [(e["block_id"], e["status"]) for e in logs] == [("start", "completed"), ("c", "cancelled")]
        status, body = call(webhook + "?wait=true", "POST", {"x": "fits"}, headers=secret)
        assert status == 200 and body["output"] == "fits", body
        # The call that fitted completed; the refused one never became a run.
        listed = call(url + f"/api/workflows/{hooked['id']}/executions")[1]
        statuses = [e["status"] for e in listed["executions"]]
        assert statuses == ["completed"], statuses
        healthy_sync(url)
    finally:
        assert server.stop() == 0


# -- the output bound ---------------------------------------------------------------

def _peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_amplifying_template_and_oversized_output_fail_cleanly_with_bounded_memory(tmp_path):
    limit = 4 * 1024 * 1024
    server = ServerProcess(database_url(tmp_path),
                           env={"ACTORFLOW_API_KEY": KEY, "ACTORFLOW_MAX_VALUE_BYTES": str(limit)})
    url = server.url
    try:
        def workflow(blocks, edges):
            status, wf = call(url + "/api/workflows", "POST", {"name": "big"})
            assert call(url + f"/api/workflows/{wf['id']}/graph", "PUT",
                        {"blocks": blocks, "edges": edges})[0] == 200
            return wf["id"]
        # 700 bytes of template over a 1 MiB output: 100 MiB if rendered.
        amplify = workflow([START, code("c", "return 'x' * (1 << 20)"),
                            {"id": "out", "type": "response", "config": {"data": "{{ c }}" * 100}}],
                           [edge("start", "c"), edge("c", "out")])
        oversized = workflow([START, code("c", f"return 'y' * {limit + 1}")], [edge("start", "c")])
        status, body = call(url + f"/api/workflows/{oversized}/execute", "POST", {})  # warm up
        assert status == 500 and body["error_code"] == "EXECUTION_FAILED", body
        assert "ACTORFLOW_MAX_VALUE_BYTES" in body["error"] and str(limit) in body["error"], body
        before = _peak_rss_mib(server.proc.pid)
        for _ in range(2):
            status, body = call(url + f"/api/workflows/{amplify}/execute", "POST", {})
            assert status == 500 and body["error_code"] == "EXECUTION_FAILED", body
            assert body["error"].startswith("block 'out' failed: rendered config of block 'out' is "
                                            f"larger than the limit of {limit} bytes "
                                            "(ACTORFLOW_MAX_VALUE_BYTES)"), body
            healthy_sync(url)
        grew = _peak_rss_mib(server.proc.pid) - before
        assert grew < 48, f"peak RSS grew by {grew:.0f} MiB"
        eid = body["execution_id"]
        row = call(url + f"/api/workflows/{amplify}/executions/{eid}")[1]
        assert row["status"] == "failed"
        logs = call(url + f"/api/workflows/{amplify}/executions/{eid}/logs")[1]["logs"]
        assert [(entry["block_id"], entry["status"]) for entry in logs] == [
            ("start", "completed"), ("c", "completed"), ("out", "failed")]
    finally:
        assert server.stop() == 0
