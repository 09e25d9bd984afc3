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


class StrictInteger(fields.Field):
    """A JSON integer that fits in 64 bits (what the store and most clients can hold)."""
    default_error_messages = {"invalid": "Not a valid integer.",
                              "range": "Integer out of range (64 bits)."}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        if not -2 ** 63 <= value < 2 ** 63:
            raise self.make_error("range")
        return value


class AnyJSON(fields.Raw):
    """Any JSON value, `null` included."""

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_none", True)
        super().__init__(**kwargs)
