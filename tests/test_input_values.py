"""At the door: values the store can't hold never get in; query values are plain ASCII or 400."""

import asyncio
import json
from urllib.parse import quote

import pytest

from tests.helpers import START, edge
from tests.sse_client import SSEClient
from tests.test_webhooks import armed_until, finished, fire, hooked

# Raw JSON texts no store can hold faithfully (each becomes "<bad>" in the bodies below).
UNSTORABLE = ['"a\\ud800b"', '"\\udfff"', '"x\\ud83d"', "1e999", "-1e999", "NaN", "Infinity",
              "-Infinity", "1" + "0" * 400]


def strict(text):
    """Parse an answer as strict JSON (no NaN/Infinity)."""
    def refuse(name):
        raise AssertionError(f"answer is not strict JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def graph_with(bad):
    return ('{"blocks": [{"id": "start", "type": "starter"}, {"id": "out", "type": "response", '
            '"config": {"data": {"k": %s}}, "position": {"x": 1, "y": 2}}], '
            '"edges": [{"source": "start", "target": "out"}]}' % bad)


@pytest.mark.gen_test(timeout=60)
async def test_unstorable_values_in_bodies_are_400_on_every_route(api, server):
    wf = await api.workflow([START, {"id": "out", "type": "response", "config": {"data": "ok"}}],
                            [edge("start", "out")], name="keep")
    status, before = await api.get(f"/api/workflows/{wf}")
    for bad in UNSTORABLE:
        cases = [
            ("POST", "/api/workflows", '{"name": %s}' % bad, False),
            ("POST", "/api/workflows", '{"name": "n", "description": %s}' % bad, False),
            ("PATCH", f"/api/workflows/{wf}", '{"name": %s}' % bad, False),
            ("PATCH", f"/api/workflows/{wf}", '{"description": %s}' % bad, False),
            ("PUT", f"/api/workflows/{wf}/graph", graph_with(bad), True),
            ("PUT", f"/api/workflows/{wf}/graph", graph_with(1).replace('"x": 1', '"x": %s' % bad), True),
            ("PUT", f"/api/workflows/{wf}/graph", graph_with(1).replace('"id": "out"', '"id": %s' % bad),
             True),
            ("POST", f"/api/workflows/{wf}/execute", '{"variables": {"v": [1, {"w": %s}]}}' % bad, True),
            ("POST", f"/api/workflows/{wf}/execute", '{"variables": {}, "timeout": %s}' % bad, True),
        ]
        for method, path, raw, coded in cases:
            status, body, response = await api.call(method, path, raw=raw.encode())
            text = response.body.decode("utf-8")  # the answer itself is valid UTF-8 ...
            strict(text)                           # ... and strict JSON
            assert status == 400, (method, path, raw, status, body)
            assert body["error"] and (body.get("error_code") == "VALIDATION_ERROR") == coded, body
    # A key counts too, and the path of the bad string is named.
    status, body, _ = await api.call("POST", f"/api/workflows/{wf}/execute",
                                     raw=b'{"variables": {"a": [0, {"\\ud800": 1}]}}')
    assert status == 400 and body["details"][0]["path"] == "variables.a[1].\ufffd", body
    # Nothing of it was stored: the workflow, its graph and its history are as before.
    status, after = await api.get(f"/api/workflows/{wf}")
    assert after == before
    status, listed = await api.get("/api/workflows")
    assert [w["name"] for w in listed["workflows"]] == ["keep"]
    status, runs = await api.get(f"/api/workflows/{wf}/executions")
    assert runs["total"] == 0


@pytest.mark.gen_test(timeout=60)
async def test_nul_or_over_255_in_text_kept_in_columns_is_400_but_fine_inside_json_values(api):
    """PostgreSQL's text cannot hold NUL, its varchar(255) no more: names, block ids and edge
    handles refuse either on every store."""
    wf = await api.workflow([START, {"id": "out", "type": "response", "config": {"data": "ok"}}],
                            [edge("start", "out")], name="keep")
    status, before = await api.get(f"/api/workflows/{wf}")
    nul = '"a\\u0000b"'
    for method, path, raw, coded in (
            ("POST", "/api/workflows", '{"name": %s}' % nul, False),
            ("POST", "/api/workflows", '{"name": "n", "description": %s}' % nul, False),
            ("PATCH", f"/api/workflows/{wf}", '{"name": %s}' % nul, False),
            ("PUT", f"/api/workflows/{wf}/graph", graph_with(1).replace('"id": "out"', '"id": %s' % nul), True),
            ("PUT", f"/api/workflows/{wf}/graph",
             graph_with(1).replace('"target": "out"', '"target": "out", "source_handle": %s' % nul), True)):
        for bad, says in ((nul, "NUL"), ('"%s"' % ("x" * 256), "at most 255 characters")):
            if bad != nul and "description" in raw:
                continue  # a text column: as long as the body allows
            status, body, _ = await api.call(method, path, raw=raw.replace(nul, bad).encode())
            assert status == 400 and says in body["error"], (method, path, status, body)
            assert (body.get("error_code") == "VALIDATION_ERROR") == coded, body
    assert (await api.get(f"/api/workflows/{wf}"))[1] == before
    status, body = await api.post("/api/workflows", {"name": "x" * 255, "description": "d" * 5000})
    assert status == 201 and body["name"] == "x" * 255, body
    # Inside JSON values a NUL is an escape: kept exactly, on every store.
    status, body, _ = await api.call("PUT", f"/api/workflows/{wf}/graph", raw=graph_with(nul).encode())
    assert status == 200, body
    status, body, _ = await api.call("POST", f"/api/workflows/{wf}/execute",
                                     raw=('{"variables": {%s: %s}}' % (nul, nul)).encode())
    assert status == 200 and body["output"] == {"k": "a\x00b"}, body
    status, row = await api.get(f"/api/workflows/{wf}/executions/{body['execution_id']}")
    assert row["status"] == "completed" and row["variables"] == {"a\x00b": "a\x00b"}, row


@pytest.mark.gen_test(timeout=60)
async def test_values_at_the_edge_of_storable_are_kept_exactly(api):
    # A proper surrogate pair is one character; the largest doubles are numbers.
    raw = '{"name": "\\ud83d\\ude00", "description": "1.7e308"}'
    status, wf, _ = await api.call("POST", "/api/workflows", raw=raw.encode())
    assert status == 201 and wf["name"] == "\U0001F600"
    wid = wf["id"]
    status, body, _ = await api.call("PUT", f"/api/workflows/{wid}/graph",
                                     raw=graph_with("[1.7e308, -1.7e308, 9223372036854775807, 5e-324]").encode())
    assert status == 200, body
    status, body, response = await api.call("POST", f"/api/workflows/{wid}/execute",
                                            raw=b'{"variables": {"big": 123456789012345678901234567890}}')
    assert status == 200, body
    assert strict(response.body)["output"] == {"k": [1.7e308, -1.7e308, 9223372036854775807, 5e-324]}


@pytest.mark.gen_test(timeout=60)
async def test_integers_beyond_64_bits_where_an_integer_is_expected(api):
    status, wf = await api.post("/api/workflows", {"name": "ints"})
    for block in ({"id": "l", "type": "llm", "config": {"prompt": "p", "max_tokens": 2 ** 64}},
                  {"id": "a", "type": "agent", "config": {"prompt": "p", "max_steps": 2 ** 63}},
                  {"id": "r", "type": "response", "config": {"retries": 2 ** 64}}):
        status, body = await api.put(f"/api/workflows/{wf['id']}/graph", {"blocks": [block], "edges": []})
        assert status == 400 and body["error_code"] == "VALIDATION_ERROR", body
        assert body["details"][0]["block_id"] == block["id"], body


BAD_COUNTS = [quote(v) for v in ("\uff11", "\u00b2", "\u0661", "18446744073709551616",
                                 "9999999999999999999", "-1", "+1", " 1", "1 ", "1.0", "0x10", "1e3",
                                 "1_000", "\x00", "1\n")]
BAD_COUNTS += ["+1", "%ED%A0%80", "%FF"]


@pytest.mark.gen_test(timeout=60)
async def test_query_values_are_plain_ascii_of_their_kind_or_400(api):
    wf = await api.workflow([START], [])
    for path in ("/api/workflows", f"/api/workflows/{wf}/executions"):
        for name in ("limit", "offset"):
            for value in BAD_COUNTS:
                status, body = await api.get(f"{path}?{name}={value}")
                assert status == 400 and set(body) == {"error"}, (path, name, value, status, body)
        status, body = await api.get(f"{path}?limit=999999999999999999&offset=999999999999999999")
        assert status == 200 and body["limit"] == 500 and body["offset"] == 999999999999999999
    for value in ("%20running", "running%20", "RUNNING", "%EF%BD%92unning", "%ED%A0%80", "running%00"):
        status, body = await api.get(f"/api/workflows/{wf}/executions?status={value}")
        assert status == 400 and set(body) == {"error"}, (value, body)
    # Path segments that are not valid UTF-8, or hold NUL (which PostgreSQL cannot even
    # look up), are 400 too, never 500.
    for path in ("/api/workflows/%ED%A0%80", "/api/workflows/%FF/executions", "/api/webhooks/%ED%A0%80",
                 "/api/workflows/a%00b", f"/api/workflows/{wf}/executions/a%00b",
                 f"/api/workflows/{wf}/executions/a%00b/logs", f"/api/workflows/{wf}/executions/a%00/stream",
                 "/api/webhooks/a%00b"):
        status, body, _ = await api.call("POST" if "webhooks" in path else "GET", path, raw=b"{}"
                                         if "webhooks" in path else None)
        # GET /workflows/{id} answers in the seed's structured shape, like its 404
        shape = {"error", "error_code"} if path.count("/") == 3 and "workflows" in path else {"error"}
        assert status in (400, 404) and set(body) == shape, (path, status, body)


@pytest.mark.gen_test(timeout=60)
async def test_webhook_wait_flag_and_unstorable_bodies(api):
    out = {"id": "out", "type": "response", "config": {"data": {"got": "{{ hook.body }}"}}}
    wf, hook_id, secret = await hooked(api, blocks=({"id": "hook", "type": "webhook"}, out))
    for value in ("%20true", "true%20", quote("\uff54rue"), "2", "%ED%A0%80", "yes%00"):
        status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret, query=f"?wait={value}")
        assert status == 400 and set(body) == {"error"}, (value, body)
    # Declared JSON holding what the store can't hold: 400, and the arm is still there.
    for bad in UNSTORABLE:
        status, body, _ = await fire(api, hook_id, raw=('{"x": %s}' % bad).encode(), secret=secret,
                                     headers={"Content-Type": "application/json"})
        assert status == 400 and set(body) == {"error"}, (bad, body)
    assert await armed_until(api, wf) is not None
    status, runs = await api.get(f"/api/workflows/{wf}/executions")
    assert runs["total"] == 0
    # Not declared JSON: the body is text, kept exactly as sent (storable), and the run goes ahead.
    status, body, _ = await fire(api, hook_id, raw=b'{"x": "\\ud800"}', secret=secret,
                                 headers={"Content-Type": "text/plain"}, query="?wait=TRUE")
    assert status == 200, body
    assert body["output"] == {"got": '{"x": "\\ud800"}'}
    run = await finished(api, wf, body["execution_id"])
    assert run["status"] == "completed" and run["output"] == body["output"]


