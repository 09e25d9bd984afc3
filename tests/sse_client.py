"""A small SSE client over a raw socket (tornado IOStream), for tests.

It speaks HTTP/1.1 itself (so a test can stop reading, or hang up, whenever
it likes), decodes chunked bodies, and parses the SSE wire format strictly:
`id:`, `data:` and `:` comment lines, events ending at a blank line.
"""

import asyncio
import json
import socket
import time

import tornado.iostream

from tests.conftest import KEY


class SSEClient:
    def __init__(self, stream):
        self.stream = stream
        self.status = None
        self.headers = {}
        self.items = asyncio.Queue()   # ("event", event) / ("comment", text, t) / ("end",)
        self.events = []               # every event so far: {"id": int|None, "data": dict}
        self.comments = []             # (monotonic time, text)
        self.raw = b""                 # the SSE frames as received
        self.body = b""                # the whole body, decoded from its transfer encoding
        self.ended = False
        self._reader = None

    @classmethod
    async def open(cls, port, method, path, body=None, key=KEY, headers=None, rcvbuf=None,
                   read=True):
        """Send the request; unless read=False, read the head and start reading the body."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        stream = tornado.iostream.IOStream(sock)
        await stream.connect(("127.0.0.1", port))
        data = b""
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}",
                 "Accept: text/event-stream"]
        if key is not None:
            lines.append(f"Authorization: Bearer {key}")
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if method in ("POST", "PUT", "PATCH") or data:
            lines.append("Content-Type: application/json")
            lines.append(f"Content-Length: {len(data)}")
        await stream.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
        client = cls(stream)
        if read:
            await client.read_head()
            client._reader = asyncio.ensure_future(client._read_body())
        return client

    async def read_head(self, timeout=10):
        head = await asyncio.wait_for(self.stream.read_until(b"\r\n\r\n", max_bytes=65536), timeout)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                self.headers[name.strip().lower()] = value.strip()

    async def _read_body(self):
        buffer = b""
        try:
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    size_line = await self.stream.read_until(b"\r\n", max_bytes=1024)
                    size = int(size_line.split(b";")[0].strip(), 16)
                    if size == 0:
                        await self.stream.read_until(b"\r\n")
                        break
                    chunk = await self.stream.read_bytes(size)
                    await self.stream.read_bytes(2)
                    buffer = self._feed(buffer, chunk)
            elif "content-length" in self.headers:
                chunk = await self.stream.read_bytes(int(self.headers["content-length"]))
                buffer = self._feed(buffer, chunk)
            else:
                while True:
                    chunk = await self.stream.read_bytes(65536, partial=True)
                    buffer = self._feed(buffer, chunk)
        except tornado.iostream.StreamClosedError:
            pass
        finally:
            self.ended = True
            self.items.put_nowait(("end",))

    def _feed(self, buffer, new=b""):
        self.body += new
        buffer += new
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            self.raw += block + b"\n\n"
            lines = block.decode("utf-8").split("\n")
            if all(line.startswith(":") for line in lines):
                for line in lines:
                    self.comments.append((time.monotonic(), line))
                    self.items.put_nowait(("comment", line, time.monotonic()))
                continue
            event_id, data_lines = None, []
            for line in lines:
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "id":
                    event_id = int(value)
                elif field == "data":
                    data_lines.append(value)
                elif field == "":
                    continue
                else:
                    raise AssertionError(f"unexpected SSE field in {block!r}")
            assert len(data_lines) == 1, f"expected exactly one data line: {block!r}"
            event = {"id": event_id, "data": json.loads(data_lines[0])}
            self.events.append(event)
            self.items.put_nowait(("event", event))
        return buffer

    async def next_event(self, timeout=10):
        """The next event (skipping comments), or None at the end of the stream."""
        deadline = time.monotonic() + timeout
        while True:
            item = await asyncio.wait_for(self.items.get(), max(0.01, deadline - time.monotonic()))
            if item[0] == "end":
                self.items.put_nowait(item)
                return None
            if item[0] == "event":
                return item[1]

    async def until_end(self, timeout=20):
        """Every event until the stream ends; returns the events read by this call."""
        out = []
        while True:
            event = await self.next_event(timeout)
            if event is None:
                return out
            out.append(event)

    def close(self):
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
        self.stream.close()


def types(events):
    return [e["data"]["type"] for e in events]
