"""The llm block over real HTTP: the real server and a real local OpenAI-compatible one."""

import asyncio
import time

import pytest

from tests import openai_server as oa
from tests.databases import sqlite_only
from tests.helpers import edge
from tests.sse_client import SSEClient
from tests.test_store_faults import LockHolder
from tests.llm_fixtures import chunks_of, closed_port_url, fake_llm, llm_overrides  # noqa: F401

START = {"id": "start", "type": "starter"}


@pytest.fixture
def settings(settings, fake_llm, llm_overrides):
    changes = {"llm_base_url": fake_llm.url, "llm_model": "test-model", **llm_overrides}
    if changes["llm_base_url"] == "closed-port":
        changes["llm_base_url"] = closed_port_url() + "/v1"
    return settings.replace(**changes)


async def llm_workflow(api, config):
    return await api.workflow([START, {"id": "ask", "type": "llm", "config": config}],
                              [edge("start", "ask")])


@pytest.mark.gen_test(timeout=30)
async def test_llm_streams_and_reports(api, fake_llm, server):
    fake_llm.script(oa.text("Paris is the capital of France.", model="served-model"))
    wf = await llm_workflow(api, {
        "system": "You answer in {{ variables.lang }}.",
        "prompt": "What is the capital of {{ variables.country }}?",
        "model": "gpt-override", "temperature": 0.3, "max_tokens": 50})
    status, body = await api.execute(wf, {"lang": "English", "country": "France"})
    assert status == 200, body
    out = body["output"]["ask"]
    assert out["content"] == "Paris is the capital of France."
    assert out["model"] == "served-model"
    assert out["usage"] == {"prompt_tokens": 7, "completion_tokens": 6, "total_tokens": 13}

    [sent] = fake_llm.requests
    assert sent["model"] == "gpt-override"
    assert sent["messages"] == [
        {"role": "system", "content": "You answer in English."},
        {"role": "user", "content": "What is the capital of France?"}]
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["temperature"] == 0.3
    assert sent["max_tokens"] == 50
    assert "tools" not in sent
    # each token went out as a block_chunk event of the run
    assert chunks_of(server, body["execution_id"], "ask") == [
        "Paris ", "is ", "the ", "capital ", "of ", "France."]


@pytest.mark.gen_test(timeout=30)
async def test_llm_defaults_from_settings(api, fake_llm):
    fake_llm.script(oa.text("hi"))
    wf = await llm_workflow(api, {"prompt": "{{ variables.q }}"})
    status, body = await api.execute(wf, {"q": {"not": "a string"}})
    assert status == 200, body
    assert body["output"]["ask"]["content"] == "hi"
    assert body["output"]["ask"]["model"] == "test-model"
    sent = fake_llm.requests[-1]
    assert sent["model"] == "test-model"
    assert sent["messages"] == [{"role": "user", "content": '{"not": "a string"}'}]
    assert "temperature" not in sent and "max_tokens" not in sent
    assert fake_llm.headers[-1]["authorization"] == "Bearer not-needed"


@pytest.mark.parametrize("llm_overrides", [{"llm_api_key": "sk-test-123"}])
@pytest.mark.gen_test(timeout=30)
async def test_llm_sends_the_api_key(api, fake_llm):
    wf = await llm_workflow(api, {"prompt": "x"})
    status, body = await api.execute(wf, {})
    assert status == 200, body
    assert fake_llm.headers[-1]["authorization"] == "Bearer sk-test-123"


@pytest.mark.parametrize("status_code,message", [
    (500, "The model is overloaded, try later"),
    (401, "Incorrect API key provided"),
    (404, "The model `nope` does not exist"),
])
@pytest.mark.gen_test(timeout=30)
async def test_provider_errors_fail_with_their_message(api, fake_llm, status_code, message):
    fake_llm.script(oa.error(status_code, message))
    wf = await llm_workflow(api, {"prompt": "x"})
    status, body = await api.execute(wf, {})
    assert status == 500, body
    assert body["error_code"] == "EXECUTION_FAILED"
    assert body["block_id"] == "ask"
    assert message in body["error"]
    assert str(status_code) in body["error"]
    assert "Traceback" not in body["error"]
    assert len(fake_llm.requests) == 1     # the client does not retry on its own


