"""The stream events that end a run, built in one place.

The coordinator sends one when a run ends; the stream builds the same one
from a stored row when a run ended without storing it (its server died, or
the store refused its last writes).
"""

TERMINAL = ("execution_completed", "error")


def end_event(execution_id, status, output=None, error=None, duration_ms=None,
              block_id=None, code=None):
    """`execution_completed` for a completed run, else `error` (with its code when it has one)."""
    if status == "completed":
        return {"type": "execution_completed", "execution_id": execution_id,
                "output": output, "duration_ms": duration_ms}
    event = {"type": "error", "error": error or f"execution {status}",
             "execution_id": execution_id}
    if block_id is not None:
        event["block_id"] = block_id
    if code is None and status == "timeout":
        code = "EXECUTION_TIMEOUT"
    if code is not None:
        event["error_code"] = code
    return event
