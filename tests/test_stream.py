"""SSE: /execute/stream and re-attaching, over real HTTP with streaming clients."""

import asyncio
import json
import time

import pytest
import tornado.httpclient
import tornado.iostream

from server.sse import Wake
from tests.conftest import KEY, OTHER_KEY
from tests.helpers import START, configure, edge, wait_for
from tests.sse_client import SSEClient, types


def chunks_graph(parts=("Hel", "lo", " world"), delay=0.02):
    starter = {"id": "start", "type": "starter",
               "config": {"inputs": [{"name": "name", "type": "string", "default": "anon"}]}}
    return ([starter,
             {"id": "ch", "type": "chunks", "config": {"chunks": list(parts), "delay": delay}},
             {"id": "out", "type": "response",
              "config": {"data": {"text": "{{ ch.text }}", "who": "{{ variables.name }}"}}}],
            [edge("start", "ch"), edge("ch", "out")])


async def stream(server, wf, body=None, **kw):
    return await SSEClient.open(server.port, "POST", f"/api/workflows/{wf}/execute/stream",
                                body={} if body is None else body, **kw)


async def reattach(server, wf, eid, query="", **kw):
    return await SSEClient.open(server.port, "GET",
                                f"/api/workflows/{wf}/executions/{eid}/stream{query}", **kw)


async def finished_execution(api, wf, eid, timeout=15.0):
    async def check():
        status, body = await api.get(f"/api/workflows/{wf}/executions/{eid}")
        return body if status == 200 and body["status"] != "running" else None
    return await wait_for(check, timeout, 0.05)


def assert_sse_headers(client):
    assert client.status == 200
    assert client.headers["content-type"].split(";")[0] == "text/event-stream"
    assert client.headers["cache-control"] == "no-cache"
    assert client.headers["x-accel-buffering"] == "no"


def assert_well_formed(events):
    ids = [e["id"] for e in events]
    assert ids == sorted(set(ids)) and all(isinstance(i, int) and i >= 1 for i in ids), ids


# -- the happy path ------------------------------------------------------------


@pytest.mark.gen_test(timeout=30)
async def test_stream_events_in_order_with_fields(api, server):
    blocks, edges = chunks_graph()
    wf = await api.workflow(blocks, edges)
    client = await stream(server, wf, {"variables": {"name": "Ada"}})
    assert_sse_headers(client)
    events = await client.until_end()
    client.close()

    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    got = [(e["data"]["type"], e["data"].get("block_id")) for e in events]
    assert got == [
        ("execution_started", None),
        ("block_started", "start"), ("block_completed", "start"),
        ("block_started", "ch"),
        ("block_chunk", "ch"), ("block_chunk", "ch"), ("block_chunk", "ch"),
        ("block_completed", "ch"),
        ("block_started", "out"), ("block_completed", "out"),
        ("execution_completed", None),
    ]
    data = [e["data"] for e in events]
    eid = data[0]["execution_id"]
    assert data[0] == {"type": "execution_started", "execution_id": eid, "workflow_id": wf}
    assert data[1]["block_type"] == "starter" and data[3]["block_type"] == "chunks"
    assert [d["chunk"] for d in data if d["type"] == "block_chunk"] == ["Hel", "lo", " world"]
    ch_done = data[7]
    assert ch_done["output"] == {"text": "Hello world"} and isinstance(ch_done["duration_ms"], int)
    last = data[-1]
    assert last["execution_id"] == eid and isinstance(last["duration_ms"], int)
    assert last["output"] == {"text": "Hello world", "who": "Ada"}

    # The same graph through /execute answers the same output.
    status, sync = await api.execute(wf, {"name": "Ada"})
    assert status == 200 and sync["output"] == last["output"]

    # Stored, with trigger "stream"; the wire format is exactly id/data/blank line.
    row = await finished_execution(api, wf, eid)
    assert row["status"] == "completed" and row["trigger"] == "stream"
    assert row["output"] == last["output"]
    first = client.raw.split(b"\n\n")[0].decode()
    assert first.startswith("id: 1\ndata: {") and first.count("\n") == 1


