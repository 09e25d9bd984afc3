"""Outgoing network policy (CONTRACT §11) over real sockets: where http blocks may connect."""

import socket
import urllib.parse

import pytest

from actors.netpolicy import cidrs
from server import settings as settings_mod
from tests.conftest import KEY
from tests.echo_server import EchoServer
from tests.helpers import START, configure, edge
from tests.llm_fixtures import echo  # noqa: F401  (fixture)
from tests.processes import ServerProcess
from tests.test_process import http
from tests.databases import database_url


async def run_http(api, url, **config):
    wf = await api.workflow([START, {"id": "call", "type": "http", "config": {"url": url, **config}}],
                            [edge("start", "call")])
    return await api.execute(wf, {})


def refused(status, body, *words):
    assert status == 500, body
    assert body["error_code"] == "EXECUTION_FAILED", body
    assert "refused to connect" in body["error"], body
    for word in words:
        assert word in body["error"], (word, body["error"])


@pytest.fixture
def echo2():
    """A second echo server, on 127.0.0.2 (all of 127/8 is this host's loopback)."""
    server = EchoServer("127.0.0.2").start()
    yield server
    server.stop()


@pytest.mark.gen_test(timeout=30)
async def test_metadata_and_link_local_addresses_are_refused(api):
    for url, shown in (("http://169.254.169.254/latest/meta-data/", "169.254.169.254:80"),
                       ("http://2852039166/latest/meta-data/", "169.254.169.254:80"),  # the same, as a number
                       ("http://[::ffff:169.254.169.254]:8080/", "169.254.169.254:8080"),
                       ("http://[fe80::1]/", "[fe80::1]:80"),
                       ("https://[fd00:ec2::254]/", "[fd00:ec2::254]:443")):
        status, body = await run_http(api, url)
        refused(status, body, shown, "metadata")


@pytest.mark.gen_test(timeout=30)
async def test_this_server_is_refused_in_every_spelling(api, server, echo):
    port = server.port
    for host in ("127.0.0.1", "localhost", "LocalHost", "0.0.0.0", "2130706433", "127.1",
                 "0x7f000001", "127.0.0.2", "[::1]", "[::ffff:127.0.0.1]", "[::]"):
        status, body = await run_http(api, f"http://{host}:{port}/api/health")
        refused(status, body, "this server itself", f":{port}")
    # Other servers on the same host are fine; the name's address is what we connect to,
    # and the Host header stays the name.
    status, body = await run_http(api, f"http://localhost:{echo.port}/echo")
    assert status == 200, body
    assert echo.requests[-1]["headers"]["host"] == f"localhost:{echo.port}"


@pytest.mark.gen_test(timeout=30)
async def test_redirects_are_checked_before_they_are_followed(api, server, echo):
    for target, words in (("http://169.254.169.254/latest/meta-data/", ("169.254.169.254:80", "metadata")),
                          (f"http://0.0.0.0:{server.port}/api/health", ("this server itself",)),
                          (f"http://localhost:{server.port}/api/workflows", ("this server itself",))):
        for status_code in (302, 307):
            url = f"{echo.url}/goto?status={status_code}&to={urllib.parse.quote(target)}"
            status, body = await run_http(api, url, headers={"Authorization": f"Bearer {KEY}"})
            refused(status, body, *words, "redirected from " + echo.url + "/goto")
    assert {r["path"] for r in echo.requests} == {"/goto"}      # nothing was followed
    # A redirect to an allowed place is followed; 307 keeps the method and body, and
    # credentials are not carried to another origin.
    other = EchoServer().start()
    try:
        url = f"{echo.url}/goto?status=307&to={urllib.parse.quote(other.url + '/echo/there')}"
        status, body = await run_http(api, url, method="POST", body={"n": 1},
                                      headers={"Authorization": "Bearer secret"})
        assert status == 200, body
        [seen] = other.requests
        assert (seen["method"], seen["path"], seen["json"]) == ("POST", "/echo/there", {"n": 1})
        assert "authorization" not in seen["headers"]
    finally:
        other.stop()


