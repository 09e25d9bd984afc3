"""Wire: one outgoing connection's bytes, against a real local socket server."""

import asyncio
import socket
import struct

import pytest

from actors.http_wire import PAUSE_AT, Wire
from tests.helpers import wait_for


async def _serve(handle):
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_a_reader_that_lags_pauses_the_socket_and_loses_nothing():
    body = bytes(range(256)) * (3 * PAUSE_AT // 256)

    async def main():
        async def handle(reader, writer):
            await reader.readexactly(4)
            writer.write(body)
            await writer.drain()
            writer.close()

        server, port = await _serve(handle)
        async with server:
            wire = await Wire.open("127.0.0.1", port)
            wire.write(b"send")
            await wire.drain()
            # Nobody reads for a while: past PAUSE_AT the socket stops being read.
            await wait_for(lambda: not wire._reading, timeout=30)
            got = bytearray()
            while True:
                chunk = await wire.read()
                if not chunk:
                    break
                got += chunk
            wire.abort()
            return bytes(got)

    assert asyncio.run(main()) == body


def test_a_connection_reset_is_an_oserror_after_what_came_before():
    async def main():
        async def handle(reader, writer):
            writer.write(b"partial")
            await writer.drain()
            # Close with a reset (RST), not an orderly end (FIN).
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                       struct.pack("ii", 1, 0))
            writer.transport.abort()

        server, port = await _serve(handle)
        async with server:
            wire = await Wire.open("127.0.0.1", port)
            got = b""
            with pytest.raises(OSError):
                while True:
                    chunk = await wire.read()
                    assert chunk, "a reset must not read as an orderly end"
                    got += chunk
            return got

    assert b"partial".startswith(asyncio.run(main()))
