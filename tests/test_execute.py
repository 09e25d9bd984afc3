import asyncio
import time

import pytest

from tests.helpers import START, configure, edge


@pytest.mark.gen_test
async def test_execute_starter_to_response(api):
    wf = await api.workflow([START, {"id": "out", "type": "response",
                                     "config": {"data": {"hi": "{{ variables.name }}", "n": "{{ start.n }}"}}}],
                            [edge("start", "out")])
    status, body = await api.execute(wf, {"name": "Ada", "n": 3})
    assert status == 200, body
    assert body["status"] == "completed"
    assert body["output"] == {"hi": "Ada", "n": 3}
    assert isinstance(body["duration_ms"], int)
    status, logs = await api.get(f"/api/workflows/{wf}/executions/{body['execution_id']}/logs")
    assert status == 200
    assert [(l["block_id"], l["status"]) for l in logs["logs"]] == [("start", "completed"), ("out", "completed")]


def sleep(block_id, seconds, **config):
    return {"id": block_id, "type": "sleep", "config": {"seconds": seconds, **config}}


@pytest.mark.gen_test
async def test_variables_input_alias_and_defaults(api):
    wf = await api.workflow([{"id": "start", "type": "starter", "config": {"inputs": [
        {"name": "text", "type": "string", "required": True},
        {"name": "count", "type": "integer", "default": 2}]}},
        {"id": "out", "type": "response", "config": {"data": "{{ variables }}"}}], [edge("start", "out")])
    status, body = await api.post(f"/api/workflows/{wf}/execute", {"input": {"text": "a"}})
    assert status == 200 and body["output"] == {"text": "a", "count": 2}
    status, body = await api.post(f"/api/workflows/{wf}/execute",
                                  {"input": {"text": "a"}, "variables": {"text": "b", "count": 5}})
    assert status == 200 and body["output"] == {"text": "b", "count": 5}
    status, body = await api.post(f"/api/workflows/{wf}/execute", {"variables": {}})
    assert status == 400 and body["error_code"] == "VALIDATION_ERROR" and "text" in body["error"]
    status, body = await api.post(f"/api/workflows/{wf}/execute", {"variables": {"text": 1}})
    assert status == 400 and body["error_code"] == "VALIDATION_ERROR"
    for bad in ({"variables": []}, {"variables": "x"}, {"input": 3}, {"timeout": 0}, {"timeout": -1},
                {"timeout": "5"}, {"timeout": True}):
        status, body = await api.post(f"/api/workflows/{wf}/execute", bad)
        assert status == 400 and body["error_code"] == "VALIDATION_ERROR", bad
    status, body, _ = await api.call("POST", f"/api/workflows/{wf}/execute", raw=b"[]")
    assert status == 400 and body["error_code"] == "VALIDATION_ERROR"
    status, body = await api.post("/api/workflows/nope/execute", {})
    assert status == 404 and body["error_code"] == "WORKFLOW_NOT_FOUND"


@pytest.mark.gen_test
async def test_no_body_means_empty_variables_and_sinks_are_the_output(api):
    wf = await api.workflow([START, {"id": "a", "type": "echo", "config": {"k": "{{ variables }}"}},
                             {"id": "b", "type": "sleep", "config": {"seconds": 0, "value": 7}}],
                            [edge("start", "a"), edge("start", "b")])
    status, body, _ = await api.call("POST", f"/api/workflows/{wf}/execute")
    assert status == 200, body
    assert body["output"]["a"]["config"] == {"k": {}}
    assert body["output"]["b"] == {"slept": 0, "value": 7}


@pytest.mark.gen_test
async def test_no_starter_is_400(api):
    wf = await api.workflow([{"id": "r", "type": "response"}])
    status, body = await api.execute(wf, {})
    assert status == 400 and body["error_code"] == "VALIDATION_ERROR"


@pytest.mark.gen_test
async def test_branches_run_concurrently(api):
    # Each `meet` block waits for the other: they can only both finish if they run at once.
    meet = {"type": "meet", "config": {"parties": 2}}
    wf = await api.workflow([START, {"id": "a", **meet}, {"id": "b", **meet},
                             {"id": "out", "type": "response", "config": {"data": ["{{ a.met }}", "{{ b.met }}"]}}],
                            [edge("start", "a"), edge("start", "b"), edge("a", "out"), edge("b", "out")])
    status, body = await api.execute(wf, {})
    assert status == 200 and body["output"] == [True, True], body


