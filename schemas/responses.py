"""The shapes of the API's answers, as marshmallow schemas.

Handlers build their answers as plain dicts (the hot paths stay free of
serialisation layers); these schemas describe those dicts for the OpenAPI
document (server/openapi.py), and the generated tests check that the server
agrees with them. Unknown keys are refused (additionalProperties: false), so a
key added to an answer without being described here is caught.
"""

from marshmallow import Schema, fields, validate

from .execution import STATUSES
from .fields import AnyJSON
from .graph import BlockSchema, EdgeSchema

LOG_STATUSES = ("running", "completed", "failed", "skipped", "cancelled")
TRIGGERS = ("api", "stream", "webhook", "schedule")


def _time(**kw):
    return fields.DateTime(required=True, **kw)


def _when(**kw):
    return _time(allow_none=True, **kw)


class PlainError(Schema):
    """The plain error shape: `{"error"}`."""
    error = fields.String(required=True)


class ValidationDetail(Schema):
    path = fields.String(required=True)
    message = fields.String(required=True)
    block_id = fields.String(allow_none=True)
    source = AnyJSON()
    target = AnyJSON()


class CodedError(Schema):
    """The structured error shape: `{"error", "error_code", ...}`."""
    error = fields.String(required=True)
    error_code = fields.String(required=True, validate=validate.Regexp(r"^[A-Z][A-Z_]*$"),
                               metadata={"example": "VALIDATION_ERROR"})
    details = fields.List(fields.Nested(ValidationDetail), metadata={"description": "at most 100"})
    details_omitted = fields.Integer(metadata={"description": "problems past the first 100 of details"})
    execution_id = fields.String()
    block_id = fields.String(allow_none=True)


class ExecutionFailedError(Schema):
    """/execute's 500: the run failed (a block failed, or it was cancelled); it is stored."""
    error = fields.String(required=True)
    error_code = fields.String(required=True, validate=validate.OneOf(["EXECUTION_FAILED"]))
    execution_id = fields.String(required=True)
    block_id = fields.String(required=True, allow_none=True)


class ExecutionTimeoutError(Schema):
    """/execute's 504: the run's timeout passed; it is stored as `timeout`."""
    error = fields.String(required=True)
    error_code = fields.String(required=True, validate=validate.OneOf(["EXECUTION_TIMEOUT"]))
    execution_id = fields.String(required=True)


class Health(Schema):
    ok = fields.Boolean(required=True)
    version = fields.String(required=True)


class Ok(Schema):
    ok = fields.Boolean(required=True)


class Deployed(Ok):
    deployed_at = _time()
    graph_version = fields.Integer(required=True, validate=validate.Range(min=0))


class Armed(Ok):
    armed_until = _time()


class Workflow(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(required=True)
    deployed = fields.Boolean(required=True)
    deployed_at = _when()
    armed_until = _when()
    created_at = _time()
    updated_at = _time()
    graph_version = fields.Integer(required=True, validate=validate.Range(min=0),
                                   metadata={"description": "the latest saved graph's version (0: none yet)"})


class Page(Schema):
    """What every listing adds to its items: how many there are, and which page this is."""
    total = fields.Integer(required=True, validate=validate.Range(min=0))
    limit = fields.Integer(required=True, validate=validate.Range(min=0, max=500))
    offset = fields.Integer(required=True, validate=validate.Range(min=0, max=2 ** 63 - 1))


class WorkflowPage(Page):
    workflows = fields.List(fields.Nested(Workflow), required=True)


class SavedBlock(BlockSchema):
    class Meta:
        unknown = "raise"

    webhook_url = fields.String(metadata={"description": "webhook blocks only"})
    next_fires = fields.List(fields.DateTime(), metadata={"description": "schedule blocks only: next due times"})


class SavedEdge(EdgeSchema):
    class Meta:
        unknown = "raise"


class WorkflowWithGraph(Workflow):
    blocks = fields.List(fields.Nested(SavedBlock), required=True)
    edges = fields.List(fields.Nested(SavedEdge), required=True)


class GraphBody(Schema):
    """PUT /graph: the whole graph (see the graph rules in docs/api.md)."""
    blocks = fields.List(fields.Nested(BlockSchema), required=True,
                         validate=validate.Length(max=5000))
    edges = fields.List(fields.Nested(EdgeSchema), required=True,
                        validate=validate.Length(max=20000))


class ExecuteResult(Schema):
    execution_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["completed"]))
    output = AnyJSON(required=True)
    duration_ms = fields.Integer(required=True, allow_none=True)


class Accepted(Schema):
    execution_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["running"]))


