"""HTTP plumbing the llm block shares: a stoppable request on a thread, and safe URLs for messages.

The llm block's provider calls run on its own actor thread through `httpx2`
(what the `openai` package is built on). Every request made inside a
`Guard` can be stopped at once from outside: the block's `cancelled` flag
calls back when set, and its deadline is a timer on one shared thread; when
either fires, the guard shuts down the sockets the request opened (learnt through httpcore's `trace`
request extension), which wakes a blocked connect-phase read or body read
immediately. Clients built by `make_client` have no connection pool
(see http_transport), so every request opens (and reports) its own socket.
The http block and the agent's http tools do not come here: see http_request.
"""

import logging
import socket
import threading
import time
import urllib.parse

import httpx2

from actors.errors import BlockError
from .context import BlockCancelled, BlockTimeout
from .http_transport import OneShotTransport
from .context import on_cancel
from .timers import shared_timers

DEFAULT_TIMEOUT = 60.0      # seconds, when neither the block's timeout nor the run's bounds it
CONNECT_TIMEOUT = 10.0
USER_AGENT = "Actorflow/0.1 (http block)"

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
            self._timer = shared_timers().call_later(
                max(0.0, self.deadline - time.monotonic()), self._fire, "timeout")
        self._unhook = on_cancel(self.ctx.cancelled, self._cancelled)
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
