"""The database proxy every model binds to, and the field types they share."""

import datetime
import json
import os
import re
import secrets
import threading
import time

import peewee

database = peewee.DatabaseProxy()

_SURROGATE = re.compile("[\ud800-\udfff]")


def without_surrogates(text: str) -> str:
    """`text` with lone UTF-16 surrogates (which UTF-8 cannot hold) replaced by U+FFFD."""
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


def storable_json(value):
    """A copy of `value` any store can hold: lone surrogates as U+FFFD, NaN and Infinity as null."""
    if value is None:
        return None
    text = without_surrogates(json.dumps(value, ensure_ascii=False))
    return json.loads(text, parse_constant=lambda _: None)


_CHECKED = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
# The C encoder behind _CHECKED.encode, built once: encode() builds a new one (and a
# closure) on every call, which cost more than encoding a run's small values. Built
# without the cycle check, so it keeps no state and any thread may use it; a cycle
# ends in RecursionError, and _CHECKED then names it.
_ENCODE = json.encoder.c_make_encoder and json.encoder.c_make_encoder(
    None, _CHECKED.default, json.encoder.encode_basestring, None, ":", ",", False, False, False)


def compact_json(value):
    """Compact, strict JSON text (no NaN or Infinity), as stored and as sent: what
    `json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)` makes."""
    if _ENCODE is None:
        return _CHECKED.encode(value)
    try:
        return "".join(_ENCODE(value, 0))
    except RecursionError:
        return _CHECKED.encode(value)   # "Circular reference detected", if that is what it was


_EPOCH = datetime.datetime(1970, 1, 1)


def utcnow() -> datetime.datetime:
    """Naive UTC now, millisecond precision (what we store and show)."""
    # Counted from the epoch: half the cost of now(timezone.utc).replace(...), and a
    # run takes about ten of these.
    return _EPOCH + datetime.timedelta(milliseconds=time.time_ns() // 1_000_000)


def iso(value: datetime.datetime | None) -> str | None:
    """`2026-11-29T08:30:00.123Z`, or None."""
    if value is None:
        return None
    if isinstance(value, str):  # SQLite may hand back text for computed columns
        value = datetime.datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def new_id() -> str:
    """32 random hex digits, as `uuid4().hex` gives (without its fixed version digits).

    The random bytes are read 4 KiB at a time, one system call per 256 ids:
    `os.urandom` lets go of the GIL, and a run's id is made on the IOLoop, which
    under load then waited for the GIL back from the writer's thread.
    """
    global _id_digits, _id_at
    with _id_lock:
        if _id_at >= len(_id_digits):
            _id_digits, _id_at = os.urandom(_ID_BYTES).hex(), 0
        _id_at += 32
        return _id_digits[_id_at - 32:_id_at]


_ID_BYTES = 4096
_id_lock = threading.Lock()
_id_digits, _id_at = "", 0


def _forget_ids():
    # A forked child must not hand out the ids its parent will.
    global _id_lock, _id_digits, _id_at
    _id_lock, _id_digits, _id_at = threading.Lock(), "", 0


os.register_at_fork(after_in_child=_forget_ids)


def new_token(nbytes=24) -> str:
    """Random, URL-safe; 24 bytes give 32 characters."""
    return secrets.token_urlsafe(nbytes)


class JSONText:
    """A value given as its compact JSON text (exactly what `compact_json` makes of it):
    a JSONField stores the text as it is, without encoding the value again."""

    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text


class JSONField(peewee.TextField):
    """Any JSON value, stored as text (portable across SQLite and PostgreSQL)."""

    def db_value(self, value):
        if value is None:
            return None
        if type(value) is JSONText:
            return value.text
        # Strict: NaN or Infinity stored would be served back as invalid JSON.
        return compact_json(value)

    def python_value(self, value):
        if value is None:
            return None
        return json.loads(value)


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False
