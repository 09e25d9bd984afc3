"""llm: one chat completion from an OpenAI-compatible provider, streamed."""

from . import BlockType, checks


def check(config):
    problems = checks.common(config) + checks.string(config, "prompt", required=True)
    problems += checks.string(config, "system") + checks.string(config, "model")
    problems += checks.number(config, "temperature", minimum=0)
    problems += checks.number(config, "max_tokens", minimum=1, integer=True)
    return problems


def run(ctx):
    from ..llm_client import complete
    return complete(ctx)


TYPE = BlockType("llm", check, run, uses_inputs=False)
