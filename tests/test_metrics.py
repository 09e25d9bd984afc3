"""GET /metrics: off by default, Prometheus text when on, counts that move with real runs."""

import asyncio
import time

import pytest
import tornado.httpclient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import KEY, OTHER_KEY
from tests.helpers import START, configure, edge
from tests.sse_client import SSEClient
from tests.test_webhooks import fire, hooked

OUT = {"id": "out", "type": "response", "config": {"data": {"ok": True}}}
BOOM = {"id": "boom", "type": "fail", "config": {"message": "no"}}


def samples(text):
    """{(name, frozenset(labels)): value} of a Prometheus text page."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(page, name, **labels):
    return page.get((name, frozenset(labels.items())), 0.0)


async def scrape(api, base_url=None):
    status, text, response = await api.call("GET", "/metrics", key=None) if base_url is None else \
        await _get(base_url + "/metrics")
    assert status == 200, text
    assert response.headers["Content-Type"].startswith("text/plain")
    return samples(text if isinstance(text, str) else text.decode()), text


async def _get(url):
    client = tornado.httpclient.AsyncHTTPClient(force_instance=True)
    try:
        response = await client.fetch(url, raise_error=False)
    finally:
        client.close()
    return response.code, response.body.decode(), response


@pytest.mark.gen_test
async def test_metrics_are_off_by_default(api):
    status, body = await api.get("/metrics", key=None)
    assert status == 404 and "ACTORFLOW_METRICS" in body["error"]


@configure(metrics=True)
@pytest.mark.gen_test
async def test_counts_move_with_runs_blocks_streams_and_webhooks(api, server):
    before, _ = await scrape(api)
    ok = await api.workflow([START, OUT], [edge("start", "out")], name="secret-name-of-a-workflow")
    bad = await api.workflow([START, BOOM], [edge("start", "boom")])
    for _ in range(3):
        status, body = await api.execute(ok)
        assert status == 200, body
    status, body = await api.execute(bad)
    assert status == 500, body
    stream = await SSEClient.open(server.port, "POST", f"/api/workflows/{ok}/execute/stream", {})
    events = await stream.until_end()
    assert events[-1]["data"]["type"] == "execution_completed"
    stream.close()
    wf, hook_id, secret = await hooked(api)
    assert (await fire(api, "no-such-hook", {"x": 1}))[0] == 404
    assert (await fire(api, hook_id, {"x": 1}, secret="wrong"))[0] == 401
    assert (await fire(api, hook_id, {"x": 1}, secret=secret))[0] == 202

    # The webhook's run ends in the background, and an SSE close is seen a moment later.
    deadline = time.monotonic() + 30
    while True:
        page, text = await scrape(api)
        done = (value(page, "actorflow_runs_ended_total", trigger="webhook", status="completed") == 1
                and value(page, "actorflow_sse_connections") == 0)
        if done or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)

    def moved(name, **labels):
        return value(page, name, **labels) - value(before, name, **labels)

    assert moved("actorflow_runs_started_total", trigger="api") == 4
    assert moved("actorflow_runs_started_total", trigger="stream") == 1
    assert moved("actorflow_runs_started_total", trigger="webhook") == 1
    assert moved("actorflow_runs_ended_total", trigger="api", status="completed") == 3
    assert moved("actorflow_runs_ended_total", trigger="api", status="failed") == 1
    assert moved("actorflow_runs_ended_total", trigger="stream", status="completed") == 1
    assert moved("actorflow_run_duration_seconds_count", trigger="api") == 4
    assert moved("actorflow_block_duration_seconds_count", block_type="response", status="completed") == 5
    assert moved("actorflow_block_duration_seconds_count", block_type="fail", status="failed") == 1
    assert moved("actorflow_block_duration_seconds_count", block_type="starter", status="completed") == 5
    assert value(page, "actorflow_runs_in_flight") == 0
    assert value(page, "actorflow_blocks_in_flight") == 0
    assert value(page, "actorflow_sse_connections") == 0
    assert moved("actorflow_webhook_calls_total", outcome="not_found") == 1
    assert moved("actorflow_webhook_calls_total", outcome="unauthorized") == 1
    assert moved("actorflow_webhook_calls_total", outcome="accepted") == 1
    assert moved("actorflow_writer_commit_seconds_count") >= 6
    assert ("actorflow_writer_queue_depth", frozenset()) in page
    assert ("actorflow_sandbox_pool_target", frozenset()) in page
    # Nothing that names a workspace, a workflow or a secret.
    for secret_text in ("default", "other", KEY, OTHER_KEY, "secret-name", ok, wf, hook_id, secret):
        assert secret_text not in text


@configure(metrics=True)
@pytest.mark.gen_test
async def test_gauges_show_a_live_run_and_an_open_stream(api, server):
    wf = await api.workflow([START, {"id": "nap", "type": "sleep", "config": {"seconds": 30}}],
                            [edge("start", "nap")])
    stream = await SSEClient.open(server.port, "POST", f"/api/workflows/{wf}/execute/stream", {})
    event = await stream.next_event()
    eid = event["data"]["execution_id"]
    deadline = time.monotonic() + 30
    while True:
        page, _ = await scrape(api)
        if value(page, "actorflow_blocks_in_flight") == 1 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert value(page, "actorflow_runs_in_flight") == 1
    assert value(page, "actorflow_blocks_in_flight") == 1
    assert value(page, "actorflow_sse_connections") == 1
    status, body = await api.post(f"/api/workflows/{wf}/executions/{eid}/cancel")
    assert status == 200 and body["status"] == "cancelled", body
    await stream.until_end()
    stream.close()
    deadline = time.monotonic() + 30
    while True:
        page, _ = await scrape(api)
        settled = (value(page, "actorflow_runs_in_flight"), value(page, "actorflow_blocks_in_flight"),
                   value(page, "actorflow_sse_connections")) == (0, 0, 0)
        if settled or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert settled, page
    assert value(page, "actorflow_runs_ended_total", trigger="stream", status="cancelled") == 1


@configure(metrics_address="127.0.0.1:0")
@pytest.mark.gen_test
async def test_a_separate_metrics_address(api, server):
    status, body = await api.get("/metrics", key=None)
    assert status == 404  # not on the API's address
    port = server.runtime.metrics_server.metrics_port
    status, text, _ = await _get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200 and "actorflow_runs_started_total" in text
    status, _, _ = await _get(f"http://127.0.0.1:{port}/api/workflows")
    assert status == 404


@configure(metrics=True, sandbox_pool=0)
@pytest.mark.gen_test
async def test_sandbox_numbers(api):
    before, _ = await scrape(api)
    wf = await api.workflow([START, {"id": "py", "type": "code", "config": {"code": "return 1"}}],
                            [edge("start", "py")])
    status, body = await api.execute(wf)
    assert status == 200, body
    page, _ = await scrape(api)
    # No warm pool: the block started its own process.
    cold = "actorflow_sandbox_cold_starts_total"
    assert value(page, cold) - value(before, cold) == 1
    assert value(page, "actorflow_block_duration_seconds_count", block_type="code", status="completed") == 1
    assert value(page, "actorflow_sandbox_pool_target") == 0
    assert value(page, "actorflow_sandbox_running") == 0 and value(page, "actorflow_sandbox_waiting") == 0
    assert ("actorflow_sandbox_waits_total", frozenset()) in page
