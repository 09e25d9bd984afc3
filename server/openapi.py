"""The OpenAPI 3.1 document, generated from the route table and the marshmallow schemas.

`document(app)` walks the application's routes: each handler class must have
an entry in OPERATIONS naming its path parameters and, for every HTTP method
it implements, the operation (summary, parameters, body schema, answers). A
route under /api/ without one is an error, so the document cannot silently
fall behind the server. Bodies are marshmallow schemas (schemas/ for requests,
schemas/responses.py for answers) turned into JSON Schema by apispec.

Error bodies follow the handler's own `error_shape` (PLAIN `{"error"}` or
CODED `{"error", "error_code", ...}`) unless an operation says otherwise;
401 is always plain, as in server/errors.py.
"""

import json

import tornado.web
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import validate

from actors.blocks import default_registry
from schemas import responses as r
from schemas.execution import STATUSES, ExecuteBody
from schemas.fields import StrictNumber, Text
from schemas.workflow import CreateWorkflow, UpdateWorkflow
from server import __version__
from server.errors import CODED, PLAIN
from server.handlers import base, deploy, docs, executions, stream, versions, webhooks, workflows
from server.handlers.metrics import MetricsHandler

METHODS = ("get", "post", "put", "patch", "delete", "head", "options")
SSE = "text/event-stream"
INT64_MAX = 2 ** 63 - 1

PATH_PARAMS = {
    "id": "Workflow ID",
    "eid": "Execution ID",
    "n": "Graph version number (1, 2, ...)",
    "webhook_id": "The webhook block's `config.webhook_id`",
    "asset": "A file of the vendored Swagger UI",
}

STREAM_EVENTS = """\
Each event is an `id:` line (the run's sequence number), one `data:` line of
compact JSON whose `type` is one of the following, and a blank line. While the
run is quiet a comment line `: keep-alive` is sent.

| type | fields |
| --- | --- |
| `execution_started` | `execution_id`, `workflow_id` (always first) |
| `block_started` | `block_id`, `block_type` |
| `block_chunk` | `block_id`, `chunk` (e.g. an LLM token) |
| `block_completed` | `block_id`, `block_type`, `output`, `duration_ms` |
| `block_skipped` | `block_id`, `block_type` |
| `block_failed` | `block_id`, `block_type`, `error`, `duration_ms` |
| `execution_completed` | `execution_id`, `output`, `duration_ms` (last event) |
| `error` | `error`; `execution_id` when a run exists; `block_id` for a failed block; \
`error_code: "EXECUTION_TIMEOUT"` only for the run's timeout; `details` for validation errors (last event) |
"""

# One server-sent event as a client parses it; `data` is JSON, one of the StreamEvent types.
SSE_EVENT = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "the run's sequence number"},
        "event": {"type": "string", "enum": ["message"], "description": "no `event:` line is sent"},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": {"$ref": "#/components/schemas/StreamEvent"}},
    },
    "required": ["id", "data"],
}

GRAPH_EXAMPLE = {
    "blocks": [
        {"id": "hook", "type": "webhook", "config": {}, "position": {"x": 0, "y": 200}},
        {"id": "start", "type": "starter", "position": {"x": 0, "y": 0},
         "config": {"inputs": [{"name": "text", "type": "string", "default": "hello"}]}},
        {"id": "out", "type": "response", "config": {"data": {"variables": "{{ variables }}"}},
         "position": {"x": 300, "y": 0}},
    ],
    "edges": [{"source": "start", "target": "out"}, {"source": "hook", "target": "out"}],
}


# -- pieces of operations ------------------------------------------------------

def json_body(schema):
    return {"content": {"application/json": {"schema": schema}}}


def answer(description, schema=None, media="application/json", **extra):
    out = {"description": description}
    if schema is not None:
        out["content"] = {media: {"schema": schema}}
    out.update(extra)
    return out


def query(name, schema, description):
    return {"in": "query", "name": name, "required": False, "schema": schema,
            "description": description}


LIMIT = query("limit", {"type": "integer", "minimum": 0, "maximum": INT64_MAX, "default": 50},
              "Page size; larger than 500 is capped at 500; 0 gives an empty page with the total. "
              "Anything but a non-negative integer: 400.")