@pytest.mark.gen_test(timeout=60)
async def test_the_stream_tells_unstorable_bodies_as_its_only_event(api, server):
    wf = await api.workflow([START, {"id": "out", "type": "response", "config": {"data": "ok"}}],
                            [edge("start", "out")])
    for bad in UNSTORABLE:
        client = await SSEClient.open(server.port, "POST", f"/api/workflows/{wf}/execute/stream",
                                      body=('{"variables": {"v": %s}}' % bad).encode())
        events = await client.until_end()
        client.close()
        assert client.status == 200 and len(events) == 1, (bad, events)
        assert events[0]["id"] == 0 and events[0]["data"]["type"] == "error", events
    status, runs = await api.get(f"/api/workflows/{wf}/executions")
    assert runs["total"] == 0


# -- condition expressions: checked at save, parsed once ----------------------

def condition(block_id, *expressions):
    return {"id": block_id, "type": "condition",
            "config": {"conditions": [{"id": f"c{i}", "expression": e} for i, e in enumerate(expressions)]}}


@pytest.mark.gen_test(timeout=60)
async def test_an_invalid_expression_is_refused_at_save_naming_the_block(api):
    status, wf = await api.post("/api/workflows", {"name": "cond"})
    for bad in ("start.n >", "x = 1", "a; b", "lambda: 1", "start.__class__", "open('f')", "a @ b",
                "(" * 300 + "1" + ")" * 300, "1 + " * 2000 + "1"):
        graph = {"blocks": [START, condition("ok", "start.n > 1"), condition("check", "True", bad)],
                 "edges": [edge("start", "ok"), edge("start", "check")]}
        status, body = await api.put(f"/api/workflows/{wf['id']}/graph", graph)
        assert status == 400 and body["error_code"] == "VALIDATION_ERROR", (bad, body)
        assert [(d["block_id"], d["path"]) for d in body["details"]] == [
            ("check", "blocks[2].config.conditions[1].expression")], body
    status, body = await api.get(f"/api/workflows/{wf['id']}")
    assert body["blocks"] == []


