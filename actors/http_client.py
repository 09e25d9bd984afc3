"""The http block, and the HTTP plumbing the llm and agent blocks share.

Blocks run on their own actor thread, so a blocking client is fine: we use
`httpx2` (what the `openai` package is built on). Every request made inside a
`Guard` can be stopped at once from outside: a small watcher thread waits on
the block's `cancelled` event and deadline, and when either fires it shuts
down the sockets the request opened (learnt through httpcore's `trace`
request extension), which wakes a blocked connect-phase read or body read
immediately. Clients built by `make_client` keep no idle connections, so
every request opens (and reports) its own socket.
"""

import json
import socket
import threading
import time
import urllib.parse

import httpx2

from actors.errors import BlockError
from .blocks.http import METHODS
from .context import BlockCancelled, BlockTimeout
from .plan import DEPTH_HEADER

MAX_RESPONSE_BYTES = 10 * 1024 * 1024
MAX_REDIRECTS = 5
DEFAULT_TIMEOUT = 60.0      # seconds, when neither the block's timeout nor the run's bounds it
CONNECT_TIMEOUT = 10.0
USER_AGENT = "Actorflow/0.1 (http block)"
WATCH_POLL = 0.2            # how soon a guard's watcher notices the call is over

_local = threading.local()


# -- cancellation ------------------------------------------------------------

class Guard:
    """Stops this thread's in-flight HTTP when the block is cancelled or out of time.

    Use as a context manager around a request (and the reading of its body).
    `deadline` (a `time.monotonic()` instant) defaults to the block's; after
    the call, `raise_if_fired()` turns a shut-down socket into the right
    error, whatever the client made of it (a read error, or an early EOF).
    """

    def __init__(self, ctx, deadline=None):
        self.ctx = ctx
        deadlines = [d for d in (ctx.deadline, deadline) if d is not None]
        self.deadline = min(deadlines) if deadlines else None
        self.fired = None           # None, "cancelled" or "timeout"
        self._socks = []
        self._lock = threading.Lock()
        self._over = False
        self._previous = None

    def __enter__(self):
        self._previous = getattr(_local, "guard", None)
        _local.guard = self
        threading.Thread(target=self._watch, name="http-guard", daemon=True).start()
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._over = True
            self._socks = []
        _local.guard = self._previous
        return False

    def _watch(self):
        while True:
            with self._lock:
                if self._over:
                    return
            wait = WATCH_POLL
            if self.deadline is not None:
                left = self.deadline - time.monotonic()
                if left <= 0:
                    self._fire("timeout")
                    return
                wait = min(wait, left)
            if self.ctx.cancelled.wait(wait):
                self._fire("cancelled")
                return

    def _fire(self, reason):
        with self._lock:
            if self._over:
                return
            self.fired = reason
            socks = list(self._socks)
        for sock in socks:
            _shutdown(sock)

    def add_socket(self, sock):
        with self._lock:
            if self._over:
                return
            self._socks.append(sock)
            fired = self.fired
        if fired:
            _shutdown(sock)

    def raise_if_fired(self, timeout_message="request timed out"):
        if self.fired == "cancelled" or self.ctx.cancelled.is_set():
            raise BlockCancelled("cancelled")
        if self.fired == "timeout":
            if self.ctx.deadline is not None and time.monotonic() >= self.ctx.deadline:
                raise BlockTimeout(self.ctx.timeout_message())
            raise BlockError(timeout_message)


