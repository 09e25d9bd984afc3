"""Safe condition expressions (simpleeval, never eval) over template names.

An expression is parsed and checked once (when its graph is saved, or by the
first run in this process that needs it) and the tree is shared by every run
after: evaluation only reads it. Parsing happens under one lock, because
Python 3.11's parser does not survive many threads at once (`SystemError:
AST constructor recursion depth mismatch`).
"""

import ast
import threading

import simpleeval

from actors.errors import BlockError

_FUNCTIONS = {"len": len, "str": str, "int": int, "float": float, "bool": bool,
              "abs": abs, "min": min, "max": max, "round": round,
              "lower": lambda s: str(s).lower(), "upper": lambda s: str(s).upper()}

MAX_LENGTH = 4000               # characters in one expression
_CACHE_CHARS = 1024 * 1024      # expression text kept parsed, at most


class InvalidExpression(ValueError):
    """The expression cannot be evaluated: bad syntax or a construct that is not allowed."""


class _Evaluator(simpleeval.EvalWithCompoundTypes):
    def _eval_attribute(self, node):
        # `start.n` means the key "n" of a block's output, even when a dict
        # method has that name (`x.items`, `x.keys`).
        value = self._eval(node.value)
        if isinstance(value, dict):
            if node.attr in value:
                return value[node.attr]
            raise simpleeval.AttributeDoesNotExist(node.attr, self.expr)
        return super()._eval_attribute(node)


_NODES = frozenset(_Evaluator().nodes)          # what the evaluator can evaluate
_OPERATORS = frozenset(_Evaluator().operators)

_lock = threading.Lock()
_local = threading.local()   # one evaluator per thread: making one costs most of an evaluation
_parsed = {}      # expression -> checked tree, oldest first
_parsed_chars = 0


def parse(expression: str) -> ast.AST:
    """The checked tree of `expression`, parsed at most once. Raises InvalidExpression."""
    tree = _parsed.get(expression)
    if tree is not None:
        return tree
    global _parsed_chars
    with _lock:
        tree = _parsed.get(expression)
        if tree is None:
            tree = _check(_parse(expression))
            while _parsed and _parsed_chars + len(expression) > _CACHE_CHARS:
                oldest = next(iter(_parsed))
                del _parsed[oldest]
                _parsed_chars -= len(oldest)
            if len(expression) <= _CACHE_CHARS:
                _parsed[expression] = tree
                _parsed_chars += len(expression)
    return tree


def _parse(expression):
    if len(expression) > MAX_LENGTH:
        raise InvalidExpression(f"longer than {MAX_LENGTH} characters")
    try:
        return ast.parse(expression.strip(), mode="eval").body
    except SyntaxError as exc:
        raise InvalidExpression(f"syntax error: {exc.msg}")
    except (ValueError, RecursionError, MemoryError) as exc:
        raise InvalidExpression(f"cannot be parsed: {type(exc).__name__}")


def _check(tree):
    """Refuse, before any run, what the evaluator would refuse while running."""
    for node in ast.walk(tree):
        if isinstance(node, ast.expr) and type(node) not in _NODES:
            raise InvalidExpression(f"{type(node).__name__} is not allowed")
        if isinstance(node, (ast.operator, ast.unaryop, ast.cmpop)) and type(node) not in _OPERATORS:
            raise InvalidExpression(f"the operator {type(node).__name__} is not allowed")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise InvalidExpression(f"'.{node.attr}': names starting with _ are not allowed")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in _FUNCTIONS:
            raise InvalidExpression(f"unknown function '{node.func.id}'; known: "
                                    + ", ".join(sorted(_FUNCTIONS)))
    return tree


def evaluate(expression: str, names: dict):
    """Evaluate `expression` with `names` (block outputs and `variables`)."""
    try:
        tree = parse(expression)
    except InvalidExpression as exc:
        raise BlockError(f"expression {expression!r} is invalid: {exc}")
    evaluator = getattr(_local, "evaluator", None)
    if evaluator is None:
        evaluator = _local.evaluator = _Evaluator(functions=_FUNCTIONS)
    evaluator.names = dict(names)
    try:
        return evaluator.eval(expression, previously_parsed=tree)
    except simpleeval.NameNotDefined as exc:
        raise BlockError(f"expression {expression!r}: unknown name '{exc.name}'")
    except simpleeval.AttributeDoesNotExist as exc:
        raise BlockError(f"expression {expression!r}: no key '{exc.attr}'")
    except simpleeval.InvalidExpression as exc:
        raise BlockError(f"expression {expression!r} is invalid: {exc}")
    except Exception as exc:  # type errors, zero division, ...: the user's expression
        raise BlockError(f"expression {expression!r} failed: {type(exc).__name__}: {exc}")
    finally:
        evaluator.names = None  # the run's values are not kept past the evaluation