@pytest.mark.gen_test
async def test_run_timeout_is_504_and_stored(api):
    wf = await api.workflow([START, sleep("slow", 60)], [edge("start", "slow")])
    t0 = time.monotonic()
    status, body = await api.execute(wf, {}, timeout=0.5)
    took = time.monotonic() - t0
    assert status == 504, body
    assert body["error_code"] == "EXECUTION_TIMEOUT" and body["execution_id"]
    assert took < 30, took  # cut by the run's timeout, not by the block's 60 s
    status, ex = await api.get(f"/api/workflows/{wf}/executions/{body['execution_id']}")
    assert ex["status"] == "timeout"
    status, logs = await api.get(f"/api/workflows/{wf}/executions/{body['execution_id']}/logs")
    assert [(l["block_id"], l["status"]) for l in logs["logs"]] == [("start", "completed"), ("slow", "cancelled")]


@pytest.mark.gen_test
async def test_failure_is_500_with_block_id_and_cancels_the_rest(api):
    wf = await api.workflow([START, {"id": "bad", "type": "fail", "config": {"message": "nope!"}},
                             sleep("slow", 60), {"id": "after", "type": "response"}],
                            [edge("start", "bad"), edge("start", "slow"), edge("bad", "after")])
    t0 = time.monotonic()
    status, body = await api.execute(wf, {})
    assert time.monotonic() - t0 < 30  # the failure cancelled the 60 s sleep
    assert status == 500, body
    assert body["error_code"] == "EXECUTION_FAILED" and body["block_id"] == "bad"
    assert "nope!" in body["error"] and body["execution_id"]
    status, logs = await api.get(f"/api/workflows/{wf}/executions/{body['execution_id']}/logs")
    by_id = {l["block_id"]: l for l in logs["logs"]}
    assert by_id["bad"]["status"] == "failed" and by_id["bad"]["error"] == "nope!"
    assert by_id["slow"]["status"] == "cancelled"
    assert "after" not in by_id
    status, ex = await api.get(f"/api/workflows/{wf}/executions/{body['execution_id']}")
    assert ex["status"] == "failed" and "nope!" in ex["error"]


@pytest.mark.gen_test
async def test_block_timeout_fails_the_block_not_the_run_timeout(api):
    wf = await api.workflow([START, sleep("slow", 30, timeout=0.3)], [edge("start", "slow")])
    status, body = await api.execute(wf, {})
    assert status == 500 and body["block_id"] == "slow" and "timed out" in body["error"]


@pytest.mark.gen_test
async def test_continue_on_error(api):
    wf = await api.workflow([START, {"id": "bad", "type": "fail", "config": {"message": "x", "continue_on_error": True}},
                             {"id": "out", "type": "response", "config": {"data": {"got": "{{ bad.error }}"}}}],
                            [edge("start", "bad"), edge("bad", "out")])
    status, body = await api.execute(wf, {})
    assert status == 200 and body["output"] == {"got": "x"}
    status, logs = await api.get(f"/api/workflows/{wf}/executions/{body['execution_id']}/logs")
    assert logs["logs"][1]["status"] == "failed" and logs["logs"][1]["output"] == {"error": "x"}


@pytest.mark.gen_test
async def test_retries(api):
    wf = await api.workflow([START, {"id": "f", "type": "flaky", "config": {"failures": 2, "retries": 2, "retry_delay": 0.01}}],
                            [edge("start", "f")])
    status, body = await api.execute(wf, {})
    assert status == 200 and body["output"] == {"f": {"attempt": 3}}
    status, logs = await api.get(f"/api/workflows/{wf}/executions/{body['execution_id']}/logs")
    assert logs["logs"][1]["attempts"] == 3
    wf = await api.workflow([START, {"id": "f", "type": "flaky", "config": {"failures": 5, "retries": 1, "retry_delay": 0}}],
                            [edge("start", "f")])
    status, body = await api.execute(wf, {})
    assert status == 500 and "attempt 2 failed" in body["error"]


