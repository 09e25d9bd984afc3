"""The agent block over real HTTP: the real server, a local OpenAI-compatible one, echo."""

import asyncio
import json

import pytest

from tests import openai_server as oa
from tests.helpers import edge
from tests.llm_fixtures import chunks_of, echo, fake_llm, llm_overrides  # noqa: F401

START = {"id": "start", "type": "starter"}

WEATHER = {
    "type": "http", "name": "weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]},
    "method": "GET",
}


@pytest.fixture
def settings(settings, fake_llm, llm_overrides):
    return settings.replace(**{"llm_base_url": fake_llm.url, "llm_model": "test-model",
                               **llm_overrides})


async def agent_workflow(api, config, name="agent"):
    return await api.workflow([START, {"id": "agent", "type": "agent", "config": config}],
                              [edge("start", "agent")], name=name)


def tool_messages(request):
    return [m for m in request["messages"] if m["role"] == "tool"]


@pytest.mark.gen_test(timeout=30)
async def test_http_tool_then_final_answer(api, fake_llm, echo, server):
    fake_llm.script(oa.tool_calls(("weather", {"city": "Paris"})),
                    oa.text("It is sunny in Paris."))
    tool = dict(WEATHER, url=echo.url + "/echo/weather?city={{ args.city }}",
                headers={"X-Key": "{{ variables.key }}"})
    wf = await agent_workflow(api, {"system": "Be brief.",
                                    "prompt": "Weather in {{ variables.city }}?",
                                    "tools": [tool]})
    status, body = await api.execute(wf, {"city": "Paris", "key": "k-42"})
    assert status == 200, body
    out = body["output"]["agent"]
    assert out["content"] == "It is sunny in Paris."
    [step] = out["steps"]
    assert step["tool"] == "weather"
    assert step["arguments"] == {"city": "Paris"}
    assert step["result"]["path"] == "/echo/weather"          # the echo server's (parsed) body

    # the tool really called the echo server, with the templated query and header
    [seen] = echo.requests
    assert seen["query"] == {"city": "Paris"}
    assert seen["headers"]["x-actorflow-depth"] == "1"          # a run started without it: depth 0
    assert seen["headers"]["x-key"] == "k-42"
    assert seen["headers"]["idempotency-key"] == f"{body['execution_id']}:agent:1.1"  # round.call

    first, second = fake_llm.requests
    assert first["stream"] is True
    assert first["model"] == "test-model"
    assert first["messages"] == [{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": "Weather in Paris?"}]
    assert first["tools"] == [{"type": "function", "function": {
        "name": "weather", "description": "Current weather in a city",
        "parameters": WEATHER["parameters"]}}]
    assistant = second["messages"][2]
    assert assistant["role"] == "assistant"
    [call] = assistant["tool_calls"]
    assert call["function"]["name"] == "weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    [answer] = tool_messages(second)
    assert answer["tool_call_id"] == call["id"]
    assert json.loads(answer["content"])["query"] == {"city": "Paris"}

    # a stream watcher sees the step, then the answer's tokens
    chunks = chunks_of(server, body["execution_id"], "agent")
    assert chunks[0] == {"step": step}
    assert "".join(c for c in chunks if isinstance(c, str)) == "It is sunny in Paris."


@pytest.mark.gen_test(timeout=30)
async def test_parallel_tool_calls(api, fake_llm, echo):
    # The echo server answers /barrier/x/3 only once three requests wait there at once.
    tool = dict(WEATHER, url=echo.url + "/barrier/round/3?city={{ args.city }}")
    fake_llm.script(oa.tool_calls(("weather", {"city": "Oslo"}), ("weather", {"city": "Rome"}),
                                  ("weather", {"city": "Lima"})),
                    oa.text("Done."))
    wf = await agent_workflow(api, {"prompt": "Three cities", "tools": [tool]})
    status, body = await api.execute(wf, {})
    assert status == 200, body
    steps = body["output"]["agent"]["steps"]
    assert [s["arguments"]["city"] for s in steps] == ["Oslo", "Rome", "Lima"]   # the model's order
    assert [s["result"]["query"]["city"] for s in steps] == ["Oslo", "Rome", "Lima"]
    keys = {r["query"]["city"]: r["headers"]["idempotency-key"] for r in echo.requests}
    eid = body["execution_id"]
    assert keys == {"Oslo": f"{eid}:agent:1.1", "Rome": f"{eid}:agent:1.2", "Lima": f"{eid}:agent:1.3"}
    answers = tool_messages(fake_llm.requests[1])
    assert len(answers) == 3
    assert len({a["tool_call_id"] for a in answers}) == 3


@pytest.mark.gen_test(timeout=60)
async def test_workflow_tool_runs_a_sub_run(api, fake_llm):
    helper = await api.workflow([
        {"id": "start", "type": "starter",
         "config": {"inputs": [{"name": "name", "type": "string", "required": True}]}},
        {"id": "out", "type": "response",
         "config": {"data": {"greeting": "hello {{ variables.name }}", "n": 2}}},
    ], [edge("start", "out")], name="greeter")
    fake_llm.script(oa.tool_calls(("greet", {"name": "Ada"})), oa.text("I greeted Ada."))
    wf = await agent_workflow(api, {"prompt": "Greet Ada", "tools": [{
        "type": "workflow", "name": "greet", "description": "Greets someone",
        "workflow_id": helper,
        "parameters": {"type": "object", "properties": {"name": {"type": "string"}}}}]})
    status, body = await api.execute(wf, {})
    assert status == 200, body
    out = body["output"]["agent"]
    assert out["content"] == "I greeted Ada."
    assert out["steps"] == [{"tool": "greet", "arguments": {"name": "Ada"},
                             "result": {"greeting": "hello Ada", "n": 2}}]
    # the sub-run is a real execution of the helper workflow, with the arguments as variables
    status, runs = await api.get(f"/api/workflows/{helper}/executions")
    assert status == 200, runs
    [sub] = runs["executions"]
    assert sub["status"] == "completed"
    status, detail = await api.get(f"/api/workflows/{helper}/executions/{sub['id']}")
    assert detail["variables"] == {"name": "Ada"}


@pytest.mark.gen_test(timeout=60)
async def test_failing_tools_are_reported_to_the_model(api, fake_llm, echo):
    helper = await api.workflow([
        {"id": "start", "type": "starter",
         "config": {"inputs": [{"name": "name", "type": "string", "required": True}]}},
        {"id": "boom", "type": "fail", "config": {"message": "helper broke"}},
    ], [edge("start", "boom")], name="broken")
    tools = [
        dict(WEATHER, url=echo.url + "/status/{{ args.code }}", name="status"),
        {"type": "workflow", "name": "missing", "workflow_id": "no-such-workflow"},
        {"type": "workflow", "name": "broken", "workflow_id": helper},
    ]
    fake_llm.script(
        oa.tool_calls(("status", {"code": 503}), ("missing", {}), ("broken", {"name": "x"}),
                      ("broken", {}), ("nope", {}), ("status", {"wrong": 1})),
        oa.text("Everything failed."))
    wf = await agent_workflow(api, {"prompt": "try", "tools": tools})
    status, body = await api.execute(wf, {})
    assert status == 200, body
    results = [s["result"] for s in body["output"]["agent"]["steps"]]
    assert all(isinstance(r, str) and r.startswith("error: ") for r in results), results
    assert "503" in results[0]
    assert "not found" in results[1]
    assert "helper broke" in results[2]
    assert "name" in results[3]                       # the helper's required input
    assert "no tool named 'nope'" in results[4]
    assert "args.code" in results[5]                  # the template the arguments did not fill
    sent = [m["content"] for m in tool_messages(fake_llm.requests[1])]
    assert sent == results


@pytest.mark.gen_test(timeout=60)
async def test_agent_calling_its_own_workflow_stops_at_the_depth_limit(api, fake_llm, server):
    # Sub-runs and X-Actorflow-Depth count toward one limit: started at depth
    # max - 1, the run may start one sub-run (at max), which may start none.
    limit = server.runtime.settings.max_depth
    levels = 2
    wf = await agent_workflow(api, {"prompt": "recurse", "tools": [
        {"type": "workflow", "name": "again", "workflow_id": "{{ variables.self }}"}]})
    # every level asks for the tool once, then answers
    fake_llm.script(*[oa.tool_calls(("again", {"self": wf})) for _ in range(levels)],
                    *[oa.text(f"level done {i}") for i in range(levels)])
    status, body, _ = await api.call("POST", f"/api/workflows/{wf}/execute",
                                     {"variables": {"self": wf}},
                                     headers={"X-Actorflow-Depth": str(limit - 1)})
    assert status == 200, body
    assert body["output"]["agent"]["content"] == f"level done {levels - 1}"
    refused = [m["content"] for r in fake_llm.requests for m in tool_messages(r)
               if "depth limit" in m["content"]]
    assert refused, [r["messages"] for r in fake_llm.requests]
    assert len(fake_llm.requests) == 2 * levels
    status, runs = await api.get(f"/api/workflows/{wf}/executions")
    assert runs["total"] == levels
    assert {r["status"] for r in runs["executions"]} == {"completed"}


@pytest.mark.gen_test(timeout=30)
async def test_http_tool_obeys_the_network_policy(api, fake_llm, server):
    tools = [dict(WEATHER, url="http://169.254.169.254/latest/meta-data/{{ args.city }}"),
             dict(WEATHER, name="self", url=f"http://localhost:{server.port}/api/health")]
    fake_llm.script(oa.tool_calls(("weather", {"city": "x"}), ("self", {})), oa.text("No luck."))
    wf = await agent_workflow(api, {"prompt": "try", "tools": tools})
    status, body = await api.execute(wf, {})
    assert status == 200, body
    metadata, own = [s["result"] for s in body["output"]["agent"]["steps"]]
    assert metadata.startswith("error: refused to connect") and "169.254.169.254:80" in metadata
    assert own.startswith("error: refused to connect") and "this server itself" in own


@pytest.mark.gen_test(timeout=30)
async def test_max_steps_exceeded_fails_clearly(api, fake_llm, echo):
    tool = dict(WEATHER, url=echo.url + "/echo?city={{ args.city }}")
    fake_llm.script(*[oa.tool_calls(("weather", {"city": f"c{i}"})) for i in range(3)])
    wf = await agent_workflow(api, {"prompt": "loop", "tools": [tool], "max_steps": 2})
    status, body = await api.execute(wf, {})
    assert status == 500, body
    assert body["error_code"] == "EXECUTION_FAILED"
    assert body["block_id"] == "agent"
    assert "max_steps=2" in body["error"]
    assert len(fake_llm.requests) == 3          # two rounds of tools, then one last turn
    assert len(echo.requests) == 2


@pytest.mark.gen_test(timeout=30)
async def test_agent_without_tools_is_a_chat(api, fake_llm):
    fake_llm.script(oa.text("plain answer"))
    wf = await agent_workflow(api, {"prompt": "hi", "model": "other-model", "temperature": 0})
    status, body = await api.execute(wf, {})
    assert status == 200, body
    assert body["output"]["agent"] == {"content": "plain answer", "steps": []}
    sent = fake_llm.requests[0]
    assert "tools" not in sent
    assert sent["model"] == "other-model" and sent["temperature"] == 0


@pytest.mark.gen_test(timeout=30)
async def test_provider_error_fails_the_agent(api, fake_llm, echo):
    tool = dict(WEATHER, url=echo.url + "/echo")
    fake_llm.script(oa.tool_calls(("weather", {"city": "x"})), oa.error(429, "Rate limit reached"))
    wf = await agent_workflow(api, {"prompt": "x", "tools": [tool]})
    status, body = await api.execute(wf, {})
    assert status == 500, body
    assert "Rate limit reached" in body["error"] and "429" in body["error"]


@pytest.mark.gen_test(timeout=60)
async def test_code_tool(api, fake_llm, server):
    if "sandbox" not in server.runtime.services:
        pytest.skip("the sandbox service (actors/sandbox.py) is not registered in "
                    "Runtime.services yet; code tools cannot run without it")
    fake_llm.script(oa.tool_calls(("add", {"a": 2, "b": 40})), oa.text("42"))
    wf = await agent_workflow(api, {"prompt": "add", "tools": [{
        "type": "code", "name": "add", "description": "adds two numbers",
        "parameters": {"type": "object", "properties": {"a": {"type": "number"},
                                                        "b": {"type": "number"}}},
        "code": "print('adding', args['a'], args['b'])\n"
                "return {'sum': args['a'] + args['b'], 'who': variables['who']}"}]})
    status, body = await api.execute(wf, {"who": "me"})
    assert status == 200, body
    assert body["output"]["agent"]["steps"] == [
        {"tool": "add", "arguments": {"a": 2, "b": 40}, "result": {"sum": 42, "who": "me"}}]
    status, logs = await api.get(f"/api/workflows/{wf}/executions/{body['execution_id']}/logs")
    agent_log = [l for l in logs["logs"] if l["block_id"] == "agent"][0]
    assert "adding 2 40" in (agent_log.get("stdout") or "")


@pytest.mark.gen_test(timeout=60)
async def test_cancelling_the_agent_cancels_its_sub_run(api, fake_llm):
    helper = await api.workflow([START, {"id": "nap", "type": "sleep", "config": {"seconds": 30}}],
                                [edge("start", "nap")], name="sleeper")
    fake_llm.script(oa.tool_calls(("nap", {})))
    wf = await agent_workflow(api, {"prompt": "sleep", "tools": [
        {"type": "workflow", "name": "nap", "workflow_id": helper}]})
    status, body = await api.execute(wf, {}, timeout=1.5)
    assert status == 504, body
    # the sub-run does not outlive its parent (the server fixture also checks no actor is left)
    for _ in range(100):
        status, runs = await api.get(f"/api/workflows/{helper}/executions")
        if runs["executions"] and runs["executions"][0]["status"] != "running":
            break
        await asyncio.sleep(0.1)
    assert [r["status"] for r in runs["executions"]] == ["cancelled"]


@pytest.mark.gen_test(timeout=30)
async def test_tool_configs_are_checked_when_saved(api):
    status, wf = await api.post("/api/workflows", {"name": "bad tools"})
    assert status == 201
    status, body = await api.put(f"/api/workflows/{wf['id']}/graph", {"blocks": [
        START, {"id": "agent", "type": "agent", "config": {"prompt": "x", "tools": [
            {"type": "http", "name": "a", "url": "http://x", "method": "BREW"},
            {"type": "code", "name": "b", "code": "return 1", "parameters": "not a schema"},
            {"type": "shell", "name": "c"},
        ]}}], "edges": [edge("start", "agent")]})
    assert status == 400, body
    text = json.dumps(body)
    assert "tools[0].method" in text and "tools[1].parameters" in text and "tools[2].type" in text
