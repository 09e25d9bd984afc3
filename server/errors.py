"""Where errors become HTTP answers: status, error code and body shape.

The seed has two error bodies: plain ``{"error"}`` (list, create, patch,
delete, deploy, undeploy, arm and everything else) and coded
``{"error", "error_code", ...}`` (GET one workflow, PUT graph, /execute).
A handler says which shape it speaks; ``error_body`` builds it. The errors
themselves live where they are raised (`models.errors`, `actors.errors`).
"""

from actors.errors import BlockError
from models import errors as e
from models.errors import ActorflowError

PLAIN = "plain"
CODED = "coded"

# class -> (HTTP status, error_code, always plain). The nearest class in the MRO wins.
_TABLE = {
    ActorflowError: (500, "INTERNAL_ERROR", False),
    e.ValidationError: (400, "VALIDATION_ERROR", False),
    e.Unauthorized: (401, "UNAUTHORIZED", True),
    e.NotFound: (404, "NOT_FOUND", False),
    e.WorkflowNotFound: (404, "WORKFLOW_NOT_FOUND", False),
    e.ExecutionNotFound: (404, "EXECUTION_NOT_FOUND", False),
    e.MethodNotAllowed: (405, "METHOD_NOT_ALLOWED", False),
    e.Conflict: (409, "CONFLICT", False),
    e.DepthExceeded: (409, "DEPTH_EXCEEDED", False),
    e.PayloadTooLarge: (413, "PAYLOAD_TOO_LARGE", False),
    e.HeadersTooLarge: (431, "HEADERS_TOO_LARGE", False),
    e.TooManyRequests: (429, "TOO_MANY_REQUESTS", False),
    e.ShuttingDown: (503, "SHUTTING_DOWN", False),
    e.StorageUnavailable: (503, "STORAGE_UNAVAILABLE", False),
    e.ExecutionFailed: (500, "EXECUTION_FAILED", False),
    e.ExecutionTimeout: (504, "EXECUTION_TIMEOUT", False),
    BlockError: (500, "BLOCK_FAILED", False),
}


class HTTPStatusError(ActorflowError):
    """A bare status from tornado itself, with no better class of ours."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


def _entry(exc):
    if isinstance(exc, HTTPStatusError):
        return exc.status, "INTERNAL_ERROR" if exc.status >= 500 else "HTTP_ERROR", False
    for cls in type(exc).__mro__:
        if cls in _TABLE:
            return _TABLE[cls]
    return _TABLE[ActorflowError]


def status_of(exc: ActorflowError) -> int:
    """The HTTP status `exc` answers with."""
    return _entry(exc)[0]


def error_body(exc: ActorflowError, shape: str) -> dict:
    """The JSON body for ``exc`` in the handler's ``shape``."""
    _, code, always_plain = _entry(exc)
    if shape == PLAIN or always_plain:
        return {"error": exc.message}
    body = {"error": exc.message, "error_code": code}
    body.update(exc.extra)
    return body


_REASONS = {400: "bad request", 404: "not found", 405: "method not allowed",
            408: "request timeout", 413: "request body too large"}
_BY_STATUS = {400: e.ValidationError, 404: e.NotFound, 405: e.MethodNotAllowed,
              413: e.PayloadTooLarge}


def from_status(status: int, reason: str | None = None) -> ActorflowError:
    """Wrap a bare HTTP status (from tornado itself) as one of ours."""
    message = reason or _REASONS.get(status, "internal server error")
    cls = _BY_STATUS.get(status)
    return cls(message) if cls is not None else HTTPStatusError(message, status)