@pytest.mark.gen_test(timeout=30)
async def test_standard_streaming_client_and_legacy_input(api, server):
    """tornado's own client with streaming_callback sees events as they happen."""
    blocks, edges = chunks_graph(("a", "b"), delay=0.3)
    wf = await api.workflow(blocks, edges)
    received, times = [], []

    def on_data(chunk):
        received.append(chunk)
        times.append(time.monotonic())

    client = tornado.httpclient.AsyncHTTPClient(force_instance=True)
    try:
        t0 = time.monotonic()
        response = await client.fetch(
            f"{server.base_url}/api/workflows/{wf}/execute/stream", method="POST",
            body=json.dumps({"input": {"name": "Bob"}}), streaming_callback=on_data,
            headers={"X-API-Key": KEY, "Content-Type": "application/json"}, request_timeout=30)
    finally:
        client.close()
    assert response.code == 200
    assert response.headers["Content-Type"].split(";")[0] == "text/event-stream"
    body = b"".join(received).decode()
    frames = [f for f in body.split("\n\n") if f and not f.startswith(":")]
    events = [json.loads(f.split("\ndata: ", 1)[1]) for f in frames]
    assert events[-1]["type"] == "execution_completed"
    assert events[-1]["output"] == {"text": "ab", "who": "Bob"}
    # It arrived progressively, not in one piece at the end.
    assert len(received) > 1 and times[0] - t0 < times[-1] - t0 - 0.3


@pytest.mark.gen_test(timeout=30)
async def test_skipped_blocks_and_sink_output(api, server):
    blocks = [START,
              {"id": "cond", "type": "condition",
               "config": {"conditions": [{"id": "big", "expression": "start.n > 5"}]}},
              {"id": "yes", "type": "echo", "config": {"v": "big"}},
              {"id": "no", "type": "echo", "config": {"v": "small"}}]
    edges = [edge("start", "cond"), edge("cond", "yes", "big"), edge("cond", "no", "else")]
    wf = await api.workflow(blocks, edges)
    client = await stream(server, wf, {"variables": {"n": 1}})
    events = await client.until_end()
    client.close()
    assert_well_formed(events)
    skipped = [e["data"] for e in events if e["data"]["type"] == "block_skipped"]
    assert [s["block_id"] for s in skipped] == ["yes"]
    status, sync = await api.execute(wf, {"n": 1})
    assert status == 200
    assert events[-1]["data"]["type"] == "execution_completed"
    assert events[-1]["data"]["output"] == sync["output"]
    assert set(sync["output"]) == {"no"}


# -- errors --------------------------------------------------------------------


@pytest.mark.gen_test(timeout=30)
async def test_auth_is_checked_before_any_stream(api, server):
    wf = await api.workflow(*chunks_graph())
    for key in (None, "af_not_a_key"):
        client = await stream(server, wf, key=key)
        events = await client.until_end()
        client.close()
        assert client.status == 401
        assert client.headers["content-type"].startswith("application/json")
        assert events == []
        assert set(json.loads(client.body)) == {"error"}
    status, body = await api.post(f"/api/workflows/{wf}/execute/stream", {}, key=None)
    assert status == 401 and set(body) == {"error"}


async def only_error_event(server, wf, body=None, raw=None, key=KEY):
    client = await SSEClient.open(server.port, "POST", f"/api/workflows/{wf}/execute/stream",
                                  body=raw if raw is not None else ({} if body is None else body),
                                  key=key)
    assert_sse_headers(client)
    events = await client.until_end()
    client.close()
    assert len(events) == 1, events
    data = events[0]["data"]
    assert data["type"] == "error" and isinstance(data["error"], str) and data["error"]
    assert "execution_id" not in data and "error_code" not in data
    return data


