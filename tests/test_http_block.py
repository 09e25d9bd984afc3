"""The http block over real HTTP: /execute on the real server, calling a real echo server."""

import base64
import time

import pytest

from tests.helpers import edge
from tests.llm_fixtures import closed_port_url, echo  # noqa: F401  (fixture)

START = {"id": "start", "type": "starter"}


async def run_http(api, config, variables=None, **extra):
    wf = await api.workflow([START, {"id": "call", "type": "http", "config": config}],
                            [edge("start", "call")])
    return await api.execute(wf, variables or {}, **extra)


@pytest.mark.gen_test(timeout=30)
async def test_get_json_with_headers_and_templates(api, echo):
    status, body = await run_http(api, {
        "url": echo.url + "/echo/items?q={{ variables.q }}",
        "headers": {"X-Token": "{{ variables.token }}", "X-Number": "{{ variables.n }}"}},
        {"q": "cats", "token": "t-1", "n": 7})
    assert status == 200, body
    out = body["output"]["call"]
    assert out["status"] == 200
    assert out["headers"]["content-type"] == "application/json"
    assert out["headers"]["x-echo"] == "yes"            # names lower-cased
    assert all(k == k.lower() for k in out["headers"])
    seen = out["body"]                                  # parsed JSON
    assert seen["method"] == "GET"
    assert seen["path"] == "/echo/items"
    assert seen["query"] == {"q": "cats"}
    assert seen["headers"]["x-token"] == "t-1"
    assert seen["headers"]["x-number"] == "7"
    assert echo.requests[-1]["headers"]["x-token"] == "t-1"
    # The same key on every retry and after a resume; a config may set its own.
    assert seen["headers"]["idempotency-key"] == f"{body['execution_id']}:call"
    status, body = await run_http(api, {"url": echo.url + "/echo", "headers": {"idempotency-key": "mine"}})
    assert status == 200 and echo.requests[-1]["headers"]["idempotency-key"] == "mine"


@pytest.mark.gen_test(timeout=30)
async def test_gzip_answers_are_decoded_and_url_credentials_sent_as_basic_auth(api, echo):
    url = echo.url.replace("http://", "http://us%20er:p%40ss@") + "/echo/auth"
    status, body = await run_http(api, {"url": url})
    assert status == 200, body
    sent = echo.requests[-1]["headers"]
    assert sent["authorization"] == "Basic " + base64.b64encode(b"us er:p@ss").decode()
    assert sent["accept-encoding"] == "gzip, deflate"
    status, body = await run_http(api, {"url": url, "headers": {"Authorization": "Bearer mine"}})
    assert status == 200 and echo.requests[-1]["headers"]["authorization"] == "Bearer mine"
    status, body = await run_http(api, {"url": echo.url + "/gzip"})
    assert status == 200, body
    assert body["output"]["call"]["headers"]["content-encoding"] == "gzip"
    assert body["output"]["call"]["body"]["path"] == "/gzip"        # decoded, then parsed


@pytest.mark.gen_test(timeout=30)
async def test_post_object_body_is_json(api, echo):
    status, body = await run_http(api, {
        "method": "post", "url": echo.url + "/echo",
        "body": {"name": "{{ variables.name }}", "tags": ["a", "{{ variables.n }}"],
                 "n": "{{ variables.n }}"}},
        {"name": "Ada", "n": 3})
    assert status == 200, body
    seen = echo.requests[-1]
    assert seen["method"] == "POST"
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["json"] == {"name": "Ada", "tags": ["a", 3], "n": 3}
    assert body["output"]["call"]["body"]["json"] == {"name": "Ada", "tags": ["a", 3], "n": 3}


@pytest.mark.gen_test(timeout=30)
async def test_string_body_sent_as_is_and_methods(api, echo):
    status, body = await run_http(api, {
        "method": "PUT", "url": echo.url + "/echo",
        "headers": {"Content-Type": "text/plain"}, "body": "raw {{ variables.x }} text"},
        {"x": "X"})
    assert status == 200, body
    seen = echo.requests[-1]
    assert (seen["method"], seen["body"], seen["headers"]["content-type"]) == (
        "PUT", "raw X text", "text/plain")
    for method in ("DELETE", "PATCH"):
        status, body = await run_http(api, {"method": method, "url": echo.url + "/echo"})
        assert status == 200, body
        assert body["output"]["call"]["body"]["method"] == method
    status, body = await run_http(api, {"method": "HEAD", "url": echo.url + "/echo"})
    assert status == 200, body
    assert body["output"]["call"]["status"] == 200
    assert body["output"]["call"]["body"] == ""


@pytest.mark.gen_test(timeout=30)
async def test_non_2xx_fails_by_default(api, echo):
    status, body = await run_http(api, {"url": echo.url + "/status/404"})
    assert status == 500, body
    assert body["error_code"] == "EXECUTION_FAILED"
    assert body["block_id"] == "call"
    assert "404" in body["error"]
    assert "Traceback" not in body["error"]
    status, body = await run_http(api, {"url": echo.url + "/status/503", "fail_on_status": True})
    assert status == 500 and "503" in body["error"], body


