"""Request bodies as strict JSON: only values the store can hold and every client can read.

Refused (ValidationError, 400): invalid UTF-8, malformed JSON, NaN/Infinity,
numbers outside the double range (`1e999`, or an integer literal that large),
and strings holding a lone UTF-16 surrogate (`"\\ud800"`; a proper pair such
as `"\\ud83d\\ude00"` is one character and fine).
"""

import json
import math
import re

from models.errors import ValidationError

# A surrogate can only enter through a \uD800-\uDFFF escape; bodies without one skip the walk.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class _OutOfRange(ValueError):
    pass


def _constant(name):
    raise _OutOfRange(f"{name} is not a JSON number")


def _float(text):
    value = float(text)
    if not math.isfinite(value):
        raise _OutOfRange(f"the number {text[:40]} is out of range (outside the double range)")
    return value


def _int(text):
    value = int(text)
    if len(text) > 300:  # only then can an integer pass the double range
        try:
            float(value)
        except OverflowError:
            raise _OutOfRange(f"the number {text[:40]}... is out of range (outside the double range)")
    return value


# Built once: json.loads with any argument builds a decoder and its scanner per call.
# Like json's own default decoder, one serves every thread (it keeps no state between calls).
_DECODER = json.JSONDecoder(parse_constant=_constant, parse_float=_float, parse_int=_int)


def parse(raw: bytes):
    """Decode a request body; None when empty. Raises ValidationError."""
    if not raw or not raw.strip():
        return None
    try:
        text = raw.decode("utf-8")
        if text.startswith("\ufeff"):  # as json.loads says it
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _DECODER.decode(text)
    except _OutOfRange as exc:
        raise ValidationError(f"request body: {exc}")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValidationError(f"request body is not valid JSON: {exc}")
    if _SURROGATE_ESCAPE.search(text):
        path = lone_surrogate(value)
        if path is not None:
            path = _SURROGATE.sub("\ufffd", path)  # the answer itself must be valid Unicode
            message = "a string holds a lone UTF-16 surrogate (\\ud800-\\udfff); send valid Unicode"
            raise ValidationError(f"request body: {path or 'body'}: {message}",
                                  details=[{"path": path, "message": message}])
    return value


def lone_surrogate(value):
    """The path (`a.b[2]`) of the first string, key included, holding a surrogate; None if none."""
    stack = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return path
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else key
                if _SURROGATE.search(key):
                    return child_path
                stack.append((child_path, child))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", child) for i, child in enumerate(item))
    return None
