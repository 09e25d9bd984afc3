"""workflow and map blocks: sub-runs linked to their parent, depth, cancel, order, errors."""

import asyncio
import json
import threading
import time

import pytest

from tests.conftest import OTHER_KEY
from tests.helpers import START, configure, edge
from tests.llm_fixtures import echo  # noqa: F401  (fixture)
from tests.test_stream import wait_for


def double_child():
    """A child that answers {"twice": item * 2, "index": index}."""
    return ([START, {"id": "calc", "type": "condition", "config": {"conditions": [
                {"id": "bad", "expression": "variables.item == 'bad'"}]}},
             {"id": "boom", "type": "fail", "config": {"message": "bad item"}},
             {"id": "out", "type": "response",
              "config": {"data": {"item": "{{ variables.item }}", "index": "{{ variables.index }}"}}}],
            [edge("start", "calc"), edge("calc", "boom", "bad"), edge("calc", "out", "else")])


def parent_of(block):
    return [START, block, {"id": "out", "type": "response", "config": {"data": f"{{{{ {block['id']} }}}}"}}], \
        [edge("start", block["id"]), edge(block["id"], "out")]


async def children_of(api, wf, parent_eid):
    status, page = await api.get(f"/api/workflows/{wf}/executions?limit=500")
    assert status == 200, page
    return [e for e in page["executions"] if e["parent_execution_id"] == parent_eid]


@pytest.mark.gen_test(timeout=60)
async def test_workflow_block_runs_child_and_links_it(api):
    child = await api.workflow([START, {"id": "out", "type": "response", "config": {
        "data": {"hello": "{{ variables.name }}", "n": "{{ variables.n }}"}}}], [edge("start", "out")])
    parent = await api.workflow(*parent_of({"id": "sub", "type": "workflow", "config": {
        "workflow_id": child, "variables": {"name": "{{ variables.who }}", "n": 3}}}))
    status, body = await api.execute(parent, {"who": "ada"})
    assert status == 200, body
    assert body["output"] == {"hello": "ada", "n": 3}
    kids = await children_of(api, child, body["execution_id"])
    assert len(kids) == 1
    kid = kids[0]
    assert kid["parent_block_id"] == "sub" and kid["status"] == "completed"
    status, one = await api.get(f"/api/workflows/{child}/executions/{kid['id']}")
    assert status == 200
    assert one["parent_execution_id"] == body["execution_id"] and one["parent_block_id"] == "sub"
    assert one["variables"] == {"name": "ada", "n": 3}
    status, top = await api.get(f"/api/workflows/{parent}/executions/{body['execution_id']}")
    assert top["parent_execution_id"] is None and top["parent_block_id"] is None

    # The child's latest graph runs: a re-save is used by the parent's next run.
    status, saved = await api.put(f"/api/workflows/{child}/graph", {"blocks": [START, {
        "id": "out", "type": "response", "config": {"data": "v2 {{ variables.name }}"}}],
        "edges": [edge("start", "out")]})
    assert status == 200 and saved["graph_version"] == 2, saved
    status, body = await api.execute(parent, {"who": "bo"})
    assert status == 200 and body["output"] == "v2 bo", body
    [kid] = await children_of(api, child, body["execution_id"])
    assert kid["graph_version"] == 2


@pytest.mark.gen_test(timeout=60)
async def test_child_failure_fails_block_and_other_workspace_is_not_found(api):
    child = await api.workflow([START, {"id": "boom", "type": "fail", "config": {"message": "kaput"}}],
                               [edge("start", "boom")])
    parent = await api.workflow(*parent_of({"id": "sub", "type": "workflow",
                                            "config": {"workflow_id": child}}))
    status, body = await api.execute(parent, {})
    assert status == 500, body
    assert body["block_id"] == "sub" and "kaput" in body["error"]
    status, logs = await api.get(f"/api/workflows/{parent}/executions/{body['execution_id']}/logs")
    sub = next(entry for entry in logs["logs"] if entry["block_id"] == "sub")
    assert sub["status"] == "failed" and "kaput" in sub["error"]

    api.key, own = OTHER_KEY, api.key
    theirs = await api.workflow([START], [])
    api.key = own
    parent = await api.workflow(*parent_of({"id": "sub", "type": "workflow",
                                            "config": {"workflow_id": theirs}}))
    status, body = await api.execute(parent, {})
    assert status == 500, body
    assert "not found" in body["error"]
    api.key = OTHER_KEY
    status, page = await api.get(f"/api/workflows/{theirs}/executions")
    api.key = own
    assert page["total"] == 0


