"""The webhook trigger over real HTTP (CONTRACT §5): auth, check order, single use, runs."""

import asyncio
import concurrent.futures
import hashlib
import hmac
import json
import logging
import signal
import subprocess
import threading
import time

import pytest
import requests

from tests.databases import database_url
from tests.helpers import START, configure, edge
from tests.conftest import KEY
from tests.processes import ServerProcess

HOOK = {"id": "hook", "type": "webhook"}
OUT = {"id": "out", "type": "response", "config": {"data": {"got": "{{ hook.body.x }}"}}}


def sign(secret, raw: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


async def hooked(api, blocks=(HOOK, OUT), edges=(edge("hook", "out"),), deploy=True, arm=True,
                 block="hook"):
    """A workflow with a webhook block, deployed and armed: (workflow id, webhook id, secret)."""
    wf = await api.workflow(blocks, edges)
    if deploy:
        status, body = await api.post(f"/api/workflows/{wf}/deploy")
        assert status == 200, body
    if arm:
        status, body = await api.post(f"/api/workflows/{wf}/arm")
        assert status == 200, body
    status, full = await api.get(f"/api/workflows/{wf}")
    config = next(b for b in full["blocks"] if b["id"] == block)["config"]
    return wf, config["webhook_id"], config["webhook_secret"]


async def fire(api, webhook_id, body=None, *, secret=None, signature=None, raw=None, query="",
               headers=None, timeout=30):
    """POST to the webhook without an API key: (status, parsed body, response)."""
    headers = dict(headers or {})
    if raw is None:
        raw = b"" if body is None else json.dumps(body).encode()
        if body is not None:
            headers.setdefault("Content-Type", "application/json")
    if secret is not None:
        headers["X-Webhook-Secret"] = secret
    if signature is not None:
        headers["X-Webhook-Signature"] = signature
    return await api.call("POST", f"/api/webhooks/{webhook_id}{query}", raw=raw, key=None,
                          headers=headers, timeout=timeout)


async def finished(api, wf, eid, deadline=30.0):
    """Poll the execution until it is no longer running; returns its full JSON."""
    end = time.monotonic() + deadline
    while True:
        status, body = await api.get(f"/api/workflows/{wf}/executions/{eid}")
        assert status == 200, body
        if body["status"] != "running":
            return body
        assert time.monotonic() < end, f"execution {eid} still running"
        await asyncio.sleep(0.05)


async def armed_until(api, wf):
    status, body = await api.get(f"/api/workflows/{wf}")
    return body["armed_until"]


# -- acceptance and the run -------------------------------------------------

@pytest.mark.gen_test
async def test_accepted_call_answers_202_and_runs_from_the_webhook(api):
    wf, hook_id, secret = await hooked(api)
    status, body, _ = await fire(api, hook_id, {"x": 5, "y": "z"}, secret=secret)
    assert status == 202, body
    assert set(body) == {"execution_id", "status"} and body["status"] == "running"
    eid = body["execution_id"]
    # The run is on disk before the caller hears of it.
    status, row = await api.get(f"/api/workflows/{wf}/executions/{eid}")
    assert status == 200 and row["trigger"] == "webhook"
    run = await finished(api, wf, eid)
    assert run["status"] == "completed", run
    assert run["output"] == {"got": 5}
    assert run["variables"] == {"x": 5, "y": "z"}
    status, listed = await api.get(f"/api/workflows/{wf}/executions")
    assert [(e["id"], e["trigger"]) for e in listed["executions"]] == [(eid, "webhook")]
    # The secret is not copied into the run's stored logs or events.
    status, logs = await api.get(f"/api/workflows/{wf}/executions/{eid}/logs")
    hook_log = next(entry for entry in logs["logs"] if entry["block_id"] == "hook")
    assert "webhook_secret" not in hook_log["input"] and secret not in json.dumps(logs)
    # Single use: the arm is gone.
    assert await armed_until(api, wf) is None
    status, body, _ = await fire(api, hook_id, {"x": 6}, secret=secret)
    assert status == 409 and set(body) == {"error"}, body


@pytest.mark.gen_test
async def test_webhook_block_output(api):
    wf, hook_id, secret = await hooked(api)
    raw = json.dumps({"x": [1, 2], "nested": {"k": None}}).encode()
    status, body, _ = await fire(
        api, hook_id, raw=raw, query="?a=1&b=2&b=3&empty=&name=%C3%A9t%C3%A9",
        headers={"Content-Type": "application/json", "X-Custom-Thing": "Foo",
                 "X-Webhook-Signature": sign(secret, raw)}, secret=secret)
    assert status == 202, body
    eid = body["execution_id"]
    run = await finished(api, wf, eid)
    assert run["status"] == "completed", run
    assert run["output"] == {"got": [1, 2]}
    status, logs = await api.get(f"/api/workflows/{wf}/executions/{eid}/logs")
    hook = next(entry for entry in logs["logs"] if entry["block_id"] == "hook")
    out = hook["output"]
    assert set(out) == {"body", "headers", "query", "method"}
    assert out["method"] == "POST"
    assert out["body"] == {"x": [1, 2], "nested": {"k": None}}
    assert out["query"] == {"a": "1", "b": ["2", "3"], "empty": "", "name": "été"}
    assert out["headers"]["x-custom-thing"] == "Foo"
    assert out["headers"]["content-type"] == "application/json"
    assert all(name == name.lower() for name in out["headers"])
    assert "x-webhook-secret" not in out["headers"]
    assert "x-webhook-signature" not in out["headers"]
    assert secret not in json.dumps(out)
    assert secret not in json.dumps(run)


@pytest.mark.gen_test
async def test_text_and_non_object_bodies(api):
    out = {"id": "out", "type": "response", "config": {"data": {"b": "{{ hook.body }}"}}}
    wf, hook_id, secret = await hooked(api, blocks=[HOOK, out])

    async def run_with(raw, content_type=None):
        headers = {"Content-Type": content_type} if content_type else {}
        status, _ = await api.post(f"/api/workflows/{wf}/arm")
        assert status == 200
        status, body, _ = await fire(api, hook_id, raw=raw, headers=headers, secret=secret)
        assert status == 202, body
        return await finished(api, wf, body["execution_id"])

    run = await run_with(b"hello=world&a=1", "application/x-www-form-urlencoded")
    assert run["output"] == {"b": "hello=world&a=1"} and run["variables"] == {}
    run = await run_with(b"plain text \xff", "text/plain")
    assert run["output"] == {"b": "plain text \ufffd"} and run["variables"] == {}
    run = await run_with(b"[1, 2, 3]", "application/json")
    assert run["output"] == {"b": [1, 2, 3]} and run["variables"] == {}
    run = await run_with(b"")
    assert run["output"] == {"b": ""} and run["variables"] == {}
    # JSON without a JSON content type (curl -d) is still JSON.
    run = await run_with(b'{"x": 1}', "application/x-www-form-urlencoded")
    assert run["output"] == {"b": {"x": 1}} and run["variables"] == {"x": 1}


@pytest.mark.gen_test
async def test_declared_json_that_is_not_json_is_400_and_keeps_the_arm(api):
    wf, hook_id, secret = await hooked(api)
    until = await armed_until(api, wf)
    status, body, _ = await fire(api, hook_id, raw=b"{not json",
                                 headers={"Content-Type": "application/json"}, secret=secret)
    assert status == 400 and set(body) == {"error"}, body
    assert await armed_until(api, wf) == until
    status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret)
    assert status == 202, body
    await finished(api, wf, body["execution_id"])


