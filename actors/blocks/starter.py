"""starter: where an API or stream run begins. Its output is the run's variables."""

from models.errors import ValidationError
from . import BlockType, checks

INPUT_TYPES = {
    "string": lambda v: isinstance(v, str),
    "number": checks.is_number,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def check(config):
    problems = []
    inputs = config.get("inputs")
    if inputs is None:
        return problems
    if not isinstance(inputs, list):
        return [("inputs", "inputs must be a list")]
    names = set()
    for i, spec in enumerate(inputs):
        key = f"inputs[{i}]"
        if not isinstance(spec, dict):
            problems.append((key, "each input must be an object"))
            continue
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            problems.append((key + ".name", "name must be a non-empty string"))
        elif name in names:
            problems.append((key + ".name", f"duplicate input name '{name}'"))
        names.add(name)
        kind = spec.get("type", "string")
        if kind not in INPUT_TYPES:
            problems.append((key + ".type", f"type must be one of {', '.join(INPUT_TYPES)}"))
        elif "default" in spec and spec["default"] is not None and not INPUT_TYPES[kind](spec["default"]):
            problems.append((key + ".default", f"default must be of type {kind}"))
        if "required" in spec and not isinstance(spec["required"], bool):
            problems.append((key + ".required", "required must be true or false"))
    return problems


def apply_inputs(starters, variables):
    """Check variables against every starter's declared inputs; fill defaults.

    Returns the variables the run sees. Raises ValidationError listing each problem.
    """
    result = dict(variables)
    details = []
    for block in starters:
        for spec in block["config"].get("inputs") or []:
            name, kind = spec["name"], spec.get("type", "string")
            if name not in result or result[name] is None and "default" in spec:
                if "default" in spec:
                    result[name] = spec["default"]
                elif spec.get("required"):
                    details.append({"path": f"variables.{name}", "block_id": block["id"],
                                    "message": f"missing required input '{name}'"})
                continue
            if not INPUT_TYPES[kind](result[name]):
                details.append({"path": f"variables.{name}", "block_id": block["id"],
                                "message": f"input '{name}' must be of type {kind}"})
    if details:
        raise ValidationError("; ".join(d["message"] for d in details), details=details)
    return result


def run(ctx):
    return ctx.shared("variables")  # the output is copied on its way out


TYPE = BlockType("starter", lambda c: checks.common(c) + check(c), run, trigger=True,
                 uses_inputs=False, inline=True)
