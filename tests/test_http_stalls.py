"""A connection that stalls is dropped; one whose handler is busy is not (server/stalls.py).

The server's own Stalls gets a fake clock and the test sweeps by hand, so
no test waits for the real 60 or 120 s.
"""

import json

import pytest
from tornado.tcpclient import TCPClient

from server.stalls import BODY, BUSY, HEAD
from tests.conftest import KEY
from tests.helpers import START, FakeClock, edge, wait_for


@pytest.fixture
def stalls(server):
    """The server's Stalls, on a fake clock."""
    watch = server.http_server.stalls
    watch.clock = FakeClock(1000.0)
    return watch


async def connect(server):
    return await TCPClient().connect("127.0.0.1", server.port)


async def watched_in(stalls, phase):
    """The one watched request, once it is in `phase`."""
    return await wait_for(lambda: next((w for w in stalls.watched.values() if w.phase == phase), None))


def run_for(stalls, seconds):
    """Sweep, let `seconds` pass on the fake clock, sweep again."""
    stalls.sweep()
    stalls.clock.now += seconds
    stalls.sweep()


@pytest.mark.gen_test(timeout=30)
async def test_half_sent_headers_are_dropped_after_the_idle_limit(server, stalls):
    stream = await connect(server)
    await stream.write(b"POST /api/workflows HTTP/1.1\r\nHost: x\r\n")  # no blank line: headers unfinished
    watched = await watched_in(stalls, HEAD)
    run_for(stalls, stalls.idle - 1)
    assert not watched.connection.stream.closed()
    run_for(stalls, 1)
    assert watched.connection.stream.closed()
    assert await stream.read_until_close() == b""  # dropped without an answer, as tornado's timer did
    await wait_for(lambda: not stalls.watched)     # and forgotten


@pytest.mark.gen_test(timeout=30)
async def test_a_body_that_never_ends_is_dropped_after_the_body_limit(server, stalls):
    stream = await connect(server)
    await stream.write(b"POST /api/workflows HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode()
                       + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\"")
    watched = await watched_in(stalls, BODY)
    run_for(stalls, stalls.body - 1)
    assert not watched.connection.stream.closed()
    run_for(stalls, 1)
    assert watched.connection.stream.closed()
    assert await stream.read_until_close() == b""
    await wait_for(lambda: not stalls.watched)


@pytest.mark.gen_test(timeout=30)
async def test_each_request_on_a_kept_alive_connection_is_timed_anew(server, stalls):
    stream = await connect(server)
    first = await watched_in(stalls, HEAD)
    run_for(stalls, stalls.idle - 1)          # idle for most of the limit...
    await stream.write(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
    await stream.read_until(b"}")             # ...then a request, answered
    second = await wait_for(lambda: next((w for w in stalls.watched.values()
                                          if w is not first and w.phase == HEAD), None))
    run_for(stalls, stalls.idle - 1)          # the wait for the next request starts from zero
    assert not second.connection.stream.closed()
    run_for(stalls, 1)
    assert second.connection.stream.closed()


@pytest.mark.gen_test(timeout=60)
async def test_a_request_whose_handler_is_busy_is_not_dropped(server, api, stalls):
    wf = await api.workflow([START, {"id": "nap", "type": "sleep", "config": {"seconds": 60}}],
                            [edge("start", "nap")])
    stream = await connect(server)
    await stream.write(f"POST /api/workflows/{wf}/execute HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                       "Content-Length: 2\r\nConnection: close\r\n\r\n{}".encode())
    watched = await watched_in(stalls, BUSY)
    run_for(stalls, stalls.idle + stalls.body)  # far past both limits while the run goes on
    assert not watched.connection.stream.closed()
    status, page = await api.get(f"/api/workflows/{wf}/executions")
    assert status == 200 and [e["status"] for e in page["executions"]] == ["running"]
    status, _ = await api.post(f"/api/workflows/{wf}/executions/{page['executions'][0]['id']}/cancel")
    assert status == 200
    answer = await stream.read_until_close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500"), answer    # a cancelled run's answer: the connection was kept
    assert json.loads(payload)["error"] == "execution cancelled"