@configure(max_depth=3)
@pytest.mark.gen_test(timeout=60)
async def test_workflow_containing_itself_stops_at_depth_limit(api):
    status, wf = await api.post("/api/workflows", {"name": "loop"})
    wf = wf["id"]
    blocks, edges = parent_of({"id": "again", "type": "workflow", "config": {"workflow_id": wf}})
    status, body = await api.put(f"/api/workflows/{wf}/graph", {"blocks": blocks, "edges": edges})
    assert status == 200, body
    status, body = await api.execute(wf, {})
    assert status == 500, body
    assert "depth limit reached (3 nested runs)" in body["error"]
    status, page = await api.get(f"/api/workflows/{wf}/executions")
    assert page["total"] == 4                       # depth 0..3, then refused
    assert {e["status"] for e in page["executions"]} == {"failed"}


@pytest.mark.gen_test(timeout=60)
async def test_parent_timeout_cancels_child(api):
    child = await api.workflow([START, {"id": "nap", "type": "code", "config": {
        "code": "import time\ntime.sleep(30)\nreturn 1"}}], [edge("start", "nap")])
    parent = await api.workflow(*parent_of({"id": "sub", "type": "workflow",
                                            "config": {"workflow_id": child}}))
    started = time.monotonic()
    status, body = await api.execute(parent, {}, timeout=1.5)
    assert status == 504, body

    async def child_ended():
        kids = await children_of(api, child, body["execution_id"])
        return kids if kids and kids[0]["status"] != "running" else None

    kids = await wait_for(child_ended, timeout=20)
    assert kids[0]["status"] == "cancelled"
    assert time.monotonic() - started < 25          # well before the child's 30 s sleep


@pytest.mark.gen_test(timeout=60)
async def test_map_outputs_in_order_and_streams_progress(api):
    child = await api.workflow(*double_child())
    items = [f"x{i}" for i in range(12)]
    parent = await api.workflow(*parent_of({"id": "each", "type": "map", "config": {
        "items": "{{ variables.list }}", "workflow_id": child, "concurrency": 3}}))
    status, body, response = await api.call("POST", f"/api/workflows/{parent}/execute/stream",
                                            {"variables": {"list": items}})
    assert status == 200
    events = [json.loads(line[5:]) for line in response.body.decode().splitlines()
              if line.startswith("data:")]
    done = events[-1]
    assert done["type"] == "execution_completed", done
    assert done["output"] == [{"item": f"x{i}", "index": i} for i in range(12)]
    chunks = [e["chunk"] for e in events if e["type"] == "block_chunk" and e["block_id"] == "each"]
    assert sorted(c["index"] for c in chunks) == list(range(12))
    assert {c["status"] for c in chunks} == {"completed"}
    kids = await children_of(api, child, done["execution_id"])
    assert len(kids) == 12 and {k["parent_block_id"] for k in kids} == {"each"}
    assert sorted(k["parent_index"] for k in kids) == list(range(12))


@pytest.mark.gen_test(timeout=60)
async def test_map_on_error_fail_and_collect(api):
    child = await api.workflow(*double_child())
    items = ["a", "bad", "c", "d", "e", "f", "g", "h"]
    failing = await api.workflow(*parent_of({"id": "each", "type": "map", "config": {
        "items": items, "workflow_id": child, "concurrency": 1}}))
    status, body = await api.execute(failing, {})
    assert status == 500, body
    assert body["block_id"] == "each" and "item 1" in body["error"] and "bad item" in body["error"]
    kids = await children_of(api, child, body["execution_id"])
    assert len(kids) == 2                           # the rest never started

    collecting = await api.workflow(*parent_of({"id": "each", "type": "map", "config": {
        "items": items, "workflow_id": child, "on_error": "collect"}}))
    status, _, response = await api.call("POST", f"/api/workflows/{collecting}/execute/stream", {})
    assert status == 200
    events = [json.loads(line[5:]) for line in response.body.decode().splitlines() if line.startswith("data:")]
    chunks = {e["chunk"]["index"]: e["chunk"]["status"] for e in events if e["type"] == "block_chunk"}
    assert chunks == {i: "failed" if i == 1 else "completed" for i in range(8)}
    assert events[-1]["type"] == "execution_completed", events[-1]
    status, body = await api.execute(collecting, {})
    assert status == 200, body
    out = body["output"]
    assert len(out) == 8 and "bad item" in out[1]["error"]
    assert out[0] == {"item": "a", "index": 0} and out[7] == {"item": "h", "index": 7}