@pytest.mark.gen_test
async def test_other_triggers_and_what_only_they_reach_are_skipped(api):
    blocks = [START, {"id": "from_start", "type": "response", "config": {"data": {"s": 1}}},
              HOOK, {"id": "hook2", "type": "webhook"},
              {"id": "from_hook2", "type": "echo"},
              {"id": "join", "type": "echo"},
              {"id": "out", "type": "response", "config": {"data": {"m": "{{ hook.method }}"}}}]
    edges = [edge("start", "from_start"), edge("hook2", "from_hook2"),
             edge("hook", "join"), edge("hook2", "join"), edge("join", "out")]
    wf, hook_id, secret = await hooked(api, blocks, edges)
    status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret)
    assert status == 202, body
    run = await finished(api, wf, body["execution_id"])
    assert run["status"] == "completed", run
    assert run["output"] == {"m": "POST"}
    status, logs = await api.get(f"/api/workflows/{wf}/executions/{body['execution_id']}/logs")
    statuses = {entry["block_id"]: entry["status"] for entry in logs["logs"]}
    assert statuses == {"start": "skipped", "from_start": "skipped", "hook2": "skipped",
                        "from_hook2": "skipped", "hook": "completed", "join": "completed",
                        "out": "completed"}


@pytest.mark.gen_test
async def test_any_webhook_block_of_the_workflow_uses_the_one_arm(api):
    blocks = [HOOK, {"id": "hook2", "type": "webhook"}, OUT]
    wf, hook2_id, secret2 = await hooked(api, blocks, [edge("hook", "out")], block="hook2")
    status, body, _ = await fire(api, hook2_id, {"x": 1}, secret=secret2)
    assert status == 202, body
    run = await finished(api, wf, body["execution_id"])
    assert run["status"] == "completed"
    # hook and out are skipped: the only sink that ran is hook2.
    hook2 = run["output"]["hook2"]
    assert run["output"] == {"hook2": {"body": {"x": 1}, "headers": hook2["headers"],
                                       "query": {}, "method": "POST"}}
    status, full = await api.get(f"/api/workflows/{wf}")
    hook = next(b for b in full["blocks"] if b["id"] == "hook")["config"]
    status, body, _ = await fire(api, hook["webhook_id"], {"x": 1}, secret=hook["webhook_secret"])
    assert status == 409, body


