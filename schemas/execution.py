"""The body of /execute and /execute/stream."""

from marshmallow import EXCLUDE, Schema, fields, validate

from models.errors import ValidationError
from . import load
from .fields import StrictNumber

STATUSES = ("running", "completed", "failed", "timeout", "cancelled")


class ExecuteBody(Schema):
    class Meta:
        unknown = EXCLUDE

    variables = fields.Dict()
    input = fields.Dict()
    timeout = StrictNumber(validate=validate.Range(min=0, min_inclusive=False,
                                                   error="timeout must be a positive number"))


_EXECUTE_BODY = ExecuteBody()  # schemas keep no state between loads; building one is not free
_OBJECTS_ONLY = frozenset(("variables", "input"))


def execute_request(body, max_timeout):
    """(variables, timeout) from an /execute body; None means no body."""
    if body is None:
        return {}, max_timeout
    if type(body) is dict and body.keys() <= _OBJECTS_ONLY and all(type(v) is dict for v in body.values()):
        # The usual body, {"variables": {...}}: what the schema loads it to (each a shallow
        # copy), without its machinery on every run's way in.
        data = {name: dict(value) for name, value in body.items()}
    else:
        data = load(_EXECUTE_BODY, body)
    variables = data.get("variables", data.get("input", {}))
    timeout = min(data.get("timeout", max_timeout), max_timeout)
    return variables, timeout


def status_filter(args):
    """The `status` filter from a raw query string (exactly one of STATUSES), or None."""
    status = args.get("status")
    if status in (None, ""):
        return None
    if status not in STATUSES:
        raise ValidationError(f"status must be one of {', '.join(STATUSES)}")
    return status
