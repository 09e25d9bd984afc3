"""Safe condition expressions (simpleeval, never eval) over template names."""

import simpleeval

from actors.errors import BlockError

_FUNCTIONS = {"len": len, "str": str, "int": int, "float": float, "bool": bool,
              "abs": abs, "min": min, "max": max, "round": round,
              "lower": lambda s: str(s).lower(), "upper": lambda s: str(s).upper()}


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


def evaluate(expression: str, names: dict):
    """Evaluate `expression` with `names` (block outputs and `variables`)."""
    evaluator = _Evaluator(names=dict(names), functions=_FUNCTIONS)
    try:
        return evaluator.eval(expression)
    except simpleeval.NameNotDefined as exc:
        raise BlockError(f"expression {expression!r}: unknown name '{exc.name}'")
    except simpleeval.AttributeDoesNotExist as exc:
        raise BlockError(f"expression {expression!r}: no key '{exc.attr}'")
    except (simpleeval.InvalidExpression, SyntaxError) as exc:
        raise BlockError(f"expression {expression!r} is invalid: {exc}")
    except Exception as exc:  # type errors, zero division, ...: the user's expression
        raise BlockError(f"expression {expression!r} failed: {type(exc).__name__}: {exc}")
