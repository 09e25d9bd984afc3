"""A real server on a free port, a real SQLite file, and a client that speaks HTTP to it."""

import asyncio
import json
import time

import pykka
import pytest
import tornado.httpclient
import tornado.ioloop
import tornado.testing

from actors.blocks import default_registry
from models import workspace as ws
from server.app import make_app, make_server
from server.runtime import Runtime
from server.settings import Settings
from tests.blocktypes import TEST_TYPES
from tests.databases import created, database_url, drop_created

KEY = "af_test_key_default_workspace_0001"
OTHER_KEY = "af_test_key_other_workspace_00002"


@pytest.fixture
def io_loop():
    """pytest-tornado's loop, without tornado's deprecated make_current/clear_current.

    pytest-tornado turns the test coroutine into a future before running the
    loop, so the thread's asyncio loop must be this one (plain asyncio API).
    """
    loop = tornado.ioloop.IOLoop(make_current=False)
    asyncio.set_event_loop(loop.asyncio_loop)
    yield loop
    asyncio.set_event_loop(None)
    loop.close(all_fds=True)


@pytest.fixture(scope="session", autouse=True)
def _drop_shared_test_databases():
    """On PostgreSQL, databases of module-scoped fixtures are dropped at the end."""
    yield
    drop_created()


@pytest.fixture(autouse=True)
def _drop_test_databases():
    """On PostgreSQL, each test's own databases are dropped after it (no-op on SQLite)."""
    since = created()
    yield
    drop_created(since)


@pytest.fixture
def settings(tmp_path, request):
    """Test settings. A test module changes them by overriding this fixture:
    `@pytest.fixture def settings(settings): return settings.replace(...)`."""
    base = Settings(database_url=database_url(tmp_path, "actorflow.db"), port=0,
                    keepalive_interval=0.5, heartbeat_interval=1.0, chunk_retention=5.0,
                    shutdown_grace=1.0)
    return base.replace(**getattr(request, "param", {}))  # see helpers.configure


class Api:
    """A small HTTP client for tests: JSON in, (status, JSON) out."""

    def __init__(self, base_url, key):
        self.base_url = base_url
        self.key = key
        self.client = tornado.httpclient.AsyncHTTPClient(force_instance=True, max_clients=100)

    async def call(self, method, path, body=None, key="default", headers=None, raw=None,
                   timeout=30):
        headers = dict(headers or {})
        key = self.key if key == "default" else key
        if key is not None:
            headers.setdefault("Authorization", f"Bearer {key}")
        if raw is not None:
            data = raw
        elif body is not None:
            data = json.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        else:
            data = b"" if method in ("POST", "PUT", "PATCH") else None
        response = await self.client.fetch(
            self.base_url + path, method=method, body=data, headers=headers,
            raise_error=False, request_timeout=timeout, allow_nonstandard_methods=True)
        text = response.body.decode() if response.body else ""
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return response.code, parsed, response

    async def get(self, path, **kw):
        return (await self.call("GET", path, **kw))[:2]

    async def post(self, path, body=None, **kw):
        return (await self.call("POST", path, body, **kw))[:2]

    async def put(self, path, body=None, **kw):
        return (await self.call("PUT", path, body, **kw))[:2]

    async def patch(self, path, body=None, **kw):
        return (await self.call("PATCH", path, body, **kw))[:2]

    async def delete(self, path, **kw):
        return (await self.call("DELETE", path, **kw))[:2]

    async def workflow(self, blocks=(), edges=(), name="wf"):
        """Create a workflow with a graph; returns its id."""
        status, wf = await self.post("/api/workflows", {"name": name})
        assert status == 201, wf
        status, body = await self.put(f"/api/workflows/{wf['id']}/graph",
                                      {"blocks": list(blocks), "edges": list(edges)})
        assert status == 200, body
        return wf["id"]

    async def execute(self, wf_id, variables=None, **extra):
        body = dict(extra)
        if variables is not None:
            body["variables"] = variables
        return await self.post(f"/api/workflows/{wf_id}/execute", body)


class Server:
    def __init__(self, runtime, http_server, port):
        self.runtime = runtime
        self.http_server = http_server
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"


@pytest.fixture
def registry():
    return default_registry().extended(*TEST_TYPES)


@pytest.fixture
def server(io_loop, settings, registry):
    """The real Application on a real port, over a real SQLite file."""
    async def start():
        # Inside the loop, so the server's sockets are watched by this loop.
        runtime = Runtime(settings, io_loop, registry=registry)
        ws.create_key("default", "test", key=KEY)
        ws.create_key("other", "test", key=OTHER_KEY)
        sock, port = tornado.testing.bind_unused_port()
        http_server = make_server(make_app(runtime))
        http_server.add_socket(sock)
        runtime.listening_on([sock])
        return Server(runtime, http_server, port)

    srv = io_loop.run_sync(start)
    runtime, http_server = srv.runtime, srv.http_server
    yield srv
    http_server.stop()

    async def finish():
        # Every run must end and every actor stop on its own before we tear down.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
                any(not r.over for r in runtime.runs.live.values()) or pykka.ActorRegistry.get_all()):
            await asyncio.sleep(0.02)
        leaked = pykka.ActorRegistry.get_all()
        await http_server.close_all_connections()
        await runtime.shutdown(grace=0)
        return leaked

    leaked = io_loop.run_sync(finish, timeout=30)
    assert leaked == [], f"actors left alive after the test: {leaked}"


@pytest.fixture
def api(server, io_loop):
    async def make():
        return Api(server.base_url, KEY)

    client = io_loop.run_sync(make)
    yield client
    client.client.close()
