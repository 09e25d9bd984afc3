"""Connections that stall are dropped: idle or half-sent headers, a body that never ends.

tornado can enforce both limits itself (`idle_connection_timeout`,
`body_timeout`), but it does so by wrapping every read of every request
in a coroutine with its own timer: two timers, two futures and a handful
of loop callbacks per request, about 5% of the server's work for a small
`/execute`. Here each request's delegate only notes its phase, and one
sweep a second (while any connection is open) closes the connections that
have sat in one phase too long. A limit is therefore kept to within one
sweep: a stalled body is dropped 60 to 61 s after its headers.
"""

import tornado.httputil
from tornado.ioloop import IOLoop
from tornado.log import gen_log

HEAD, BODY, BUSY = "head", "body", "busy"


class Watched(tornado.httputil.HTTPMessageDelegate):
    """One request: the application's delegate, with the phase its connection is in."""

    __slots__ = ("delegate", "connection", "phase", "seen", "since")

    def __init__(self, delegate, connection):
        self.delegate = delegate
        self.connection = connection
        self.phase = HEAD       # waiting for the request line and headers (idle between requests too)
        self.seen = None        # the phase the last sweep saw, and since when (the sweeper's clock)
        self.since = 0.0

    def headers_received(self, start_line, headers):
        self.phase = BODY
        return self.delegate.headers_received(start_line, headers)

    def data_received(self, chunk):
        return self.delegate.data_received(chunk)

    def finish(self):
        self.phase = BUSY       # the handler answers; no limit of ours applies
        self.delegate.finish()

    def on_connection_close(self):
        self.phase = BUSY
        self.delegate.on_connection_close()


class Stalls:
    """Watches the connections of one HTTP server. Loop thread only.

    `idle`: seconds a connection may wait for a request's headers (between
    requests too); `body`: seconds a request's body may take after its headers.
    `clock` is injected by tests, which call `sweep()` themselves.
    """

    TICK = 1.0

    def __init__(self, idle=120.0, body=60.0, clock=None):
        self.idle = idle
        self.body = body
        self.clock = clock
        self.watched = {}       # server connection -> its current request's Watched
        self._ticking = False

    def start_request(self, server_conn, request_conn, delegate):
        """Watch `request_conn`, the next request on `server_conn`; its delegate to hand tornado."""
        watched = self.watched[server_conn] = Watched(delegate, request_conn)
        if not self._ticking:
            self._ticking = True
            IOLoop.current().call_later(self.TICK, self._tick)
        return watched

    def closed(self, server_conn):
        """`server_conn` has closed."""
        self.watched.pop(server_conn, None)

    def sweep(self):
        """Close every connection that has been in its phase longer than its limit allows."""
        now = self.clock() if self.clock is not None else IOLoop.current().time()
        for watched in list(self.watched.values()):
            phase = watched.phase
            if phase is not watched.seen:
                watched.seen, watched.since = phase, now
            elif phase is HEAD and now - watched.since >= self.idle:
                watched.connection.close()
            elif phase is BODY and now - watched.since >= self.body:
                gen_log.info("Timeout reading body from %s", watched.connection.context)
                watched.connection.close()

    def _tick(self):
        self.sweep()
        if self.watched:
            IOLoop.current().call_later(self.TICK, self._tick)
        else:
            self._ticking = False
