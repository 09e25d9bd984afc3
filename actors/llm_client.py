"""The llm block, and the streamed chat completion the agent block shares.

We speak the OpenAI-compatible Chat Completions protocol through the official
`openai` client (OpenAI, vLLM, Ollama, llama.cpp's server, LM Studio all serve
it), always with `stream: true`, asking for a final usage chunk
(`stream_options.include_usage`); a server that rejects that option with a
400 is asked again without it (and remembered). Each content delta is emitted
as a text chunk. The client's own retries are off: the block's `retries` /
`retry_delay` decide. Requests run inside a `Guard` (see http_client), so a
cancelled run or the block's deadline stops a stream at once, even while the
provider is silent.
"""

import dataclasses
import importlib
import json
import logging
import os
import threading

import httpx2
import openai

from actors.errors import BlockError
from .context import BlockCancelled
from .http_client import CONNECT_TIMEOUT, Guard, make_client, safe_url

READ_TIMEOUT = 600.0     # longest silence from the provider when nothing else bounds the call
NO_KEY = "not-needed"    # local servers want no key, but the client must send one

_clients = {}
_clients_lock = threading.Lock()
_http = None
_no_stream_options = set()   # base URLs that refused stream_options

# OPENAI_LOG in the server's environment must not turn on the SDK's request logging.
logging.getLogger("openai").setLevel(logging.WARNING)


@dataclasses.dataclass
class Reply:
    content: str
    model: str
    usage: dict | None
    finish_reason: str | None
    tool_calls: list    # [{"id", "name", "arguments"}] with arguments as the raw JSON text


def complete(ctx):
    """Run the llm block: one streamed chat completion. Output {content, model, usage}."""
    cfg = ctx.config
    messages = base_messages(cfg)
    reply = chat(ctx, messages, on_text=ctx.emit)
    return {"content": reply.content, "model": reply.model, "usage": reply.usage}


def base_messages(cfg):
    """[system?, user] from a rendered llm/agent config."""
    prompt = cfg.get("prompt")
    if prompt is None or prompt == "":
        raise BlockError("prompt is required")
    messages = []
    system = cfg.get("system")
    if system not in (None, ""):
        messages.append({"role": "system", "content": _text(system)})
    messages.append({"role": "user", "content": _text(prompt)})
    return messages


def _text(value):
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def provider(ctx):
    """(base_url, api_key, model) from the settings and the block's `model`."""
    settings = ctx.settings
    base_url = getattr(settings, "llm_base_url", None)
    if not base_url:
        raise BlockError("no LLM provider configured: set ACTORFLOW_LLM_BASE_URL "
                         "(e.g. http://localhost:11434/v1)")
    model = ctx.config.get("model") or getattr(settings, "llm_model", None)
    if not model:
        raise BlockError("no model given: set the block's `model` or ACTORFLOW_LLM_MODEL")
    if not isinstance(model, str):
        raise BlockError("model must be a string")
    return base_url.rstrip("/"), getattr(settings, "llm_api_key", None) or None, model


def sampling(cfg):
    """temperature and max_tokens from a rendered config, checked (templates may give strings)."""
    params = {}
    temperature = cfg.get("temperature")
    if temperature not in (None, ""):
        try:
            temperature = float(temperature)
        except (TypeError, ValueError):
            raise BlockError(f"temperature must be a number, not {temperature!r}") from None
        if temperature < 0:
            raise BlockError("temperature must be >= 0")
        params["temperature"] = temperature
    max_tokens = cfg.get("max_tokens")
    if max_tokens not in (None, ""):
        try:
            as_float = float(max_tokens)
            max_tokens = int(as_float)
        except (TypeError, ValueError, OverflowError):
            raise BlockError(f"max_tokens must be an integer, not {max_tokens!r}") from None
        if max_tokens != as_float or max_tokens < 1 or isinstance(cfg.get("max_tokens"), bool):
            raise BlockError("max_tokens must be an integer >= 1")
        params["max_tokens"] = max_tokens
    return params


def client_for(base_url, api_key):
    """One cached (thread-safe) client per provider and key."""
    global _http
    key = (base_url, api_key)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            if _http is None:
                _http = make_client(follow_redirects=True)
            client = _new_client(base_url, api_key or NO_KEY, _http)
            _clients[key] = client
        return client


class _NoEnvironment:
    """`os` as the openai client sees it while it is built: an empty environment."""

    environ = {}

    def __getattr__(self, name):
        return getattr(os, name)


def _new_client(base_url, api_key, http_client):
    """An openai client configured only by what Actorflow passes.

    The SDK fills organization, project, admin key, base URL and extra headers
    from OPENAI_* variables of the server's environment (OPENAI_ORG_ID,
    OPENAI_CUSTOM_HEADERS, ...). Those belong to whoever started the server,
    not to the workflow, so the client is built seeing no environment.
    Callers hold _clients_lock, which makes the swap safe.
    """
    sdk = importlib.import_module("openai._client")
    real = sdk.os
    sdk.os = _NoEnvironment()
    try:
        return openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0,
                             http_client=http_client)
    finally:
        sdk.os = real