# -- authentication ---------------------------------------------------------

@pytest.mark.gen_test
async def test_hmac_signature_authenticates(api):
    wf, hook_id, secret = await hooked(api)
    raw = b'{"x": "signed"}'
    headers = {"Content-Type": "application/json"}
    # A signature of another body, a signature keyed with another secret, an unknown scheme.
    for bad in (sign(secret, b'{"x": "other"}'), sign("not-the-secret", raw),
                "sha1=" + hmac.new(secret.encode(), raw, hashlib.sha1).hexdigest(),
                sign(secret, raw)[7:], "sha256=", "sha256=zz"):
        status, body, _ = await fire(api, hook_id, raw=raw, headers=headers, signature=bad)
        assert status == 401 and set(body) == {"error"}, (bad, body)
    # Upper-case hex is the same digest.
    status, body, _ = await fire(api, hook_id, raw=raw, headers=headers,
                                 signature="sha256=" + sign(secret, raw)[7:].upper())
    assert status == 202, body
    run = await finished(api, wf, body["execution_id"])
    assert run["output"] == {"got": "signed"}


@pytest.mark.gen_test
async def test_bad_or_missing_secret_is_401_and_keeps_the_arm(api):
    wf, hook_id, secret = await hooked(api)
    until = await armed_until(api, wf)
    for headers in ({}, {"X-Webhook-Secret": ""}, {"X-Webhook-Secret": secret[:-1]},
                    {"X-Webhook-Secret": secret + "x"}, {"X-Webhook-Secret": "é" + secret},
                    {"Authorization": f"Bearer {KEY}"}, {"X-API-Key": KEY}):
        status, body, _ = await fire(api, hook_id, {"x": 1}, headers=headers)
        assert status == 401, (headers, body)
        assert set(body) == {"error"} and wf not in body["error"]
    assert await armed_until(api, wf) == until
    status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret)
    assert status == 202
    await finished(api, wf, body["execution_id"])


@pytest.mark.gen_test
async def test_a_secret_of_another_webhook_does_not_work(api):
    wf1, hook1, secret1 = await hooked(api)
    wf2, hook2, secret2 = await hooked(api)
    status, body, _ = await fire(api, hook1, {"x": 1}, secret=secret2)
    assert status == 401
    status, body, _ = await fire(api, hook2, {"x": 1}, signature=sign(secret1, b'{"x": 1}'))
    assert status == 401


