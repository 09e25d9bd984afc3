"""The launch budget: block threads engine-wide stay under ACTORFLOW_MAX_BLOCK_THREADS."""

import asyncio
import threading

import pytest

from actors.blocks import BlockType, checks
from tests.helpers import START, configure, edge

_lock = threading.Lock()
_now = {"running": 0, "peak": 0, "threads": 0}


def _count(ctx):
    """Note how many of these blocks run at once and how many block threads are alive."""
    with _lock:
        _now["running"] += 1
        _now["peak"] = max(_now["peak"], _now["running"])
        threads = sum(t.name == "BlockActor" for t in threading.enumerate())
        _now["threads"] = max(_now["threads"], threads)
    try:
        ctx.wait(0.02)
    finally:
        with _lock:
            _now["running"] -= 1
    return {"ok": True}


@pytest.fixture
def registry(registry):
    return registry.extended(BlockType("count", checks.common, _count))


def fan_out(n, block):
    blocks = [START] + [dict(block, id=f"b{i}") for i in range(n)]
    return blocks, [edge("start", f"b{i}") for i in range(n)]


@configure(max_block_threads=3)
@pytest.mark.gen_test(timeout=60)
async def test_fan_out_wider_than_the_budget_completes_within_it(api, server):
    _now.update(running=0, peak=0, threads=0)
    wf = await api.workflow(*fan_out(30, {"type": "count"}))
    status, body = await api.execute(wf, {})
    assert status == 200, body
    assert len(body["output"]) == 30
    assert 1 <= _now["peak"] <= 3
    # A thread hands its slot on as it ends, so one about to exit may still be listed.
    assert _now["threads"] <= 2 * 3
    launches = server.runtime.engine.launches
    assert (launches.live, launches.queued) == (0, 0)


@configure(max_block_threads=2)
@pytest.mark.gen_test(timeout=60)
async def test_queued_blocks_are_dropped_when_the_run_times_out(api, server):
    wf = await api.workflow(*fan_out(12, {"type": "sleep", "config": {"seconds": 60}}))
    status, body = await api.execute(wf, {}, timeout=0.5)
    assert status == 504, body
    status, logs = await api.get(f"/api/workflows/{wf}/executions/{body['execution_id']}/logs")
    assert sorted(l["status"] for l in logs["logs"]) == ["cancelled"] * 12 + ["completed"]
    launches = server.runtime.engine.launches
    # The two running blocks end on their cancel; the ten queued never start.
    for _ in range(200):
        if (launches.live, launches.queued) == (0, 0):
            break
        await asyncio.sleep(0.05)
    assert (launches.live, launches.queued) == (0, 0)


@configure(max_block_threads=1)
@pytest.mark.gen_test(timeout=60)
async def test_blocks_waiting_on_sub_runs_hold_no_slot(api, server):
    # Were the workflow blocks to hold the one slot, their children could never start.
    child = await api.workflow([START, {"id": "out", "type": "response", "config": {"data": 1}}],
                               [edge("start", "out")])
    wf = await api.workflow(*fan_out(3, {"type": "workflow", "config": {"workflow_id": child}}))
    status, body = await api.execute(wf, {}, timeout=20)
    assert status == 200, body
    assert body["output"] == {f"b{i}": 1 for i in range(3)}