@pytest.mark.gen_test(timeout=30)
async def test_unknown_workflow_is_the_only_event(api, server):
    await only_error_event(server, "no-such-workflow")
    wf = await api.workflow(*chunks_graph())
    # Another workspace's workflow is unknown too.
    await only_error_event(server, wf, key=OTHER_KEY)
    status, body = await api.get(f"/api/workflows/{wf}/executions")
    assert body["total"] == 0


@pytest.mark.gen_test(timeout=30)
async def test_validation_errors_are_the_only_event(api, server):
    starter = {"id": "start", "type": "starter",
               "config": {"inputs": [{"name": "text", "type": "string", "required": True}]}}
    wf = await api.workflow([starter, {"id": "out", "type": "response", "config": {"data": 1}}],
                            [edge("start", "out")])
    await only_error_event(server, wf, raw=b"{not json")
    await only_error_event(server, wf, raw=b"[1, 2]")
    await only_error_event(server, wf, {"variables": [1]})
    await only_error_event(server, wf, {"variables": {"text": "x"}, "timeout": -1})
    await only_error_event(server, wf, {"variables": {"text": "x"}, "timeout": "soon"})
    data = await only_error_event(server, wf, {"variables": {}})
    assert "text" in data["error"]
    await only_error_event(server, wf, {"variables": {"text": 5}})
    no_starter = await api.workflow([{"id": "e", "type": "echo"}], [])
    await only_error_event(server, no_starter, {})
    for w in (wf, no_starter):
        status, body = await api.get(f"/api/workflows/{w}/executions")
        assert body["total"] == 0
    # The same body works once it is valid.
    client = await stream(server, wf, {"variables": {"text": "ok"}})
    events = await client.until_end()
    client.close()
    assert types(events)[-1] == "execution_completed"


@pytest.mark.gen_test(timeout=30)
async def test_failed_run_ends_with_block_failed_then_error(api, server):
    wf = await api.workflow([START, {"id": "bad", "type": "fail", "config": {"message": "kaput"}},
                             {"id": "out", "type": "response", "config": {"data": 1}}],
                            [edge("start", "bad"), edge("bad", "out")])
    client = await stream(server, wf)
    events = await client.until_end()
    client.close()
    assert_well_formed(events)
    assert types(events)[-2:] == ["block_failed", "error"]
    failed, error = events[-2]["data"], events[-1]["data"]
    assert failed["block_id"] == "bad" and "kaput" in failed["error"]
    eid = events[0]["data"]["execution_id"]
    assert error["execution_id"] == eid and error["block_id"] == "bad"
    assert "kaput" in error["error"] and "error_code" not in error
    row = await finished_execution(api, wf, eid)
    assert row["status"] == "failed" and row["trigger"] == "stream"


@pytest.mark.gen_test(timeout=30)
async def test_timeout_error_event_has_error_code(api, server):
    wf = await api.workflow([START, {"id": "nap", "type": "sleep", "config": {"seconds": 10}}],
                            [edge("start", "nap")])
    client = await stream(server, wf, {"timeout": 0.3})
    events = await client.until_end()
    client.close()
    assert_well_formed(events)
    error = events[-1]["data"]
    assert error["type"] == "error" and error["error_code"] == "EXECUTION_TIMEOUT"
    eid = events[0]["data"]["execution_id"]
    assert error["execution_id"] == eid
    row = await finished_execution(api, wf, eid)
    assert row["status"] == "timeout"


# -- keep-alive, disconnects, slow readers -------------------------------------


@pytest.mark.gen_test(timeout=30)
async def test_keepalive_comments_while_quiet(api, server, settings):
    assert settings.keepalive_interval == 0.5
    wf = await api.workflow([START, {"id": "nap", "type": "sleep", "config": {"seconds": 2.2}}],
                            [edge("start", "nap")])
    client = await stream(server, wf)
    events = await client.until_end()
    client.close()
    assert types(events)[-1] == "execution_completed"
    comments = [t for t, text in client.comments]
    assert all(text == ": keep-alive" for _, text in client.comments)
    assert len(comments) >= 2, client.comments
    # Regular while quiet: 0.5 s apart, bounded loosely since the machine is shared.
    gaps = [b - a for a, b in zip(comments, comments[1:])]
    assert all(g < 5 for g in gaps), gaps


