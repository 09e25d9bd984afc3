"""Which scheduled tick has been claimed, per schedule block: the cross-process guard."""

import peewee

from .base import BaseModel
from .workflow import Block, Workflow


class ScheduleState(BaseModel):
    """The last tick claimed for one schedule block of one workflow."""
    pk = peewee.AutoField()
    workflow = peewee.CharField()
    block_id = peewee.CharField()
    last_tick = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "schedule_state"
        indexes = ((("workflow", "block_id"), True),)


def deployed_schedules() -> list:
    """Every schedule block of every deployed workflow, with what deciding its next tick needs."""
    rows = (Block.select(Block.block_id, Block.config, Workflow.id, Workflow.workspace,
                         Workflow.version, Workflow.deployed_at, ScheduleState.last_tick)
            .join(Workflow, on=(Block.workflow == Workflow.id))
            .join(ScheduleState, peewee.JOIN.LEFT_OUTER,
                  on=((ScheduleState.workflow == Block.workflow) & (ScheduleState.block_id == Block.block_id)))
            .where((Block.type == "schedule") & (Workflow.deployed == True)  # noqa: E712
                   # Named as a list, the deployed workflows lead: their blocks come by the
                   # block.workflow index, not by a scan of every block (this runs each second).
                   & Block.workflow.in_(Workflow.select(Workflow.id).where(Workflow.deployed == True)))  # noqa: E712
            .tuples())
    return [{"block_id": block_id, "config": config, "workflow_id": wf_id, "workspace": workspace,
             "version": version, "deployed_at": deployed_at, "last_tick": last_tick}
            for block_id, config, wf_id, workspace, version, deployed_at, last_tick in rows]


def claim_tick(workflow_id: str, block_id: str, tick) -> bool:
    """Claim `tick` for this block with one conditional UPDATE: True for exactly one caller.

    Another process (or an earlier pass) that claimed this tick or a later
    one makes the row count 0.
    """
    ScheduleState.insert(workflow=workflow_id, block_id=block_id, last_tick=None) \
        .on_conflict_ignore().execute()
    return ScheduleState.update(last_tick=tick).where(
        (ScheduleState.workflow == workflow_id) & (ScheduleState.block_id == block_id)
        & (ScheduleState.last_tick.is_null() | (ScheduleState.last_tick < tick))).execute() == 1


def forget_schedules(workflow_id: str):
    ScheduleState.delete().where(ScheduleState.workflow == workflow_id).execute()
