"""Strict field types: JSON numbers only (no strings, no booleans)."""

import math

from marshmallow import fields


class StrictNumber(fields.Field):
    default_error_messages = {"invalid": "Not a valid number."}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                isinstance(value, float) and not math.isfinite(value)):
            raise self.make_error("invalid")
        return value


class AnyJSON(fields.Raw):
    """Any JSON value, `null` included."""

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_none", True)
        super().__init__(**kwargs)
