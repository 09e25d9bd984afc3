"""response: shapes the run's output. Its rendered `data` is the output."""

from . import BlockType, checks


def run(ctx):
    return ctx.shared("config").get("data")  # the output is copied on its way out


TYPE = BlockType("response", checks.common, run, uses_inputs=False, inline=True)