@pytest.mark.gen_test(timeout=30)
async def test_disconnect_mid_run_does_not_stop_it(api, server):
    wf = await api.workflow([START, {"id": "nap", "type": "sleep", "config": {"seconds": 2.0, "value": 7}},
                             {"id": "out", "type": "response", "config": {"data": "{{ nap.value }}"}}],
                            [edge("start", "nap"), edge("nap", "out")])
    client = await stream(server, wf)
    first = await client.next_event()
    eid = first["data"]["execution_id"]
    await wait_for(lambda: server.runtime.runs.get(eid).listeners)
    client.close()
    run = server.runtime.runs.get(eid)
    # The server lets go of the connection at once, long before the run ends.
    await wait_for(lambda: not run.listeners, timeout=1.0)
    assert not run.over
    row = await finished_execution(api, wf, eid)
    assert row["status"] == "completed" and row["output"] == 7


@pytest.mark.gen_test(timeout=60)
async def test_slow_reader_is_dropped_without_slowing_others(api, server):
    # 160 chunks of 64 KiB each (about 10 MB), far more than socket buffers and the queue hold.
    wf = await api.workflow([START, {"id": "ch", "type": "chunks",
                                     "config": {"chunks": ["{{ variables.big }}"] * 160, "delay": 0.01}},
                             {"id": "out", "type": "response", "config": {"data": "done"}}],
                            [edge("start", "ch"), edge("ch", "out")])
    quick = await api.workflow([START, {"id": "out", "type": "response", "config": {"data": 1}}],
                               [edge("start", "out")])
    # A client that sends its request and never reads a byte.
    slow = await stream(server, wf, {"variables": {"big": "x" * 65536}}, rcvbuf=4096, read=False)
    eid = await wait_for(lambda: next(iter(server.runtime.runs.live), None))
    run = server.runtime.runs.get(eid)
    sse = next(iter(await wait_for(lambda: set(run.listeners)))).__self__
    # Once its writer is stuck (events queue up, or it was already cut off)...
    await wait_for(lambda: sse.queued or sse.dropped)
    # ...other requests are served as usual,
    for _ in range(3):
        t0 = time.monotonic()
        status, body = await api.execute(quick)
        assert status == 200 and body["output"] == 1
        assert time.monotonic() - t0 < 10  # not held behind the stuck writer (generous: a loaded machine)
    # the run is not held back (160 x 10 ms of waiting; generous bound),
    await run.finished
    row = await finished_execution(api, wf, eid)
    assert row["status"] == "completed", row
    assert row["duration_ms"] < 15000
    # and the slow client was cut off: its listener and queue are gone, its socket closed.
    assert not run.listeners
    assert sse.dropped and sse.closed
    assert not sse.pending and sse.queued == sse.queued_bytes == 0
    # What it does read is whole events then the end: it can re-attach with the last id.
    got = b""
    try:
        while True:
            got += await asyncio.wait_for(slow.stream.read_bytes(1 << 20, partial=True), 10)
    except tornado.iostream.StreamClosedError:
        pass
    slow.close()
    assert got.startswith(b"HTTP/1.1 200")
    assert b"execution_completed" not in got


# -- re-attaching --------------------------------------------------------------


