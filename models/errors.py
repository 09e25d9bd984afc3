"""Domain errors, raised by every layer.

This module imports nothing from the project, so `models`, `schemas` and
`actors` can raise these without knowing about HTTP. Which status, code and
body shape each becomes is decided in one table, in `server/errors.py`.
"""


class ActorflowError(Exception):
    """Base of every error a client may see; `extra` goes into the coded body."""

    def __init__(self, message, **extra):
        super().__init__(message)
        self.message = message
        self.extra = extra


class ValidationError(ActorflowError):
    """A request (or a run's variables) is not acceptable as given."""

    def __init__(self, message, details=None, **extra):
        if details is not None:
            extra["details"] = details
        super().__init__(message, **extra)


class Unauthorized(ActorflowError):
    """Missing or unknown credentials."""


class NotFound(ActorflowError):
    """Nothing of that kind with that id, as far as the caller may see."""


class WorkflowNotFound(NotFound):
    def __init__(self, message="workflow not found", **extra):
        super().__init__(message, **extra)


class ExecutionNotFound(NotFound):
    def __init__(self, message="execution not found", **extra):
        super().__init__(message, **extra)


class MethodNotAllowed(ActorflowError):
    pass


class Conflict(ActorflowError):
    """The request is valid but the current state refuses it."""


class DepthExceeded(Conflict):
    """A run would start deeper than ACTORFLOW_MAX_DEPTH (a workflow calling itself)."""


class PayloadTooLarge(ActorflowError):
    pass


class HeadersTooLarge(ActorflowError):
    """A request's line and headers are over the server's limit."""


class TooManyRequests(ActorflowError):
    pass


class ShuttingDown(ActorflowError):
    """The server is draining and takes no new runs."""


class ExecutionFailed(ActorflowError):
    """A run ended `failed`."""


class ExecutionTimeout(ActorflowError):
    """A run ended `timeout`."""


class StorageUnavailable(ActorflowError):
    """The store refused a write (locked past the busy timeout, disk full, a value it cannot encode)."""
