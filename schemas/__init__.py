"""Marshmallow schemas for request bodies, and the checks that turn them into our errors."""

import marshmallow

from models.errors import ValidationError

ACTORFLOW = True  # tells this package from another project's of the same name


def load(schema: marshmallow.Schema, data, what="request body"):
    """`schema.load(data)`, with marshmallow's errors turned into one ValidationError."""
    if not isinstance(data, dict):
        raise ValidationError(f"{what} must be a JSON object")
    try:
        return schema.load(data)
    except marshmallow.ValidationError as exc:
        raise invalid(describe(exc.messages), flatten(exc.messages))


MAX_DETAILS = 100


def invalid(message, details) -> ValidationError:
    """A ValidationError listing at most MAX_DETAILS problems, and how many more there were
    (`details_omitted`), so that a huge bad body cannot make a huge answer."""
    extra = {"details_omitted": len(details) - MAX_DETAILS} if len(details) > MAX_DETAILS else {}
    return ValidationError(message, details=details[:MAX_DETAILS], **extra)


def flatten(messages, prefix=""):
    """marshmallow's nested messages as [{"path", "message"}]."""
    out = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            if isinstance(key, int):
                path = f"{prefix}[{key}]"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            out += flatten(value, path)
    elif isinstance(messages, list):
        if all(isinstance(m, str) for m in messages):
            out += [{"path": prefix, "message": m} for m in messages]
        else:
            for m in messages:
                out += flatten(m, prefix)
    else:
        out.append({"path": prefix, "message": str(messages)})
    return out


def describe(messages) -> str:
    details = flatten(messages)
    text = "; ".join(f"{d['path']}: {d['message']}" if d["path"] else d["message"]
                     for d in details[:3])
    return text + (f" (and {len(details) - 3} more)" if len(details) > 3 else "")