@pytest.mark.gen_test(timeout=30)
async def test_reattach_to_a_live_run(api, server):
    wf = await api.workflow(*chunks_graph([f"c{i}" for i in range(6)], delay=0.15))
    client = await stream(server, wf)
    seen = [await client.next_event() for _ in range(5)]
    eid = seen[0]["data"]["execution_id"]

    full = await reattach(server, wf, eid)
    assert_sse_headers(full)
    by_header = await reattach(server, wf, eid, headers={"Last-Event-ID": "3"})
    by_query = await reattach(server, wf, eid, "?last_event_id=4")
    both = await reattach(server, wf, eid, "?last_event_id=9", headers={"Last-Event-ID": "2"})

    original = seen + await client.until_end()
    client.close()
    assert types(original)[-1] == "execution_completed"
    assert types(original).count("block_chunk") == 6
    results = {}
    for name, c in (("full", full), ("header", by_header), ("query", by_query), ("both", both)):
        results[name] = await c.until_end()
        c.close()
    assert results["full"] == original
    assert results["header"] == original[3:]
    assert results["query"] == original[4:]
    assert results["both"] == original[2:]


@pytest.mark.gen_test(timeout=30)
async def test_reattach_to_a_finished_run_within_retention(api, server):
    wf = await api.workflow(*chunks_graph())
    client = await stream(server, wf)
    original = await client.until_end()
    client.close()
    eid = original[0]["data"]["execution_id"]
    again = await reattach(server, wf, eid)
    assert await again.until_end() == original
    again.close()
    last = original[-1]["id"]
    tail = await reattach(server, wf, eid, headers={"Last-Event-ID": str(last - 2)})
    assert await tail.until_end() == original[-2:]
    tail.close()
    done = await reattach(server, wf, eid, headers={"Last-Event-ID": str(last)})
    assert_sse_headers(done)
    assert await done.until_end() == []
    done.close()


class TestAfterRetention:
    @pytest.fixture
    def settings(self, settings):
        return settings.replace(chunk_retention=0.2)

    @pytest.mark.gen_test(timeout=30)
    async def test_reattach_replays_stored_events_without_chunks(self, api, server):
        wf = await api.workflow(*chunks_graph())
        client = await stream(server, wf)
        original = await client.until_end()
        client.close()
        eid = original[0]["data"]["execution_id"]
        await wait_for(lambda: server.runtime.runs.get(eid) is None, timeout=5)
        again = await reattach(server, wf, eid)
        replay = await again.until_end()
        again.close()
        assert replay == [e for e in original if e["data"]["type"] != "block_chunk"]
        # Ids are the run's own: a chunk's id is a fine Last-Event-ID.
        chunk_id = next(e["id"] for e in original if e["data"]["type"] == "block_chunk")
        tail = await reattach(server, wf, eid, f"?last_event_id={chunk_id}")
        assert await tail.until_end() == [e for e in original[chunk_id:]
                                          if e["data"]["type"] != "block_chunk"]
        tail.close()


@pytest.mark.gen_test(timeout=30)
async def test_reattach_follows_stored_events_of_a_run_not_live_here(api, server):
    """A run owned by another process sharing the database: follow its stored events."""
    wf = await api.workflow([START, {"id": "nap", "type": "sleep", "config": {"seconds": 1.2}},
                             {"id": "out", "type": "response", "config": {"data": "done"}}],
                            [edge("start", "nap"), edge("nap", "out")])
    client = await stream(server, wf)
    first = await client.next_event()
    eid = first["data"]["execution_id"]
    await client.next_event()
    client.close()
    run = server.runtime.runs.live.pop(eid)  # as if another process ran it
    assert not run.over
    follower = await reattach(server, wf, eid)
    events = await follower.until_end()
    follower.close()
    await finished_execution(api, wf, eid)
    assert_well_formed(events)
    assert events[0]["id"] == 1 and types(events)[-1] == "execution_completed"
    assert events[-1]["data"]["output"] == "done"