@configure(max_map_items=5)
@pytest.mark.gen_test(timeout=60)
async def test_map_refuses_too_many_items_and_non_lists(api):
    child = await api.workflow(*double_child())
    wf = await api.workflow(*parent_of({"id": "each", "type": "map", "config": {
        "items": "{{ variables.list }}", "workflow_id": child}}))
    status, body = await api.execute(wf, {"list": list(range(6))})
    assert status == 500 and "more than the limit of 5" in body["error"], body
    status, body = await api.execute(wf, {"list": {"a": 1}})
    assert status == 500 and "must resolve to a list" in body["error"], body
    status, body = await api.execute(wf, {"list": []})
    assert status == 200 and body["output"] == [], body
    status, page = await api.get(f"/api/workflows/{child}/executions")
    assert page["total"] == 0


@pytest.mark.gen_test(timeout=60)
async def test_map_default_limit_is_ten_thousand_items(api):
    child = await api.workflow(*double_child())
    wf = await api.workflow(*parent_of({"id": "each", "type": "map", "config": {
        "items": "{{ variables.list }}", "workflow_id": child}}))
    status, body = await api.execute(wf, {"list": list(range(10001))})
    assert status == 500 and "10001 entries, more than the limit of 10000" in body["error"], body
    status, page = await api.get(f"/api/workflows/{child}/executions")
    assert page["total"] == 0


@pytest.mark.gen_test(timeout=30)
async def test_config_checked_at_save(api):
    status, wf = await api.post("/api/workflows", {"name": "bad"})
    for block, key in [({"id": "w", "type": "workflow", "config": {}}, "workflow_id"),
                       ({"id": "w", "type": "workflow", "config": {"workflow_id": "x", "variables": [1]}},
                        "variables"),
                       ({"id": "m", "type": "map", "config": {"workflow_id": "x"}}, "items"),
                       ({"id": "m", "type": "map", "config": {"workflow_id": "x", "items": 5}}, "items"),
                       ({"id": "m", "type": "map", "config": {"workflow_id": "x", "items": [],
                                                              "concurrency": 0}}, "concurrency"),
                       ({"id": "m", "type": "map", "config": {"workflow_id": "x", "items": [],
                                                              "on_error": "skip"}}, "on_error")]:
        status, body = await api.put(f"/api/workflows/{wf['id']}/graph",
                                     {"blocks": [START, block], "edges": []})
        assert status == 400, (block, body)
        assert body["error_code"] == "VALIDATION_ERROR"
        assert any(d.get("block_id") == block["id"] and key in d["path"] for d in body["details"]), body


def gated_child(echo, gate):
    """A child whose http block waits at the echo server's gate until the test opens it."""
    return ([START, {"id": "wait", "type": "http", "config": {
                "url": echo.url + f"/gate/{gate}?tag={{{{ variables.index }}}}", "timeout": 60}},
             {"id": "out", "type": "response", "config": {"data": "{{ variables.index }}"}}],
            [edge("start", "wait"), edge("wait", "out")])


async def running_execution(api, wf):
    async def one():
        status, page = await api.get(f"/api/workflows/{wf}/executions")
        return page["executions"][0] if page["executions"] else None
    return await wait_for(one, timeout=30)


@pytest.mark.gen_test(timeout=90)
async def test_cancelling_the_parent_cancels_its_children(api, echo):
    for gate, running, block in (
            ("one", 1, {"id": "sub", "type": "workflow", "config": {"variables": {"index": 9}}}),
            ("many", 2, {"id": "sub", "type": "map", "config": {"items": [0, 1, 2, 3, 4, 5], "concurrency": 2}})):
        child = await api.workflow(*gated_child(echo, gate))
        block["config"]["workflow_id"] = child
        parent = await api.workflow(*parent_of(block))
        call = asyncio.ensure_future(api.execute(parent, {}))
        await wait_for(lambda: len(echo.held(gate)) == running, timeout=30)
        top = await running_execution(api, parent)
        status, body = await api.post(f"/api/workflows/{parent}/executions/{top['id']}/cancel")
        assert status == 200 and body["status"] == "cancelled", body
        status, body = await call
        assert status == 500 and "cancelled" in body["error"], body

        async def children_ended():
            kids = await children_of(api, child, top["id"])
            return kids if kids and all(k["status"] != "running" for k in kids) else None

        kids = await wait_for(children_ended, timeout=30)
        assert [k["status"] for k in kids] == ["cancelled"] * running, kids   # the rest never started
        assert len(echo.held(gate)) == running   # cancelled while their http calls still waited
        echo.open_gate(gate)


