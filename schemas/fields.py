"""Strict field types: JSON numbers only (no strings, no booleans); text any store can hold."""

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


class Text(fields.String):
    """A string kept in a column of its own: no NUL character (PostgreSQL text cannot hold one).

    Inside JSON values (configs, variables) a NUL is an escape and fine.
    """
    default_error_messages = {"nul": "must not contain a NUL character (\\u0000)"}

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in value:
            raise self.make_error("nul")
        return value