@pytest.mark.gen_test(timeout=240)
async def test_a_thousand_parallel_conditions_in_five_runs_parse_nothing_again(api, monkeypatch):
    from actors import expressions
    blocks = [START] + [condition(f"c{k}", f"start.i + {k} < 0", f"len(variables) >= {k % 3}")
                        for k in range(1000)]
    blocks.append(condition("t", "{{ start.i }} >= 0"))  # a template: parsed when rendered
    wf = await api.workflow(blocks, [edge("start", b["id"]) for b in blocks[1:]])
    parsed = []
    real_parse = expressions._parse
    monkeypatch.setattr(expressions, "_parse", lambda text: parsed.append(text) or real_parse(text))
    answers = await asyncio.gather(*(api.execute(wf, {"i": i}, timeout=200) for i in range(5)))
    for status, body in answers:
        assert status == 200 and body["status"] == "completed", body
    # Every expression was parsed at save; runs only parsed the rendered template, once per value.
    assert sorted(set(parsed)) == [f"{i} >= 0" for i in range(5)]
    status, logs = await api.get(f"/api/workflows/{wf}/executions/{answers[4][1]['execution_id']}/logs")
    outputs = {entry["block_id"]: entry["output"] for entry in logs["logs"]}
    assert outputs["c7"] == {"branch": "c1"} and outputs["t"] == {"branch": "c0"}
    assert all(entry["status"] == "completed" for entry in logs["logs"])


