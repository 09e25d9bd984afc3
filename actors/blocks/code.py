"""code: the body of a Python function, run in an isolated process."""

from actors.errors import BlockError
from . import BlockType, checks


def check(config):
    return checks.common(config) + checks.string(config, "code", required=True)


def run(ctx):
    sandbox = ctx.services["sandbox"]
    try:
        result = sandbox.run(ctx.config["code"], {"inputs": ctx.inputs, "variables": ctx.variables},
                             timeout=ctx.remaining(), cancelled=ctx.cancelled,
                             workspace=ctx.workspace)
    except BlockError as exc:
        ctx.stdout = getattr(exc, "stdout", None)  # what it printed before failing, for the log
        raise
    ctx.stdout = result.stdout
    return result.value


TYPE = BlockType("code", check, run)
