"""Values made inside a run, made storable: JSON, finite, valid UTF-8, bounded.

Every block output and streamed chunk passes here once, on its way from the
block to the coordinator, whatever the block type (code, http, llm, agent).
Lone UTF-16 surrogates (which no UTF-8 store or answer can hold) become
U+FFFD; NaN and Infinity fail the block, since JSON has no such numbers.
"""

import json

from actors.errors import BlockError
from models.base import compact_json, without_surrogates

LIMIT_NAME = "ACTORFLOW_MAX_VALUE_BYTES"


def storable(value, limit=None, what="block output"):
    """A deep copy of `value` the store can hold; raises BlockError naming the problem.

    The copy goes through JSON text, so it also shares nothing with the block.
    """
    return storable_text(value, limit, what)[0]


def storable_text(value, limit=None, what="block output"):
    """(storable copy, its compact JSON text): the text is what storing the copy would write."""
    try:
        text = compact_json(value)
    except ValueError as exc:
        if "Out of range float" in str(exc):
            raise BlockError(f"{what} contains NaN or Infinity, which JSON cannot hold") from None
        raise BlockError(f"{what} is not JSON-serialisable: {exc}") from None
    except (TypeError, RecursionError) as exc:
        raise BlockError(f"{what} is not JSON-serialisable: {exc}") from None
    text = without_surrogates(text)
    check_size(text, limit, what)
    return json.loads(text), text


def check_size(text, limit, what):
    """Raise when `text` (a value's JSON, or a rendered string) is over `limit` bytes of UTF-8."""
    if not limit or len(text) * (1 if text.isascii() else 4) <= limit:
        return
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise too_large(what, limit, size)


def too_large(what, limit, size=None):
    """The error for a value over the limit (`size` when known)."""
    how = f"{size} bytes, over" if size is not None else "larger than"
    return BlockError(f"{what} is {how} the limit of {limit} bytes ({LIMIT_NAME})")
