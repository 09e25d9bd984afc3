"""The OpenAPI document: valid, complete for the route table, served without a key."""

import json

import pytest
from openapi_spec_validator import validate

from server.app import make_app
from server.handlers.base import BaseHandler, HealthHandler
from server.openapi import UndescribedRoute, build, document, implemented_methods, routes_of
from tests.processes import run_cli


def test_document_is_valid_openapi_31():
    doc = document()
    assert doc["openapi"] == "3.1.0"
    validate(doc)
    # marshmallow's Range(min_inclusive=False) is exclusive in the document too (the server refuses 0)
    assert doc["components"]["schemas"]["ExecuteBody"]["properties"]["timeout"] == {
        "type": "number", "exclusiveMinimum": 0}
    # schemas.fields.Text's limit (PostgreSQL's varchar(255)); descriptions have none
    create = doc["components"]["schemas"]["CreateWorkflow"]["properties"]
    assert create["name"]["maxLength"] == 255 and "maxLength" not in create["description"]
    assert doc["components"]["schemas"]["Block"]["properties"]["id"]["maxLength"] == 255


def test_every_route_and_method_is_described():
    app = make_app(None)
    doc = build(app)
    described = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    # every API route; the web console's pages (/, /console/...) are not part of the API
    count = sum(len(implemented_methods(handler)) for pattern, handler in routes_of(app)
                if pattern.startswith(("/api/", "/metrics")))
    assert len(described) == count
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


def test_a_route_the_document_does_not_describe_fails_the_build(monkeypatch):
    class Extra(BaseHandler):
        def get(self):
            pass

    app = make_app(None)
    app.wildcard_router.add_rules([(r"/api/extra/?", Extra, {"runtime": None})])
    with pytest.raises(UndescribedRoute, match="/api/extra"):
        build(app)

    # A method added to a described route counts too.
    monkeypatch.setattr(HealthHandler, "post", lambda self: None, raising=False)
    with pytest.raises(UndescribedRoute, match="POST /api/health"):
        build(make_app(None))


def test_error_shapes_are_where_the_seed_puts_them():
    paths = document()["paths"]

    def shape(path, method, status):
        ref = paths[path][method]["responses"][str(status)]["content"]["application/json"]["schema"]["$ref"]
        return ref.rsplit("/", 1)[1]

    wf = "/api/workflows/{id}"
    assert shape("/api/workflows", "post", 400) == "PlainError"
    assert shape(wf, "patch", 404) == "PlainError"
    assert shape(wf, "delete", 404) == "PlainError"
    assert shape(wf + "/deploy", "post", 404) == "PlainError"
    assert shape(wf + "/arm", "post", 400) == "PlainError"
    assert shape(wf, "get", 404) == "CodedError"
    assert shape(wf + "/graph", "put", 400) == "CodedError"
    assert shape(wf + "/execute", "post", 404) == "CodedError"
    assert shape(wf + "/execute", "post", 504) == "ExecutionTimeoutError"
    assert shape(wf + "/execute", "post", 401) == "PlainError"
    assert shape("/api/webhooks/{webhook_id}", "post", 409) == "PlainError"
    assert shape("/api/webhooks/{webhook_id}", "post", 500) == "ExecutionFailedError"
    stream = paths[wf + "/execute/stream"]["post"]["responses"]["200"]
    assert list(stream["content"]) == ["text/event-stream"]
    assert "execution_completed" in paths[wf + "/execute/stream"]["post"]["description"]
    hook = {p["name"] for p in paths["/api/webhooks/{webhook_id}"]["post"]["parameters"]}
    assert {"X-Webhook-Secret", "X-Webhook-Signature", "wait"} <= hook
    assert paths["/api/webhooks/{webhook_id}"]["post"]["security"] == []


def test_cli_prints_the_document_without_a_server():
    result = run_cli("openapi")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(json.dumps(document()))


