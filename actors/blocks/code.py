"""code: the body of a Python function, run in an isolated process."""

from . import BlockType, checks


def check(config):
    return checks.common(config) + checks.string(config, "code", required=True)


def run(ctx):
    sandbox = ctx.services["sandbox"]
    result = sandbox.run(ctx.config["code"], {"inputs": ctx.inputs, "variables": ctx.variables},
                         timeout=ctx.remaining(), cancelled=ctx.cancelled)
    ctx.stdout = result.stdout
    return result.value


TYPE = BlockType("code", check, run)
