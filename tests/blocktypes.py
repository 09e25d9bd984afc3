"""Test-only block types. They never ship in the server's registry."""

import threading
import time

from actors.blocks import BlockType, checks
from actors.errors import BlockError


def _sleep(ctx):
    """Wait `seconds` (waking on cancel), then output `{"slept": seconds, "value": value}`."""
    seconds = float(ctx.config.get("seconds", 0))
    ctx.wait(seconds)
    return {"slept": seconds, "value": ctx.config.get("value")}


def _fail(ctx):
    raise BlockError(ctx.config.get("message", "boom"))


_attempts = {}


def _flaky(ctx):
    """Fail the first `failures` attempts (per key), then succeed."""
    key = (ctx.execution_id, ctx.block_id)
    _attempts[key] = _attempts.get(key, 0) + 1
    if _attempts[key] <= int(ctx.config.get("failures", 1)):
        raise BlockError(f"attempt {_attempts[key]} failed")
    return {"attempt": _attempts[key]}


def _chunks(ctx):
    """Emit each of `chunks` (with `delay` between), output them joined."""
    parts = ctx.config.get("chunks", [])
    for part in parts:
        ctx.emit(part)
        if ctx.config.get("delay"):
            ctx.wait(float(ctx.config["delay"]))
    return {"text": "".join(str(p) for p in parts)}


def _echo(ctx):
    return {"config": ctx.config, "inputs": ctx.inputs, "variables": ctx.variables}


def _bad_output(ctx):
    return {"value": object()}


_meetings = {}
_meetings_lock = threading.Lock()


def _meet(ctx):
    """Wait until `parties` blocks of this run with the same `key` are all running.

    Only blocks that run at the same time can meet, so a run whose `meet`
    blocks all complete proves they ran concurrently, with no clock involved.
    """
    key = (ctx.execution_id, ctx.config.get("key", "k"))
    with _meetings_lock:
        barrier = _meetings.setdefault(key, threading.Barrier(int(ctx.config.get("parties", 2))))
    try:
        barrier.wait(timeout=float(ctx.config.get("patience", 30)))
    except threading.BrokenBarrierError:
        raise BlockError("the other blocks never arrived")
    return {"met": True}


def _number(ctx):
    """Output `{"v": float(config.number)}`: "nan" and "inf" make numbers JSON cannot hold."""
    return {"v": float(ctx.config.get("number", 0))}


def _busy(ctx):
    """Ignore cancellation for `seconds` (a block that does not cooperate)."""
    time.sleep(float(ctx.config.get("seconds", 0.1)))
    return {}


WAIT_CALLERS = {}  # (execution_id, block_id) -> the thread that started that block's request


def _waits(ctx):
    """As the http block's `wait`: notes the thread starting the request, which answers at
    once on the HTTP loop (or, with config.refuse, cannot even start)."""
    WAIT_CALLERS[(ctx.execution_id, ctx.block_id)] = threading.current_thread()
    if ctx.config.get("refuse"):
        raise RuntimeError("refused before the request")

    async def request():
        return lambda: {"answered": True}
    return request()


TEST_TYPES = [
    BlockType("sleep", checks.common, _sleep),
    BlockType("fail", checks.common, _fail),
    BlockType("flaky", checks.common, _flaky),
    BlockType("chunks", checks.common, _chunks),
    BlockType("echo", checks.common, _echo),
    BlockType("bad_output", checks.common, _bad_output),
    BlockType("busy", checks.common, _busy),
    BlockType("meet", checks.common, _meet),
    BlockType("number", checks.common, _number),
    BlockType("waits", checks.common, lambda ctx: {"answered": True}, wait=_waits),
]