@pytest.mark.gen_test
async def test_condition_branches_and_skips(api):
    blocks = [START,
              {"id": "check", "type": "condition", "config": {"conditions": [
                  {"id": "big", "expression": "start.n > 5 and variables.mode == 'x'"},
                  {"id": "small", "expression": "start.n <= 5"}]}},
              {"id": "big_out", "type": "response", "config": {"data": "big"}},
              {"id": "small_out", "type": "response", "config": {"data": "small {{ start.n }}"}},
              {"id": "else_out", "type": "response", "config": {"data": "else"}}]
    edges = [edge("start", "check"), edge("check", "big_out", "big"), edge("check", "small_out", "small"),
             edge("check", "else_out", "else")]
    wf = await api.workflow(blocks, edges)
    status, body = await api.execute(wf, {"n": 9, "mode": "x"})
    assert body["output"] == "big"
    status, body = await api.execute(wf, {"n": 2})
    assert body["output"] == "small 2"
    status, body = await api.execute(wf, {"n": 9, "mode": "y"})
    assert body["output"] == "else"
    status, logs = await api.get(f"/api/workflows/{wf}/executions/{body['execution_id']}/logs")
    statuses = {l["block_id"]: l["status"] for l in logs["logs"]}
    assert statuses == {"start": "completed", "check": "completed", "big_out": "skipped",
                        "small_out": "skipped", "else_out": "completed"}
    assert next(l for l in logs["logs"] if l["block_id"] == "check")["output"] == {"branch": "else"}
    # an expression error fails the block, naming the problem
    status, body = await api.execute(wf, {"n": "text"})
    assert status == 500 and body["block_id"] == "check"


@pytest.mark.gen_test
async def test_bad_template_and_bad_output_fail_clearly(api):
    wf = await api.workflow([START, {"id": "out", "type": "response", "config": {"data": "{{ start.nope }}"}}],
                            [edge("start", "out")])
    status, body = await api.execute(wf, {})
    assert status == 500 and "start.nope" in body["error"] and body["block_id"] == "out"
    wf = await api.workflow([START, {"id": "bad", "type": "bad_output"}], [edge("start", "bad")])
    status, body = await api.execute(wf, {})
    assert status == 500 and "JSON" in body["error"]


@pytest.mark.gen_test
async def test_history_and_logs(api):
    wf = await api.workflow([START, {"id": "out", "type": "response", "config": {"data": 1}},
                             {"id": "bad", "type": "fail"}],
                            [edge("start", "out")])
    ids = []
    for _ in range(3):
        status, body = await api.execute(wf, {"x": 1})
        ids.append(body["execution_id"])
    status, body = await api.get(f"/api/workflows/{wf}/executions")
    assert status == 200 and body["total"] == 3
    assert [e["id"] for e in body["executions"]] == ids[::-1]
    first = body["executions"][0]
    assert set(first) >= {"id", "workflow_id", "status", "trigger", "started_at", "finished_at",
                          "duration_ms", "error"}
    assert first["trigger"] == "api" and first["status"] == "completed" and first["workflow_id"] == wf
    status, body = await api.get(f"/api/workflows/{wf}/executions?limit=1&offset=1")
    assert [e["id"] for e in body["executions"]] == [ids[1]] and body["total"] == 3
    status, body = await api.get(f"/api/workflows/{wf}/executions?status=failed")
    assert body["total"] == 0 and body["executions"] == []
    status, body = await api.get(f"/api/workflows/{wf}/executions?status=bogus")
    assert status == 400 and set(body) == {"error"}
    status, ex = await api.get(f"/api/workflows/{wf}/executions/{ids[0]}")
    assert ex["variables"] == {"x": 1} and ex["output"] == 1 and ex["status"] == "completed"
    status, logs = await api.get(f"/api/workflows/{wf}/executions/{ids[0]}/logs")
    assert logs["execution_id"] == ids[0]
    entry = logs["logs"][0]
    assert set(entry) >= {"block_id", "block_type", "status", "started_at", "finished_at", "duration_ms",
                          "input", "output", "error", "attempts"}
    assert [(l["block_id"], l["status"]) for l in logs["logs"]] == [
        ("bad", "skipped"), ("start", "completed"), ("out", "completed")]
    for path in (f"/api/workflows/{wf}/executions/nope", f"/api/workflows/{wf}/executions/nope/logs",
                 "/api/workflows/nope/executions", f"/api/workflows/nope/executions/{ids[0]}/logs"):
        status, body = await api.get(path)
        assert status == 404 and set(body) == {"error"}, path
    # an execution of another workflow is not found under this one
    wf2 = await api.workflow([START])
    status, body = await api.get(f"/api/workflows/{wf2}/executions/{ids[0]}")
    assert status == 404