@pytest.mark.gen_test(timeout=30)
async def test_reattach_errors_are_plain_json(api, server):
    wf = await api.workflow(*chunks_graph())
    other = await api.workflow(*chunks_graph())
    status, body = await api.execute(wf, {"name": "x"})
    eid = body["execution_id"]
    cases = [
        (f"/api/workflows/nope/executions/{eid}/stream", KEY, 404),
        (f"/api/workflows/{wf}/executions/nope/stream", KEY, 404),
        (f"/api/workflows/{other}/executions/{eid}/stream", KEY, 404),
        (f"/api/workflows/{wf}/executions/{eid}/stream", OTHER_KEY, 404),
        (f"/api/workflows/{wf}/executions/{eid}/stream", None, 401),
        (f"/api/workflows/{wf}/executions/{eid}/stream?last_event_id=-1", KEY, 400),
        (f"/api/workflows/{wf}/executions/{eid}/stream?last_event_id=abc", KEY, 400),
    ]
    for path, key, expected in cases:
        status, body = await api.get(path, key=key)
        assert status == expected, (path, status, body)
        assert set(body) == {"error"}, body
    status, body = await api.get(f"/api/workflows/{wf}/executions/{eid}/stream",
                                 headers={"Last-Event-ID": "x1"})
    assert status == 400 and set(body) == {"error"}
    # A finished run of this workflow is fine (an /execute run too).
    client = await reattach(server, wf, eid)
    events = await client.until_end()
    client.close()
    assert types(events)[-1] == "execution_completed" and events[0]["id"] == 1


@pytest.mark.gen_test(timeout=30)
async def test_reattach_to_a_run_that_died_ends_with_an_error(api, server):
    """A run whose server died is marked failed without an error event; the stream still ends with one."""
    from models.base import utcnow
    from models.execution import Execution, ExecutionEvent
    wf = await api.workflow([START, {"id": "nap", "type": "sleep"}], [edge("start", "nap")])
    eid = "died-0001"

    def store():
        Execution.create(id=eid, workflow=wf, workspace="default", status="failed", trigger="stream",
                         variables={}, error="server stopped before the run finished",
                         started_at=utcnow(), finished_at=utcnow())
        for seq, event in enumerate([
                {"type": "execution_started", "execution_id": eid, "workflow_id": wf},
                {"type": "block_started", "block_id": "start", "block_type": "starter"}], 1):
            ExecutionEvent.create(execution=eid, seq=seq, data=json.dumps(event))

    await server.runtime.writer.call(store)
    client = await reattach(server, wf, eid)
    events = await client.until_end()
    client.close()
    assert [e["id"] for e in events] == [1, 2, 3]
    assert events[-1]["data"] == {"type": "error", "error": "server stopped before the run finished",
                                  "execution_id": eid}
    client = await reattach(server, wf, eid, headers={"Last-Event-ID": "3"})
    assert await client.until_end() == []
    client.close()


@pytest.mark.gen_test(timeout=30)
async def test_empty_body_and_oversized_body(api, server, settings):
    wf = await api.workflow(*chunks_graph(("z",), delay=0))
    client = await stream(server, wf, b"")
    events = await client.until_end()
    client.close()
    assert events[-1]["data"]["output"] == {"text": "z", "who": "anon"}
    # A body over the limit is refused before any stream starts (contract: 413 in JSON).
    status, body, _ = await api.call("POST", f"/api/workflows/{wf}/execute/stream",
                                     raw=b" " * (settings.max_body + 1))
    assert status == 413 and body["error_code"] == "PAYLOAD_TOO_LARGE" and "larger" in body["error"]
    status, body = await api.get(f"/api/workflows/{wf}/executions")
    assert body["total"] == 1


@pytest.mark.gen_test(timeout=30)
async def test_the_writers_wake_up_returns_when_set_or_at_its_timeout():
    wake = Wake()
    assert await wake.wait(0.01) is False
    asyncio.get_running_loop().call_soon(wake.set)
    assert await wake.wait(30) is True
    assert await wake.wait(30) is True   # stays set until cleared
    wake.clear()
    assert not wake.is_set() and await wake.wait(0.01) is False


