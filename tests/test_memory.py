"""A finished run's objects are freed by reference counting, not left for the collector.

Thousands of runs in flight make every collector pass long, and what only the
collector frees stays in memory until a pass comes (server/memory.py). So a
run that has ended, over /execute or /execute/stream, with an http block that
succeeded or failed, must leave no reference cycle made of our objects or of
the server side of its HTTP request.
"""

import gc

import pykka
import pytest

from tests.helpers import START, edge, wait_for
from tests.llm_fixtures import closed_port_url, echo  # noqa: F401  (echo: a fixture)
from tests.sse_client import SSEClient
from tests.test_webhooks import fire, hooked

# The server side of a request: none of these may be left in a cycle.
SERVER_TYPES = ("HTTPServerRequest", "HTTP1ServerConnection")


def ours(obj):
    kind = type(obj)
    return kind.__module__.split(".")[0] in ("actors", "server", "models") or kind.__name__ in SERVER_TYPES


def cyclic_garbage(runtime):
    """What the collector would free now, as type names (the objects themselves are let go).

    An earlier test's server (its Runtime, and everything tied to it in the garbage)
    may become collectable at any time; it is not this test's runs' doing, so it is
    left out.
    """
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        earlier = earlier_servers(gc.garbage, runtime)
        found = [f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage
                 if ours(o) and id(o) not in earlier]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    return found


def earlier_servers(garbage, runtime):
    """Ids of the garbage connected (either way) to a Runtime other than `runtime`."""
    index = {id(o): o for o in garbage}
    linked = {key: [] for key in index}
    for key, obj in index.items():
        for ref in gc.get_referents(obj):
            if id(ref) in index:
                linked[key].append(id(ref))
                linked[id(ref)].append(key)
    todo = [key for key, obj in index.items() if type(obj).__name__ == "Runtime" and obj is not runtime]
    seen = set(todo)
    while todo:
        for key in linked[todo.pop()]:
            if key not in seen:
                seen.add(key)
                todo.append(key)
    return seen


async def quiet(server):
    """No live run, no actor: every run has ended and every actor thread let go."""
    await wait_for(lambda: not server.runtime.runs.live and not pykka.ActorRegistry.get_all(), 15)


@pytest.mark.gen_test(timeout=60)
async def test_finished_runs_leave_no_reference_cycles(api, server, echo):  # noqa: F811
    ok = await api.workflow([START, {"id": "call", "type": "http", "config": {"url": echo.url + "/echo"}}],
                            [edge("start", "call")])
    refused = await api.workflow([START, {"id": "call", "type": "http",
                                          "config": {"url": closed_port_url() + "/x"}}],
                                 [edge("start", "call")])
    hook, hook_id, secret = await hooked(
        api, [{"id": "hook", "type": "webhook"}, {"id": "call", "type": "http", "config": {"url": echo.url + "/echo"}}],
        [edge("hook", "call")], arm=False)

    async def webhook_run():
        status, body = await api.post(f"/api/workflows/{hook}/arm")
        assert status == 200, body
        status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret)
        assert status == 202, body

    # Warm up first: caches and the first use of each path may keep objects for good.
    for wf in (ok, refused):
        await api.execute(wf)
    await webhook_run()
    await quiet(server)
    cyclic_garbage(server.runtime)
    gc.disable()
    try:
        for _ in range(3):
            status, body = await api.execute(ok)
            assert status == 200 and body["status"] == "completed", body
            status, body = await api.execute(refused)
            assert body.get("error_code") == "EXECUTION_FAILED", body
            client = await SSEClient.open(server.port, "POST", f"/api/workflows/{ok}/execute/stream", body={})
            events = await client.until_end()
            client.close()
            assert events[-1]["data"]["type"] == "execution_completed", events[-1]
            await webhook_run()
            await quiet(server)
        await quiet(server)
        await wait_for(lambda: server.runtime.in_flight == 0, 10)  # every answer has gone out
        left = cyclic_garbage(server.runtime)
    finally:
        gc.enable()
    assert left == [], "\n".join(sorted(set(left)))