class Execution(Schema):
    id = fields.String(required=True)
    workflow_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    trigger = fields.String(required=True, validate=validate.OneOf(TRIGGERS))
    started_at = _time()
    finished_at = _when()
    duration_ms = fields.Integer(required=True, allow_none=True)
    error = fields.String(required=True, allow_none=True)
    graph_version = fields.Integer(required=True, allow_none=True,
                                   metadata={"description": "the graph version the run ran"})
    parent_execution_id = fields.String(required=True, allow_none=True, metadata={
        "description": "the run whose workflow or map block started this one (null: none)"})
    parent_block_id = fields.String(required=True, allow_none=True, metadata={
        "description": "the block of that run which started this one"})
    parent_index = fields.Integer(validate=validate.Range(min=0), metadata={
        "description": "map blocks only: the item this run ran for"})


class ExecutionDetail(Execution):
    block_id = fields.String(required=True, allow_none=True)
    variables = AnyJSON(required=True)
    output = AnyJSON(required=True)
    trigger_payload = AnyJSON(required=True, metadata={
        "description": "what started the run: a schedule's {tick, timezone}, a webhook's call "
                       "{body, headers, query, method}; null for API runs"})


class ExecutionPage(Page):
    executions = fields.List(fields.Nested(Execution), required=True)


class LogEntry(Schema):
    block_id = fields.String(required=True)
    block_type = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(LOG_STATUSES))
    started_at = _when()
    finished_at = _when()
    duration_ms = fields.Integer(required=True, allow_none=True)
    input = AnyJSON(required=True)
    output = AnyJSON(required=True)
    error = fields.String(required=True, allow_none=True)
    attempts = fields.Integer(required=True, validate=validate.Range(min=0))
    stdout = fields.String(metadata={"description": "code blocks only"})


class Logs(Page):
    execution_id = fields.String(required=True)
    logs = fields.List(fields.Nested(LogEntry), required=True)
    limit = fields.Integer(required=True, validate=validate.Range(min=0), metadata={
        "description": "at most ACTORFLOW_MAX_BLOCKS (a run has at most one log per block)"})


class Cancelled(Ok):
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))


# -- server-sent events: the JSON of each event's `data:` line -----------------

def _kind(name):
    return fields.String(required=True, validate=validate.OneOf([name]))


class ExecutionStartedEvent(Schema):
    type = _kind("execution_started")
    execution_id = fields.String(required=True)
    workflow_id = fields.String(required=True)


class BlockStartedEvent(Schema):
    type = _kind("block_started")
    block_id = fields.String(required=True)
    block_type = fields.String(required=True)


class BlockChunkEvent(Schema):
    type = _kind("block_chunk")
    block_id = fields.String(required=True)
    chunk = AnyJSON(required=True, metadata={"description": "e.g. an LLM token, or an agent's step"})


class BlockCompletedEvent(BlockStartedEvent):
    type = _kind("block_completed")
    output = AnyJSON(required=True)
    duration_ms = fields.Integer(required=True, allow_none=True)


class BlockSkippedEvent(BlockStartedEvent):
    type = _kind("block_skipped")


class BlockFailedEvent(BlockStartedEvent):
    type = _kind("block_failed")
    error = fields.String(required=True)
    duration_ms = fields.Integer(required=True, allow_none=True)


class ExecutionCompletedEvent(Schema):
    type = _kind("execution_completed")
    execution_id = fields.String(required=True)
    output = AnyJSON(required=True)
    duration_ms = fields.Integer(required=True, allow_none=True)


class ErrorEvent(Schema):
    type = _kind("error")
    error = fields.String(required=True)
    execution_id = fields.String(metadata={"description": "when a run exists"})
    block_id = fields.String(allow_none=True)
    error_code = fields.String(validate=validate.OneOf(["EXECUTION_TIMEOUT"]),
                               metadata={"description": "only for the run's timeout"})
    details = fields.List(fields.Nested(ValidationDetail))


STREAM_EVENTS = (ExecutionStartedEvent, BlockStartedEvent, BlockChunkEvent, BlockCompletedEvent, BlockSkippedEvent,
                 BlockFailedEvent, ExecutionCompletedEvent, ErrorEvent)


class Version(Schema):
    graph_version = fields.Integer(required=True, validate=validate.Range(min=1))
    number = fields.Integer(required=True, validate=validate.Range(min=1),
                            metadata={"description": "the version number (the same as graph_version)"})
    saved_at = _time()
    blocks = fields.Integer(required=True, validate=validate.Range(min=0), metadata={"description": "how many"})
    edges = fields.Integer(required=True, validate=validate.Range(min=0), metadata={"description": "how many"})


class VersionPage(Page):
    versions = fields.List(fields.Nested(Version), required=True)


class VersionGraph(Schema):
    workflow_id = fields.String(required=True)
    graph_version = fields.Integer(required=True, validate=validate.Range(min=1))
    number = fields.Integer(required=True, validate=validate.Range(min=1),
                            metadata={"description": "the version number (the same as graph_version)"})
    saved_at = _time()
    blocks = fields.List(fields.Nested(SavedBlock), required=True)
    edges = fields.List(fields.Nested(SavedEdge), required=True)
