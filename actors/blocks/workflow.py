"""workflow: run another workflow of the same workspace and output its output."""

from actors.errors import BlockError
from actors.plan import Parent
from . import BlockType, checks


def check(config):
    return (checks.common(config) + checks.string(config, "workflow_id", required=True)
            + checks.mapping(config, "variables"))


def subrun_service(ctx):
    subrun = ctx.services.get("subrun")
    if subrun is None:
        raise BlockError("sub-workflows are not available in this server")
    workflow_id = ctx.config.get("workflow_id")
    if not isinstance(workflow_id, str) or not workflow_id.strip():
        raise BlockError("workflow_id must be a non-empty string")
    return subrun, workflow_id


def run(ctx):
    subrun, workflow_id = subrun_service(ctx)
    variables = ctx.config.get("variables")
    variables = {} if variables is None else variables
    if not isinstance(variables, dict):
        raise BlockError("variables must be an object")
    return subrun.run(ctx.workspace, workflow_id, variables, ctx.remaining(), ctx.cancelled,
                      depth=ctx.depth, parent=Parent(ctx.execution_id, ctx.block_id), retry=ctx.attempt > 1)


TYPE = BlockType("workflow", check, run, uses_inputs=False, waits_on_runs=True)