OFFSET = query("offset", {"type": "integer", "minimum": 0, "maximum": INT64_MAX, "default": 0},
               "How many to skip, newest first. Anything but a non-negative integer: 400.")
LOGS_LIMIT = query("limit", {"type": "integer", "minimum": 0, "maximum": INT64_MAX},
                   "Page size; default and cap ACTORFLOW_MAX_BLOCKS (5000 unless set), so that by "
                   "default every log of the run comes. Anything but a non-negative integer: 400.")
LOGS_OFFSET = query("offset", {"type": "integer", "minimum": 0, "maximum": INT64_MAX, "default": 0},
                    "How many logs to skip, in the order blocks started. Anything but a non-negative "
                    "integer: 400.")
STATUS = query("status", {"type": "string", "enum": list(STATUSES)},
               "Only executions with this status. Another value: 400.")
WAIT = query("wait", {"type": "string", "enum": ["true", "false", "1", "0", "yes", "no", "on", "off"]},
             "`true`: hold the answer until the run ends and answer like /execute. Another value: 400.")
LAST_EVENT_ID = "^[0-9]{1,18}$"
NUL = "a path segment or query value holds NUL (%00)"
DEPTH = {"in": "header", "name": "X-Actorflow-Depth", "required": False,
         "schema": {"type": "string", "pattern": "^[0-9]{1,9}$"},
         "description": "Set by Actorflow's own outgoing requests: the depth of the run this call would "
                        "start. Deeper than ACTORFLOW_MAX_DEPTH: 409; not 1-9 digits: 400."}


def link(operation_id, **parameters):
    return {"operationId": operation_id, "parameters": parameters}


def op(operation_id, summary, answers, errors=(), body=None, body_required=True, params=(),
       shape=None, public=False, tags=("workflows",), description=None):
    """One operation. `errors` maps status -> why (answered in the handler's error
    shape, or `shape`), or -> (why, schema) for an answer with a body of its own."""
    return {"operationId": operation_id, "summary": summary, "answers": answers,
            "errors": dict(errors), "body": body, "body_required": body_required,
            "params": list(params), "shape": shape, "public": public,
            "tags": list(tags), "description": description}


NOT_FOUND = {404: "No such workflow (or another workspace's)"}
NO_EXECUTION = {404: "No such workflow or execution"}
NO_VERSION = {404: "No such workflow, or no such stored version"}
BAD_PAGE = {400: "limit or offset is not a non-negative integer"}
STORE = {503: "The server is shutting down, or the store refused the write (STORAGE_UNAVAILABLE)"}
EXECUTE_ERRORS = {
    400: "Body not a JSON object, `variables` not an object, bad `timeout`, starter inputs missing "
         "or mistyped, no starter block, bad X-Actorflow-Depth (VALIDATION_ERROR)",
    404: "No such workflow (WORKFLOW_NOT_FOUND)",
    409: "Called from a run nested deeper than the limit (DEPTH_EXCEEDED)",
    413: "Body over the body limit",
    500: ("The run failed: a block failed, or it was cancelled", r.ExecutionFailedError),
    504: ("The run's timeout passed; the run is stored as `timeout`", r.ExecutionTimeoutError),
    **STORE,
}
RUN_LINKS = {
    "GetExecution": link("getExecution", id="$request.path.id", eid="$response.body#/execution_id"),
    "GetLogs": link("getLogs", id="$request.path.id", eid="$response.body#/execution_id"),
    "Reattach": link("reattachStream", id="$request.path.id", eid="$response.body#/execution_id"),
    "Cancel": link("cancelExecution", id="$request.path.id", eid="$response.body#/execution_id"),
    "ListExecutions": link("listExecutions", id="$request.path.id"),
}
EXECUTED = answer("The run completed", r.ExecuteResult, links=RUN_LINKS)