@configure(max_body=2048)
@pytest.mark.gen_test
async def test_check_order_404_413_401_409(api):
    wf, hook_id, secret = await hooked(api, arm=False)
    big = b'{"x": "' + b"a" * 4096 + b'"}'
    # Unknown id: 404 whatever else is wrong (big body, no secret); the body tells nothing more.
    status, body, _ = await fire(api, "no-such-webhook", raw=big)
    assert status == 404 and set(body) == {"error"}, body
    status, body404, _ = await fire(api, "no-such-webhook", {"x": 1}, secret=secret)
    assert status == 404 and body404 == body
    # Known id, body too large: 413 before the secret is even looked at.
    status, body, _ = await fire(api, hook_id, raw=big)
    assert status == 413 and set(body) == {"error"}, body
    status, body, _ = await fire(api, hook_id, raw=big, secret=secret)
    assert status == 413
    # Right size, bad secret: 401, even though it is not armed (nor would 409 be told).
    status, body, _ = await fire(api, hook_id, {"x": 1}, secret="wrong")
    assert status == 401 and set(body) == {"error"}
    # Right secret, not armed: 409.
    status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret)
    assert status == 409 and set(body) == {"error"}, body
    # None of the first three used up an arm.
    status, _ = await api.post(f"/api/workflows/{wf}/arm")
    assert status == 200
    for raw, headers in ((big, {"X-Webhook-Secret": secret}), (b"{}", {"X-Webhook-Secret": "no"})):
        status, body, _ = await fire(api, hook_id, raw=raw, headers=headers)
        assert status in (413, 401)
    status, body, _ = await fire(api, "no-such-webhook", {"x": 1}, secret=secret)
    assert status == 404
    assert await armed_until(api, wf) is not None
    status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret)
    assert status == 202, body
    await finished(api, wf, body["execution_id"])


@configure(max_body=2048)
@pytest.mark.gen_test
async def test_a_webhook_removed_after_it_was_called_is_404_before_any_other_check(api):
    """A called webhook is not read again before its next call; its removal must still show first."""
    wf, hook_id, secret = await hooked(api)
    status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret)
    assert status == 202, body
    await finished(api, wf, body["execution_id"])
    status, _ = await api.put(f"/api/workflows/{wf}/graph", {"blocks": [START], "edges": []})
    assert status == 200
    big = b'{"x": "' + b"a" * 4096 + b'"}'
    for kwargs in ({"raw": big, "secret": secret}, {"body": {"x": 1}, "secret": "wrong"},
                   {"body": {"x": 1}, "secret": secret}, {"body": {"x": 1}, "secret": secret, "query": "?wait=maybe"},
                   {"body": {"x": 1}, "secret": secret, "headers": {"X-Actorflow-Depth": "x"}}):
        status, body, _ = await fire(api, hook_id, **kwargs)
        assert status == 404 and set(body) == {"error"}, (kwargs, body)
    # Called, then its workflow deleted: the same.
    wf, hook_id, secret = await hooked(api)
    status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret, query="?wait=true")
    assert status == 200, body
    assert (await api.delete(f"/api/workflows/{wf}"))[0] == 200
    for kwargs in ({"secret": "wrong"}, {"secret": secret}):
        status, body, _ = await fire(api, hook_id, {"x": 1}, **kwargs)
        assert status == 404 and set(body) == {"error"}, (kwargs, body)


@pytest.mark.gen_test
async def test_a_called_webhook_runs_the_graph_saved_since(api):
    wf, hook_id, secret = await hooked(api)
    status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret, query="?wait=true")
    assert status == 200 and body["output"] == {"got": 1}, body
    new_out = {"id": "out", "type": "response", "config": {"data": {"new": "{{ hook.body.x }}"}}}
    graph = {"blocks": [HOOK, new_out], "edges": [edge("hook", "out")]}
    status, saved = await api.put(f"/api/workflows/{wf}/graph", graph)
    assert status == 200
    await api.post(f"/api/workflows/{wf}/arm")
    status, body, _ = await fire(api, hook_id, {"x": 2}, secret=secret, query="?wait=true")
    assert status == 200 and body["output"] == {"new": 2}, body
    row = await finished(api, wf, body["execution_id"])
    assert row["graph_version"] == saved["graph_version"]
    status, body, _ = await fire(api, hook_id, {"x": 3}, secret=secret)
    assert status == 409, body  # one call per arming, the retried one included


