"""One outgoing connection's bytes: just what a request and its answer need.

asyncio's streams would do, but a StreamReader and StreamWriter pair (two
futures, a deque, three instance dicts) cost about 2 KB more per connection,
measured with 2,000 requests held, and thousands may wait at once. Loop
thread only.
"""

import asyncio

PAUSE_AT = 1024 * 1024      # bytes received and not yet read: stop reading the socket past this


class Wire(asyncio.Protocol):
    """The protocol of one connection: `write`, `drain`, `read`, `abort`."""

    __slots__ = ("transport", "_received", "_size", "_eof", "_error", "_waiter", "_paused", "_reading")

    def __init__(self):
        self.transport = None
        self._received = []     # chunks not read yet
        self._size = 0
        self._eof = False       # nothing more will come
        self._error = None      # why the connection was lost, if it broke
        self._waiter = None     # a future while read() or drain() waits
        self._paused = False    # the transport's write buffer is full
        self._reading = True

    @classmethod
    async def open(cls, host, port, **tls):
        """A Wire connected to host:port (TLS when `ssl` is given)."""
        _, wire = await asyncio.get_running_loop().create_connection(cls, host, port, **tls)
        return wire

    # -- the transport's calls --------------------------------------------

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self._received.append(data)
        self._size += len(data)
        if self._size > PAUSE_AT and self._reading:
            self._reading = False
            self.transport.pause_reading()
        self._wake()

    def eof_received(self):
        self._eof = True
        self._wake()
        return False            # close the transport: nothing more is sent after the request

    def connection_lost(self, exc):
        self._eof = True
        self._error = exc
        self._paused = False
        self._wake()

    def pause_writing(self):
        self._paused = True

    def resume_writing(self):
        self._paused = False
        self._wake()

    # -- the request's calls ----------------------------------------------

    def write(self, data):
        self.transport.write(data)

    async def drain(self):
        """Wait until the transport's write buffer is low again; OSError if the connection broke."""
        while self._paused:
            await self._wait()
        if self._error is not None:
            raise self._error

    async def read(self):
        """The bytes received since the last read (b"" once the other end is done); OSError if it broke."""
        while not self._received:
            if self._eof:
                if self._error is not None:
                    raise self._error
                return b""
            await self._wait()
        data = self._received[0] if len(self._received) == 1 else b"".join(self._received)
        self._received.clear()
        self._size = 0
        if not self._reading and not self._eof:
            self._reading = True
            self.transport.resume_reading()
        return data

    def abort(self):
        if self.transport is not None:
            self.transport.abort()

    async def _wait(self):
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self):
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
