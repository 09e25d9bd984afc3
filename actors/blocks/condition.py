"""condition: picks one branch; edges out carry source_handle = a condition id or "else"."""

from ..expressions import InvalidExpression, evaluate, parse
from . import BlockType, checks

ELSE = "else"


def check(config):
    problems = checks.common(config)
    conditions = config.get("conditions")
    if not isinstance(conditions, list):
        return problems + [("conditions", "conditions must be a list of {id, expression}")]
    seen = set()
    for i, cond in enumerate(conditions):
        key = f"conditions[{i}]"
        if not isinstance(cond, dict):
            problems.append((key, "each condition must be an object"))
            continue
        cid = cond.get("id")
        if not isinstance(cid, str) or not cid:
            problems.append((key + ".id", "id must be a non-empty string"))
        elif cid == ELSE or cid in seen:
            problems.append((key + ".id", f"condition id '{cid}' is reserved or repeated"))
        seen.add(cid)
        expression = cond.get("expression")
        if not isinstance(expression, str) or not expression.strip():
            problems.append((key + ".expression", "expression must be a non-empty string"))
        elif not checks.is_template(expression):  # with {{ }} it is known only once rendered
            try:
                parse(expression)  # parsed now, once; runs reuse the tree
            except InvalidExpression as exc:
                problems.append((key + ".expression", f"expression {expression[:200]!r} is invalid: {exc}"))
    return problems


def branches(config):
    """Every handle an edge out of this block may carry."""
    ids = [c.get("id") for c in config.get("conditions") or [] if isinstance(c, dict)]
    return set(ids) | {ELSE}


def run(ctx):
    names = dict(ctx.inputs)  # copies: an expression may call a method that changes a value
    names["variables"] = ctx.variables
    for cond in ctx.shared("config").get("conditions") or []:
        if evaluate(cond["expression"], names):
            return {"branch": cond["id"]}
    return {"branch": ELSE}


TYPE = BlockType("condition", check, run, inline=True)