OPERATIONS = {
    base.HealthHandler: {"get": op(
        "health", "Is the server up?", {200: answer("Up", r.Health)}, public=True, tags=["server"])},

    workflows.WorkflowsHandler: {
        "get": op("listWorkflows", "List workflows, newest first",
                  {200: answer("A page of workflows (without graphs)", r.WorkflowPage)},
                  BAD_PAGE, params=[LIMIT, OFFSET]),
        "post": op("createWorkflow", "Create a workflow",
                   {201: answer("The new workflow", r.Workflow, links={
                       "GetWorkflow": link("getWorkflow", id="$response.body#/id"),
                       "PutGraph": link("putGraph", id="$response.body#/id"),
                       "UpdateWorkflow": link("updateWorkflow", id="$response.body#/id"),
                       "Deploy": link("deployWorkflow", id="$response.body#/id"),
                       "Arm": link("armWorkflow", id="$response.body#/id"),
                       "ListExecutions": link("listExecutions", id="$response.body#/id"),
                   })},
                   {400: "No JSON object body; name missing, empty or not a string", 413: "Body too large",
                    **STORE}, body=CreateWorkflow),
    },
    workflows.WorkflowHandler: {
        "get": op("getWorkflow", "Get a workflow with its blocks and edges",
                  {200: answer("The workflow and its graph as saved", r.WorkflowWithGraph)},
                  {404: "No such workflow (WORKFLOW_NOT_FOUND)"}, shape=CODED),
        "patch": op("updateWorkflow", "Rename or re-describe a workflow",
                    {200: answer("The workflow", r.Workflow)},
                    {400: "Neither name nor description; name empty or not a string", **NOT_FOUND,
                     413: "Body too large", **STORE}, body=UpdateWorkflow),
        "delete": op("deleteWorkflow", "Delete a workflow, its graph, executions and logs",
                     {200: answer("Deleted (running executions were cancelled first)", r.Ok)},
                     {**NOT_FOUND, **STORE}),
    },
    workflows.GraphHandler: {"put": op(
        "putGraph", "Save the complete graph (blocks and edges) in one transaction",
        {200: answer("The saved workflow, as GET answers it", r.WorkflowWithGraph, links={
            "Execute": link("executeWorkflow", id="$response.body#/id"),
            "ExecuteStream": link("executeWorkflowStream", id="$response.body#/id"),
            "Deploy": link("deployWorkflow", id="$response.body#/id"),
            "ListVersions": link("listVersions", id="$response.body#/id"),
            "GetVersion": link("getVersion", id="$response.body#/id", n="$response.body#/graph_version"),
            "RestoreVersion": link("restoreVersion", id="$response.body#/id",
                                   n="$response.body#/graph_version"),
            "TriggerWebhook": link("triggerWebhook", **{
                "webhook_id": "$response.body#/blocks/0/config/webhook_id",
                "header.X-Webhook-Secret": "$response.body#/blocks/0/config/webhook_secret"}),
        })},
        {400: "Invalid graph (VALIDATION_ERROR, with `details`); the previous graph stays",
         404: "No such workflow (WORKFLOW_NOT_FOUND)", 413: "Body over the graph body limit", **STORE},
        body=r.GraphBody, tags=["graph"])},

    versions.VersionsHandler: {"get": op(
        "listVersions", "List the workflow's stored graph versions, newest first",
        {200: answer("A page of versions (counts, not graphs)", r.VersionPage)},
        {**BAD_PAGE, **NOT_FOUND},
        params=[LIMIT, OFFSET], tags=["graph"])},
    versions.VersionHandler: {"get": op(
        "getVersion", "One stored graph version, blocks and edges as saved",
        {200: answer("The version", r.VersionGraph)},
        NO_VERSION, tags=["graph"])},
    versions.RestoreVersionHandler: {"post": op(
        "restoreVersion", "Save a stored version again as the newest version",
        {200: answer("The workflow with the restored graph, as GET answers it", r.WorkflowWithGraph, links={
            "Execute": link("executeWorkflow", id="$response.body#/id"),
            "GetVersion": link("getVersion", id="$response.body#/id", n="$response.body#/graph_version"),
        })},
        {**NO_VERSION, **STORE}, body=None, body_required=False,
        tags=["graph"])},

    deploy.DeployHandler: {"post": op(
        "deployWorkflow", "Deploy (enables webhook triggering)",
        {200: answer("Deployed", r.Deployed, links={"Arm": link("armWorkflow", id="$request.path.id")})},
        {**NOT_FOUND, **STORE}, tags=["deploy"])},
    deploy.UndeployHandler: {"post": op(
        "undeployWorkflow", "Undeploy (also disarms)", {200: answer("Undeployed", r.Ok)},
        {**NOT_FOUND, **STORE}, tags=["deploy"])},
    deploy.ArmHandler: {"post": op(
        "armWorkflow", "Arm the webhook for exactly one call within the arm window",
        {200: answer("Armed until", r.Armed)},
        {400: "Not deployed, or no webhook block", **NOT_FOUND, **STORE}, tags=["deploy"])},

    executions.ExecuteHandler: {"post": op(
        "executeWorkflow", "Execute synchronously",
        {200: EXECUTED}, EXECUTE_ERRORS, body=ExecuteBody, body_required=False, tags=["execution"],
        params=[DEPTH],
        description="`variables` is the canonical key; `input` is a legacy alias (`variables` wins). "
                    "No body means `{}`. `timeout` (seconds) may only shorten the server's limit.")},
    stream.ExecuteStreamHandler: {"post": op(
        "executeWorkflowStream", "Execute, streaming the run as server-sent events",
        {200: answer("The run's events; every error after the key check is an `error` event",
                     SSE_EVENT, media=SSE)},
        {400: "X-Actorflow-Depth is not 1-9 digits (VALIDATION_ERROR)",
         409: "Called from a run nested deeper than the limit (DEPTH_EXCEEDED)"},
        body=ExecuteBody, body_required=False, tags=["execution"], params=[DEPTH],
        description="Same body as /execute. Only the API key and X-Actorflow-Depth are checked before "
                    "the stream starts.\n\n"
                    + STREAM_EVENTS)},

    executions.ExecutionsHandler: {"get": op(
        "listExecutions", "Execution history, newest first",
        {200: answer("A page of executions", r.ExecutionPage, links={
            "GetLogs": link("getLogs", id="$request.path.id", eid="$response.body#/executions/0/id"),
            "GetExecution": link("getExecution", id="$request.path.id", eid="$response.body#/executions/0/id"),
        })},
        {400: "Bad limit, offset or status", **NOT_FOUND}, params=[LIMIT, OFFSET, STATUS],
        tags=["history"])},
    executions.ExecutionHandler: {"get": op(
        "getExecution", "One execution, with its variables and output",
        {200: answer("The execution", r.ExecutionDetail)},
        NO_EXECUTION, tags=["history"])},
    executions.LogsHandler: {"get": op(
        "getLogs", "Per-block logs of an execution, in the order blocks started",
        {200: answer("A page of the logs (all of them unless limit or offset says otherwise)", r.Logs)},
        {**BAD_PAGE, **NO_EXECUTION}, params=[LOGS_LIMIT, LOGS_OFFSET], tags=["history"])},
    executions.CancelHandler: {"post": op(
        "cancelExecution", "Cancel a running execution (a finished one is left as it is)",
        {200: answer("The execution's status after the cancel", r.Cancelled)},
        {**NO_EXECUTION, **STORE}, tags=["history"])},
    stream.ReattachHandler: {"get": op(
        "reattachStream", "Re-attach to a run's events (live or finished) after Last-Event-ID",
        {200: answer("The run's events after Last-Event-ID, then live until the end",
                     SSE_EVENT, media=SSE)},
        {400: "Last-Event-ID / last_event_id is not a non-negative integer",
         **NO_EXECUTION},
        params=[{"in": "header", "name": "Last-Event-ID", "required": False,
                 "schema": {"type": "string", "pattern": LAST_EVENT_ID},
                 "description": "Replay after this event id (wins over the query parameter)"},
                query("last_event_id", {"type": "string", "pattern": LAST_EVENT_ID},
                      "Replay after this event id, for clients that cannot send the header")],
        tags=["execution"], description=STREAM_EVENTS)},

    webhooks.WebhookHandler: {"post": op(
        "triggerWebhook", "Trigger an armed, deployed workflow (single use per arming)",
        {202: answer("Accepted; the run goes on in the background", r.Accepted),
         200: answer("With `wait=true`: the run completed", r.ExecuteResult)},
        {400: "Bad `wait` or X-Actorflow-Depth, or a body declared JSON that is not",
         401: "Secret or signature missing or wrong",
         404: "No webhook with this id", 409: "Not deployed, not armed, window expired, arm already used, "
         "or nested too deep", 413: "Body too large",
         429: "Too many failed secrets for this webhook within a minute (see Retry-After)",
         500: ("With `wait=true`: the run failed", r.ExecutionFailedError),
         503: "The server is shutting down, or the store refused the write",
         504: ("With `wait=true`: the run's timeout passed", r.ExecutionTimeoutError)},
        body={"content": {"application/json": {"schema": {}}, "text/plain": {"schema": {"type": "string"}}}},
        body_required=False, public=True, tags=["webhooks"],
        params=[WAIT, DEPTH,
                {"in": "header", "name": webhooks.SECRET_HEADER, "required": False,
                 "schema": {"type": "string"}, "description": "The block's `config.webhook_secret`"},
                {"in": "header", "name": webhooks.SIGNATURE_HEADER, "required": False,
                 "schema": {"type": "string", "pattern": "^sha256=[0-9a-fA-F]{64}$"},
                 "description": "`sha256=` and the hex HMAC-SHA256 of the raw body, keyed with the secret"}],
        description="No API key: send the secret (`X-Webhook-Secret`) or a signature "
                    "(`X-Webhook-Signature`). The run's `variables` are the body when it is a JSON object.")},

    docs.OpenAPIHandler: {"get": op(
        "openapi", "This document", {200: answer("OpenAPI 3.1", {"type": "object"})},
        public=True, tags=["server"])},
    docs.DocsPageHandler: {"get": op(
        "docs", "The API reference (Swagger UI)", {200: answer("HTML", {"type": "string"}, "text/html")},
        public=True, tags=["server"])},
    docs.DocsAssetHandler: {"get": op(
        "docsAsset", "A vendored Swagger UI file",
        {200: {"description": "The file", "content": {
            "text/css": {"schema": {"type": "string"}},
            "application/javascript": {"schema": {"type": "string"}},
            "image/png": {"schema": {"type": "string"}}}}},
        {404: "No such file"}, public=True, tags=["server"])},
    MetricsHandler: {"get": op(
        "metrics", "Prometheus metrics (only with ACTORFLOW_METRICS=true)",
        {200: answer("Prometheus text format", {"type": "string"}, "text/plain")},
        {404: "Metrics are off on this address"}, public=True, tags=["server"])},
}


