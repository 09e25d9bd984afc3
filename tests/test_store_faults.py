"""Storage faults: values the store can't hold, a refusing store, a second process.

Each test talks HTTP to a real server, then reads back what was stored, and
checks that /api/health keeps answering within a second.
"""

import asyncio
import http.client
import json
import threading
import time
import urllib.request

import pytest

from tests.helpers import START, edge
from tests.processes import ServerProcess, wait_until

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


def call(url, method="GET", body=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Authorization": f"Bearer {KEY}"})
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
    url = f"sqlite:///{tmp_path / 'af.db'}"
    env = {"ACTORFLOW_API_KEY": KEY, "ACTORFLOW_KEEPALIVE_INTERVAL": "0.5"}
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
    finally:
        other.stop()
        owner.stop()
