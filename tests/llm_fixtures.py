"""Fixtures for the http, llm and agent block tests: real local servers on free ports.

Import them into a test module (`from tests.llm_fixtures import echo, fake_llm`).
"""

import pytest

from tests.echo_server import EchoServer
from tests.openai_server import FakeOpenAI


@pytest.fixture
def echo():
    server = EchoServer().start()
    yield server
    server.stop()


@pytest.fixture
def fake_llm():
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def llm_overrides():
    """Settings to change on top of the fake provider's; override by parametrizing."""
    return {}


def closed_port_url():
    """An http URL on which nothing listens (connection refused)."""
    import socket
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


def chunks_of(server, execution_id, block_id):
    """The block_chunk payloads the run published for one block, in order (live-run buffer)."""
    run = server.runtime.runs.get(execution_id)
    assert run is not None, "the run is no longer buffered"
    return [event["chunk"] for _, event, _ in run.events
            if event["type"] == "block_chunk" and event["block_id"] == block_id]