# -- building the document -----------------------------------------------------

class UndescribedRoute(Exception):
    """A route of the application that OPERATIONS does not describe."""


def implemented_methods(handler_class):
    return [m for m in METHODS
            if getattr(handler_class, m, None) is not getattr(tornado.web.RequestHandler, m)]


def route_path(pattern: str, handler_class) -> tuple[str, list[str]]:
    """Tornado pattern -> OpenAPI path; each `([^/]+)` becomes the next named parameter."""
    names = _param_names(pattern)
    path = pattern.removesuffix("$").removesuffix("/?")
    for name in names:
        path = path.replace("([^/]+)", "{" + name + "}", 1)
    if "(" in path:
        raise UndescribedRoute(f"{pattern}: cannot name its path parameters")
    return path, names


def _param_names(pattern):
    count = pattern.count("([^/]+)")
    if "/versions/" in pattern:
        return ["id", "n"][:count]
    for prefix, names in (("/api/workflows/", ["id", "eid"]), ("/api/webhooks/", ["webhook_id"]),
                          ("/api/docs/", ["asset"])):
        if pattern.startswith(prefix):
            return names[:count]
    return []


def routes_of(app):
    """[(pattern, handler class)] of a tornado Application, in routing order."""
    return [(rule.matcher.regex.pattern, rule.target) for rule in app.wildcard_router.rules]