@pytest.mark.gen_test(timeout=30)
async def test_non_2xx_is_output_when_fail_on_status_false(api, echo):
    status, body = await run_http(api, {"url": echo.url + "/status/404", "fail_on_status": False})
    assert status == 200, body
    out = body["output"]["call"]
    assert out["status"] == 404
    assert out["body"] == {"status": 404, "method": "GET"}
    # fail_on_status may be templated too
    status, body = await run_http(api, {"url": echo.url + "/status/500",
                                        "fail_on_status": "{{ variables.strict }}"},
                                  {"strict": False})
    assert status == 200, body
    assert body["output"]["call"]["status"] == 500


@pytest.mark.gen_test(timeout=30)
async def test_redirects_followed_up_to_a_limit(api, echo):
    status, body = await run_http(api, {"url": echo.url + "/redirect/3"})
    assert status == 200, body
    assert body["output"]["call"]["body"]["path"] == "/echo/redirected"
    hops = [r["path"] for r in echo.requests]
    assert hops == ["/redirect/3", "/redirect/2", "/redirect/1", "/redirect/0", "/echo/redirected"]
    status, body = await run_http(api, {"url": echo.url + "/redirect/20"})
    assert status == 500, body
    assert "too many redirects" in body["error"]


@pytest.mark.gen_test(timeout=30)
async def test_non_json_bodies_are_text(api, echo):
    status, body = await run_http(api, {"url": echo.url + "/text"})
    assert status == 200, body
    assert body["output"]["call"]["body"] == "hello, world"
    assert body["output"]["call"]["headers"]["content-type"].startswith("text/plain")
    status, body = await run_http(api, {"url": echo.url + "/bad-json"})
    assert status == 200, body
    assert body["output"]["call"]["body"] == "{not json"   # says JSON, is not: kept as text


@pytest.mark.gen_test(timeout=30)
async def test_connection_refused_fails_clearly(api):
    url = closed_port_url() + "/x?token=secret"
    status, body = await run_http(api, {"url": url})
    assert status == 500, body
    assert body["error_code"] == "EXECUTION_FAILED"
    assert "could not connect" in body["error"]
    assert "refused" in body["error"].lower()
    assert "secret" not in body["error"]          # no query strings (tokens) in errors
    assert "Traceback" not in body["error"]


@pytest.mark.gen_test(timeout=30)
async def test_bad_url_and_method_fail_clearly(api, echo):
    status, body = await run_http(api, {"url": "{{ variables.u }}"}, {"u": "ftp://example.com/x"})
    assert status == 500 and "http://" in body["error"], body
    status, body = await run_http(api, {"url": echo.url, "method": "{{ variables.m }}"},
                                  {"m": "BREW"})
    assert status == 500 and "method" in body["error"], body


@pytest.mark.gen_test(timeout=60)
async def test_response_size_is_bounded(api, echo):
    status, body = await run_http(api, {"url": echo.url + "/big/12000000"})
    assert status == 500, body
    assert "larger than 10 MiB" in body["error"]


@pytest.mark.gen_test(timeout=30)
async def test_block_timeout_stops_a_slow_server(api, echo):
    t0 = time.monotonic()
    status, body = await run_http(api, {"url": echo.url + "/slow/20", "timeout": 0.5})
    took = time.monotonic() - t0
    assert status == 500, body
    assert "timed out" in body["error"]
    assert took < 10, took


@pytest.mark.gen_test(timeout=30)
async def test_run_timeout_cancels_a_streaming_body(api, echo):
    wf = await api.workflow(
        [START, {"id": "call", "type": "http", "config": {"url": echo.url + "/drip"}}],
        [edge("start", "call")])
    t0 = time.monotonic()
    status, body = await api.execute(wf, {}, timeout=1)
    took = time.monotonic() - t0
    assert status == 504, body
    assert took < 10, took
    status, logs = await api.get(f"/api/workflows/{wf}/executions/{body['execution_id']}/logs")
    assert status == 200, logs
    assert {l["block_id"]: l["status"] for l in logs["logs"]}["call"] == "cancelled"


@pytest.mark.gen_test(timeout=30)
async def test_http_block_uses_upstream_output(api, echo):
    wf = await api.workflow([
        START,
        {"id": "first", "type": "http", "config": {"method": "POST", "url": echo.url + "/echo",
                                                   "body": {"id": 41}}},
        {"id": "second", "type": "http",
         "config": {"url": echo.url + "/echo/item/{{ first.body.json.id }}"}},
    ], [edge("start", "first"), edge("first", "second")])
    status, body = await api.execute(wf, {})
    assert status == 200, body
    assert body["output"]["second"]["body"]["path"] == "/echo/item/41"
