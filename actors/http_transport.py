"""One connection per request: an httpx2 transport without a connection pool.

Our clients keep no idle connections, so a pool only costs: httpcore's pool
rescans every open connection, under one lock, each time a request starts or
ends, which grows with the square of the requests in flight (thousands of
http blocks waiting on slow endpoints). Here each request opens its own
`httpcore2.HTTPConnection` and closes it with its response.

Reads wait until the socket is readable before `recv`: httpcore reads 64 KiB
at a time, and a `recv` that blocks holds a 64 KiB buffer for as long as the
peer stays silent, per request in flight.
"""

import math
import select
import ssl

import httpcore2
import httpx2
from httpcore2._backends.sync import SyncStream


class OneShotTransport(httpx2.HTTPTransport):
    """httpx2's HTTP transport (its request and error mapping), minus the pool."""

    def __init__(self, trust_env=True):
        super().__init__(trust_env=trust_env, limits=httpx2.Limits(max_connections=1))
        self._pool = _OneShot(self._pool._ssl_context)


class _OneShot:
    def __init__(self, ssl_context):
        self._ssl_context = ssl_context
        self._backend = _Backend()

    def handle_request(self, request):
        conn = httpcore2.HTTPConnection(request.url.origin, ssl_context=self._ssl_context,
                                        network_backend=self._backend)
        try:
            response = conn.handle_request(request)
        except BaseException:
            conn.close()
            raise
        return httpcore2.Response(status=response.status, headers=response.headers,
                                  content=_Closing(response.stream, conn), extensions=response.extensions)

    def close(self):
        pass


class _Closing:
    """A response body that closes its connection when it is closed."""

    def __init__(self, stream, conn):
        self._stream, self._conn = stream, conn

    def __iter__(self):
        yield from self._stream

    def close(self):
        try:
            if hasattr(self._stream, "close"):
                self._stream.close()
        finally:
            self._conn.close()


class _Backend(httpcore2.SyncBackend):
    def connect_tcp(self, *args, **kwargs):
        return _WaitingStream(super().connect_tcp(*args, **kwargs)._sock)


class _WaitingStream(SyncStream):
    def read(self, max_bytes, timeout=None):
        sock = self._sock
        if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            if not poller.poll(None if timeout is None else max(0, math.ceil(timeout * 1000))):
                raise httpcore2.ReadTimeout("timed out")
        return super().read(max_bytes, timeout)

    def start_tls(self, *args, **kwargs):
        stream = super().start_tls(*args, **kwargs)
        return _WaitingStream(stream._sock) if type(stream) is SyncStream else stream
