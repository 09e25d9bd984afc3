"""Request bodies and query strings of the workflow routes."""

from marshmallow import EXCLUDE, Schema, ValidationError as MMError, fields, validate, validates_schema

from models.errors import ValidationError

INT64_MAX = 2 ** 63 - 1
_name = validate.Length(min=1, error="name must be a non-empty string")


class CreateWorkflow(Schema):
    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=_name)
    description = fields.String(load_default="")


class UpdateWorkflow(Schema):
    class Meta:
        unknown = EXCLUDE

    name = fields.String(validate=_name)
    description = fields.String()

    @validates_schema
    def _something(self, data, **kwargs):
        if not data:
            raise MMError("give name and/or description to update")


def page(args, default_limit=50, max_limit=500):
    """(limit, offset) from query strings; 400 when not non-negative integers."""
    values = {}
    for key, default in (("limit", default_limit), ("offset", 0)):
        raw = args.get(key)
        if raw is None or raw == "":
            values[key] = default
            continue
        # ASCII digits only (str.isdigit also takes '²'), and within SQL's 64-bit integers.
        if not (raw.isascii() and raw.isdigit()) or int(raw) > INT64_MAX:
            raise ValidationError(f"{key} must be a non-negative integer (at most {INT64_MAX})")
        values[key] = int(raw)
    return min(values["limit"], max_limit), values["offset"]
