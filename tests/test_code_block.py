"""The `code` block over HTTP: a real server, real sandbox processes."""

import asyncio
import os
import time

import pytest

from tests.helpers import alive

START = {"id": "start", "type": "starter"}


# Which process it is: its PID namespace and pid (a pid alone repeats across namespaces).
WHO = "import os\nwho = [os.readlink('/proc/self/ns/pid'), os.getpid()]"
WHO_HERE = [os.readlink("/proc/self/ns/pid"), os.getpid()]


def edge(s, t):
    return {"source": s, "target": t}


def code(block_id, source, **config):
    return {"id": block_id, "type": "code", "config": dict(config, code=source)}


async def logs_of(api, wf, eid):
    status, body = await api.get(f"/api/workflows/{wf}/executions/{eid}/logs")
    assert status == 200, body
    return {entry["block_id"]: entry for entry in body["logs"]}


@pytest.mark.gen_test(timeout=30)
async def test_code_output_reaches_the_response(api):
    wf = await api.workflow(
        [START,
         code("calc", "print('adding', inputs['start']['a'], variables['b'])\n"
                      "return {'sum': inputs['start']['a'] + variables['b'],"
                      " 'seen': sorted(inputs)}"),
         {"id": "out", "type": "response", "config": {"data": {"result": "{{ calc }}"}}}],
        [edge("start", "calc"), edge("calc", "out")])
    status, body = await api.execute(wf, {"a": 2, "b": 40})
    assert status == 200, body
    assert body["output"] == {"result": {"sum": 42, "seen": ["start"]}}
    logs = await logs_of(api, wf, body["execution_id"])
    assert logs["calc"]["status"] == "completed"
    assert logs["calc"]["output"] == {"sum": 42, "seen": ["start"]}
    assert logs["calc"]["stdout"] == "adding 2 40\n"


@pytest.mark.gen_test(timeout=30)
async def test_code_blocks_chain_and_run_side_by_side(api):
    wf = await api.workflow(
        [START,
         code("left", f"{WHO}\nreturn {{'who': who, 'v': variables['n'] + 1}}"),
         code("right", f"{WHO}\nreturn {{'who': who, 'v': variables['n'] * 2}}"),
         code("join", "return inputs['left']['v'] + inputs['right']['v']")],
        [edge("start", "left"), edge("start", "right"),
         edge("left", "join"), edge("right", "join")])
    status, body = await api.execute(wf, {"n": 5})
    assert status == 200, body
    assert body["output"] == {"join": 16}  # no response block: sinks by id
    logs = await logs_of(api, wf, body["execution_id"])
    assert logs["left"]["output"]["who"] != logs["right"]["output"]["who"]
    assert WHO_HERE not in (logs["left"]["output"]["who"], logs["right"]["output"]["who"])
    assert logs["join"]["stdout"] == ""


@pytest.mark.gen_test(timeout=30)
async def test_failing_code_fails_the_run(api):
    wf = await api.workflow([START, code("calc", "print('about to fail')\nx = 0\nreturn 1 / x")],
                            [edge("start", "calc")])
    status, body = await api.execute(wf, {})
    assert status == 500, body
    assert body["error_code"] == "EXECUTION_FAILED"
    assert body["block_id"] == "calc"
    assert "ZeroDivisionError" in body["error"]
    logs = await logs_of(api, wf, body["execution_id"])
    assert logs["calc"]["status"] == "failed"
    assert "line 3: return 1 / x" in logs["calc"]["error"]


@pytest.mark.gen_test(timeout=30)
async def test_non_json_return_and_syntax_error_fail_the_block(api):
    for source, words in (("return {1, 2}", "not JSON-serialisable"),
                          ("return (", "syntax error on line 1")):
        wf = await api.workflow([START, code("calc", source)], [edge("start", "calc")])
        status, body = await api.execute(wf, {})
        assert status == 500, body
        assert body["block_id"] == "calc" and words in body["error"], body


@pytest.mark.gen_test(timeout=30)
async def test_block_timeout_kills_the_code_and_the_server_keeps_answering(api):
    wf = await api.workflow(
        [START, code("spin", "import os\nprint(os.getpid(), flush=True)\nwhile True:\n    pass",
                     timeout=1)],
        [edge("start", "spin")])
    started = time.monotonic()
    status, body = await api.execute(wf, {})
    took = time.monotonic() - started
    assert status == 500, body  # the block failed; the run did not time out
    assert body["error_code"] == "EXECUTION_FAILED" and body["block_id"] == "spin"
    assert "timed out" in body["error"]
    assert took < 2.5, took
    status, _ = await api.get("/api/workflows")
    assert status == 200
    ok = await api.workflow([START, code("calc", "return 'alive'")], [edge("start", "calc")])
    status, body = await api.execute(ok, {})
    assert status == 200 and body["output"] == {"calc": "alive"}


@pytest.mark.gen_test(timeout=30)
async def test_run_timeout_kills_running_code(api):
    wf = await api.workflow(
        [START, code("spin", "import os\nprint(os.getpid(), flush=True)\nwhile True:\n    pass")],
        [edge("start", "spin")])
    status, body = await api.execute(wf, {}, timeout=1)
    assert status == 504, body
    logs = await logs_of(api, wf, body["execution_id"])
    deadline = time.monotonic() + 5
    while not logs["spin"].get("stdout") and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        logs = await logs_of(api, wf, body["execution_id"])
    if logs["spin"].get("stdout"):
        pid = int(logs["spin"]["stdout"])
        while alive(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not alive(pid)


@pytest.mark.gen_test(timeout=30)
async def test_code_cannot_see_server_secrets(api, settings):
    db_path = settings.database_url[len("sqlite:///"):]
    source = ("import os\n"
              "out = {'env': sorted(os.environ)}\n"
              f"for path in ({db_path!r}, '/proc/{os.getpid()}/environ'):\n"
              "    try:\n"
              "        open(path, 'rb').read(16)\n"
              "        out[path] = 'read'\n"
              "    except OSError as exc:\n"
              "        out[path] = type(exc).__name__\n"
              "return out")
    wf = await api.workflow([START, code("peek", source)], [edge("start", "peek")])
    status, body = await api.execute(wf, {})
    assert status == 200, body
    seen = body["output"]["peek"]
    assert not [k for k in seen["env"] if k.startswith("ACTORFLOW")]
    if os.geteuid() == 0:
        # Unreadable as another user; not even there with private /tmp and /proc.
        assert seen[db_path] in ("PermissionError", "FileNotFoundError")
        assert seen[f"/proc/{os.getpid()}/environ"] in ("PermissionError", "FileNotFoundError")


@pytest.mark.gen_test
async def test_stdout_is_kept_when_code_fails(api):
    wf = await api.workflow([{"id": "start", "type": "starter"},
                             {"id": "c", "type": "code", "config": {"code": "print('before')\nraise ValueError('x')"}}],
                            [{"source": "start", "target": "c"}])
    status, body = await api.execute(wf, {})
    assert status == 500
    status, logs = await api.get(f"/api/workflows/{wf}/executions/{body['execution_id']}/logs")
    entry = next(e for e in logs["logs"] if e["block_id"] == "c")
    assert entry["status"] == "failed" and "before" in entry["stdout"]
