"""webhook: where a webhook run begins. Output is the call: body, headers, query, method."""

from . import BlockType, checks


def run(ctx):
    return ctx.trigger


TYPE = BlockType("webhook", checks.common, run, trigger=True,
                 secret_keys=frozenset({"webhook_secret"}), uses_inputs=False, inline=True)
