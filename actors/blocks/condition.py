"""condition: picks one branch; edges out carry source_handle = a condition id or "else"."""

from ..expressions import evaluate
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
        if not isinstance(cond.get("expression"), str) or not cond["expression"].strip():
            problems.append((key + ".expression", "expression must be a non-empty string"))
    return problems


def branches(config):
    """Every handle an edge out of this block may carry."""
    ids = [c.get("id") for c in config.get("conditions") or [] if isinstance(c, dict)]
    return set(ids) | {ELSE}


def run(ctx):
    names = dict(ctx.inputs)
    names["variables"] = ctx.variables
    for cond in ctx.config.get("conditions") or []:
        if evaluate(cond["expression"], names):
            return {"branch": cond["id"]}
    return {"branch": ELSE}


TYPE = BlockType("condition", check, run)