@pytest.mark.gen_test
async def test_delete_cancels_running_runs_and_removes_history(api, server):
    wf = await api.workflow([START, sleep("slow", 60)], [edge("start", "slow")])
    pending = asyncio.ensure_future(api.execute(wf, {}))
    await _block_running(api, wf, "slow")
    t0 = time.monotonic()
    status, body = await api.delete(f"/api/workflows/{wf}")
    assert status == 200 and time.monotonic() - t0 < 30  # it did not wait for the 60 s sleep
    status, body = await pending
    assert status == 500 and "cancelled" in body["error"]
    status, body = await api.get(f"/api/workflows/{wf}/executions")
    assert status == 404


async def _block_running(api, wf, block_id, timeout=30):
    """Wait until the workflow's newest run has `block_id` running (its log says so)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, runs = await api.get(f"/api/workflows/{wf}/executions")
        if status == 200 and runs["executions"]:
            eid = runs["executions"][0]["id"]
            status, logs = await api.get(f"/api/workflows/{wf}/executions/{eid}/logs")
            if any(l["block_id"] == block_id and l["status"] == "running" for l in logs["logs"]):
                return eid
        await asyncio.sleep(0.02)
    raise AssertionError(f"{block_id} never started")


@pytest.mark.gen_test
async def test_a_run_sees_the_graph_it_started_with(api):
    wf = await api.workflow([START, sleep("slow", 3),
                             {"id": "out", "type": "response", "config": {"data": "old"}}],
                            [edge("start", "slow"), edge("slow", "out")])
    pending = asyncio.ensure_future(api.execute(wf, {}))
    await _block_running(api, wf, "slow")
    status, _ = await api.put(f"/api/workflows/{wf}/graph", {"blocks": [
        START, {"id": "out", "type": "response", "config": {"data": "new"}}], "edges": [edge("start", "out")]})
    assert status == 200
    status, body = await pending
    assert body["output"] == "old"
    status, body = await api.execute(wf, {})
    assert body["output"] == "new"


@pytest.mark.gen_test
async def test_many_concurrent_runs(api):
    wf = await api.workflow([START, {"id": "c", "type": "condition", "config": {"conditions": [
        {"id": "yes", "expression": "start.i >= 0"}]}},
        {"id": "out", "type": "response", "config": {"data": "{{ start.i }}"}}],
        [edge("start", "c"), edge("c", "out", "yes")])
    results = await asyncio.gather(*[api.execute(wf, {"i": i}) for i in range(40)])
    assert [body["output"] for _, body in results] == list(range(40))
    status, body = await api.get(f"/api/workflows/{wf}/executions?limit=0")
    assert body["total"] == 40


@configure(max_blocks=3)
@pytest.mark.gen_test
async def test_logs_are_paged_and_all_come_by_default(api):
    wf = await api.workflow([START, {"id": "a", "type": "response", "config": {"data": 1}},
                             {"id": "b", "type": "response", "config": {"data": 2}}],
                            [edge("start", "a"), edge("a", "b")])
    status, body = await api.execute(wf, {})
    logs_path = f"/api/workflows/{wf}/executions/{body['execution_id']}/logs"
    status, page = await api.get(logs_path)
    assert status == 200 and page["total"] == 3 and (page["limit"], page["offset"]) == (3, 0)
    assert [entry["block_id"] for entry in page["logs"]] == ["start", "a", "b"]
    status, page = await api.get(logs_path + "?limit=1&offset=1")
    assert [entry["block_id"] for entry in page["logs"]] == ["a"] and page["total"] == 3
    status, page = await api.get(logs_path + "?limit=999")
    assert page["limit"] == 3 and len(page["logs"]) == 3
    for bad in ("limit=-1", "limit=x", "offset=1.5", "limit=%EF%BC%91"):
        status, err = await api.get(f"{logs_path}?{bad}")
        assert status == 400 and set(err) == {"error"}, (bad, err)


def answering(value):
    return [START, {"id": "out", "type": "response", "config": {"data": value}}], [edge("start", "out")]


@pytest.mark.gen_test
async def test_a_workflow_of_inline_blocks_runs_from_memory_and_its_commit_checks_the_version(api, server):
    from tests.test_stream import count_starts
    seen = count_starts(server.runtime.starter, server.runtime.runs)
    wf = await api.workflow(*answering("one"))
    for _ in range(2):
        status, body = await api.execute(wf, {})
        assert status == 200 and body["output"] == "one", body
    assert seen == {"loads": 1, "from_memory": [True], "runs": 2}
    blocks, edges = answering("two")
    assert (await api.put(f"/api/workflows/{wf}/graph", {"blocks": blocks, "edges": edges}))[0] == 200
    # Ran from memory on the old graph, then withdrawn by its commit's check (nothing
    # stored), and run again on the graph read from the store.
    status, body = await api.execute(wf, {})
    assert status == 200 and body["output"] == "two", body
    assert seen == {"loads": 2, "from_memory": [True, False], "runs": 4}
    status, page = await api.get(f"/api/workflows/{wf}/executions")
    assert page["total"] == 3 and page["executions"][0]["id"] == body["execution_id"]
    assert [e["graph_version"] for e in page["executions"]] == [2, 1, 1]
    status, logs = await api.get(f"/api/workflows/{wf}/executions/{body['execution_id']}/logs")
    assert [(l["block_id"], l["status"]) for l in logs["logs"]] == [("start", "completed"), ("out", "completed")]
    assert not server.runtime.runs.live

    assert (await api.delete(f"/api/workflows/{wf}"))[0] in (200, 204)
    status, body = await api.execute(wf, {"bad": object.__name__}, timeout="soon")
    assert status == 404, body  # unknown before a bad body, as without memory


@pytest.mark.gen_test
async def test_a_workflow_with_a_block_that_acts_is_read_before_every_run(api, server):
    from tests.test_stream import count_starts
    seen = count_starts(server.runtime.starter, server.runtime.runs)
    wf = await api.workflow([START, sleep("nap", 0), {"id": "out", "type": "response", "config": {"data": 1}}],
                            [edge("start", "nap"), edge("nap", "out")])
    for _ in range(3):
        status, body = await api.execute(wf, {})
        assert status == 200, body
    # Its blocks would act before a check in the first commit: no run starts from memory.
    assert seen == {"loads": 3, "from_memory": [], "runs": 3}


@pytest.mark.gen_test
async def test_an_expression_that_changes_a_value_changes_only_its_own_copy(api):
    # A condition's expression may call a method that changes what it reads; the
    # starter's output, the run's variables and what later blocks see stay as they were.
    wf = await api.workflow([START,
                             {"id": "check", "type": "condition", "config": {"conditions": [
                                 {"id": "changed", "expression": "start.tags.append(9) == None and "
                                                                 "variables.tags.append(8) == None"}]}},
                             {"id": "out", "type": "response",
                              "config": {"data": {"start": "{{ start.tags }}", "vars": "{{ variables.tags }}"}}}],
                            [edge("start", "check"), edge("check", "out", "changed")])
    status, body = await api.execute(wf, {"tags": [1]})
    assert status == 200 and body["status"] == "completed", body
    assert body["output"] == {"start": [1], "vars": [1]}
    status, run = await api.get(f"/api/workflows/{wf}/executions/{body['execution_id']}")
    assert status == 200 and run["variables"] == {"tags": [1]}
    status, logs = await api.get(f"/api/workflows/{wf}/executions/{body['execution_id']}/logs")
    assert [(log["block_id"], log["output"]) for log in logs["logs"]] == [
        ("start", {"tags": [1]}), ("check", {"branch": "changed"}), ("out", {"start": [1], "vars": [1]})]
