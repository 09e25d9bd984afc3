"""The http block, and the HTTP plumbing the llm and agent blocks share.

Blocks run on their own actor thread, so a blocking client is fine: we use
`httpx2` (what the `openai` package is built on). The http block (and the
agent's http tools) resolve each host themselves, ask the run's `netpolicy`
about every address, and connect to the address they checked (the URL's host
replaced by it; the Host header and TLS name stay the original), so a name
that resolves differently the second time cannot slip past the check.
Redirects are followed here, hop by hop, for the same reason. Every request made inside a
`Guard` can be stopped at once from outside: the block's `cancelled` flag
calls back when set, and its deadline is a timer on one shared thread; when
either fires, the guard shuts down the sockets the request opened (learnt through httpcore's `trace`
request extension), which wakes a blocked connect-phase read or body read
immediately. Clients built by `make_client` have no connection pool
(see http_transport), so every request opens (and reports) its own socket.
"""

import contextlib
import http.cookiejar
import ipaddress
import json
import logging
import socket
import threading
import time
import urllib.parse

import httpx2

from actors.errors import BlockError
from .blocks.http import METHODS
from .context import BlockCancelled, BlockTimeout
from .netpolicy import NetPolicy, normal
from .http_transport import OneShotTransport
from .plan import DEPTH_HEADER
from .timers import Timers

MAX_RESPONSE_BYTES = 10 * 1024 * 1024
MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)
DEFAULT_TIMEOUT = 60.0      # seconds, when neither the block's timeout nor the run's bounds it
CONNECT_TIMEOUT = 10.0
USER_AGENT = "Actorflow/0.1 (http block)"
IDEMPOTENCY_HEADER = "Idempotency-Key"
WATCH_POLL = 0.2            # how soon a guard notices a plain Event was set

_local = threading.local()

# httpx2 logs every request at INFO: a line per http block, which the run's own log already says.
logging.getLogger("httpx2").setLevel(logging.WARNING)


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
        self._callbacks = []
        self._lock = threading.Lock()
        self._over = False
        self._previous = None
        self._timer = None
        self._unhook = None

    def __enter__(self):
        self._previous = getattr(_local, "guard", None)
        _local.guard = self
        # No thread of its own: the deadline is a timer on one shared thread,
        # and the cancel calls back (CancelFlag) or is polled by that timer.
        if self.deadline is not None:
            self._timer = _watch_timers().call_later(
                max(0.0, self.deadline - time.monotonic()), self._fire, "timeout")
        self._unhook = _on_cancel(self.ctx.cancelled, self._cancelled)
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._over = True
            self._socks = []
        if self._timer is not None:
            self._timer.cancel()
        # The unhook holds our bound method: drop it, so no cycle outlives the request.
        unhook, self._unhook, self._timer = self._unhook, None, None
        unhook()
        _local.guard, self._previous = self._previous, None
        return False

    def _cancelled(self):
        self._fire("cancelled")

    def _fire(self, reason):
        with self._lock:
            if self._over:
                return
            self.fired = reason
            socks = list(self._socks)
            callbacks, self._callbacks = self._callbacks, []
        for sock in socks:
            _shutdown(sock)
        for callback in callbacks:
            callback()

    def on_fire(self, callback):
        """Call `callback()` when the guard fires (at once if it has): wakes a wait on something else."""
        with self._lock:
            if self.fired is None and not self._over:
                self._callbacks.append(callback)
                return
        callback()

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


_timers = None
_timers_lock = threading.Lock()


def _watch_timers():
    """The one timer thread behind every guard's deadline (started on first use)."""
    global _timers
    with _timers_lock:
        if _timers is None:
            _timers = Timers()
        return _timers


def _on_cancel(event, fn):
    """Call `fn()` once when `event` is set; returns a function that stops it.

    A CancelFlag calls back; a plain Event is looked at every WATCH_POLL seconds.
    """
    if hasattr(event, "on_set"):
        return event.on_set(fn)
    state = {"timer": None, "over": False}

    def look():
        if state["over"]:
            return
        if event.is_set():
            fn()
        else:
            state["timer"] = _watch_timers().call_later(WATCH_POLL, look)

    def stop():
        state["over"] = True
        if state["timer"] is not None:
            state["timer"].cancel()
    look()
    return stop


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
    """A thread-safe httpx2 client whose requests a `Guard` can stop; one connection per request."""
    kwargs.setdefault("timeout", httpx2.Timeout(DEFAULT_TIMEOUT, connect=CONNECT_TIMEOUT))
    kwargs.setdefault("transport", OneShotTransport(trust_env=kwargs.get("trust_env", True)))
    kwargs["event_hooks"] = {"request": [_install_trace], "response": []}
    return httpx2.Client(**kwargs)


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """One client serves every workspace: it must never keep a cookie."""

    def set_ok(self, cookie, request):
        return False

    def return_ok(self, cookie, request):
        return False


_client = None
_client_lock = threading.Lock()
_OPEN_POLICY = NetPolicy()      # for a context without a runtime: metadata addresses still refused


def _shared_client():
    global _client
    with _client_lock:
        if _client is None:
            # No proxies from the environment: we connect to the address we checked.
            # Connections are bounded per run and workspace by the caller, not here.
            _client = make_client(follow_redirects=False, trust_env=False,
                                  cookies=http.cookiejar.CookieJar(policy=_NoCookies()),
                                  headers={"User-Agent": USER_AGENT})
        return _client


# -- the http block ----------------------------------------------------------

def call(ctx):
    """Run the http block: `ctx.config` is rendered already."""
    return perform(ctx, ctx.config)


