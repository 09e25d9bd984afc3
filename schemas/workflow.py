"""Request bodies and query strings of the workflow routes."""

import re

from marshmallow import EXCLUDE, Schema, ValidationError as MMError, validate, validates_schema

from models.errors import ValidationError
from .fields import Text

INT64_MAX = 2 ** 63 - 1
_name = validate.Length(min=1, error="name must be a non-empty string")
_DIGITS = re.compile(r"[0-9]{1,19}")


class CreateWorkflow(Schema):
    class Meta:
        unknown = EXCLUDE

    name = Text(required=True, validate=_name)
    description = Text(load_default="", max_length=None)


class UpdateWorkflow(Schema):
    class Meta:
        unknown = EXCLUDE

    name = Text(validate=_name)
    description = Text(max_length=None)

    @validates_schema
    def _something(self, data, **kwargs):
        if not data:
            raise MMError("give name and/or description to update")


def page(args, default_limit=50, max_limit=500):
    """(limit, offset) from raw query strings; 400 unless plain non-negative 64-bit integers."""
    values = {}
    for key, default in (("limit", default_limit), ("offset", 0)):
        raw = args.get(key)
        if raw is None or raw == "":
            values[key] = default
            continue
        # Plain ASCII digits (not '²' or '１', no sign or space), within SQL's 64-bit integers.
        if not _DIGITS.fullmatch(raw) or int(raw) > INT64_MAX:
            raise ValidationError(f"{key} must be a non-negative integer in plain digits "
                                  f"(at most {INT64_MAX})")
        values[key] = int(raw)
    return min(values["limit"], max_limit), values["offset"]