def _operation(spec_op, path_names, handler_class):
    shape = spec_op["shape"] or getattr(handler_class, "error_shape", PLAIN)
    responses = {str(status): dict(body) for status, body in spec_op["answers"].items()}
    errors = dict(spec_op["errors"])
    if not spec_op["public"]:
        errors.setdefault(401, "Missing or unknown API key")
    if path_names or any(p["in"] == "query" for p in spec_op["params"]):
        # server/handlers/base.py refuses a path segment or query value holding NUL first
        errors[400] = f"{errors[400]}; or {NUL}" if 400 in errors else NUL[0].upper() + NUL[1:]
    for status, why in sorted(errors.items()):
        if isinstance(why, tuple):  # an answer with a body of its own
            responses[str(status)] = answer(*why)
            continue
        coded = shape == CODED and status != 401
        responses[str(status)] = answer(why, r.CodedError if coded else r.PlainError)
    parameters = [{"in": "path", "name": n, "required": True, "description": PATH_PARAMS[n],
                   "schema": {"type": "string", "minLength": 1}} for n in path_names]
    out = {"operationId": spec_op["operationId"], "summary": spec_op["summary"],
           "tags": spec_op["tags"], "parameters": parameters + spec_op["params"],
           "responses": responses}
    if spec_op["description"]:
        out["description"] = spec_op["description"]
    if spec_op["public"]:
        out["security"] = []
    body = spec_op["body"]
    if body is not None:
        request = body if isinstance(body, dict) else json_body(body)
        out["requestBody"] = dict(request, required=spec_op["body_required"])
        if body is r.GraphBody:
            out["requestBody"]["content"]["application/json"]["example"] = GRAPH_EXAMPLE
    return out


