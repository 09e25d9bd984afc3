"""The agent block: a tool-calling loop over an OpenAI-compatible provider.

Each turn is one streamed chat completion (see llm_client) offered the
tools' function schemas. When the model asks for tools, they run (in
parallel when it asks for several), each result goes back as a `tool`
message, and the model is asked again. `max_steps` bounds the rounds of tool
calls: after that many rounds the model gets one more turn, and if it still
asks for tools instead of answering, the block fails.

A tool that fails (bad arguments, an HTTP error, a failed sub-run, an
exception in its code) does not fail the block: the model sees
"error: ..." as that tool's result and may try again. Cancellation and the
block's own timeout stop everything.
"""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

from actors.errors import BlockError
from .context import BlockCancelled, BlockTimeout
from .http_request import perform
from .llm_client import base_messages, chat
from .templates import Scope, as_text, render

DEFAULT_MAX_STEPS = 5
MAX_PARALLEL_TOOLS = 8
CODE_TOOL_TIMEOUT = 30.0
TOOL_TEXT_LIMIT = 50_000        # characters of one tool result shown to the model
META_KEYS = ("type", "name", "description", "parameters")


def run_agent(ctx):
    cfg = ctx.config
    tools = _tools(cfg.get("tools"))
    max_steps = _max_steps(cfg.get("max_steps"))
    messages = base_messages(cfg)
    schemas = [_schema(t) for t in tools.values()] or None
    steps = []
    stdout = _Stdout(ctx)
    rounds = 0
    while True:
        reply = chat(ctx, messages, tools=schemas, on_text=ctx.emit)
        if not reply.tool_calls:
            return {"content": reply.content, "steps": steps}
        if rounds >= max_steps:
            raise BlockError(f"agent gave no final answer within max_steps={max_steps} "
                             f"(the model still asked for {_names(reply.tool_calls)})")
        rounds += 1
        messages.append({
            "role": "assistant", "content": reply.content or None,
            "tool_calls": [{"id": c["id"], "type": "function",
                            "function": {"name": c["name"], "arguments": c["arguments"] or "{}"}}
                           for c in reply.tool_calls]})
        for call, step in zip(reply.tool_calls, _run_calls(ctx, tools, reply.tool_calls, stdout, rounds)):
            steps.append(step)
            messages.append({"role": "tool", "tool_call_id": call["id"],
                             "content": _for_model(step["result"])})


def _tools(raw):
    if raw in (None, ""):
        return {}
    if not isinstance(raw, list):
        raise BlockError("tools must be a list")
    tools = {}
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise BlockError(f"tools[{i}] must be an object with a name")
        if tool.get("type") not in ("code", "http", "workflow"):
            raise BlockError(f"tools[{i}].type must be one of code, http, workflow")
        tools[tool["name"]] = tool
    return tools


def _max_steps(value):
    if value in (None, ""):
        return DEFAULT_MAX_STEPS
    try:
        steps = int(value)
    except (TypeError, ValueError):
        raise BlockError(f"max_steps must be an integer, not {value!r}") from None
    if isinstance(value, bool) or steps < 1 or steps != float(value):
        raise BlockError("max_steps must be an integer >= 1")
    return steps


def _schema(tool):
    parameters = tool.get("parameters")
    if not isinstance(parameters, dict):
        parameters = {"type": "object", "properties": {}}
    function = {"name": tool["name"], "parameters": parameters}
    if tool.get("description"):
        function["description"] = str(tool["description"])
    return {"type": "function", "function": function}


def _names(calls):
    return ", ".join(sorted({c["name"] or "?" for c in calls}))


def _run_calls(ctx, tools, calls, stdout, round_no=1):
    """Run one round's calls; steps in the order the model asked; each emitted when done."""
    def one(call, n=1):
        step = {"tool": call["name"], "arguments": None, "result": None}
        try:
            args = _arguments(call["arguments"])
            step["arguments"] = args
            step["result"] = _run_tool(ctx, tools, call["name"], args, stdout, f"{round_no}.{n}")
        except (BlockCancelled, BlockTimeout) as exc:
            if _block_is_over(ctx):
                raise
            step["result"] = f"error: {exc.message}"    # the tool's own time ran out
        except BlockError as exc:
            stdout.add(call["name"], getattr(exc, "stdout", None))
            step["result"] = f"error: {exc.message}"
        except Exception as exc:  # a tool must never crash the agent with a traceback
            step["result"] = f"error: {type(exc).__name__}: {exc}"
        if step["arguments"] is None:
            step["arguments"] = call["arguments"]
        step["result"] = _jsonable(step["result"])
        ctx.emit({"step": step})
        return step

    if len(calls) == 1:
        return [one(calls[0])]
    pool = ThreadPoolExecutor(max_workers=min(len(calls), MAX_PARALLEL_TOOLS),
                              thread_name_prefix=f"agent-{ctx.block_id}")
    try:
        futures = [pool.submit(one, call, n) for n, call in enumerate(calls, start=1)]
        for future in as_completed(futures):
            future.result()   # the first cancellation or timeout stops the round
        return [f.result() for f in futures]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _block_is_over(ctx):
    if ctx.cancelled.is_set():
        return True
    return ctx.deadline is not None and time.monotonic() >= ctx.deadline


