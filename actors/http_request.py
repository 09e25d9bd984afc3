"""The http block's request (and the agent's http tools'): asyncio and h11 on the HTTP loop.

A request resolves its host itself, asks the run's `netpolicy` about every
address, and connects to the address it checked (the Host header and TLS
name stay the original), so a name that resolves differently the second
time cannot slip past the check. Redirects are followed here, hop by hop,
for the same reason. The request is a task on the shared HTTP loop
(actors/http_loop): it holds no thread while it waits, and a cancel or the
deadline cancels the task, which closes its socket at once.

`exchange` is the request itself, on the loop; `output` turns its answer
into the block's output (parsing the body) on a block thread. `perform`
does both for a caller on a thread of its own (an agent's tools).
"""

import asyncio
import base64
import dataclasses
import email.message
import ipaddress
import json
import os
import socket
import ssl
import time
import urllib.parse
import zlib

import h11
import httpx2

from actors.errors import BlockError
from .blocks.http import METHODS
from .context import BlockCancelled, BlockTimeout, on_cancel
from .http_client import CONNECT_TIMEOUT, DEFAULT_TIMEOUT, USER_AGENT, safe_url
from .http_loop import http_loop
from .http_wire import Wire
from .netpolicy import NetPolicy, normal
from .plan import DEPTH_HEADER
from .threads import start_daemon

MAX_RESPONSE_BYTES = 10 * 1024 * 1024
MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_HEAD_BYTES = 100 * 1024     # a response's status line and headers

_OPEN_POLICY = NetPolicy()      # for a context without a runtime: metadata addresses still refused
_ssl_context = None


@dataclasses.dataclass
class Answer:
    """What came back: the request's method and URL (for messages), status, headers, body bytes."""
    method: str
    url: str
    status: int
    headers: dict           # lower-cased names; repeated ones joined with ", "
    data: bytes
    encoding: str
    fail_on_status: bool


class _Phase:
    """Where a request is, for its timeout's message."""
    waiting = None          # why it waits for a connection slot, while it does


# -- on a thread of its own --------------------------------------------------

def call(ctx):
    """Run the http block on this thread: `ctx.config` is rendered already."""
    return perform(ctx, ctx.config)


def perform(ctx, config, max_bytes=MAX_RESPONSE_BYTES, idempotency_key=None):
    """One request as an http config describes it, waited for here. Output {status, headers, body}."""
    return output(http_loop().run(exchange(ctx, config, max_bytes, idempotency_key)))


def output(answer):
    """The block's output for an Answer: {status, headers, body}, the body parsed when it is JSON."""
    if answer.fail_on_status and not 200 <= answer.status < 300:
        raise BlockError(f"HTTP {answer.status} from {answer.method} {safe_url(answer.url)}"
                         f"{_snippet(_parse_body(answer))}")
    return {"status": answer.status, "headers": answer.headers, "body": _parse_body(answer)}


async def wait(ctx):
    """The http block's run without a thread (BlockType.wait): what makes its output, on a block thread."""
    answer = await exchange(ctx, ctx.config)
    return lambda: output(answer)


# -- on the HTTP loop --------------------------------------------------------

async def exchange(ctx, config, max_bytes=MAX_RESPONSE_BYTES, idempotency_key=None):
    """Send the request an http config describes, following redirects: an Answer.

    It carries `Idempotency-Key` (default `<execution_id>:<block_id>`, the same on
    every retry and after a resume) unless the config sets that header itself.
    Every failure is a BlockError with a one-line message; the block's cancel
    and deadline stop it at once.
    """
    method, url, headers, content, timeout, fail_on_status = _request_parts(ctx, config)
    if ctx.execution_id and not any(k.lower() == IDEMPOTENCY_HEADER.lower() for k in headers):
        headers[IDEMPOTENCY_HEADER] = idempotency_key or f"{ctx.execution_id}:{ctx.block_id}"
    ctx.check()
    limit = ctx.remaining(timeout)
    shown = safe_url(url)
    late = f"request to {shown} timed out after {limit:g}s"
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    # Bound now: a cancel that took the call just before the unhook below still finds them.
    unhook = on_cancel(ctx.cancelled, lambda task=task, loop=loop: loop.call_soon_threadsafe(task.cancel))
    phase = _Phase()
    try:
        async with asyncio.timeout(limit):
            status, answer_headers, data, encoding = await _send(ctx, phase, method, url, shown, headers,
                                                                 content, limit, max_bytes)
    except TimeoutError:
        if ctx.cancelled.is_set():
            raise BlockCancelled("cancelled") from None
        why = f" waiting for a connection: {phase.waiting}" if phase.waiting else ""
        if ctx.deadline is not None and time.monotonic() >= ctx.deadline:
            raise BlockTimeout(ctx.timeout_message() + why) from None
        raise BlockError(late + why) from None
    except asyncio.CancelledError:
        if ctx.cancelled.is_set():
            raise BlockCancelled("cancelled") from None
        raise
    finally:
        unhook()
        task = loop = unhook = None  # the task holds its exception, whose traceback holds this frame
    return Answer(method, url, status, answer_headers, data, encoding, fail_on_status)