def perform(ctx, config, max_bytes=MAX_RESPONSE_BYTES, idempotency_key=None):
    """One request as an http config describes it. Output {status, headers, body}.

    It carries `Idempotency-Key` (default `<execution_id>:<block_id>`, the same on
    every retry and after a resume) unless the config sets that header itself.
    """
    method, url, headers, content, timeout, fail_on_status = _request_parts(ctx, config)
    if ctx.execution_id and not any(k.lower() == IDEMPOTENCY_HEADER.lower() for k in headers):
        headers[IDEMPOTENCY_HEADER] = idempotency_key or f"{ctx.execution_id}:{ctx.block_id}"
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
    request at once. Every hop's addresses are checked by the run's netpolicy.
    """
    ctx.check()
    limit = ctx.remaining(timeout)
    shown = safe_url(url)
    late = f"request to {shown} timed out after {limit:g}s"
    client = _shared_client()
    policy = ctx.services.get("netpolicy") or _OPEN_POLICY
    slots = ctx.services.get("http_slots")
    headers = dict(headers or {})
    with Guard(ctx, deadline=time.monotonic() + limit) as guard, \
            _slot(slots, ctx, guard, late):
        try:
            request_timeout = httpx2.Timeout(limit, connect=min(limit, CONNECT_TIMEOUT))
            hop = url
            for _ in range(MAX_REDIRECTS + 1):
                resp = _open(client, policy, guard, late, method, hop, headers, content,
                             request_timeout, redirected_from=None if hop is url else shown)
                try:
                    location = resp.headers.get("location") if resp.status_code in REDIRECTS else None
                    if location is None:
                        data, status, answer_headers, encoding = _read(ctx, resp, shown, max_bytes, guard, late)
                        break
                finally:
                    resp.close()
                method, hop, headers, content = _next_hop(resp.status_code, method, hop, location,
                                                          headers, content)
            else:
                raise httpx2.TooManyRedirects("too many redirects")
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


def _slot(slots, ctx, guard, late):
    """This run's and workspace's share of connections (see http_slots); none without the service."""
    if slots is None:
        return contextlib.nullcontext()
    return slots.hold(ctx.workspace, ctx.execution_id, guard, late)


def _open(client, policy, guard, late, method, url, headers, content, timeout, redirected_from=None):
    """Send one hop to an address the policy allows; the response's body is not read yet."""
    parsed = httpx2.URL(url)
    if parsed.scheme not in ("http", "https"):
        raise BlockError(f"redirect from {redirected_from} to {safe_url(url)!r}: "
                         f"only http:// and https:// are followed")
    host = urllib.parse.unquote(parsed.raw_host.decode("ascii"))
    if not host:
        raise httpx2.InvalidURL("no host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = _resolve(host, port, guard, late)
    for address in addresses:
        reason = policy.refusal(address, port)
        if reason is not None:
            via = f" (redirected from {redirected_from})" if redirected_from else ""
            raise BlockError(f"refused to connect to {safe_url(url)}{via}: {reason}")
    headers = dict(headers)
    if not any(k.lower() == "host" for k in headers):
        headers["Host"] = parsed.netloc.decode("ascii")
    extensions = {}
    if parsed.scheme == "https" and not _is_ip(host):
        extensions["sni_hostname"] = host       # the certificate is checked against the name
    error = None
    for address in addresses:
        request = client.build_request(method, parsed.copy_with(host=address), headers=headers,
                                       content=content, timeout=timeout, extensions=extensions)
        try:
            return client.send(request, stream=True)
        except httpx2.ConnectError as exc:      # try the name's next address
            error = exc
            if guard.fired:
                break
    try:
        raise error
    finally:
        error = None  # its traceback holds this frame: no cycle through the local


def _resolve(host, port, guard, late):
    """The addresses `host` stands for, in the resolver's order, without repeats.

    getaddrinfo cannot be interrupted, so it runs on a helper thread and the
    guard wakes us when the block is cancelled or out of time.
    """
    if _is_ip(host):
        return [str(normal(host))]
    found = {}
    done = threading.Event()

    def work():
        try:
            found["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            found["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="http-resolve", daemon=True).start()
    guard.on_fire(done.set)
    done.wait()
    guard.raise_if_fired(late)
    if "error" in found:
        raise BlockError(f"could not resolve {host}: {_reason(found['error'])}")
    addresses = []
    for info in found["infos"]:
        address = str(normal(info[4][0]))
        if address not in addresses:
            addresses.append(address)
    return addresses


def _is_ip(host):
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return True
    except ValueError:
        return False


def _next_hop(status, method, url, location, headers, content):
    """(method, url, headers, content) of the request a redirect asks for, as browsers do."""
    try:
        target = httpx2.URL(url).join(location)
    except (httpx2.InvalidURL, ValueError) as exc:
        raise BlockError(f"invalid redirect from {safe_url(url)}: {exc}") from None
    if (status == 303 and method != "HEAD") or (status == 302 and method != "HEAD") or (
            status == 301 and method == "POST"):
        method, content = "GET", None
        headers = {k: v for k, v in headers.items()
                   if k.lower() not in ("content-type", "content-length", "transfer-encoding")}
    if target.origin != httpx2.URL(url).origin:
        # Credentials and a chosen Host are for the first origin only.
        headers = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "host", "cookie")}
    return method, str(target), headers, content


def _read(ctx, resp, shown, max_bytes, guard, late):
    """The answer's (data, status, lower-cased headers, text encoding); the body bounded."""
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
    return b"".join(parts), resp.status_code, _headers(resp.headers), resp.charset_encoding or "utf-8"


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
