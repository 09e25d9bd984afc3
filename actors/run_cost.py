"""Whether a run's first turn is small enough to take on the thread that starts it.

A coordinator's first turn runs the run's inline blocks (no I/O, no
waiting) as far as they reach and starts the others. Taken on a pooled
thread, that turn costs two thread hand-offs (there and back), and the GIL
moving between cores costs more than the turn itself. So a run whose first
turn is known to be small takes it on the starting thread (the IOLoop, for
a request). The loop must not stall, so "small" is bounded before the run,
from the graph and the size of the request's body alone:

- at most MAX_BLOCKS blocks in the first turn: those whose every ancestor
  is an inline block of the first turn, run (starter, condition, response)
  or started (any other type: its config is rendered there, it runs
  elsewhere, and what follows it waits for its news on a pooled thread);
- a bound on the bytes of every value the turn could make (its variables,
  each rendered config, each inline output), all together at most
  MAX_BYTES, with the variables at most MAX_INPUT_BYTES;
- conditions short (MAX_EXPRESSION characters), without comprehensions or
  `*` and `**` (which make values far larger than the expression), and not
  templates (known only once rendered).

The coordinator handles only its inline blocks' news on that thread
(`Coordinator.fits_here`). Pure functions: no I/O.
"""

import ast

from .expressions import InvalidExpression, parse
from .templates import REF

MAX_INPUT_BYTES = 16 * 1024   # a request body up to this size (its variables are no larger)
MAX_BLOCKS = 32
MAX_BYTES = 256 * 1024        # every value the first turn could make, added up
MAX_EXPRESSION = 256          # characters in one condition

_LOOPS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.Mult, ast.Pow)
_INLINE_OUTPUTS = ("starter", "condition", "response")


def small_first_turn(graph, inline) -> bool:
    """Whether the first turn of any run of `graph` with a body of at most MAX_INPUT_BYTES is
    small (see the module). `inline(type_name)` says whether a block type runs inline."""
    biggest = MAX_INPUT_BYTES   # the largest value a template or expression could take in
    total = MAX_INPUT_BYTES
    count = 0
    first = set()               # inline blocks that may run in the first turn
    for block_id in sorted(graph.order, key=graph.index.__getitem__):
        if any(edge.source not in first for edge in graph.incoming[block_id]):
            continue            # it waits for news handled on a pooled thread
        count += 1
        if count > MAX_BLOCKS:
            return False
        block = graph.blocks[block_id]
        config = block.get("config") or {}
        size, refs = _measure(config)
        if refs < 0:
            return False
        rendered = size + refs * biggest
        kind = block["type"]
        if not inline(kind):
            total += rendered   # started here, run elsewhere
        elif kind not in _INLINE_OUTPUTS:
            return False        # a trigger's block (webhook, schedule): its payload is not bounded
        else:
            if kind == "starter":
                output = MAX_INPUT_BYTES + size        # the variables, with its inputs' defaults
            elif kind == "response":
                output = rendered
            else:
                work = _conditions_work(config.get("conditions"))
                if work < 0:
                    return False
                rendered += work * biggest
                output = size                          # {"branch": one of its ids}
            first.add(block_id)
            total += rendered + output
            biggest = max(biggest, output)
        if total > MAX_BYTES:
            return False
    return True


def _measure(value):
    """(characters in `value` as JSON, at most; template references in it), refs -1 when unknown."""
    if isinstance(value, str):
        return len(value) + 2, sum(1 for _ in REF.finditer(value)) if "{{" in value else 0
    if isinstance(value, (dict, list)):
        # Each item, with its key ("key": , in a dict) or its comma (in a list).
        pairs = ((len(key) + 4, item) for key, item in value.items()) if isinstance(value, dict) \
            else ((1, item) for item in value)
        size, refs = 2, 0
        for extra, item in pairs:
            item_size, item_refs = _measure(item)
            if item_refs < 0:
                return 0, -1
            size += extra + item_size
            refs += item_refs
        return size, refs
    if value is None or isinstance(value, (bool, int, float)):
        return 32, 0
    return 0, -1


def _conditions_work(conditions):
    """How many values the condition's expressions could each copy or build, or -1 when unbounded."""
    work = 0
    for cond in conditions or []:
        made = 0
        expression = cond.get("expression") if isinstance(cond, dict) else None
        if not isinstance(expression, str) or len(expression) > MAX_EXPRESSION or "{{" in expression:
            return -1
        try:
            tree = parse(expression)
        except InvalidExpression:
            work += 1   # it fails when reached, as it would on any thread
            continue
        for node in ast.walk(tree):
            if isinstance(node, _LOOPS):
                return -1
            if isinstance(node, (ast.Call, ast.BinOp)):
                made += 1   # str(x), x + y: a new value as large as what it takes in
        work += made * made + 1   # x + x + x ...: each sum holds all the ones before it
    return work