async def _send(ctx, phase, method, url, shown, headers, content, limit, max_bytes):
    policy = ctx.services.get("netpolicy") or _OPEN_POLICY
    slots = ctx.services.get("http_slots")
    if slots is None:
        return await _hops(policy, method, url, shown, headers, content, limit, max_bytes)
    async with slots.hold(ctx.workspace, ctx.execution_id, phase):
        return await _hops(policy, method, url, shown, headers, content, limit, max_bytes)


async def _hops(policy, method, url, shown, headers, content, limit, max_bytes):
    """(status, headers, data, encoding) of the last hop; up to MAX_REDIRECTS redirects."""
    hop = url
    for _ in range(MAX_REDIRECTS + 1):
        try:
            parsed = httpx2.URL(hop)
        except (httpx2.InvalidURL, ValueError) as exc:
            raise BlockError(f"invalid url {shown!r}: {exc}") from None
        wire = await _open(policy, parsed, shown, limit, redirected_from=None if hop is url else shown)
        try:
            conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
            try:
                wire.write(conn.send(h11.Request(method=method, target=parsed.raw_path,
                                                 headers=_request_headers(method, parsed, headers, content))))
                if content:
                    wire.write(conn.send(h11.Data(data=content)))
                wire.write(conn.send(h11.EndOfMessage()))
                await wire.drain()
                response = await _next_event(conn, wire, (h11.Response,))
            except (h11.ProtocolError, OSError, ValueError) as exc:
                raise BlockError(f"request to {shown} failed: {_reason(exc)}") from None
            answer_headers = _headers(response.headers)
            location = answer_headers.get("location") if response.status_code in REDIRECTS else None
            if location is None:
                data = await _body(conn, wire, answer_headers, shown, max_bytes)
                return response.status_code, answer_headers, data, _charset(answer_headers)
        finally:
            wire.abort()
        method, hop, headers, content = _next_hop(response.status_code, method, hop, location, headers, content)
    raise BlockError(f"too many redirects (more than {MAX_REDIRECTS}) from {shown}")


async def _open(policy, parsed, shown, limit, redirected_from=None):
    """A connection (a Wire) to an address of the URL's host that the policy allows."""
    if parsed.scheme not in ("http", "https"):
        if redirected_from is None:
            raise BlockError(f"url must start with http:// or https://, not {shown!r}")
        raise BlockError(f"redirect from {redirected_from} to {safe_url(str(parsed))!r}: "
                         f"only http:// and https:// are followed")
    host = urllib.parse.unquote(parsed.raw_host.decode("ascii"))
    if not host:
        raise BlockError(f"invalid url {shown!r}: no host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = await _resolve(host, port)
    for address in addresses:
        reason = policy.refusal(address, port)
        if reason is not None:
            via = f" (redirected from {redirected_from})" if redirected_from else ""
            raise BlockError(f"refused to connect to {safe_url(str(parsed))}{via}: {reason}")
    tls = {}
    if parsed.scheme == "https":
        # The certificate is checked against the name, not the address connected to.
        tls = {"ssl": _tls(), "server_hostname": host}
    error = None
    for address in addresses:
        try:
            async with asyncio.timeout(min(limit, CONNECT_TIMEOUT)):
                return await Wire.open(address, port, **tls)
        except TimeoutError:
            raise BlockError(f"could not connect to {shown}: timed out after "
                             f"{min(limit, CONNECT_TIMEOUT):g}s") from None
        except OSError as exc:        # try the name's next address
            error = exc
    raise BlockError(f"could not connect to {shown}: {_reason(error)}")


async def _resolve(host, port):
    """The addresses `host` stands for, in the resolver's order, without repeats."""
    if _is_ip(host):
        return [str(normal(host))]
    # getaddrinfo blocks: it runs on a daemon thread, so a resolver that hangs keeps neither
    # this loop nor the process's exit waiting (asyncio's executor threads are joined at exit).
    loop = asyncio.get_running_loop()
    found = loop.create_future()

    def work():
        try:
            outcome = (socket.getaddrinfo(host, port, type=socket.SOCK_STREAM), None)
        except (OSError, UnicodeError) as exc:
            outcome = (None, exc)
        loop.call_soon_threadsafe(_settle, found, *outcome)

    start_daemon(work, "http-resolve")
    try:
        infos = await found
    except (OSError, UnicodeError) as exc:
        raise BlockError(f"could not resolve {host}: {_reason(exc)}") from None
    addresses = []
    for info in infos:
        address = str(normal(info[4][0]))
        if address not in addresses:
            addresses.append(address)
    return addresses


def _settle(future, result, error):
    if future.done():
        return      # the request was cancelled meanwhile
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _tls():
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = httpx2.create_ssl_context()
    return _ssl_context


def _request_headers(method, parsed, headers, content):
    """The headers sent: Host and the defaults first, then the config's (which win)."""
    chosen = {"host": ("Host", parsed.netloc.decode("ascii")), "accept": ("Accept", "*/*"),
              "accept-encoding": ("Accept-Encoding", "gzip, deflate"), "connection": ("Connection", "close"),
              "user-agent": ("User-Agent", USER_AGENT)}
    if parsed.userinfo:
        # Credentials in the URL are sent as Basic auth (as httpx and curl do), unless the config sets its own.
        pair = f"{parsed.username}:{parsed.password}".encode("utf-8")
        chosen["authorization"] = ("Authorization", "Basic " + base64.b64encode(pair).decode("ascii"))
    for name, value in headers.items():
        chosen[name.lower()] = (name, value)
    if "content-length" not in chosen and "transfer-encoding" not in chosen and (
            content or method in ("POST", "PUT", "PATCH")):
        chosen["content-length"] = ("Content-Length", str(len(content or b"")))
    return list(chosen.values())


async def _next_event(conn, wire, kinds):
    """The next h11 event of one of `kinds`, reading as needed; 1xx answers are skipped."""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await wire.read())
        elif isinstance(event, kinds):
            return event
        elif isinstance(event, h11.InformationalResponse):
            continue
        elif isinstance(event, h11.ConnectionClosed):
            raise h11.RemoteProtocolError("the server closed the connection without an answer")
        else:
            raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}")


