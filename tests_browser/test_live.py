"""Live runs in the browser: LLM tokens streaming into the block's panel, failures with the
API's error, and re-attaching to a run that is still going."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import START, edge
from tests.openai_server import FakeOpenAI, text
from tests_browser.page import (Api, all_css, button, by_label, css, fill, node, node_status, select,
                                select_block, set_value, sign_in, text_of, wait)


@pytest.fixture(scope="module")
def llm():
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture
def server_env(llm):
    return {"ACTORFLOW_LLM_BASE_URL": llm.url, "ACTORFLOW_LLM_MODEL": "test-model"}


class Gate:
    """A local HTTP endpoint that answers only once the test opens it."""

    def __init__(self):
        self.open = threading.Event()
        self.waiting = threading.Event()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                gate.waiting.set()
                gate.open.wait(60)
                body = b'{"passed": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/gate"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.open.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def make(api, blocks, edges, name="live"):
    status, wf = api("POST", "/api/workflows", {"name": name})
    status, body = api("PUT", f"/api/workflows/{wf['id']}/graph", {"blocks": blocks, "edges": edges})
    assert status == 200, body
    return wf["id"]


def open_graph(d, server, wf_id):
    sign_in(d, server.url)
    wait(d, lambda d: text_of(d, "main h1") == "Workflows")
    d.get(f"{server.url}/#/wf/{wf_id}")
    wait(d, lambda d: all_css(d, "svg.graph g.node"))


def run(d, variables="{}"):
    css(d, "#tab-run").click()
    set_value(d, by_label(d, "Variables (JSON)"), variables)
    button(d, "Run workflow").click()


def test_llm_tokens_stream_into_the_block_panel(server, browser, llm, shots):
    api = Api(server.url)
    llm.script(text("Tokens arrive one by one", delay=0.6))
    wf_id = make(api, [START, {"id": "llm", "type": "llm", "config": {"prompt": "hi"}},
                       {"id": "out", "type": "response", "config": {"data": "{{ llm.content }}"}}],
                 [edge("start", "llm"), edge("llm", "out")])
    d = browser()
    open_graph(d, server, wf_id)
    run(d)
    wait(d, lambda d: node_status(d, "llm") == "running")
    select_block(d, "llm")
    # part of the answer is there while the block still runs
    partial = wait(d, lambda d: node_status(d, "llm") == "running" and text_of(d, "#panel-block pre.chunks"))
    assert partial != "Tokens arrive one by one" and "Tokens arrive one by one".startswith(partial)
    shots(d, "llm-streaming")
    wait(d, lambda d: node_status(d, "out") == "completed")
    wait(d, lambda d: text_of(d, "#panel-block pre.chunks") == "Tokens arrive one by one")
    assert '"content": "Tokens arrive one by one"' in text_of(d, "#panel-block pre.output")
    css(d, "#tab-run").click()
    wait(d, lambda d: "Completed in" in text_of(d, ".run-summary"))
    assert text_of(d, ".run-summary pre.final-output") == "Tokens arrive one by one"


def test_failures_and_refusals_show_the_api_error(server, browser):
    api = Api(server.url)
    starter = {"id": "start", "type": "starter",
               "config": {"inputs": [{"name": "x", "type": "integer", "required": True}]}}
    wf_id = make(api, [starter, {"id": "boom", "type": "code", "config": {"code": "return 1 / variables['x']"}}],
                 [edge("start", "boom")])
    d = browser()
    open_graph(d, server, wf_id)
    run(d, '{"x": "not a number"}')   # refused before any run: the error event's details
    wait(d, lambda d: "Failed" in text_of(d, ".run-summary"))
    assert "input 'x' must be of type integer" in text_of(d, ".run-summary .error-text")
    assert "variables.x" in text_of(d, ".run-summary ul.problems") and not all_css(d, "g.node[data-status]")
    run(d, '{"x": 0}')
    wait(d, lambda d: node_status(d, "boom") == "failed")
    wait(d, lambda d: "ZeroDivisionError" in text_of(d, ".run-summary .error-text"))
    assert node_status(d, "start") == "completed"
    run(d, '{"x": ')                   # not JSON: said at once, nothing sent
    wait(d, lambda d: "Not valid JSON" in text_of(d, "#panel-run .error"))
    # history, filtered to failed runs: the block's error as the API stored it
    d.get(f"{server.url}/#/wf/{wf_id}/runs")
    select(wait(d, lambda d: by_label(d, "Status")), "completed")
    wait(d, lambda d: "No completed runs" in text_of(d, ".list"))
    select(by_label(d, "Status"), "failed")
    wait(d, lambda d: [r.get_attribute("data-status") for r in all_css(d, "table.runs tbody tr")] == ["failed"])
    css(d, "table.runs tbody tr a").click()
    wait(d, lambda d: node_status(d, "boom") == "failed")
    button(d, "boom").click()
    wait(d, lambda d: "ZeroDivisionError" in text_of(d, ".block-detail pre.error-text"))
    assert "Attempts" in text_of(d, ".block-detail dl") and '"x": 0' in text_of(d, ".run-head")


def test_a_run_past_its_timeout_shows_the_api_error(server, browser):
    api = Api(server.url)
    gate = Gate()
    try:
        wf_id = make(api, [START, {"id": "wait", "type": "http", "config": {"url": gate.url}},
                           {"id": "out", "type": "response", "config": {"data": "{{ wait.body }}"}}],
                     [edge("start", "wait"), edge("wait", "out")])
        d = browser()
        open_graph(d, server, wf_id)
        css(d, "#tab-run").click()
        fill(by_label(d, "Timeout (seconds)"), "0")
        run(d)
        wait(d, lambda d: "positive number" in text_of(d, "#panel-run .error"))
        fill(by_label(d, "Timeout (seconds)"), "1")
        run(d)
        wait(d, lambda d: "Timed out" in text_of(d, ".run-summary"))
        assert "execution timed out after 1s" in text_of(d, ".run-summary .error-text")
        wait(d, lambda d: node_status(d, "wait") == "cancelled")
        assert node_status(d, "start") == "completed" and node_status(d, "out") is None
        d.get(f"{server.url}/#/wf/{wf_id}/runs")
        select(wait(d, lambda d: by_label(d, "Status")), "completed")
        wait(d, lambda d: "No completed runs" in text_of(d, ".list"))
        select(by_label(d, "Status"), "timeout")
        wait(d, lambda d: [r.get_attribute("data-status") for r in all_css(d, "table.runs tbody tr")] == ["timeout"])
        assert "timed out" in text_of(d, "table.runs tbody tr")
    finally:
        gate.close()


def test_a_running_run_reattaches_live(server, browser, shots):
    api = Api(server.url)
    gate = Gate()
    try:
        wf_id = make(api, [START, {"id": "wait", "type": "http", "config": {"url": gate.url}},
                           {"id": "out", "type": "response", "config": {"data": "{{ wait.body }}"}}],
                     [edge("start", "wait"), edge("wait", "out")])
        # started elsewhere (the API), while nobody watches
        caller = threading.Thread(target=api, args=("POST", f"/api/workflows/{wf_id}/execute", {}), daemon=True)
        caller.start()
        assert gate.waiting.wait(30)
        d = browser()
        open_graph(d, server, wf_id)
        d.get(f"{server.url}/#/wf/{wf_id}/runs")
        wait(d, lambda d: all_css(d, 'table.runs tbody tr[data-status="running"]'))
        css(d, "table.runs tbody tr a").click()
        wait(d, lambda d: "Live" in text_of(d, ".live"))
        wait(d, lambda d: node_status(d, "wait") == "running")
        assert node_status(d, "start") == "completed" and node_status(d, "out") is None
        shots(d, "run-live")
        gate.open.set()
        wait(d, lambda d: node_status(d, "out") == "completed")
        wait(d, lambda d: text_of(d, '[data-fact="status"]') == "completed")
        assert node_status(d, "wait") == "completed" and text_of(d, ".live") == ""
        button(d, "out").click()
        wait(d, lambda d: '"passed": true' in text_of(d, ".block-detail pre.output"))
        caller.join(30)
    finally:
        gate.close()
    assert node(d, "wait")