@pytest.mark.gen_test(timeout=120)
async def test_no_route_answers_500_to_bad_values(api, server):
    """Every route and method, with every bad query value at once and each unstorable body."""
    wf, hook_id, secret = await hooked(api)
    status, fired, _ = await fire(api, hook_id, {"x": 1}, secret=secret, query="?wait=1")
    eid = fired["execution_id"]
    paths = ["/api/health", "/api/workflows", f"/api/workflows/{wf}", f"/api/workflows/{wf}/graph",
             f"/api/workflows/{wf}/deploy", f"/api/workflows/{wf}/undeploy", f"/api/workflows/{wf}/arm",
             f"/api/workflows/{wf}/execute", f"/api/workflows/{wf}/executions",
             f"/api/workflows/{wf}/executions/{eid}", f"/api/workflows/{wf}/executions/{eid}/logs",
             f"/api/workflows/{wf}/executions/{eid}/cancel", f"/api/workflows/{wf}/executions/{eid}/stream",
             f"/api/webhooks/{hook_id}", "/api/nothing"]
    query = "?limit=%ED%A0%80&offset=%EF%BC%91&status=%20running&wait=%FF&last_event_id=%C2%B2"
    for path in paths:
        for method in ("GET", "POST", "PUT", "PATCH"):
            for bad in UNSTORABLE[:2] + UNSTORABLE[3:5]:
                status, body, response = await api.call(method, path + query,
                                                        raw=('{"name": %s}' % bad).encode())
                assert status < 500, (method, path, bad, status, body)
                if status >= 400:
                    assert body["error"] and strict(response.body)
    status, body = await api.get(f"/api/workflows/{wf}/executions/{eid}")
    assert status == 200 and body["status"] != "running"
