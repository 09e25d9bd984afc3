"""The `code` block over HTTP: a real server, real sandbox processes."""

import asyncio
import os
import threading
import time

import pytest

from tests.conftest import KEY, OTHER_KEY
from tests.helpers import alive, configure
from tests.helpers import edge
from tests.processes import ServerProcess, wait_until
from tests.test_process import http

from actors.sandbox import SandboxPool
from tests.databases import ON_POSTGRES, database_url

START = {"id": "start", "type": "starter"}


# Which process it is: its PID namespace, pid and start time in clock ticks (a pid
# repeats across namespaces, and a namespace's number is reused once it is gone).
WHO = ("import os\nwho = [os.readlink('/proc/self/ns/pid'), os.getpid(),"
       " open('/proc/self/stat').read().rsplit(')', 1)[1].split()[19]]")
WHO_HERE = [os.readlink("/proc/self/ns/pid"), os.getpid(),
            open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19]]


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
    status, body = await api.execute(wf, {})
    assert status == 500, body  # the block's 1 s timeout failed it; the run's own 300 s did not pass
    assert body["error_code"] == "EXECUTION_FAILED" and body["block_id"] == "spin"
    assert "timed out" in body["error"]
    status, _ = await api.get("/api/workflows")
    assert status == 200
    ok = await api.workflow([START, code("calc", "return 'alive'")], [edge("start", "calc")])
    status, body = await api.execute(ok, {})
    assert status == 200 and body["output"] == {"calc": "alive"}


@pytest.mark.gen_test(timeout=30)
async def test_run_timeout_kills_running_code(api):
    mark = f"3604.{os.getpid()}5"
    wf = await api.workflow(
        [START, code("spin", f"import subprocess\nsubprocess.Popen(['sleep', '{mark}'])\n"
                             "while True:\n    pass")],
        [edge("start", "spin")])
    status, body = await api.execute(wf, {}, timeout=1)
    assert status == 504, body
    deadline = time.monotonic() + 10
    while with_arg(mark) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert with_arg(mark) == []  # the code and what it started


@pytest.mark.gen_test(timeout=30)
async def test_code_cannot_see_server_secrets(api, settings):
    # On PostgreSQL there is no database file; the environment checks still apply.
    db_path = "/nonexistent" if ON_POSTGRES else settings.database_url[len("sqlite:///"):]
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


# -- the sandbox over HTTP: one workspace's code cannot reach another's (issue 9 item 8) --------

async def workflow_of(api, key, blocks, edges):
    status, wf, _ = await api.call("POST", "/api/workflows", {"name": "wf"}, key=key)
    assert status == 201, wf
    status, body, _ = await api.call("PUT", f"/api/workflows/{wf['id']}/graph",
                                     {"blocks": blocks, "edges": edges}, key=key)
    assert status == 200, body
    return wf["id"]


async def run_code(api, key, source):
    wf = await workflow_of(api, key, [START, code("c", source)], [edge("start", "c")])
    status, body, _ = await api.call("POST", f"/api/workflows/{wf}/execute", {}, key=key)
    assert status == 200, body
    return body["output"]["c"]


SHMGET = "import ctypes\nshmget = ctypes.CDLL(None, use_errno=True).shmget\n"
DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")


@pytest.mark.gen_test(timeout=60)
async def test_what_one_workspace_leaves_another_cannot_find(api):
    key = 0x5AE00000 + (os.getpid() % 4096) * 4
    name = f"af-left-{os.getpid()}-{time.time_ns()}"
    left = await run_code(api, KEY, SHMGET + (
        f"ids = [shmget({key} + i, 300 << 20, 0o1666) for i in range(3)]\n"
        f"for d in {DIRS!r}:\n"
        f"    open(d + '/{name}', 'w').write('workspace A was here')\n"
        "return ids"))
    assert all(i >= 0 for i in left), left
    found = await run_code(api, OTHER_KEY, SHMGET + (
        "import os\n"
        f"shm = [shmget({key} + i, 0, 0o666) for i in range(3)]\n"
        f"files = [d for d in {DIRS!r} if os.path.exists(d + '/{name}')]\n"
        "return [shm, files]"))
    assert found == [[-1, -1, -1], []]
    with open("/proc/sysvipc/shm") as f:  # and none of it outlived the block here either
        assert not {int(line.split()[0]) for line in f.read().splitlines()[1:]} & \
            {key, key + 1, key + 2}
    assert not [d for d in DIRS if os.path.exists(f"{d}/{name}")]