def _arguments(text):
    if text in (None, ""):
        return {}
    try:
        args = json.loads(text)
    except ValueError as exc:
        raise BlockError(f"arguments are not valid JSON ({exc}): {text[:200]}") from None
    if not isinstance(args, dict):
        raise BlockError("arguments must be a JSON object")
    return args


def _run_tool(ctx, tools, name, args, stdout, call_no="1.1"):
    ctx.check()
    tool = tools.get(name)
    if tool is None:
        raise BlockError(f"no tool named {name!r}; the tools are: {', '.join(tools) or 'none'}")
    kind = tool["type"]
    if kind == "code":
        return _code_tool(ctx, tool, args, stdout)
    config = render({k: v for k, v in tool.items() if k not in META_KEYS}, _scope(ctx, args),
                    limit=getattr(ctx.settings, "max_value_bytes", None),
                    what=f"rendered config of tool '{name}'")
    if kind == "http":
        return _http_tool(ctx, config, call_no)
    return _workflow_tool(ctx, config, args)


def _scope(ctx, args):
    """Templates in a tool see `args`, `variables` and the agent's ancestors' outputs."""
    inputs = ctx.inputs or {}
    return Scope(ctx.block_id, ctx.variables, inputs, set(inputs), lambda _b: True,
                 extra={"args": args})


def _code_tool(ctx, tool, args, stdout):
    sandbox = ctx.services.get("sandbox")
    if sandbox is None:
        raise BlockError("code tools need the sandbox service, which is not running")
    timeout = ctx.remaining(_seconds(tool.get("timeout"), CODE_TOOL_TIMEOUT))
    scope = {"args": args, "inputs": ctx.inputs, "variables": ctx.variables}
    result = sandbox.run(tool["code"], scope, timeout=timeout, cancelled=ctx.cancelled,
                         workspace=ctx.workspace)
    stdout.add(tool["name"], getattr(result, "stdout", None))
    return result.value


def _http_tool(ctx, config, call_no):
    fail_on_status = config.get("fail_on_status", True)
    # One key per tool call (round.call): a receiver must not take two different calls for one.
    answer = perform(ctx, config, idempotency_key=f"{ctx.execution_id}:{ctx.block_id}:{call_no}")
    if fail_on_status is False or fail_on_status == "false":
        return {"status": answer["status"], "body": answer["body"]}
    return answer["body"]


def _workflow_tool(ctx, config, args):
    subrun = ctx.services.get("subrun")
    if subrun is None:
        raise BlockError("workflow tools are not available in this server")
    workflow_id = config.get("workflow_id")
    if not isinstance(workflow_id, str) or not workflow_id:
        raise BlockError("workflow_id must be a non-empty string")
    settings = ctx.settings
    cap = getattr(settings, "execute_timeout", None) or 300.0
    timeout = ctx.remaining(min(_seconds(config.get("timeout"), cap), cap))
    return subrun.run(ctx.workspace, workflow_id, args, timeout, ctx.cancelled, depth=ctx.depth)


def _seconds(value, default):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return default
    return value if value > 0 else default


def _jsonable(value):
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        return repr(value)


def _for_model(result):
    text = as_text(result)
    if len(text) > TOOL_TEXT_LIMIT:
        text = text[:TOOL_TEXT_LIMIT] + f"\n[truncated: {len(text)} characters in all]"
    return text


class _Stdout:
    """What code tools printed, kept in the block's log `stdout`."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.lock = threading.Lock()

    def add(self, name, text):
        if not text:
            return
        with self.lock:
            self.ctx.stdout = (self.ctx.stdout or "") + f"[{name}]\n{text}"
            if not text.endswith("\n"):
                self.ctx.stdout += "\n"
