"""Nothing blocking runs on the IOLoop: every callback on the loop thread stays under 20 ms of CPU.

A watchdog wraps asyncio's callback runner for the loop thread and measures
each callback's CPU time (time.thread_time, so a loaded machine does not make
it fail) while a representative round of HTTP calls runs against the real
server: CRUD, saving and reading a mid-size graph, execute, stream and
re-attach, history and logs, versions, deploy and webhooks. Time the cyclic
garbage collector spends inside a callback is not counted: it runs wherever
an allocation tips it over, and in the test process (the whole suite's heap)
one full pass can take 150 ms that no code of ours asked for.
"""

import asyncio
import gc
import json
import threading
import urllib.request
import time

import pytest

from server.handlers.base import may_be_large
from tests.conftest import KEY
from tests.helpers import START, configure, edge
from tests.sse_client import SSEClient

LIMIT = 0.020  # seconds of CPU per callback
MID_SIZE = 300  # blocks


class Watchdog:
    """Times every asyncio callback run on one thread; keeps those over the limit."""

    def __init__(self, thread_id, limit=LIMIT):
        self.thread_id = thread_id
        self.limit = limit
        self.slow = []      # (CPU seconds, callback repr)
        self.count = 0
        self._original = None
        self._collecting = 0.0   # CPU the collector took on this thread (sum of passes)
        self._gc_began = None

    def _on_gc(self, phase, info):
        if threading.get_ident() != self.thread_id:
            return
        if phase == "start":
            self._gc_began = time.thread_time()
        elif self._gc_began is not None:
            self._collecting += time.thread_time() - self._gc_began
            self._gc_began = None

    def install(self):
        self._original = original = asyncio.events.Handle._run
        watchdog = self

        def timed(handle):
            if threading.get_ident() != watchdog.thread_id:
                return original(handle)
            began, collected = time.thread_time(), watchdog._collecting
            try:
                return original(handle)
            finally:
                took = time.thread_time() - began - (watchdog._collecting - collected)
                watchdog.count += 1
                if took > watchdog.limit:
                    watchdog.slow.append((took, describe(handle)))

        asyncio.events.Handle._run = timed
        gc.callbacks.append(self._on_gc)

    def assert_quick(self):
        assert not self.slow, "callbacks over 20 ms of CPU on the IOLoop:\n" + "\n".join(
            f"{took * 1000:.1f} ms {what}" for took, what in sorted(self.slow, reverse=True))

    def uninstall(self):
        asyncio.events.Handle._run = self._original
        gc.callbacks.remove(self._on_gc)


def describe(handle):
    """The callback, and for a task's step the coroutine it runs (where the time went)."""
    task = getattr(handle._callback, "__self__", None)
    coro = task.get_coro() if isinstance(task, asyncio.Task) else None
    return repr(handle)[:300] + (f" running {coro.__qualname__}" if coro is not None else "")


@pytest.fixture
def watchdog(server):
    """Installed once the server has started (start-up work is not a request)."""
    dog = Watchdog(threading.get_ident())
    dog.install()
    yield dog
    dog.uninstall()


def mid_size_graph(n=MID_SIZE):
    blocks = [START] + [{"id": f"e{i}", "type": "echo", "position": {"x": i, "y": i % 7},
                         "config": {"note": f"block {i} " + "x" * 40}} for i in range(n)]
    edges = [edge("start", f"e{i}") for i in range(n)]
    return blocks, edges