@pytest.mark.gen_test(timeout=30)
async def test_event_stream_as_providers_write_it(api, fake_llm, server):
    # CRLF line ends, "data:" without its space, comments, one chunk over two data lines,
    # a usage with nulls, and no [DONE] before the connection closes.
    fake_llm.script(oa.raw(
        b': keep-alive\r\n\r\n'
        b'data:{"model": "m2", "choices": [{"index": 0, "delta": {"content": "Hel"}}]}\r\n\r\n'
        b'data: {"choices": [{"index": 0,\r\ndata:  "delta": {"content": "lo"}, "finish_reason": "stop"}]}\n\n'
        b'data: {"choices": [{"index": 1, "delta": {"content": "other choice"}}]}\n\n'
        b'data: {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, '
        b'"total_tokens": 3, "prompt_tokens_details": null}}\n\n'))
    wf = await llm_workflow(api, {"prompt": "x"})
    status, body = await api.execute(wf, {})
    assert status == 200, body
    assert body["output"]["ask"] == {"content": "Hello", "model": "m2",
                                     "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
    assert chunks_of(server, body["execution_id"], "ask") == ["Hel", "lo"]


@pytest.mark.gen_test(timeout=30)
async def test_an_error_in_the_stream_fails_the_block_with_its_message(api, fake_llm):
    fake_llm.script(oa.raw(b'data: {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}\n\n'
                           b'data: {"error": {"message": "the model is overloaded"}}\n\n'
                           b'data: {"choices": [{"index": 0, "delta": {"content": " there"}}]}\n\n'))
    wf = await llm_workflow(api, {"prompt": "x"})
    status, body = await api.execute(wf, {})
    assert status == 500, body
    assert "LLM provider error: the model is overloaded" in body["error"]


@pytest.mark.gen_test(timeout=30)
async def test_block_retries_apply_to_provider_errors(api, fake_llm):
    fake_llm.script(oa.error(500, "flaky"), oa.text("second time lucky"))
    wf = await llm_workflow(api, {"prompt": "x", "retries": 1, "retry_delay": 0.05})
    status, body = await api.execute(wf, {})
    assert status == 200, body
    assert body["output"]["ask"]["content"] == "second time lucky"
    assert len(fake_llm.requests) == 2


@pytest.mark.parametrize("llm_overrides", [{"llm_base_url": "closed-port"}])
@pytest.mark.gen_test(timeout=30)
async def test_connection_refused(api):
    wf = await llm_workflow(api, {"prompt": "x"})
    status, body = await api.execute(wf, {})
    assert status == 500, body
    assert "could not reach LLM provider" in body["error"]
    assert "refused" in body["error"].lower()


@pytest.mark.parametrize("llm_overrides", [{"llm_base_url": None}])
@pytest.mark.gen_test(timeout=30)
async def test_missing_base_url(api):
    wf = await llm_workflow(api, {"prompt": "x"})
    status, body = await api.execute(wf, {})
    assert status == 500, body
    assert "ACTORFLOW_LLM_BASE_URL" in body["error"]


@pytest.mark.parametrize("llm_overrides", [{"llm_model": None}])
@pytest.mark.gen_test(timeout=30)
async def test_missing_model(api, fake_llm):
    wf = await llm_workflow(api, {"prompt": "x"})
    status, body = await api.execute(wf, {})
    assert status == 500, body
    assert "ACTORFLOW_LLM_MODEL" in body["error"]
    assert fake_llm.requests == []


@pytest.mark.gen_test(timeout=30)
async def test_block_timeout_stops_a_silent_provider(api, fake_llm):
    fake_llm.script(oa.hang())
    wf = await llm_workflow(api, {"prompt": "x", "timeout": 1})
    t0 = time.monotonic()
    status, body = await api.execute(wf, {})
    assert status == 500, body
    assert "timed out" in body["error"]
    assert time.monotonic() - t0 < 10


@pytest.mark.gen_test(timeout=30)
async def test_run_timeout_cancels_a_slow_stream(api, fake_llm):
    fake_llm.script(oa.text(" ".join(["tok"] * 200), delay=0.05))
    wf = await llm_workflow(api, {"prompt": "x"})
    t0 = time.monotonic()
    status, body = await api.execute(wf, {}, timeout=1)
    assert status == 504, body
    assert time.monotonic() - t0 < 10
    status, logs = await api.get(f"/api/workflows/{wf}/executions/{body['execution_id']}/logs")
    assert {l["block_id"]: l["status"] for l in logs["logs"]}["ask"] == "cancelled"


@pytest.mark.gen_test(timeout=30)
async def test_bad_sampling_values_fail_clearly(api, fake_llm):
    wf = await llm_workflow(api, {"prompt": "x", "max_tokens": "{{ variables.n }}"})
    status, body = await api.execute(wf, {"n": "many"})
    assert status == 500, body
    assert "max_tokens" in body["error"]
    assert fake_llm.requests == []


@pytest.mark.gen_test(timeout=30)
async def test_tokens_arrive_as_block_chunk_events_over_sse(api, fake_llm):
    import json

    import tornado.httpclient
    fake_llm.script(oa.text("one two three", delay=0.02))
    wf = await llm_workflow(api, {"prompt": "count"})
    received = []
    client = tornado.httpclient.AsyncHTTPClient(force_instance=True)
    try:
        response = await client.fetch(
            f"{api.base_url}/api/workflows/{wf}/execute/stream", method="POST",
            body=json.dumps({"variables": {}}), raise_error=False, request_timeout=20,
            headers={"Authorization": f"Bearer {api.key}", "Content-Type": "application/json",
                     "Accept": "text/event-stream"},
            streaming_callback=received.append)
    finally:
        client.close()
    assert response.code == 200
    text = b"".join(received).decode()
    events = [json.loads(line[len("data:"):]) for line in text.splitlines()
              if line.startswith("data:")]
    chunks = [e["chunk"] for e in events
              if e.get("type") == "block_chunk" and e["block_id"] == "ask"]
    assert chunks == ["one ", "two ", "three"]
    kinds = [e["type"] for e in events if e.get("block_id") == "ask"]
    assert kinds == ["block_started", "block_chunk", "block_chunk", "block_chunk",
                     "block_completed"]
    assert events[-1]["type"] == "execution_completed"
    assert events[-1]["output"]["ask"]["content"] == "one two three"


@sqlite_only
@pytest.mark.gen_test(timeout=60)
async def test_tokens_keep_streaming_while_a_write_waits_on_a_locked_store(api, fake_llm, server, settings):
    # Chunks are not stored, so nothing they follow is still uncommitted once the run's
    # earlier events are out: another write stuck on the lock must not hold them back.
    fake_llm.script(oa.text("", delay=0.1, tokens=[f"t{i} " for i in range(8)]))
    wf = await llm_workflow(api, {"prompt": "hi"})
    sse = await SSEClient.open(server.port, "POST", f"/api/workflows/{wf}/execute/stream", body={})
    try:
        while (await sse.next_event(30))["data"]["type"] != "block_chunk":
            pass
        holder = LockHolder(settings.database_url[len("sqlite:///"):])
        try:
            # Waits at the writer for the busy timeout (10 s) while the lock is held.
            save = asyncio.ensure_future(api.post("/api/workflows", {"name": "waits"}))
            for _ in range(3):
                event = await sse.next_event(30)
                assert event["data"]["type"] == "block_chunk", event
            assert not save.done()
        finally:
            holder.release()
        assert (await save)[0] == 201
        await sse.until_end(30)
    finally:
        sse.close()
    chunks = [e["data"]["chunk"] for e in sse.events if e["data"]["type"] == "block_chunk"]
    assert chunks == [f"t{i} " for i in range(8)]
    assert [e["id"] for e in sse.events] == list(range(1, len(sse.events) + 1))
    assert sse.events[-1]["data"]["type"] == "execution_completed"