@configure(http_deny=cidrs("127.0.0.0/8"), http_allow=cidrs("127.0.0.2/32"))
@pytest.mark.gen_test(timeout=30)
async def test_deny_list_refuses_and_allow_list_overrides(api, echo, echo2):
    # A name that resolves to a denied address is refused, naming the address.
    status, body = await run_http(api, f"http://localhost:{echo.port}/echo")
    refused(status, body, f"127.0.0.1:{echo.port}", "ACTORFLOW_HTTP_DENY (127.0.0.0/8)")
    assert echo.requests == []
    # The allowed address inside the denied network is reached...
    status, body = await run_http(api, echo2.url + "/echo/ok")
    assert status == 200, body
    assert body["output"]["call"]["body"]["path"] == "/echo/ok"
    # ...but not a redirect from it to a denied one.
    url = f"{echo2.url}/goto?to={urllib.parse.quote(echo.url + '/echo')}"
    status, body = await run_http(api, url)
    refused(status, body, f"127.0.0.1:{echo.port}")
    assert echo.requests == []


@configure(http_allow=cidrs("127.0.0.1/32"))
@pytest.mark.gen_test(timeout=30)
async def test_allow_list_overrides_the_own_address_refusal(api, server):
    status, body = await run_http(api, f"http://127.0.0.1:{server.port}/api/health")
    assert status == 200, body
    assert body["output"]["call"]["body"]["ok"] is True


def test_bad_networks_are_a_startup_error():
    loaded = settings_mod.load(environ={"ACTORFLOW_HTTP_DENY": "10.0.0.0/8, fd00::/8",
                                        "ACTORFLOW_HTTP_ALLOW": "192.168.1.7"})
    assert [str(n) for n in loaded.http_deny] == ["10.0.0.0/8", "fd00::/8"]
    assert [str(n) for n in loaded.http_allow] == ["192.168.1.7/32"]
    with pytest.raises(settings_mod.SettingsError) as exc:
        settings_mod.load(environ={"ACTORFLOW_HTTP_DENY": "10.0.0.0/8,example.com"})
    assert "ACTORFLOW_HTTP_DENY" in str(exc.value)


def _outside_address():
    """This host's address on its default route (no packet is sent), or None."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.123", 9))
            address = s.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


def test_a_server_on_every_interface_refuses_all_its_addresses(tmp_path):
    """run.py passes its real listening socket down: on 0.0.0.0, any local address with its port."""
    server = ServerProcess(database_url(tmp_path), env={"ACTORFLOW_API_KEY": KEY},
                           args=("--host", "0.0.0.0"))
    try:
        port = int(server.url.rsplit(":", 1)[1])
        base = f"http://127.0.0.1:{port}"
        hosts = ["127.0.0.1", "127.0.0.9", "localhost", "0.0.0.0"]
        if _outside_address():
            hosts.append(_outside_address())
        blocks = [START] + [{"id": f"c{i}", "type": "http", "config": {
            "url": f"http://{host}:{port}/api/health", "fail_on_status": False,
            "continue_on_error": True}} for i, host in enumerate(hosts)]
        status, wf = http(base + "/api/workflows", "POST", {"name": "self"}, key=KEY)
        assert status == 201, wf
        status, body = http(f"{base}/api/workflows/{wf['id']}/graph", "PUT",
                            {"blocks": blocks, "edges": [edge("start", b["id"]) for b in blocks[1:]]},
                            key=KEY)
        assert status == 200, body
        status, body = http(f"{base}/api/workflows/{wf['id']}/execute", "POST", {}, key=KEY)
        assert status == 200, body
        for i, host in enumerate(hosts):
            error = body["output"][f"c{i}"]["error"]
            assert "this server itself" in error and f":{port}" in error, (host, error)
    finally:
        assert server.stop() == 0
