"""The project's exceptions, and the one place they become HTTP answers.

The seed has two error bodies: plain ``{"error"}`` (list, create, patch,
delete, deploy, undeploy, arm and everything else) and coded
``{"error", "error_code", ...}`` (GET one workflow, PUT graph, /execute).
A handler says which shape it speaks; ``error_body`` builds it.
"""

PLAIN = "plain"
CODED = "coded"


class ActorflowError(Exception):
    """Base of every error a client may see. Subclasses set status and code."""

    status = 500
    code = "INTERNAL_ERROR"
    always_plain = False

    def __init__(self, message, **extra):
        super().__init__(message)
        self.message = message
        self.extra = extra


class ValidationError(ActorflowError):
    status = 400
    code = "VALIDATION_ERROR"

    def __init__(self, message, details=None, **extra):
        if details is not None:
            extra["details"] = details
        super().__init__(message, **extra)


class Unauthorized(ActorflowError):
    status = 401
    code = "UNAUTHORIZED"
    always_plain = True


class NotFound(ActorflowError):
    status = 404
    code = "NOT_FOUND"


class WorkflowNotFound(NotFound):
    code = "WORKFLOW_NOT_FOUND"

    def __init__(self, message="workflow not found", **extra):
        super().__init__(message, **extra)


class ExecutionNotFound(NotFound):
    code = "EXECUTION_NOT_FOUND"

    def __init__(self, message="execution not found", **extra):
        super().__init__(message, **extra)


class MethodNotAllowed(ActorflowError):
    status = 405
    code = "METHOD_NOT_ALLOWED"


class Conflict(ActorflowError):
    status = 409
    code = "CONFLICT"


class PayloadTooLarge(ActorflowError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class TooManyRequests(ActorflowError):
    status = 429
    code = "TOO_MANY_REQUESTS"


class ServiceUnavailable(ActorflowError):
    status = 503
    code = "SHUTTING_DOWN"


class ExecutionFailed(ActorflowError):
    status = 500
    code = "EXECUTION_FAILED"


class ExecutionTimeout(ActorflowError):
    status = 504
    code = "EXECUTION_TIMEOUT"


def error_body(exc: ActorflowError, shape: str) -> dict:
    """The JSON body for ``exc`` in the handler's ``shape``."""
    if shape == PLAIN or exc.always_plain:
        return {"error": exc.message}
    body = {"error": exc.message, "error_code": exc.code}
    body.update(exc.extra)
    return body


_REASONS = {400: "bad request", 404: "not found", 405: "method not allowed",
            408: "request timeout", 413: "request body too large"}


def from_status(status: int, reason: str | None = None) -> ActorflowError:
    """Wrap a bare HTTP status (from tornado itself) as one of ours."""
    by_status = {400: ValidationError, 404: NotFound, 405: MethodNotAllowed,
                 413: PayloadTooLarge}
    cls = by_status.get(status, ActorflowError)
    exc = cls(reason or _REASONS.get(status, "internal server error"))
    if cls is ActorflowError:
        exc.status = status
    return exc


class BlockError(ActorflowError):
    """A block failed; the message goes to its log and to the run's error."""
    code = "BLOCK_FAILED"