class RecordingHandler:
    """What RunStream uses of a RequestHandler: records each write and flush."""

    _finished = False

    def __init__(self):
        self.writes, self.flushes = [], 0
        self.request = type("Request", (), {"connection": None})()

    def set_status(self, status):
        pass

    def set_header(self, name, value):
        pass

    def write(self, text):
        self.writes.append(text)

    def flush(self):
        self.flushes += 1
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    def finish(self):
        self._finished = True


@pytest.mark.gen_test(timeout=30)
async def test_news_for_a_waiting_stream_is_written_within_the_publish():
    # Not on the writer's next turn of the loop: a token reaches the client a turn sooner.
    from server.runs import LiveRun
    from server.sse import RunStream
    handler = RecordingHandler()
    sse = RunStream(handler, None, 15, None, None)
    sse.start()
    run = LiveRun("e1", "w1", None)
    sse.follow(run)
    serving = asyncio.ensure_future(sse.serve())
    for _ in range(10):   # its headers go out, then it waits for news
        await asyncio.sleep(0)
    assert handler.flushes == 1 and handler.writes == [] and not serving.done()
    chunk = {"type": "block_chunk", "block_id": "b", "chunk": "t0"}
    run.add([(1, chunk, json.dumps(chunk))], None)
    assert handler.writes == [f"id: 1\ndata: {json.dumps(chunk)}\n\n"] and handler.flushes == 2
    end = {"type": "execution_completed", "execution_id": "e1"}
    run.add([(2, end, json.dumps(end))], {"status": "completed"})
    await serving
    assert len(handler.writes) == 2 and handler.flushes == 3 and handler._finished


# -- a workflow streamed before starts without a read; its start checks the version ----


def answering(value):
    return [START, {"id": "out", "type": "response", "config": {"data": value}}], [edge("start", "out")]


async def streamed_output(server, wf, body=None):
    client = await stream(server, wf, body)
    events = await client.until_end()
    client.close()
    assert events[-1]["data"]["type"] == "execution_completed", events
    return events[-1]["data"]["output"], events[0]["data"]["execution_id"]


def count_starts(starter, runs=None):
    """Record, on the real RunStarter, each load and what each start from memory gave
    (and each run started, with `runs`)."""
    seen = {"loads": 0, "from_memory": []}
    load, start_if_current = starter.load, starter.start_if_current
    if runs is not None:
        seen["runs"] = 0
        start = runs.start

        def counted_run(plan):
            seen["runs"] += 1
            return start(plan)
        runs.start = counted_run

    async def counted_load(*args):
        seen["loads"] += 1
        return await load(*args)

    async def counted_start(*args, **kw):
        run = await start_if_current(*args, **kw)
        seen["from_memory"].append(run is not None)
        return run
    starter.load, starter.start_if_current = counted_load, counted_start
    return seen


@configure(metrics=True)
@pytest.mark.gen_test(timeout=30)
async def test_a_stream_after_the_graph_changed_runs_the_new_graph(api, server):
    from tests.test_metrics import scrape, value
    seen = count_starts(server.runtime.starter)
    wf = await api.workflow(*answering("one"))
    before, _ = await scrape(api)
    assert (await streamed_output(server, wf))[0] == "one"
    assert seen == {"loads": 1, "from_memory": []}
    assert (await streamed_output(server, wf))[0] == "one"
    assert seen == {"loads": 1, "from_memory": [True]}     # no read this time
    blocks, edges = answering("two")
    status, _ = await api.put(f"/api/workflows/{wf}/graph", {"blocks": blocks, "edges": edges})
    assert status == 200
    # What this server remembers is now stale: the start's check withdraws that run
    # (nothing stored, nothing run), and the run starts again from the store.
    output, eid = await streamed_output(server, wf)
    assert output == "two"
    assert seen == {"loads": 2, "from_memory": [True, False]}
    status, body = await api.get(f"/api/workflows/{wf}/executions")
    assert body["total"] == 3 and body["executions"][0]["id"] == eid
    assert [e["graph_version"] for e in body["executions"]] == [2, 1, 1]
    assert (await streamed_output(server, wf))[0] == "two"
    assert seen == {"loads": 2, "from_memory": [True, False, True]}
    page, _ = await scrape(api)
    assert value(page, "actorflow_runs_started_total", trigger="stream") - \
        value(before, "actorflow_runs_started_total", trigger="stream") == 4
    assert value(page, "actorflow_runs_in_flight") == 0
    assert not server.runtime.runs.live


