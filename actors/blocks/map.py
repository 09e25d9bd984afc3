"""map: run a workflow once per item of a list, a few at a time; output the outputs in order."""

import queue

from actors.context import BlockCancelled, BlockTimeout
from actors.errors import BlockError
from actors.plan import Parent
from . import BlockType, checks
from .workflow import subrun_service

DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 64
ON_ERROR = ("fail", "collect")
POLL = 0.1


def check(config):
    problems = (checks.common(config) + checks.string(config, "workflow_id", required=True)
                + checks.mapping(config, "variables")
                + checks.number(config, "concurrency", minimum=1, integer=True))
    items = config.get("items")
    if items is None:
        problems.append(("items", "items is required: a template resolving to a list, or a list"))
    elif not isinstance(items, list) and not checks.is_template(items):
        problems.append(("items", "items must be a list or a template resolving to one"))
    concurrency = config.get("concurrency")
    if checks.is_int64(concurrency) and concurrency > MAX_CONCURRENCY:
        problems.append(("concurrency", f"concurrency must be at most {MAX_CONCURRENCY}"))
    on_error = config.get("on_error")
    if on_error is not None and on_error not in ON_ERROR:
        problems.append(("on_error", 'on_error must be "fail" (the default) or "collect"'))
    return problems


def _settings(ctx):
    config = ctx.config
    items = config.get("items")
    if not isinstance(items, list):
        raise BlockError(f"items must resolve to a list, not {type(items).__name__}")
    limit = getattr(ctx.settings, "max_map_items", 10000)
    if len(items) > limit:
        raise BlockError(f"items has {len(items)} entries, more than the limit of {limit} "
                         f"(ACTORFLOW_MAX_MAP_ITEMS)")
    concurrency = config.get("concurrency", DEFAULT_CONCURRENCY)
    if not checks.is_int64(concurrency) or not 1 <= concurrency <= MAX_CONCURRENCY:
        raise BlockError(f"concurrency must be an integer from 1 to {MAX_CONCURRENCY}")
    on_error = config.get("on_error", "fail")
    if on_error not in ON_ERROR:
        raise BlockError('on_error must be "fail" or "collect"')
    base = config.get("variables") or {}
    if not isinstance(base, dict):
        raise BlockError("variables must be an object")
    return items, concurrency, on_error, base


def run(ctx):
    subrun, workflow_id = subrun_service(ctx)
    items, concurrency, on_error, base = _settings(ctx)
    done = queue.SimpleQueue()      # sub-runs as they finish (put from the loop)
    outputs = [None] * len(items)
    pending = {}
    next_item = 0
    try:
        while next_item < len(items) or pending:
            ctx.check()     # cancelled, or the block's own timeout
            while next_item < len(items) and len(pending) < concurrency:
                i = next_item
                next_item += 1
                variables = dict(base, item=items[i], index=i)
                try:
                    pending[i] = subrun.begin(ctx.workspace, workflow_id, variables, ctx.remaining(),
                                              ctx.depth, parent=Parent(ctx.execution_id, ctx.block_id, i),
                                              tag=i, on_done=done.put, retry=ctx.attempt > 1)
                except BlockError as exc:
                    _item_failed(ctx, outputs, i, exc, on_error)
            if not pending:
                continue
            try:
                sub = done.get(timeout=POLL)
            except queue.Empty:
                continue
            i = sub.tag
            del pending[i]
            try:
                outputs[i] = subrun.outcome(sub)
            except BlockError as exc:
                _item_failed(ctx, outputs, i, exc, on_error)
                continue
            ctx.emit({"index": i, "status": "completed"})
    except (BlockCancelled, BlockTimeout, BlockError):
        for sub in pending.values():
            subrun.abandon(sub)
        raise
    return outputs


def _item_failed(ctx, outputs, i, exc, on_error):
    ctx.emit({"index": i, "status": "failed"})
    if on_error == "fail":
        raise BlockError(f"item {i}: {exc.message}")
    outputs[i] = {"error": exc.message}


TYPE = BlockType("map", check, run, uses_inputs=False, waits_on_runs=True)
