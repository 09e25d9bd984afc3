"""An http block waits on its endpoint without a thread of its own (actors/http_loop)."""

import asyncio
import threading

import pykka
import pytest

from actors.block import WaitingBlockActor
from tests.helpers import configure
from tests.llm_fixtures import echo  # noqa: F401  (fixture)
from tests.test_http_fairness import fan_out, until

BLOCK_THREADS = ("BlockActor", "WaitingBlockActor")


def block_threads():
    return sum(t.name in BLOCK_THREADS for t in threading.enumerate())


@configure(http_per_workspace=0, http_per_run=0)
@pytest.mark.gen_test(timeout=90)
async def test_forty_waiting_http_blocks_hold_no_thread(api, echo):
    wf = await api.workflow(*fan_out(echo.url + "/gate/w", 40))
    run = asyncio.ensure_future(api.execute(wf, {}))
    await until(lambda: len(echo.held("w")) == 40)
    # The turns that started them are over: no block thread is left waiting.
    await until(lambda: block_threads() == 0)
    assert len(echo.held("w")) == 40
    echo.open_gate("w")
    status, body = await run
    assert status == 200, body
    assert sorted(body["output"]) == sorted(f"g{i}" for i in range(40))
    assert all(out["status"] == 200 for out in body["output"].values())


@pytest.mark.gen_test(timeout=60)
async def test_a_retried_http_block_backs_off_then_succeeds(api, echo):
    # /flaky/<name>/<n>: the first n requests fail with 500, the next answer.
    blocks, edges = fan_out(echo.url + "/flaky/r/2", 1, timeout=10)
    blocks[1]["config"].update(retries=3, retry_delay=0.05)
    wf = await api.workflow(blocks, edges)
    status, body = await api.execute(wf, {})
    assert status == 200, body
    assert body["output"]["g0"]["body"]["path"] == "/flaky/r/2"
    status, logs = await api.get(f"/api/workflows/{wf}/executions/{body['execution_id']}/logs")
    [entry] = [e for e in logs["logs"] if e["block_id"] == "g0"]
    assert entry["status"] == "completed" and entry["attempts"] == 3, entry


@pytest.mark.gen_test(timeout=60)
async def test_a_cancel_cuts_a_backoff_short(api, echo):
    blocks, edges = fan_out(echo.url + "/status/503", 1, timeout=10)
    blocks[1]["config"].update(retries=3, retry_delay=3600)
    wf = await api.workflow(blocks, edges)
    run = asyncio.ensure_future(api.execute(wf, {}))
    await until(lambda: len(echo.requests) == 1)        # the first attempt failed: backing off
    status, listing = await api.get(f"/api/workflows/{wf}/executions")
    [execution] = listing["executions"]
    status, body = await api.post(f"/api/workflows/{wf}/executions/{execution['id']}/cancel")
    assert status == 200 and body["status"] == "cancelled", body
    status, body = await run
    assert status == 500 and "cancelled" in body["error"], body
    status, logs = await api.get(f"/api/workflows/{wf}/executions/{execution['id']}/logs")
    [entry] = [e for e in logs["logs"] if e["block_id"] == "g0"]
    assert entry["status"] == "cancelled", entry
    # The block's actor ended with the cancel, not an hour later, and tried no more.
    await until(lambda: not pykka.ActorRegistry.get_by_class(WaitingBlockActor))
    assert len(echo.requests) == 1
