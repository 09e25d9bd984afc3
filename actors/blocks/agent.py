"""agent: a tool-calling loop over an OpenAI-compatible provider."""

import re

from . import BlockType, checks
from .http import METHODS as HTTP_METHODS
from .llm import check as llm_check

TOOL_TYPES = {"code", "http", "workflow"}
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check(config):
    problems = llm_check(config)
    problems += checks.number(config, "max_steps", minimum=1, integer=True)
    tools = config.get("tools")
    if tools is None:
        return problems
    if not isinstance(tools, list):
        return problems + [("tools", "tools must be a list")]
    names = set()
    for i, tool in enumerate(tools):
        key = f"tools[{i}]"
        if not isinstance(tool, dict):
            problems.append((key, "each tool must be an object"))
            continue
        if tool.get("type") not in TOOL_TYPES:
            problems.append((key + ".type", f"tool type must be one of {', '.join(sorted(TOOL_TYPES))}"))
        name = tool.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            problems.append((key + ".name", "name must be 1-64 letters, digits, _ or -"))
        elif name in names:
            problems.append((key + ".name", f"duplicate tool name '{name}'"))
        names.add(name)
        if "parameters" in tool and not isinstance(tool["parameters"], dict):
            problems.append((key + ".parameters", "parameters must be a JSON schema object"))
        if "description" in tool and not isinstance(tool["description"], str):
            problems.append((key + ".description", "description must be a string"))
        if tool.get("type") == "code":
            problems += [(f"{key}.{k}", m) for k, m in checks.string(tool, "code", required=True)]
        elif tool.get("type") == "http":
            problems += [(f"{key}.{k}", m) for k, m in checks.string(tool, "url", required=True)]
            method = tool.get("method")
            if method is not None and not checks.is_template(method) and (
                    not isinstance(method, str) or method.upper() not in HTTP_METHODS):
                problems.append((key + ".method",
                                 f"method must be one of {', '.join(sorted(HTTP_METHODS))}"))
        elif tool.get("type") == "workflow":
            problems += [(f"{key}.{k}", m) for k, m in checks.string(tool, "workflow_id", required=True)]
    return problems


def run(ctx):
    from ..agent_loop import run_agent
    return run_agent(ctx)


TYPE = BlockType("agent", check, run, raw_keys=frozenset({"tools"}), waits_on_runs=True)