@pytest.mark.gen_test(timeout=90)
async def test_map_runs_four_items_at_once_by_default(api, echo):
    child = await api.workflow(*gated_child(echo, "m"))
    parent = await api.workflow(*parent_of({"id": "each", "type": "map", "config": {
        "items": list(range(10)), "workflow_id": child}}))
    call = asyncio.ensure_future(api.execute(parent, {}))
    await wait_for(lambda: len(echo.held("m")) == 4, timeout=30)
    top = await running_execution(api, parent)
    await asyncio.sleep(0.5)        # room for a fifth item to start, were the limit broken
    assert sorted(echo.held("m"), key=int) == ["0", "1", "2", "3"]
    assert len(await children_of(api, child, top["id"])) == 4
    echo.open_gate("m")
    status, body = await call
    assert status == 200 and body["output"] == list(range(10)), body
    assert echo.most_held["m"] == 4


@pytest.mark.gen_test(timeout=300)
async def test_map_of_a_thousand_items_at_concurrency_16(api):
    """Threads grow with concurrency, not with items (time and peak threads: docs/performance.md)."""
    child = await api.workflow([START, {"id": "out", "type": "response", "config": {
        "data": {"n": "{{ variables.item }}", "i": "{{ variables.index }}"}}}], [edge("start", "out")])
    parent = await api.workflow(*parent_of({"id": "each", "type": "map", "config": {
        "items": "{{ variables.list }}", "workflow_id": child, "concurrency": 16}}))
    peak, stop = [threading.active_count()], threading.Event()

    def sample():
        while not stop.wait(0.005):
            peak[0] = max(peak[0], threading.active_count())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        status, body, _ = await api.call("POST", f"/api/workflows/{parent}/execute",
                                         {"variables": {"list": [f"x{i}" for i in range(1000)]}}, timeout=240)
    finally:
        stop.set()
        sampler.join()
    assert status == 200, body
    assert body["output"] == [{"n": f"x{i}", "i": i} for i in range(1000)]
    status, page = await api.get(f"/api/workflows/{child}/executions?limit=1")
    assert page["total"] == 1000
    assert peak[0] < 200, peak      # a thread per item (or per finished item) would pass 1,000


@pytest.mark.gen_test(timeout=90)
async def test_a_retried_map_reruns_failed_items_only(api, echo):
    """Each item's first call fails: every retry takes the completed items as they are and reruns the failed one."""
    child = await api.workflow([START, {"id": "call", "type": "http", "config": {
        "url": echo.url + "/flaky/{{ variables.item }}/1"}},
        {"id": "out", "type": "response", "config": {"data": "{{ variables.item }}"}}],
        [edge("start", "call"), edge("call", "out")])
    parent = await api.workflow(*parent_of({"id": "each", "type": "map", "config": {
        "items": ["a", "b", "c"], "workflow_id": child, "concurrency": 1, "retries": 3, "retry_delay": 0}}))
    status, body = await api.execute(parent, {})
    assert status == 200 and body["output"] == ["a", "b", "c"], body
    assert sorted(r["path"] for r in echo.requests) == [f"/flaky/{x}/1" for x in "aabbcc"]
    kids = await children_of(api, child, body["execution_id"])
    assert sorted((k["parent_index"], k["status"]) for k in kids) == [
        (i, s) for i in range(3) for s in ("completed", "failed")]
    status, logs = await api.get(f"/api/workflows/{parent}/executions/{body['execution_id']}/logs")
    assert next(e for e in logs["logs"] if e["block_id"] == "each")["attempts"] == 4

    # A workflow block's retry runs its failed child again too.
    parent = await api.workflow(*parent_of({"id": "sub", "type": "workflow", "config": {
        "workflow_id": child, "variables": {"item": "w"}, "retries": 1, "retry_delay": 0}}))
    status, body = await api.execute(parent, {})
    assert status == 200 and body["output"] == "w", body
    kids = await children_of(api, child, body["execution_id"])
    assert sorted(k["status"] for k in kids) == ["completed", "failed"]
