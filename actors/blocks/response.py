"""response: shapes the run's output. Its rendered `data` is the output."""

from . import BlockType, checks


def run(ctx):
    return ctx.config.get("data")


TYPE = BlockType("response", checks.common, run, uses_inputs=False, inline=True)