@pytest.mark.gen_test(timeout=30)
async def test_a_remembered_workflow_deleted_since_is_unknown_before_a_bad_body(api, server):
    wf = await api.workflow(*answering("one"))
    await streamed_output(server, wf)
    status, _ = await api.delete(f"/api/workflows/{wf}")
    assert status in (200, 204)
    data = await only_error_event(server, wf, raw=b"{not json")
    assert "not found" in data["error"].lower(), data
    data = await only_error_event(server, wf)
    assert "not found" in data["error"].lower(), data


@pytest.mark.gen_test(timeout=60)
async def test_streams_started_while_the_graph_is_saved_each_run_the_version_they_record(api, server):
    """Waves of streams, each with a save racing them: whichever way each race goes
    (started before the save, or withdrawn and started again), every run ran the
    graph it records, and only real runs are stored."""
    wf = await api.workflow(*answering("v1"))
    await streamed_output(server, wf)  # remembered from here on

    async def one():
        client = await stream(server, wf)
        events = await client.until_end()
        client.close()
        return events[0]["data"]["execution_id"], events[-1]["data"]

    async def save(n):
        blocks, edges = answering(f"v{n}")
        status, _ = await api.put(f"/api/workflows/{wf}/graph", {"blocks": blocks, "edges": edges})
        assert status == 200
        return None, None

    seen = count_starts(server.runtime.starter)
    ends = {}
    for n in range(2, 7):
        results = await asyncio.gather(save(n), *[one() for _ in range(6)])
        ends.update(results[1:])
    assert all(end["type"] == "execution_completed" for end in ends.values()), ends
    status, body = await api.get(f"/api/workflows/{wf}/executions?limit=100")
    assert body["total"] == 31 and len(ends) == 30
    for execution in body["executions"]:
        if execution["id"] in ends:
            # Version n answers "vn": each run ran the graph it records.
            assert ends[execution["id"]]["output"] == f"v{execution['graph_version']}", execution
    assert len(seen["from_memory"]) == 30
    assert seen["loads"] == seen["from_memory"].count(False)  # each withdrawn start loaded again


@pytest.mark.gen_test(timeout=30)
async def test_a_stream_writes_with_nagle_off_and_leaves_the_connection_as_it_found_it(api, server):
    """Tornado keeps Nagle's algorithm on until a response finishes: an event written just
    after another would wait for the client's delayed acknowledgement. A stream turns it off."""
    import socket
    from tests.echo_server import EchoServer
    echo = EchoServer().start()
    try:
        wf = await api.workflow([START, {"id": "wait", "type": "http", "config": {"url": f"{echo.url}/gate/g"}},
                                 {"id": "out", "type": "response", "config": {"data": 1}}],
                                [edge("start", "wait"), edge("wait", "out")])

        def nodelay():
            return sorted(c.stream.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) > 0
                          for c in server.http_server._connections if c.stream.socket is not None)
        client = await stream(server, wf)
        assert (await client.next_event())["data"]["type"] == "execution_started"
        await wait_for(lambda: echo.held("g"), 15)
        assert nodelay().count(True) == 1   # the stream's connection, while it streams
        echo.open_gate("g")
        events = await client.until_end()
        assert events[-1]["data"]["type"] == "execution_completed"
        client.close()
        assert await wait_for(lambda: True not in nodelay(), 15)
    finally:
        echo.stop()