async def _body(conn, wire, headers, shown, max_bytes):
    """The answer's body, decoded (gzip, deflate) and bounded."""
    declared = headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise BlockError(f"response from {shown} is too large "
                         f"({int(declared)} bytes; the limit is {_size(max_bytes)})")
    decoder = _Decoder(headers.get("content-encoding", ""))
    parts, size = [], 0
    try:
        while True:
            event = await _next_event(conn, wire, (h11.Data, h11.EndOfMessage))
            chunk = decoder.feed(event.data, max_bytes - size) if isinstance(event, h11.Data) else decoder.flush()
            size += len(chunk)
            if size > max_bytes:
                raise BlockError(f"response from {shown} is larger than {_size(max_bytes)}")
            parts.append(chunk)
            if isinstance(event, h11.EndOfMessage):
                return b"".join(parts)
    except (h11.ProtocolError, OSError, zlib.error) as exc:
        raise BlockError(f"request to {shown} failed: {_reason(exc)}") from None


class _Decoder:
    """Undoes a Content-Encoding of gzip or deflate (others are passed through, as httpx does)."""

    def __init__(self, encoding):
        encoding = encoding.strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif encoding == "deflate":
            self._z = zlib.decompressobj()
        else:
            self._z = None
        self._raw_deflate = encoding == "deflate"

    def feed(self, data, room):
        """Decoded bytes of `data`; at most room + 1 of them, enough to tell the limit was passed."""
        if self._z is None:
            return data
        try:
            return self._z.decompress(data, max(room, 0) + 1)
        except zlib.error:
            if not self._raw_deflate:
                raise
            # Some servers send raw deflate, without the zlib header.
            self._raw_deflate = False
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)
            return self._z.decompress(data, max(room, 0) + 1)

    def flush(self):
        return b"" if self._z is None else self._z.flush()


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


def _headers(pairs):
    out = {}
    for name, value in pairs:
        name = name.decode("ascii", "replace")
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            value = value.decode("latin-1")
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def _charset(headers):
    message = email.message.Message()
    message["content-type"] = headers.get("content-type", "")
    return message.get_content_charset() or "utf-8"


def _parse_body(answer):
    try:
        text = answer.data.decode(answer.encoding, errors="replace")
    except LookupError:
        text = answer.data.decode("utf-8", errors="replace")
    mime = answer.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if mime == "application/json" or mime.endswith("+json"):
        try:
            return json.loads(text) if text.strip() else None
        except ValueError:
            return text
    return text


def _reason(exc):
    if isinstance(exc, OSError) and exc.errno and exc.strerror and not isinstance(
            exc, (socket.gaierror, ssl.SSLError)):
        return f"[Errno {exc.errno}] {os.strerror(exc.errno)}"
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
