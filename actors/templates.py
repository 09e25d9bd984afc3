"""Pure template rendering: {{ block_id.path }}, {{ variables.name }}, list indexes.

A string that is exactly one reference takes the referenced value with its
JSON type; a reference inside longer text is rendered as text (strings as
they are, anything else as compact JSON).
"""

import json
import re

from actors.errors import BlockError
from actors.values import too_large

REF = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_MISSING = object()


class Scope:
    """The names a block's templates may use: its upstream outputs and the variables.

    `upstream(block_id)` answers whether a block is an ancestor; `skipped`
    holds upstream blocks that were skipped (they resolve to null).
    """

    def __init__(self, block_id, variables, outputs, known, upstream, skipped=frozenset(), extra=None):
        self.block_id = block_id
        self.variables = variables
        self.outputs = outputs
        self.known = known
        self.upstream = upstream
        self.skipped = skipped
        self.extra = extra or {}

    def resolve(self, ref: str):
        if not ref:
            raise BlockError("empty template reference {{ }}")
        parts = ref.split(".")
        root, path = self._root(parts, ref)
        if root is None:
            return None
        value = root
        for depth, part in enumerate(path):
            value = _step(value, part)
            if value is _MISSING:
                walked = ".".join(parts[:len(parts) - len(path) + depth + 1])
                raise BlockError(f"template {{{{ {ref} }}}}: '{walked}' does not exist")
        return value

    def _root(self, parts, ref):
        head = parts[0]
        if head == "variables":
            return self.variables, parts[1:]
        if head in self.extra:
            return self.extra[head], parts[1:]
        # Block ids may contain dots: the longest known prefix wins.
        for cut in range(len(parts), 0, -1):
            block_id = ".".join(parts[:cut])
            if block_id in self.known:
                if not self.upstream(block_id):
                    raise BlockError(f"template {{{{ {ref} }}}}: block '{block_id}' is not upstream "
                                     f"of '{self.block_id}'")
                if block_id in self.skipped or block_id not in self.outputs:
                    return None, []
                return self.outputs[block_id], parts[cut:]
        raise BlockError(f"template {{{{ {ref} }}}}: no block or name '{head}'")


def _step(value, part):
    if isinstance(value, dict):
        return value.get(part, _MISSING)
    if isinstance(value, list) and part.lstrip("-").isdigit():
        index = int(part)
        if -len(value) <= index < len(value):
            return value[index]
    return _MISSING


def as_text(value) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class Budget:
    """How much one render may produce: `limit` characters (None: no limit), counted as it goes.

    Rendering stops as soon as the output passes the limit, before the
    oversized value is built. A whole reference counts its value's JSON size
    (once measured per value), since that is what gets stored.
    """

    def __init__(self, limit, what):
        self.limit = limit
        self.what = what
        self.used = 0
        self._sizes = {}

    def add(self, size):
        self.used += size
        if self.limit and self.used > self.limit:
            raise too_large(self.what, self.limit)

    def add_value(self, value):
        if not self.limit:
            return
        if isinstance(value, str):
            self.add(len(value))
        elif isinstance(value, (dict, list)):
            size = self._sizes.get(id(value))
            if size is None:
                size = self._sizes[id(value)] = len(as_text(value))
            self.add(size)
        else:
            self.add(8)


def render(value, scope: Scope, skip_keys=frozenset(), limit=None, what="rendered config"):
    """Render every string inside `value` (dicts, lists, nested). Returns a new value.

    With `limit`, raises BlockError (naming ACTORFLOW_MAX_VALUE_BYTES) once the
    rendered value would pass `limit` characters.
    """
    return _render(value, scope, skip_keys, Budget(limit, what))


def _render(value, scope, skip_keys, budget):
    if isinstance(value, str):
        return render_string(value, scope, budget)
    if isinstance(value, dict):
        return {k: (v if k in skip_keys else _render(v, scope, frozenset(), budget))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, scope, frozenset(), budget) for v in value]
    return value


def render_string(text: str, scope: Scope, budget=None):
    budget = budget or Budget(None, "")
    if "{{" not in text:
        budget.add(len(text))
        return text
    whole = REF.fullmatch(text)
    if whole and "{{" not in whole.group(1):
        value = scope.resolve(whole.group(1))
        budget.add_value(value)
        return value
    parts, pos = [], 0
    for match in REF.finditer(text):
        piece = as_text(scope.resolve(match.group(1)))
        budget.add(match.start() - pos + len(piece))
        parts.append(text[pos:match.start()])
        parts.append(piece)
        pos = match.end()
    budget.add(len(text) - pos)
    parts.append(text[pos:])
    return "".join(parts)