@pytest.mark.gen_test(timeout=120)
async def test_no_loop_callback_takes_over_20ms_of_cpu(api, server, watchdog):
    # CRUD
    status, wf = await api.post("/api/workflows", {"name": "watched"})
    assert status == 201, wf
    wid = wf["id"]
    assert (await api.patch(f"/api/workflows/{wid}", {"description": "d"}))[0] == 200
    assert (await api.get("/api/workflows?limit=50"))[0] == 200

    # A mid-size graph: saved, read back, versions listed, executed.
    blocks, edges = mid_size_graph()
    status, body = await api.put(f"/api/workflows/{wid}/graph", {"blocks": blocks, "edges": edges})
    assert status == 200, body
    status, body = await api.get(f"/api/workflows/{wid}")
    assert status == 200 and len(body["blocks"]) == MID_SIZE + 1
    assert (await api.get(f"/api/workflows/{wid}/versions"))[0] == 200
    status, body = await api.execute(wid, {"n": 1})
    assert status == 200 and body["status"] == "completed", body

    # A small graph: execute, stream, re-attach, history, logs.
    small = await api.workflow([START, {"id": "out", "type": "response",
                                        "config": {"data": {"v": "{{ variables.v }}"}}}],
                               [edge("start", "out")])
    for i in range(5):
        status, body = await api.execute(small, {"v": i})
        assert status == 200 and body["output"] == {"v": i}, body
    client = await SSEClient.open(server.port, "POST", f"/api/workflows/{small}/execute/stream",
                                  body={"variables": {"v": "s"}})
    events = await client.until_end()
    client.close()
    eid = events[0]["data"]["execution_id"]
    client = await SSEClient.open(server.port, "GET", f"/api/workflows/{small}/executions/{eid}/stream")
    assert await client.until_end()
    client.close()
    status, listed = await api.get(f"/api/workflows/{small}/executions?limit=20")
    assert status == 200 and listed["total"] == 6
    assert (await api.get(f"/api/workflows/{small}/executions/{eid}"))[0] == 200
    assert (await api.get(f"/api/workflows/{small}/executions/{eid}/logs"))[0] == 200

    # Deploy, arm, and a webhook call that waits for its run.
    hooked = await api.workflow([{"id": "hook", "type": "webhook"},
                                 {"id": "out", "type": "response", "config": {"data": "{{ hook.body }}"}}],
                                [edge("hook", "out")])
    assert (await api.post(f"/api/workflows/{hooked}/deploy"))[0] == 200
    assert (await api.post(f"/api/workflows/{hooked}/arm"))[0] == 200
    _, full = await api.get(f"/api/workflows/{hooked}")
    config = full["blocks"][0]["config"]
    status, body, _ = await api.call("POST", f"/api/webhooks/{config['webhook_id']}?wait=true",
                                     body={"x": 1}, key=None,
                                     headers={"X-Webhook-Secret": config["webhook_secret"]})
    assert status == 200 and body["output"] == {"x": 1}, body
    status, _, _ = await api.call("POST", f"/api/webhooks/{config['webhook_id']}", body={}, key=None,
                                  headers={"X-Webhook-Secret": config["webhook_secret"]})
    assert status == 409  # used up

    # An unknown key is looked up (a cache miss), and refused.
    assert (await api.get("/api/workflows", key="af_not_a_key_at_all_000000000000"))[0] == 401
    assert (await api.delete(f"/api/workflows/{wid}"))[0] == 200

    assert watchdog.count > 100  # it did watch the loop
    watchdog.assert_quick()


def _call(base_url, method, path, body=None):
    """One request from a thread of its own: the client's JSON work stays off the watched loop."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base_url + path, data=data, method=method, headers={
        "Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return answer.status, json.loads(answer.read())


@configure(max_body=8 * 1024 * 1024)
@pytest.mark.gen_test(timeout=120)
async def test_big_answers_are_encoded_off_the_loop(api, server, watchdog):
    wf = await api.workflow([START, {"id": "out", "type": "response", "config": {"data": "{{ variables }}"}}],
                            [edge("start", "out")])

    def calls():
        # ~1.2 MB of small values (twice in a stored run): 20-40 ms to encode, were it done on the loop.
        rows = [[i, "x"] for i in range(100_000)]
        base = f"{server.base_url}/api/workflows/{wf}"
        status, body = _call(base, "POST", "/execute", {"variables": {"rows": rows}})
        assert status == 200 and body["output"]["rows"] == rows
        eid = body["execution_id"]
        status, body = _call(base, "GET", f"/executions/{eid}")
        assert status == 200 and body["output"]["rows"] == rows and body["variables"]["rows"] == rows
        status, body = _call(base, "GET", f"/executions/{eid}/logs")
        assert status == 200 and body["logs"][-1]["output"]["rows"] == rows

    await asyncio.to_thread(calls)
    watchdog.assert_quick()


def test_may_be_large_looks_at_a_bounded_part_of_an_answer():
    assert not may_be_large({"ok": True, "rows": [[1, "x"]] * 100, "text": "y" * 1000})
    assert may_be_large({"text": "y" * 70_000})
    assert may_be_large({"rows": [[1, "x"]] * 5000})
    assert may_be_large([{"a": 1}] * 10_000_000)  # the length alone says so


def test_the_watchdog_counts_a_callbacks_own_cpu_but_not_the_collectors():
    def burn():
        until = time.thread_time() + 3 * LIMIT
        while time.thread_time() < until:
            pass

    held = [[i] for i in range(300000)]    # a heap the full pass below must walk
    loop = asyncio.new_event_loop()
    dog = Watchdog(threading.get_ident())
    dog.install()
    try:
        loop.call_soon(gc.collect)
        loop.call_soon(burn)
        loop.call_soon(loop.stop)
        loop.run_forever()
    finally:
        dog.uninstall()
        loop.close()
    assert dog._collecting > 0 and len(held) == 300000
    assert [what for _, what in dog.slow] and all("burn" in what for _, what in dog.slow), dog.slow