@pytest.mark.gen_test
async def test_no_api_key_needed_and_other_methods_are_405(api):
    wf, hook_id, secret = await hooked(api)
    status, body, _ = await api.call("GET", f"/api/webhooks/{hook_id}", key=None)
    assert status == 405 and set(body) == {"error"}
    assert await armed_until(api, wf) is not None


@pytest.mark.gen_test
async def test_shutting_down_is_503_and_keeps_the_arm(api, server):
    wf, hook_id, secret = await hooked(api)
    until = await armed_until(api, wf)
    server.runtime.runs.accepting = False
    try:
        status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret)
    finally:
        server.runtime.runs.accepting = True
    assert status == 503 and set(body) == {"error"}, body
    assert await armed_until(api, wf) == until


@pytest.mark.gen_test
async def test_a_run_that_cannot_be_planned_keeps_the_arm(api, server, monkeypatch, caplog):
    async def broken(*args, **kwargs):
        raise RuntimeError("engine unavailable")

    wf, hook_id, secret = await hooked(api)
    until = await armed_until(api, wf)
    monkeypatch.setattr(server.runtime.starter, "plan", broken)
    status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret)
    assert status == 500 and body == {"error": "internal server error"}
    assert secret not in caplog.text
    assert await armed_until(api, wf) == until
    monkeypatch.undo()
    status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret)
    assert status == 202, body
    await finished(api, wf, body["execution_id"])


@pytest.mark.gen_test
async def test_an_accepted_run_whose_coordinator_cannot_start_ends_failed(api, server, monkeypatch):
    def broken(plan):
        raise RuntimeError("no thread for the coordinator")

    wf, hook_id, secret = await hooked(api)
    monkeypatch.setattr(server.runtime.runs, "start", broken)
    # Its row was committed with the arm, so it was accepted; it must not stay `running`.
    status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret)
    assert status == 202, body
    row = await finished(api, wf, body["execution_id"])
    assert row["status"] == "failed" and "could not start" in row["error"], row
    assert await armed_until(api, wf) is None
    status, body, _ = await fire(api, hook_id, {"x": 1}, query="?wait=true", secret=secret)
    assert status == 409, body  # the arm was used
    await api.post(f"/api/workflows/{wf}/arm")
    status, body, _ = await fire(api, hook_id, {"x": 2}, query="?wait=true", secret=secret)
    assert status == 500 and body["error_code"] == "INTERNAL_ERROR", body
    status, page = await api.get(f"/api/workflows/{wf}/executions")
    assert page["total"] == 2, page
    for run in page["executions"]:
        row = await finished(api, wf, run["id"])
        assert row["status"] == "failed" and "could not start" in row["error"], row


@pytest.mark.gen_test
async def test_a_graph_saved_between_lookup_and_arm_runs_the_new_graph_once(api, server, monkeypatch):
    wf, hook_id, secret = await hooked(api)
    new_out = {"id": "out", "type": "response", "config": {"data": {"new": "{{ hook.body.x }}"}}}
    real = server.runtime.starter.plan
    saves = []

    async def saving_first(*args, **kwargs):
        if not saves:  # the save lands after this call's lookup, before it takes the arm
            saves.append(await api.put(f"/api/workflows/{wf}/graph",
                                       {"blocks": [HOOK, new_out], "edges": [edge("hook", "out")]}))
        return await real(*args, **kwargs)

    monkeypatch.setattr(server.runtime.starter, "plan", saving_first)
    status, body, _ = await fire(api, hook_id, {"x": 5}, secret=secret)
    assert saves[0][0] == 200 and status == 202, (saves, body)
    row = await finished(api, wf, body["execution_id"])
    assert row["output"] == {"new": 5} and row["graph_version"] == saves[0][1]["graph_version"], row
    status, page = await api.get(f"/api/workflows/{wf}/executions")
    assert page["total"] == 1 and await armed_until(api, wf) is None


@pytest.mark.gen_test
async def test_deleted_workflow_or_replaced_block_is_404(api):
    wf, hook_id, secret = await hooked(api)
    status, _ = await api.put(f"/api/workflows/{wf}/graph", {"blocks": [START], "edges": []})
    assert status == 200
    status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret)
    assert status == 404, body
    wf, hook_id, secret = await hooked(api)
    status, _ = await api.delete(f"/api/workflows/{wf}")
    assert status == 200
    status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret)
    assert status == 404, body


