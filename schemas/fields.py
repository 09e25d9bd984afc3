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
    """A string kept in a column of its own, which any store can hold: no NUL character
    (PostgreSQL text cannot hold one) and at most `max_length` characters (PostgreSQL's
    varchar(255); None for a text column).

    Inside JSON values (configs, variables) a NUL is an escape and fine.
    """
    default_error_messages = {"nul": "must not contain a NUL character (\\u0000)",
                              "long": "must be at most {max_length} characters"}

    def __init__(self, *, max_length=255, **kwargs):
        super().__init__(**kwargs)
        self.max_length = max_length

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in value:
            raise self.make_error("nul")
        if self.max_length is not None and len(value) > self.max_length:
            raise self.make_error("long", max_length=self.max_length)
        return value
