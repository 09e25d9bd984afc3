"""Requests tornado cannot parse get a JSON error, and the server goes on."""

import json

import pytest
from tornado.tcpclient import TCPClient

from server.framing import HEADER_LIMIT

HEALTH = b"GET /api/health HTTP/1.1\r\nHost: x\r\n"


async def exchange(port, request: bytes):
    """Send raw bytes, read until the server closes: (status, headers text, JSON body)."""
    stream = await TCPClient().connect("127.0.0.1", port)
    await stream.write(request)
    answer = await stream.read_until_close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), head.decode("latin-1"), json.loads(body)


@pytest.mark.parametrize("request_bytes", [
    HEALTH + b"X-A: a\x00b\r\n\r\n",          # a NUL in a header value
    HEALTH + b"a header without a colon\r\n\r\n",
    b"GARBAGE\r\n\r\n",                       # no method, path and version
    HEALTH + b"X-A: a\rb\r\n\r\n",          # a bare CR inside a header
], ids=["nul", "no-colon", "request-line", "bare-cr"])
@pytest.mark.gen_test(timeout=30)
async def test_an_unparseable_request_gets_a_json_400(server, api, request_bytes):
    status, head, body = await exchange(server.port, request_bytes)
    assert status == 400, head
    assert "Content-Type: application/json" in head
    assert body["error"].startswith("malformed HTTP request")
    status, body = await api.get("/api/health", key=None)
    assert status == 200 and body["ok"]


@pytest.mark.gen_test(timeout=30)
async def test_headers_over_the_limit_get_a_json_431(server, api):
    request = HEALTH + b"X-Big: " + b"a" * HEADER_LIMIT + b"\r\n\r\n"
    status, head, body = await exchange(server.port, request)
    assert status == 431, head
    assert body == {"error": f"request line and headers are larger than {HEADER_LIMIT} bytes"}
    # Just under the limit is served.
    request = HEALTH + b"X-Big: " + b"a" * (HEADER_LIMIT - 200) + b"\r\nConnection: close\r\n\r\n"
    status, head, body = await exchange(server.port, request)
    assert status == 200 and body["ok"]


@pytest.mark.gen_test(timeout=30)
async def test_requests_sent_together_on_one_connection_are_all_answered_in_order(server):
    # The second and third arrive while the first is handled: the socket is then
    # paused (server/ioloop.py), and must be read again for them.
    stream = await TCPClient().connect("127.0.0.1", server.port)
    await stream.write(HEALTH + b"\r\n" + HEALTH + b"\r\n" + HEALTH + b"Connection: close\r\n\r\n")
    answer = await stream.read_until_close()
    assert answer.count(b"HTTP/1.1 200 OK") == 3, answer
    assert answer.count(b'"ok":true') + answer.count(b'"ok": true') == 3, answer