@pytest.mark.gen_test
async def test_served_without_a_key_with_a_docs_page(api):
    status, doc = await api.get("/api/openapi.json", key=None)
    assert status == 200
    assert doc == json.loads(json.dumps(document()))

    status, page, response = await api.call("GET", "/api/docs", key=None)
    assert status == 200 and response.headers["Content-Type"].startswith("text/html")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert "<script>" not in page and "cdn" not in page.lower()  # only <script src=...> of ours
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "start.js"):
        assert f"/api/docs/{asset}" in page
        status, body, response = await api.call("GET", f"/api/docs/{asset}", key=None)
        assert status == 200 and len(response.body) > 100
    status, body = await api.get("/api/docs/..%2Fsettings.py", key=None)
    assert status == 404 and "error" in body


@pytest.mark.gen_test
async def test_a_saved_graph_answer_matches_its_schema(api):
    """The document's own example graph, saved and read back, validates against the document."""
    import jsonschema
    from server.openapi import GRAPH_EXAMPLE
    doc = document()

    def check(body, ref):
        schema = {"$ref": ref, "components": doc["components"]}
        jsonschema.Draft202012Validator(schema).validate(body)

    graph = dict(GRAPH_EXAMPLE)
    graph["blocks"] = graph["blocks"] + [{"id": "tick", "type": "schedule", "config": {"cron": "0 * * * *"}}]
    status, wf = await api.post("/api/workflows", {"name": "doc"})
    check(wf, "#/components/schemas/Workflow")
    status, saved = await api.put(f"/api/workflows/{wf['id']}/graph", graph)
    assert status == 200, saved
    check(saved, "#/components/schemas/WorkflowWithGraph")
    status, got = await api.get(f"/api/workflows/{wf['id']}")
    check(got, "#/components/schemas/WorkflowWithGraph")
    assert any("next_fires" in b for b in got["blocks"]) and any("webhook_url" in b for b in got["blocks"])
    status, ran = await api.execute(wf["id"])
    assert status == 200, ran
    check(ran, "#/components/schemas/ExecuteResult")
    status, logs = await api.get(f"/api/workflows/{wf['id']}/executions/{ran['execution_id']}/logs")
    check(logs, "#/components/schemas/Logs")
    status, page = await api.get(f"/api/workflows/{wf['id']}/executions")
    check(page, "#/components/schemas/ExecutionPage")


@pytest.mark.gen_test
async def test_the_documents_links_walk_create_graph_execute_executions_logs(api):
    """Follow the links Schemathesis's stateful phase follows, resolving them from real answers:
    create -> PUT graph -> execute -> executions -> logs, and the graph's versions."""
    import jsonschema
    from server.openapi import GRAPH_EXAMPLE
    doc = document()
    operations = {op["operationId"]: (path, method, op)
                  for path, ops in doc["paths"].items() for method, op in ops.items()}

    def pointer(body, expression):
        for part in expression.split("#", 1)[1].strip("/").split("/"):
            body = body[int(part)] if isinstance(body, list) else body[part]
        return str(body)

    async def follow(previous, link_name, body=None):
        """Call the operation `link_name` of the previous answer points to, with its parameters."""
        (_, _, op), path_args, answer = previous
        link = op["responses"][str(answer[0])]["links"][link_name]
        path, method, target = operations[link["operationId"]]
        args, headers = {}, {}
        for name, expression in link["parameters"].items():
            value = (path_args[expression.rsplit(".", 1)[1]] if expression.startswith("$request.path.")
                     else pointer(answer[1], expression))
            if name.startswith("header."):
                headers[name[len("header."):]] = value
            else:
                args[name] = value
        status, got, _ = await api.call(method.upper(), path.format(**args), body, headers=headers or None)
        assert str(status) in target["responses"], (link_name, status, got)
        content = target["responses"][str(status)].get("content", {}).get("application/json")
        if content:
            jsonschema.Draft202012Validator({**content["schema"], "components": doc["components"]}).validate(got)
        return operations[link["operationId"]], args, (status, got)

    created = await api.post("/api/workflows", {"name": "links"})
    step = (operations["createWorkflow"], {}, created)
    graph = await follow(step, "PutGraph", GRAPH_EXAMPLE)
    assert graph[2][0] == 200, graph[2]
    version = await follow(graph, "GetVersion")
    assert version[2][0] == 200 and version[2][1]["graph_version"] == 1, version[2]
    assert (await follow(graph, "ListVersions"))[2][1]["total"] == 1
    assert (await follow(graph, "RestoreVersion"))[2][1]["graph_version"] == 2
    ran = await follow(graph, "Execute", {"variables": {"text": "hi"}})
    assert ran[2][0] == 200 and ran[2][1]["status"] == "completed", ran[2]
    assert (await follow(ran, "GetExecution"))[2][1]["status"] == "completed"
    history = await follow(ran, "ListExecutions")
    assert history[2][1]["executions"][0]["id"] == ran[2][1]["execution_id"]
    logs = await follow(history, "GetLogs")
    assert [entry["block_id"] for entry in logs[2][1]["logs"]] == ["hook", "start", "out"], logs[2]
    deployed = await follow(step, "Deploy")
    assert deployed[2][0] == 200
    assert (await follow(deployed, "Arm"))[2][0] == 200
    hook = await follow(graph, "TriggerWebhook", {"x": 1})
    assert hook[2][0] == 202, hook[2]


