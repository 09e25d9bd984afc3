"""Values made inside a run by http and llm blocks, and block errors, are made storable (CONTRACT §11).

Lone surrogates become U+FFFD, NaN/Infinity fail the block; the run is
stored and answered in strict JSON, and its logs read back.
"""

import json

import pytest

from tests import openai_server as oa
from tests.helpers import START, configure, edge
from tests.llm_fixtures import chunks_of, echo, fake_llm  # noqa: F401  (fixtures)
from tests.sse_client import SSEClient


def strict(raw):
    def refuse(name):
        raise AssertionError(f"answer is not strict JSON: {name}")
    return json.loads(raw, parse_constant=refuse)


@pytest.fixture
def settings(settings, fake_llm):
    return settings.replace(llm_base_url=fake_llm.url, llm_model="test-model")


async def run_and_read(api, wf):
    """Execute, then read the stored run and its logs back; all answers strict JSON."""
    status, body, response = await api.call("POST", f"/api/workflows/{wf}/execute", {})
    strict(response.body)
    eid = body["execution_id"]
    _, row, response = await api.call("GET", f"/api/workflows/{wf}/executions/{eid}")
    strict(response.body)
    _, logs, response = await api.call("GET", f"/api/workflows/{wf}/executions/{eid}/logs")
    strict(response.body)
    return status, body, row, {entry["block_id"]: entry for entry in logs["logs"]}


@pytest.mark.gen_test(timeout=60)
async def test_http_answers_with_lone_surrogates_or_nan(api, echo):
    # The echo server parses what it is sent and answers it back as JSON (surrogates escaped).
    def call(text):
        return {"id": "h", "type": "http", "config": {
            "url": echo.url + "/echo", "method": "POST", "body": text,
            "headers": {"Content-Type": "text/plain"}}}
    wf = await api.workflow([START, call('{"t": "a\\ud800b", "\\udc00": 1}')], [edge("start", "h")])
    status, body, row, logs = await run_and_read(api, wf)
    assert status == 200, body
    assert body["output"]["h"]["body"]["json"] == {"t": "a\ufffdb", "\ufffd": 1}
    assert row["status"] == "completed" and row["output"] == body["output"]
    assert logs["h"]["output"]["body"]["json"] == {"t": "a\ufffdb", "\ufffd": 1}

    wf = await api.workflow([START, call('{"n": [NaN, Infinity]}')], [edge("start", "h")])
    status, body, row, logs = await run_and_read(api, wf)
    assert status == 500 and body["error_code"] == "EXECUTION_FAILED", body
    assert "NaN or Infinity" in body["error"]
    assert row["status"] == "failed" and logs["h"]["status"] == "failed"


@pytest.mark.gen_test(timeout=60)
async def test_llm_text_with_a_lone_surrogate_is_stored_and_streamed_as_replacement(api, fake_llm, server):
    fake_llm.script(oa.text("", tokens=["bad ", "\ud800", " end"]))
    wf = await api.workflow([START, {"id": "ask", "type": "llm", "config": {"prompt": "hi"}}],
                            [edge("start", "ask")])
    status, body, row, logs = await run_and_read(api, wf)
    assert status == 200, body
    assert body["output"]["ask"]["content"] == "bad \ufffd end"
    assert chunks_of(server, body["execution_id"], "ask") == ["bad ", "\ufffd", " end"]
    assert row["status"] == "completed" and logs["ask"]["output"]["content"] == "bad \ufffd end"
    # Streamed: every event is valid UTF-8, strict JSON.
    fake_llm.script(oa.text("", tokens=["x\udfff"]))
    sse = await SSEClient.open(server.port, "POST", f"/api/workflows/{wf}/execute/stream", body={})
    events = await sse.until_end()
    sse.close()
    assert events[-1]["data"]["type"] == "execution_completed", events
    assert [e["data"]["chunk"] for e in events if e["data"]["type"] == "block_chunk"] == ["x\ufffd"]


@pytest.mark.gen_test(timeout=60)
async def test_a_block_error_quoting_a_lone_surrogate_fails_the_block_not_the_store(api):
    wf = await api.workflow([START, {"id": "c", "type": "code",
                                     "config": {"code": 'raise ValueError("a\\ud800b")'}}],
                            [edge("start", "c")])
    status, body, row, logs = await run_and_read(api, wf)
    assert status == 500 and body["error_code"] == "EXECUTION_FAILED", body
    assert "ValueError: a\ufffdb" in body["error"]
    assert row["status"] == "failed" and row["error"] == body["error"]
    assert logs["c"]["status"] == "failed" and "a\ufffdb" in logs["c"]["error"]
    status, health = await api.get("/api/health", key=None, timeout=1)
    assert status == 200


@configure(max_value_bytes=17 * 1024 * 1024)
@pytest.mark.gen_test(timeout=60)
async def test_code_return_values_are_bounded_by_the_setting_and_named_by_it(api):
    # The code sandbox takes what the setting allows (over its former fixed 16 MiB) ...
    size = 16 * 1024 * 1024 + 100
    wf = await api.workflow([START, {"id": "c", "type": "code", "config": {"code": f"return 'y' * {size}"}}],
                            [edge("start", "c")])
    status, body = await api.execute(wf)
    assert status == 200 and len(body["output"]["c"]) == size, status
    # ... and past it, the error names the setting.
    wf = await api.workflow([START, {"id": "c", "type": "code",
                                     "config": {"code": f"return 'y' * {17 * 1024 * 1024}"}}],
                            [edge("start", "c")])
    status, body = await api.execute(wf)
    assert status == 500 and body["error"] == (
        f"block 'c' failed: return value is larger than the limit of {17 * 1024 * 1024} bytes "
        "(ACTORFLOW_MAX_VALUE_BYTES)"), body


@pytest.mark.gen_test(timeout=60)
async def test_nul_in_a_block_error_or_stdout_is_stored_as_replacement(api):
    """PostgreSQL's text cannot hold NUL: a block's error and stdout carry U+FFFD instead, on every store."""
    wf = await api.workflow([START, {"id": "c", "type": "code", "config": {
        "code": 'print("p\\x00q")\nraise ValueError("a\\x00b")'}}], [edge("start", "c")])
    status, body, row, logs = await run_and_read(api, wf)
    assert status == 500 and body["error_code"] == "EXECUTION_FAILED", body
    assert "ValueError: a\ufffdb" in body["error"] and row["error"] == body["error"], row
    assert logs["c"]["status"] == "failed" and logs["c"]["stdout"] == "p\ufffdq\n", logs