# -- arm state: 409s, expiry, re-arm, undeploy ------------------------------

@pytest.mark.gen_test
async def test_not_deployed_is_409(api):
    wf, hook_id, secret = await hooked(api, deploy=False, arm=False)
    status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret)
    assert status == 409 and set(body) == {"error"}, body
    assert "deploy" in body["error"]


@pytest.mark.gen_test
async def test_deployed_but_not_armed_is_409(api):
    wf, hook_id, secret = await hooked(api, arm=False)
    status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret)
    assert status == 409 and set(body) == {"error"}, body
    assert "arm" in body["error"]


@pytest.mark.gen_test
async def test_undeploy_disarms(api):
    wf, hook_id, secret = await hooked(api)
    status, _ = await api.post(f"/api/workflows/{wf}/undeploy")
    assert status == 200
    status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret)
    assert status == 409, body
    # Deploying again does not bring the arm back.
    status, _ = await api.post(f"/api/workflows/{wf}/deploy")
    status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret)
    assert status == 409, body
    status, _ = await api.post(f"/api/workflows/{wf}/arm")
    status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret)
    assert status == 202, body
    await finished(api, wf, body["execution_id"])


@configure(arm_window=2.0)
@pytest.mark.gen_test
async def test_expired_window_is_409_and_rearm_opens_a_new_one(api):
    wf, hook_id, secret = await hooked(api)
    await asyncio.sleep(2.3)
    status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret)
    assert status == 409 and set(body) == {"error"}, body
    assert "expired" in body["error"]
    status, _ = await api.post(f"/api/workflows/{wf}/arm")
    assert status == 200
    status, body, _ = await fire(api, hook_id, {"x": 2}, secret=secret)
    assert status == 202, body
    run = await finished(api, wf, body["execution_id"])
    assert run["output"] == {"got": 2}


@configure(arm_window=2.5)
@pytest.mark.gen_test
async def test_rearm_restarts_the_window(api):
    wf, hook_id, secret = await hooked(api)
    await asyncio.sleep(1.5)
    status, _ = await api.post(f"/api/workflows/{wf}/arm")
    assert status == 200
    await asyncio.sleep(1.2)  # past the first window (2.7 s > 2.5 s), well inside the second
    status, body, _ = await fire(api, hook_id, {"x": 3}, secret=secret)
    assert status == 202, body
    await finished(api, wf, body["execution_id"])


@pytest.mark.gen_test
async def test_rearm_after_a_call_allows_exactly_one_more(api):
    wf, hook_id, secret = await hooked(api)
    for n in range(3):
        status, body, _ = await fire(api, hook_id, {"x": n}, secret=secret)
        assert status == 202, body
        run = await finished(api, wf, body["execution_id"])
        assert run["output"] == {"got": n}
        status, body, _ = await fire(api, hook_id, {"x": n}, secret=secret)
        assert status == 409, body
        status, _ = await api.post(f"/api/workflows/{wf}/arm")
        assert status == 200


@pytest.mark.gen_test(timeout=120)
async def test_race_exactly_one_of_many_concurrent_calls_is_accepted(api):
    wf, hook_id, secret = await hooked(api)
    calls = [fire(api, hook_id, {"x": n}, secret=secret, timeout=60) for n in range(60)]
    results = await asyncio.gather(*calls)
    statuses = sorted(status for status, _, _ in results)
    assert statuses.count(202) == 1, statuses
    assert statuses.count(409) == 59, statuses
    winner = next(body for status, body, _ in results if status == 202)
    run = await finished(api, wf, winner["execution_id"])
    assert run["status"] == "completed"
    status, listed = await api.get(f"/api/workflows/{wf}/executions")
    assert listed["total"] == 1


# -- ?wait=true ---------------------------------------------------------------