@configure(code_concurrency=1)
@pytest.mark.gen_test(timeout=60)
async def test_code_concurrency_setting_makes_blocks_take_turns(api):
    span = ("import time\nstarted = time.monotonic()\ntime.sleep(0.3)\n"
            "return [started, time.monotonic()]")
    wf = await api.workflow([START, code("a", span), code("b", span), code("c", span)],
                            [edge("start", "a"), edge("start", "b"), edge("start", "c")])
    status, body = await api.execute(wf, {})
    assert status == 200, body
    spans = sorted(body["output"].values())
    assert all(x[1] <= y[0] for x, y in zip(spans, spans[1:])), spans


@configure(code_concurrency=1)
@pytest.mark.gen_test(timeout=60)
async def test_waiting_for_a_code_slot_counts_toward_the_block_timeout(api):
    wf = await api.workflow(
        [START, code("slow", "import time\ntime.sleep(5)\nreturn 'slow'"),
         code("quick", "import time\ntime.sleep(0.1)\nreturn 'quick'", timeout=1)],
        [edge("start", "slow"), edge("start", "quick")])
    status, body = await api.execute(wf, {})
    # One of them got the slot first; the other waited. If `quick` waited behind
    # `slow`, its 1 s ran out in the queue.
    logs = await logs_of(api, wf, body["execution_id"])
    if logs["quick"]["status"] == "failed":
        assert status == 500 and "waiting for a free code slot" in logs["quick"]["error"]
        assert logs["slow"]["status"] == "cancelled"  # the run failed, its other block stops
    else:
        assert status == 200 and body["output"] == {"slow": "slow", "quick": "quick"}


# -- a real server process: its command line, and kill -9 (issue 9 item 8) ----------------------

def sandbox_guards():
    pool = SandboxPool(size=0)
    try:
        return pool.guards
    finally:
        pool.close()


def with_arg(arg):
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if arg.encode() in f.read().split(b"\0"):
                    found.append(int(name))
        except (OSError, ValueError):
            pass
    return found


def parent_of(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith("PPid:")))


def expect_no_answer(url, key):
    try:
        http(url, "POST", {}, key)
    except OSError:
        pass  # the server was killed under it


PEEK = ("import os\n"
        "seen = {}\n"
        "for p in os.listdir('/proc'):\n"
        "    if p.isdigit():\n"
        "        try:\n"
        "            seen[p] = [open(f'/proc/{p}/{f}', 'rb').read().decode('latin-1')\n"
        "                       for f in ('cmdline', 'environ')]\n"
        "        except OSError:\n"
        "            pass\n"
        "return seen")


def test_the_server_is_invisible_and_kill_9_leaves_no_code_running(tmp_path):
    guards = sandbox_guards()
    if "pid" not in guards:
        pytest.skip("the kernel here refuses PID namespaces")
    url = database_url(tmp_path)
    secret = "af_secret_in_the_environment_00001"
    server = ServerProcess(url, env={"ACTORFLOW_API_KEY": secret})
    try:
        def workflow(source):
            status, wf = http(server.url + "/api/workflows", "POST", {"name": "wf"}, secret)
            assert status == 201, wf
            graph = {"blocks": [START, code("c", source)], "edges": [edge("start", "c")]}
            status, body = http(f"{server.url}/api/workflows/{wf['id']}/graph", "PUT", graph, secret)
            assert status == 200, body
            return f"{server.url}/api/workflows/{wf['id']}/execute"

        status, body = http(workflow(PEEK), "POST", {}, secret)
        assert status == 200, body
        seen = body["output"]["c"]
        assert list(seen) == ["1"]  # itself, nothing else: not the server, not its key
        assert secret not in "".join(seen["1"])

        mark = f"3603.{os.getpid()}4"
        sleeper = workflow("import subprocess, time\n"
                           f"subprocess.Popen(['sleep', '{mark}'], start_new_session=True)\n"
                           "time.sleep(600)")
        threading.Thread(target=expect_no_answer, args=(sleeper, secret), daemon=True).start()
        assert wait_until(lambda: with_arg(mark), 20)
        sleeping = with_arg(mark)[0]
        code_process = parent_of(sleeping)
        assert alive(sleeping) and alive(code_process)
        server.proc.kill()  # kill -9: the server gets no chance to clean up
        server.proc.wait(10)
        assert wait_until(lambda: not alive(sleeping) and not alive(code_process), 10)
        server = ServerProcess(url, env={"ACTORFLOW_API_KEY": secret})
        assert http(server.url + "/api/health")[0] == 200
        assert not alive(sleeping) and not alive(code_process) and with_arg(mark) == []
    finally:
        server.kill()