def chat(ctx, messages, tools=None, on_text=None):
    """One streamed chat completion, as a Reply. Raises BlockError with the provider's message."""
    ctx.check()
    base_url, api_key, model = provider(ctx)
    client = client_for(base_url, api_key)
    params = sampling(ctx.config)
    if tools:
        params["tools"] = tools
    limit = ctx.remaining(READ_TIMEOUT)
    timeout = httpx2.Timeout(limit, connect=min(limit, CONNECT_TIMEOUT))
    with Guard(ctx) as guard:
        try:
            try:
                reply = _stream(ctx, client, base_url, model, messages, params, timeout, on_text)
            except openai.BadRequestError as exc:
                if base_url in _no_stream_options or "stream_options" not in _message(exc):
                    raise
                _no_stream_options.add(base_url)
                reply = _stream(ctx, client, base_url, model, messages, params, timeout, on_text)
            guard.raise_if_fired()
            return reply
        except BlockError:
            guard.raise_if_fired(f"LLM provider at {safe_url(base_url)} timed out")
            raise
        except openai.APIStatusError as exc:
            guard.raise_if_fired()
            raise BlockError(f"LLM provider error {exc.status_code}: {_message(exc)}") from None
        except openai.APITimeoutError:
            guard.raise_if_fired()
            raise BlockError(f"LLM provider at {safe_url(base_url)} timed out "
                             f"after {limit:g}s") from None
        except openai.APIConnectionError as exc:
            guard.raise_if_fired()
            raise BlockError(f"could not reach LLM provider at {safe_url(base_url)}: "
                             f"{_cause(exc)}") from None
        except openai.APIError as exc:
            guard.raise_if_fired()
            raise BlockError(f"LLM provider error: {_message(exc)}") from None
        except (openai.OpenAIError, httpx2.HTTPError, OSError, ValueError) as exc:
            guard.raise_if_fired()
            raise BlockError(f"LLM call failed: {type(exc).__name__}: {exc}") from None


def _stream(ctx, client, base_url, model, messages, params, timeout, on_text):
    extra = {} if base_url in _no_stream_options else {"stream_options": {"include_usage": True}}
    stream = client.chat.completions.create(model=model, messages=messages, stream=True,
                                            timeout=timeout, **extra, **params)
    content, calls = [], {}
    usage = finish = None
    reported_model = None
    try:
        for chunk in _chunks(stream.response):
            if ctx.cancelled.is_set():
                raise BlockCancelled("cancelled")
            reported_model = _text_of(chunk.get("model")) or reported_model
            if isinstance(chunk.get("usage"), dict):
                usage = _without_none(chunk["usage"])
            for choice in _dicts(chunk.get("choices")):
                if choice.get("index") not in (0, None):
                    continue
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
                delta = choice.get("delta")
                if not isinstance(delta, dict):
                    continue
                text = _text_of(delta.get("content"))
                if text:
                    content.append(text)
                    if on_text is not None:
                        on_text(text)
                for call in _dicts(delta.get("tool_calls")):
                    slot = calls.setdefault(call.get("index"), {"id": None, "name": "", "arguments": ""})
                    if call.get("id"):
                        slot["id"] = call["id"]
                    function = call.get("function")
                    if isinstance(function, dict):
                        slot["name"] += _text_of(function.get("name")) or ""
                        slot["arguments"] += _text_of(function.get("arguments")) or ""
    finally:
        stream.close()
    ctx.check()
    tool_calls = []
    for n, index in enumerate(sorted(calls, key=lambda i: i if isinstance(i, int) else -1)):
        slot = calls[index]
        tool_calls.append({"id": slot["id"] or f"call_{n}", "name": slot["name"],
                           "arguments": slot["arguments"]})
    return Reply(content="".join(content), model=reported_model or model, usage=usage,
                 finish_reason=finish, tool_calls=tool_calls)


def _chunks(response):
    """The streamed chunks as plain dicts, as each event's blank line arrives.

    Parsed here rather than by the SDK's stream, whose typed chunk objects took
    about two thirds of a token's CPU on the way to the client. The same rules:
    `data: [DONE]` ends the stream, a chunk with an `error` is the provider's
    error, a read timeout or broken connection is the SDK's own error.
    """
    data = []
    try:
        for line in response.iter_lines():
            if line:
                if line.startswith("data:"):
                    data.append(line[6:] if line.startswith("data: ") else line[5:])
                continue
            if not data:
                continue
            text, data = "\n".join(data), []
            if text.startswith("[DONE]"):
                return
            chunk = json.loads(text)
            if isinstance(chunk, dict) and chunk.get("error"):
                error = chunk["error"]
                message = error.get("message") if isinstance(error, dict) else None
                if not message or not isinstance(message, str):
                    message = "An error occurred during streaming"
                raise openai.APIError(message=message, request=response.request, body=error)
            if isinstance(chunk, dict):
                yield chunk
    except httpx2.TimeoutException as exc:
        raise openai.APITimeoutError(request=response.request) from exc
    except httpx2.TransportError as exc:
        raise openai.APIConnectionError(request=response.request) from exc


def _dicts(value):
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else ()


def _text_of(value):
    return value if isinstance(value, str) else None


def _without_none(value):
    """`value` with None entries left out, as the SDK's model_dump(exclude_none=True) gave it."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def _message(exc):
    """The provider's own error message, when it sent one."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        message = body.get("message") or body.get("error")
        if isinstance(message, dict):
            message = message.get("message")
        if isinstance(message, str) and message.strip():
            return message.strip()
    if isinstance(body, str) and body.strip():
        return body.strip()[:500]
    return getattr(exc, "message", None) or str(exc)


def _cause(exc):
    cause = exc.__cause__
    while cause is not None and cause.__cause__ is not None and not str(cause).strip():
        cause = cause.__cause__
    text = str(cause).strip() if cause is not None else ""
    return text or getattr(exc, "message", None) or "connection error"
