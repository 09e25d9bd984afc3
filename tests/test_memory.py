"""A finished run's objects are freed by reference counting, not left for the collector.

Thousands of runs in flight make every collector pass long, and what only the
collector frees stays in memory until a pass comes (server/memory.py). So a
run that has ended, over /execute or /execute/stream, with an http block that
succeeded or failed, must leave no reference cycle made of our objects or of
the server side of its HTTP request.
"""

import gc
import weakref

import pykka
import pytest

from server.memory import IDLE_DELAY, Housekeeper, Pacer
from tests.helpers import START, edge, wait_for, wait_until
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

    An earlier test's server or engine (its Runtime or Engine, and everything tied to
    it in the garbage) may become collectable at any time, once a thread of it lets go;
    it is not this test's runs' doing, so it is left out.
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
    """Ids of the garbage connected (either way) to a Runtime other than `runtime`, or to
    an Engine other than its own (tests/test_coordinator.py makes engines of its own)."""
    index = {id(o): o for o in garbage}
    linked = {key: [] for key in index}
    for key, obj in index.items():
        for ref in gc.get_referents(obj):
            if id(ref) in index:
                linked[key].append(id(ref))
                linked[id(ref)].append(key)
    todo = [key for key, obj in index.items()
            if (type(obj).__name__ == "Runtime" and obj is not runtime)
            or (type(obj).__name__ == "Engine" and obj is not runtime.engine)]
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


class Node:
    """A container that can point at itself."""


@pytest.fixture
def pacer():
    """A Pacer that sees 10 runs live, freezes from 5 and sweeps after 3 have ended;
    the process's frozen objects are given back afterwards."""
    live = [10]
    pacer = Pacer(lambda: live[0], pile=5, sweep_after=3)
    pacer.live = live
    yield pacer
    if pacer.after_pass in gc.callbacks:
        pacer.uninstall()
    gc.unfreeze()


QUIET_PASS = {"generation": 0, "collected": 0, "uncollectable": 0}


def frozen(obj):
    """Whether the collector no longer looks at `obj` (gc.get_objects leaves frozen ones out)."""
    return not any(o is obj for o in gc.get_objects())


def test_a_young_pass_that_frees_nothing_freezes_its_survivors(pacer):
    gc.collect()
    alive = [Node() for _ in range(2000)]
    pacer.install()
    # Wait on the condition, not on one pass: another thread may just have made garbage.
    for _ in range(20):
        gc.collect(0)
        if pacer.frozen:
            break
    assert pacer.frozen
    assert gc.get_freeze_count() >= len(alive)
    assert frozen(alive[0])


def test_nothing_is_frozen_below_the_pile_or_after_a_pass_that_freed_garbage(pacer):
    pacer.after_pass("stop", dict(QUIET_PASS, collected=5000))
    pacer.after_pass("stop", dict(QUIET_PASS, generation=1))
    pacer.after_pass("start", QUIET_PASS)
    pacer.live[0] = 4
    pacer.after_pass("stop", QUIET_PASS)
    assert not pacer.frozen and gc.get_freeze_count() == 0


def frozen_cycle(pacer):
    """A cycle frozen by the pacer and let go, and a live object frozen with it: (weakref, object)."""
    gc.collect()
    node, kept = Node(), Node()
    node.me = node
    gone = weakref.ref(node)
    pacer.after_pass("stop", QUIET_PASS)
    return gone, kept


def test_a_frozen_cycle_is_swept_once_enough_runs_have_ended(pacer):
    gone, kept = frozen_cycle(pacer)
    for _ in range(pacer.sweep_after - 1):
        pacer.run_ended()
    gc.collect()
    assert gone() is not None       # frozen: no pass looks at it
    pacer.run_ended()               # the sweep, on a thread of its own
    assert wait_until(lambda: gone() is None and not pacer._sweeping)
    assert pacer.frozen and frozen(kept)  # 10 runs still live: what is left is frozen again
    pacer.live[0] = 0
    pacer.sweep()
    assert not pacer.frozen and not frozen(kept)


def test_the_idle_tidy_frees_frozen_cycles_and_freezes_what_is_left(pacer):
    housekeeper = Housekeeper(None, lambda: True)
    housekeeper.pacer = pacer
    gone, kept = frozen_cycle(pacer)
    housekeeper.run_ended()         # one of three: no sweep yet
    assert pacer.frozen
    pacer.live[0] = 0
    housekeeper._tidy()
    assert gone() is None
    assert frozen(kept)             # as at start-up


class ManualLoop:
    """The few IOLoop calls Housekeeper makes, on a clock the test moves."""

    def __init__(self):
        self.now = 0.0
        self.timers = []

    def time(self):
        return self.now

    def call_later(self, delay, fn):
        timer = [self.now + delay, fn]
        self.timers.append(timer)
        return timer

    def remove_timeout(self, timer):
        self.timers.remove(timer)

    def advance(self, seconds):
        """Move the clock on, firing each timer that falls due on the way, in order."""
        end = self.now + seconds
        while self.timers and min(t[0] for t in self.timers) <= end:
            timer = min(self.timers, key=lambda t: t[0])
            self.timers.remove(timer)
            self.now = timer[0]
            timer[1]()
        self.now = end


class CountingHousekeeper(Housekeeper):
    def __init__(self, loop, is_idle):
        super().__init__(loop, is_idle)
        self.tidied = []

    def _start_tidy(self):
        self.tidied.append(self._loop.time())   # here, not on a thread: the test sees it at once


def test_the_idle_tidy_waits_for_a_whole_quiet_spell():
    loop, live = ManualLoop(), [0]
    keeper = CountingHousekeeper(loop, lambda: live[0] == 0)
    keeper.idle()                       # the last run ended at 0
    # A client calling in a loop: a short run now and then, never quiet for IDLE_DELAY.
    for _ in range(10):
        loop.advance(1.5)
        live[0] = 1
        loop.advance(0.01)
        live[0] = 0
        keeper.idle()
    assert keeper.tidied == []
    last_end = loop.time()
    loop.advance(IDLE_DELAY + 0.5)
    assert keeper.tidied == [last_end + IDLE_DELAY]


def test_no_tidy_while_a_run_is_live():
    loop, live = ManualLoop(), [0]
    keeper = CountingHousekeeper(loop, lambda: live[0] == 0)
    keeper.idle()
    live[0] = 1                         # a long run, started before the wait is over
    loop.advance(10 * IDLE_DELAY)
    assert keeper.tidied == [] and loop.timers == []
    live[0] = 0
    keeper.idle()
    loop.advance(IDLE_DELAY)
    assert keeper.tidied == [10 * IDLE_DELAY + IDLE_DELAY]