@pytest.mark.gen_test
async def test_wait_true_answers_like_execute(api):
    wf, hook_id, secret = await hooked(api)
    status, body, _ = await fire(api, hook_id, {"x": "waited"}, secret=secret, query="?wait=true")
    assert status == 200, body
    assert set(body) == {"execution_id", "status", "output", "duration_ms"}
    assert body["status"] == "completed" and body["output"] == {"got": "waited"}
    assert isinstance(body["duration_ms"], int)
    status, row = await api.get(f"/api/workflows/{wf}/executions/{body['execution_id']}")
    assert row["status"] == "completed" and row["trigger"] == "webhook"


@pytest.mark.gen_test
async def test_wait_true_failure_is_500_coded(api):
    blocks = [HOOK, {"id": "boom", "type": "fail", "config": {"message": "kaput"}}]
    wf, hook_id, secret = await hooked(api, blocks, [edge("hook", "boom")])
    status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret, query="?wait=1")
    assert status == 500, body
    assert body["error_code"] == "EXECUTION_FAILED" and body["block_id"] == "boom"
    assert "kaput" in body["error"] and body["execution_id"]
    status, row = await api.get(f"/api/workflows/{wf}/executions/{body['execution_id']}")
    assert row["status"] == "failed"


@configure(execute_timeout=1.0)
@pytest.mark.gen_test(timeout=60)
async def test_wait_true_timeout_is_504_coded(api):
    blocks = [HOOK, {"id": "slow", "type": "sleep", "config": {"seconds": 20}}]
    wf, hook_id, secret = await hooked(api, blocks, [edge("hook", "slow")])
    status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret, query="?wait=true")
    assert status == 504, body
    assert body["error_code"] == "EXECUTION_TIMEOUT" and body["execution_id"]
    status, row = await api.get(f"/api/workflows/{wf}/executions/{body['execution_id']}")
    assert row["status"] == "timeout"


@configure(execute_timeout=1.0)
@pytest.mark.gen_test(timeout=60)
async def test_background_webhook_run_uses_execute_timeout(api):
    blocks = [HOOK, {"id": "slow", "type": "sleep", "config": {"seconds": 20}}]
    wf, hook_id, secret = await hooked(api, blocks, [edge("hook", "slow")])
    started = time.monotonic()
    status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret)
    assert status == 202 and time.monotonic() - started < 10
    run = await finished(api, wf, body["execution_id"])
    assert run["status"] == "timeout"


@pytest.mark.gen_test
async def test_wait_false_and_bad_wait_value(api):
    wf, hook_id, secret = await hooked(api)
    status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret, query="?wait=maybe")
    assert status == 400 and set(body) == {"error"}, body
    assert await armed_until(api, wf) is not None
    status, body, _ = await fire(api, hook_id, {"x": 1}, secret=secret, query="?wait=false")
    assert status == 202 and body["status"] == "running"
    await finished(api, wf, body["execution_id"])


# -- rate limit and secrecy -----------------------------------------------------

@configure(webhook_failures_per_minute=3)
@pytest.mark.gen_test
async def test_failed_secrets_are_rate_limited_but_never_the_right_one(api):
    wf, hook_id, secret = await hooked(api)
    other_wf, other_id, other_secret = await hooked(api)
    for _ in range(3):
        status, body, _ = await fire(api, hook_id, {"x": 1}, secret="guess")
        assert status == 401, body
    status, body, response = await fire(api, hook_id, {"x": 1}, secret="guess")
    assert status == 429 and set(body) == {"error"}, body
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    status, body, _ = await fire(api, hook_id, {"x": 1}, signature="sha256=00")
    assert status == 429
    # Counted per webhook id: another webhook is not affected.
    status, body, _ = await fire(api, other_id, {"x": 1}, secret="guess")
    assert status == 401
    # The right secret still gets through, judged on the arm alone.
    status, body, _ = await fire(api, hook_id, {"x": 7}, secret=secret)
    assert status == 202, body
    run = await finished(api, wf, body["execution_id"])
    assert run["output"] == {"got": 7}
    status, body, _ = await fire(api, hook_id, {"x": 8}, secret=secret)
    assert status == 409, body
    status, body, _ = await fire(api, hook_id, {"x": 1}, secret="guess")
    assert status == 429