def _shutdown(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _trace(name, info):
    """httpcore's trace hook: hand every new socket to this thread's guard."""
    guard = getattr(_local, "guard", None)
    if guard is None:
        return
    if name in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            guard.add_socket(sock)


def _install_trace(request):
    previous = request.extensions.get("trace")
    if previous is None or previous is _trace:
        request.extensions["trace"] = _trace
    else:
        def both(name, info):
            previous(name, info)
            _trace(name, info)
        request.extensions["trace"] = both


def make_client(**kwargs):
    """A thread-safe httpx2 client whose requests a `Guard` can stop."""
    kwargs.setdefault("limits", httpx2.Limits(max_connections=200, max_keepalive_connections=0))
    kwargs.setdefault("timeout", httpx2.Timeout(DEFAULT_TIMEOUT, connect=CONNECT_TIMEOUT))
    kwargs["event_hooks"] = {"request": [_install_trace], "response": []}
    return httpx2.Client(**kwargs)


_client = None
_client_lock = threading.Lock()


def _shared_client():
    global _client
    with _client_lock:
        if _client is None:
            _client = make_client(follow_redirects=True, max_redirects=MAX_REDIRECTS,
                                  headers={"User-Agent": USER_AGENT})
        return _client


# -- the http block ----------------------------------------------------------

def call(ctx):
    """Run the http block: `ctx.config` is rendered already."""
    return perform(ctx, ctx.config)


def perform(ctx, config, max_bytes=MAX_RESPONSE_BYTES):
    """One request as an http config describes it. Output {status, headers, body}."""
    method, url, headers, content, timeout, fail_on_status = _request_parts(ctx, config)
    status, answer_headers, body = request(ctx, method, url, headers, content, timeout, max_bytes)
    if fail_on_status and not 200 <= status < 300:
        raise BlockError(f"HTTP {status} from {method} {safe_url(url)}{_snippet(body)}")
    return {"status": status, "headers": answer_headers, "body": body}


def _request_parts(ctx, config):
    method = config.get("method") or "GET"
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise BlockError(f"method must be one of {', '.join(sorted(METHODS))}, not {method!r}")
    method = method.upper()
    url = config.get("url")
    if not isinstance(url, str) or not url.strip():
        raise BlockError("url must be a non-empty string")
    url = url.strip()
    if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
        raise BlockError(f"url must start with http:// or https://, not {safe_url(url)!r}")
    raw_headers = config.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise BlockError("headers must be an object")
    # The depth header is ours alone: a config cannot reset it to escape the loop limit.
    headers = {str(k): _header_value(v) for k, v in raw_headers.items()
               if v is not None and str(k).lower() != DEPTH_HEADER.lower()}
    headers[DEPTH_HEADER] = str(ctx.depth + 1)
    content = None
    body = config.get("body")
    if body is not None:
        if isinstance(body, str):
            content = body.encode("utf-8")
        elif isinstance(body, bytes):
            content = body
        else:
            content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"
    timeout = config.get("timeout")
    if timeout in (None, ""):
        timeout = DEFAULT_TIMEOUT
    try:
        timeout = float(timeout)
    except (TypeError, ValueError):
        raise BlockError(f"timeout must be a number of seconds, not {timeout!r}") from None
    if timeout <= 0:
        raise BlockError("timeout must be a positive number of seconds")
    fail_on_status = config.get("fail_on_status", True)
    if isinstance(fail_on_status, str) and fail_on_status.lower() in ("true", "false"):
        fail_on_status = fail_on_status.lower() == "true"
    if fail_on_status is None:
        fail_on_status = True
    if not isinstance(fail_on_status, bool):
        raise BlockError("fail_on_status must be true or false")
    return method, url, headers, content, timeout, fail_on_status


def _header_value(value):
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def request(ctx, method, url, headers=None, content=None, timeout=DEFAULT_TIMEOUT,
            max_bytes=MAX_RESPONSE_BYTES):
    """Send one request, following up to MAX_REDIRECTS redirects.

    Returns (status, headers with lower-cased names, body): the body parsed
    when the answer says it is JSON, else text. Every failure is a BlockError
    with a one-line message; cancellation and the block's deadline stop the
    request at once.
    """
    ctx.check()
    limit = ctx.remaining(timeout)
    shown = safe_url(url)
    late = f"request to {shown} timed out after {limit:g}s"
    client = _shared_client()
    with Guard(ctx, deadline=time.monotonic() + limit) as guard:
        try:
            request_timeout = httpx2.Timeout(limit, connect=min(limit, CONNECT_TIMEOUT))
            with client.stream(method, url, headers=headers, content=content,
                               timeout=request_timeout) as resp:
                declared = resp.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise BlockError(f"response from {shown} is too large "
                                     f"({int(declared)} bytes; the limit is {_size(max_bytes)})")
                parts, size = [], 0
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise BlockError(f"response from {shown} is larger than {_size(max_bytes)}")
                    parts.append(chunk)
                    if ctx.cancelled.is_set():
                        break
                guard.raise_if_fired(late)
                data = b"".join(parts)
                status = resp.status_code
                answer_headers = _headers(resp.headers)
                encoding = resp.charset_encoding or "utf-8"
        except BlockError:
            guard.raise_if_fired(late)
            raise
        except httpx2.TooManyRedirects:
            guard.raise_if_fired(late)
            raise BlockError(f"too many redirects (more than {MAX_REDIRECTS}) "
                             f"from {shown}") from None
        except httpx2.TimeoutException:
            guard.raise_if_fired(late)
            raise BlockError(late) from None
        except httpx2.ConnectError as exc:
            guard.raise_if_fired(late)
            raise BlockError(f"could not connect to {shown}: {_reason(exc)}") from None
        except (httpx2.InvalidURL, httpx2.UnsupportedProtocol) as exc:
            raise BlockError(f"invalid url {shown!r}: {exc}") from None
        except (httpx2.HTTPError, httpx2.StreamError, OSError, ValueError) as exc:
            guard.raise_if_fired(late)
            raise BlockError(f"request to {shown} failed: {_reason(exc)}") from None
    body = _parse_body(data, answer_headers.get("content-type", ""), encoding)
    return status, answer_headers, body


def _headers(headers):
    out = {}
    for name, value in headers.multi_items():
        name = name.lower()
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def _parse_body(data, content_type, encoding):
    try:
        text = data.decode(encoding, errors="replace")
    except LookupError:
        text = data.decode("utf-8", errors="replace")
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == "application/json" or mime.endswith("+json"):
        try:
            return json.loads(text) if text.strip() else None
        except ValueError:
            return text
    return text


def _reason(exc):
    text = str(exc).strip()
    if not text and exc.__cause__ is not None:
        text = str(exc.__cause__).strip()
    return text or type(exc).__name__


def _snippet(body, limit=200):
    if body in (None, ""):
        return ""
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    text = " ".join(text.split())
    return ": " + (text[:limit] + "..." if len(text) > limit else text)


def _size(n):
    return f"{n // (1024 * 1024)} MiB" if n % (1024 * 1024) == 0 else f"{n} bytes"


def safe_url(url):
    """The URL without credentials or query string, for error messages."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<invalid url>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
