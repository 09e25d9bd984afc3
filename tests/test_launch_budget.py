"""The launch budget: block threads engine-wide stay under ACTORFLOW_MAX_BLOCK_THREADS."""

import asyncio
import threading

import pytest

from actors.blocks import BlockType, checks
from tests.helpers import START, configure, edge
from tests.llm_fixtures import echo  # noqa: F401  (fixture)
from tests.test_http_fairness import another_workspace_calls

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


# -- shared fairly between workspaces (issue 9 item 7) ---------------------------------------------

def test_a_freed_slot_goes_to_the_workspace_holding_fewest():
    from actors.launches import LaunchBudget
    budget = LaunchBudget(4)                        # one workspace holds at most 3
    started = []

    def start(name):
        return lambda: started.append(name)
    for i in range(5):
        budget.launch(start(f"a{i}"), "A")
    assert started == ["a0", "a1", "a2"] and budget.queued == 2
    budget.launch(start("b0"), "B")                 # the slot A may not take
    budget.launch(start("b1"), "B")
    budget.launch(start("c0"), "C")
    assert started[3:] == ["b0"] and budget.queued == 4
    budget.release("A")                             # A holds 2, B 1, C none: C's turn
    budget.release("A")                             # A 1, B 1, C 1: the first waiting of them (A)
    budget.release("B")                             # A 2, B 0, C 1: B
    assert started[4:] == ["c0", "a3", "b1"]
    for workspace in ("A", "A", "B", "C"):
        budget.release(workspace)
    assert started[7:] == ["a4"] and budget.queued == 0
    budget.release("A")
    assert (budget.live, budget.queued) == (0, 0)


@configure(max_block_threads=4, http_per_workspace=0, http_per_run=0)
@pytest.mark.gen_test(timeout=90)
async def test_a_workspace_with_every_thread_waiting_cannot_starve_another(api, server, echo):
    # Workspace A: six http blocks stuck on a slow endpoint; it may hold 3 of the 4 block threads.
    blocks = [START] + [{"id": f"g{i}", "type": "http", "config": {"url": echo.url + "/gate/a", "timeout": 60}}
                        for i in range(6)]
    wf_a = await api.workflow(blocks, [edge("start", b["id"]) for b in blocks[1:]])
    run_a = asyncio.ensure_future(api.execute(wf_a, {}))
    for _ in range(600):
        if len(echo.held("a")) == 3:
            break
        await asyncio.sleep(0.05)
    launches = server.runtime.engine.launches
    assert len(echo.held("a")) == 3 and launches.queued == 3
    # Workspace B's trivial block gets the slot A may not take, while A's still wait.
    await another_workspace_calls(server, echo)
    assert len(echo.held("a")) == 3
    echo.open_gate("a")
    status, body = await run_a
    assert status == 200, body
    assert sorted(body["output"]) == [f"g{i}" for i in range(6)]
    assert echo.most_held["a"] == 3