def exclusive_bounds(self, field, ret, **kwargs):
    """Range(min_inclusive=False) as JSON Schema's exclusiveMinimum (apispec writes `minimum`)."""
    out = {}
    for validator in field.validators:
        if not isinstance(validator, validate.Range):
            continue
        if validator.min is not None and not validator.min_inclusive:
            ret.pop("minimum", None)
            out["exclusiveMinimum"] = validator.min
        if validator.max is not None and not validator.max_inclusive:
            ret.pop("maximum", None)
            out["exclusiveMaximum"] = validator.max
    return out


def text_length(self, field, ret, **kwargs):
    """schemas.fields.Text's own length limit (not a validator, so apispec does not see it)."""
    if isinstance(field, Text) and field.max_length is not None:
        return {"maxLength": min(field.max_length, ret.get("maxLength", field.max_length))}
    return {}


def build(app) -> dict:
    """The OpenAPI document (a dict) for a tornado Application made by make_app."""
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="Actorflow API", version=__version__, openapi_version="3.1.0", plugins=[plugin],
        info={"description": "Workflows are DAGs of blocks run by Actorflow. Every `/api/` route "
                             "except health, this document, the docs and the webhook trigger needs "
                             "an API key. Errors come in two shapes: plain `{\"error\"}` and coded "
                             "`{\"error\", \"error_code\", ...}`; each answer below names its own.",
              "license": {"name": "MIT", "identifier": "MIT"}},
        security=[{"bearerAuth": []}, {"apiKey": []}])
    plugin.map_to_openapi_type(StrictNumber, "number", None)
    plugin.converter.add_attribute_function(exclusive_bounds)
    plugin.converter.add_attribute_function(text_length)
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer",
                                                   "description": "Authorization: Bearer <key>"})
    spec.components.security_scheme("apiKey", {"type": "apiKey", "in": "header", "name": "X-API-Key"})
    for schema in (r.PlainError, r.CodedError):
        spec.components.schema(schema.__name__, schema=schema)
    for schema in r.STREAM_EVENTS:
        spec.components.schema(schema.__name__, schema=schema)
    spec.components.schema("StreamEvent", {
        "description": "The JSON of an event's `data:` line, told apart by `type`.",
        "oneOf": [{"$ref": f"#/components/schemas/{s.__name__}"} for s in r.STREAM_EVENTS]})

    paths = {}
    for pattern, handler_class in routes_of(app):
        if handler_class not in OPERATIONS:
            if pattern.startswith("/api/") or pattern.startswith("/metrics"):
                raise UndescribedRoute(f"{pattern} ({handler_class.__name__}) is not described in "
                                       "server/openapi.py OPERATIONS")
            continue
        path, names = route_path(pattern, handler_class)
        entry = OPERATIONS[handler_class]
        operations = paths.setdefault(path, {})
        for method in implemented_methods(handler_class):
            if method not in entry:
                raise UndescribedRoute(f"{method.upper()} {pattern} ({handler_class.__name__}) "
                                       "is not described")
            operations[method] = _operation(entry[method], names, handler_class)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    doc = spec.to_dict()
    # The block types a graph may use are the engine registry's.
    doc["components"]["schemas"]["Block"]["properties"]["type"]["enum"] = list(default_registry().names())
    return doc


def document(app=None) -> dict:
    """The document for the server's own route table; needs no running server."""
    if app is None:
        from server.app import make_app
        app = make_app(None)
    return build(app)


def write(out) -> None:
    """Write the document as JSON to a text stream (`actorflow openapi > openapi.json`)."""
    json.dump(document(), out, indent=2, ensure_ascii=False)
    out.write("\n")