@configure(webhook_failures_per_minute=2)
@pytest.mark.gen_test
async def test_secrets_never_reach_the_server_log(api, caplog):
    blocks = [HOOK, {"id": "boom", "type": "fail"}]
    wf, hook_id, secret = await hooked(api, blocks, [edge("hook", "boom")])
    # Every logger at DEBUG but peewee's SQL trace, which echoes all stored values when
    # someone turns it on (the server logs at INFO).
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="peewee")
    raw = b'{"x": 1}'
    await fire(api, hook_id, raw=raw, secret=secret + "x")
    await fire(api, hook_id, raw=raw, signature=sign(secret + "x", raw))
    await fire(api, hook_id, raw=raw, secret="guess")  # 429
    status, body, _ = await fire(api, hook_id, raw=raw, signature=sign(secret, raw),
                                 secret=secret, query="?wait=true")
    assert status == 500, body
    await fire(api, hook_id, raw=raw, secret=secret)  # 409
    assert "429" in caplog.text or "failed secret" in caplog.text
    assert secret not in caplog.text
    assert sign(secret, raw)[7:] not in caplog.text


# -- two processes, one database --------------------------------------------------

def test_race_across_two_server_processes(tmp_path):
    db = database_url(tmp_path, "shared.db")
    procs = {}
    try:
        env = {"ACTORFLOW_API_KEY": KEY, "ACTORFLOW_SHUTDOWN_GRACE": "5"}
        procs["a"] = ServerProcess(db, env=env)
        base_a = procs["a"].url
        procs["b"] = ServerProcess(db, env=env)
        base_b = procs["b"].url
        auth = {"Authorization": f"Bearer {KEY}"}

        wf = requests.post(f"{base_a}/api/workflows", json={"name": "shared"},
                           headers=auth, timeout=30).json()["id"]
        response = requests.put(f"{base_a}/api/workflows/{wf}/graph", headers=auth, timeout=30,
                                json={"blocks": [HOOK, OUT], "edges": [edge("hook", "out")]})
        assert response.status_code == 200, response.text
        hook = next(b for b in response.json()["blocks"] if b["id"] == "hook")["config"]
        assert requests.post(f"{base_b}/api/workflows/{wf}/deploy", headers=auth,
                             timeout=30).status_code == 200

        def race(rounds_seen):
            assert requests.post(f"{base_a}/api/workflows/{wf}/arm", headers=auth,
                                 timeout=30).status_code == 200
            barrier = threading.Barrier(40)

            def one(n):
                base = base_a if n % 2 else base_b
                barrier.wait(timeout=60)
                r = requests.post(f"{base}/api/webhooks/{hook['webhook_id']}",
                                  json={"x": n}, timeout=60,
                                  headers={"X-Webhook-Secret": hook["webhook_secret"]})
                return r.status_code, r.json(), base

            with concurrent.futures.ThreadPoolExecutor(40) as pool:
                results = list(pool.map(one, range(40)))
            statuses = sorted(status for status, _, _ in results)
            assert statuses.count(202) == 1, statuses
            assert statuses.count(409) == 39, statuses
            return next((body, base) for status, body, base in results if status == 202)

        winners = [race(n) for n in range(2)]
        for body, base in winners:
            eid = body["execution_id"]
            end = time.monotonic() + 120  # generous: two servers and a loaded machine
            while True:
                # Either process sees the run: it is in the shared database.
                other = base_b if base == base_a else base_a
                row = requests.get(f"{other}/api/workflows/{wf}/executions/{eid}",
                                   headers=auth, timeout=30).json()
                if row["status"] != "running" or time.monotonic() > end:
                    break
                time.sleep(0.05)
            assert row["status"] == "completed" and row["trigger"] == "webhook", row
        listed = requests.get(f"{base_b}/api/workflows/{wf}/executions", headers=auth,
                              timeout=30).json()
        assert listed["total"] == 2
    finally:
        for server in procs.values():
            if server.proc.poll() is None:
                server.proc.send_signal(signal.SIGTERM)
        for server in procs.values():
            try:
                assert server.proc.wait(timeout=60) == 0  # one SIGTERM each: a second one stops at once
            except subprocess.TimeoutExpired:
                server.kill()
                raise
    for server in procs.values():
        assert hook["webhook_secret"] not in "\n".join(server.lines)