@pytest.mark.gen_test
async def test_paging_bounds_in_the_document_are_the_servers(api):
    """Each integer query parameter: its documented minimum and maximum answer 200, one past
    either answers 400, on every operation that takes it."""
    from server.openapi import GRAPH_EXAMPLE
    status, wf = await api.post("/api/workflows", {"name": "bounds"})
    await api.put(f"/api/workflows/{wf['id']}/graph", GRAPH_EXAMPLE)
    status, ran = await api.execute(wf["id"])
    assert status == 200, ran
    ids = {"id": wf["id"], "eid": ran["execution_id"]}
    checked = 0
    for path, ops in document()["paths"].items():
        for method, op in ops.items():
            for param in op.get("parameters", []):
                schema = param["schema"]
                if param["in"] != "query" or schema.get("type") != "integer":
                    continue
                url = path.format(**ids)
                for value, expected in ((schema["minimum"], 200), (schema["minimum"] - 1, 400),
                                        (schema["maximum"], 200), (schema["maximum"] + 1, 400)):
                    status, body = await api.get(f"{url}?{param['name']}={value}")
                    assert status == expected, (path, param["name"], value, body)
                checked += 1
    assert checked == 8  # limit and offset of workflows, versions, executions, logs


@pytest.mark.gen_test
async def test_a_nul_in_a_path_segment_is_a_documented_answer(api):
    """Every operation, with %00 in each path or query parameter: a status the document lists for it,
    with the body it describes (the server refuses NUL before looking anything up)."""
    import jsonschema
    doc = document()
    for path, ops in doc["paths"].items():
        names = [p["name"] for p in next(iter(ops.values()))["parameters"] if p["in"] == "path"]
        urls = [path.format(**{n: ("a%00b" if n == name else "x") for n in names}) for name in names]
        queries = {p["name"] for op in ops.values() for p in op["parameters"] if p["in"] == "query"}
        urls += [path.format(**{n: "x" for n in names}) + f"?{q}=%00" for q in queries]
        for url in urls:
            for method, op in ops.items():
                body = {} if method in ("post", "put", "patch") else None
                status, got, response = await api.call(method.upper(), url, body)
                assert str(status) in op["responses"], (method, url, status, got)
                content = op["responses"][str(status)].get("content", {}).get("application/json")
                if content:
                    schema = {**content["schema"], "components": doc["components"]}
                    jsonschema.Draft202012Validator(schema).validate(got)
