"""The scheduler: starts the runs that deployed workflows' schedule blocks owe.

Every `schedule_interval` seconds, one pass on the IOLoop: a writer job reads
the deployed schedule blocks, works out each one's due tick (pure functions
in `actors.blocks.schedule`) and claims it with one conditional UPDATE, so
with several processes on one database each tick is claimed exactly once.
Then the claimed ticks that should fire start their runs here. The clock is
passed in, so tests drive passes at any time they like.
"""

import logging

import tornado.ioloop

from actors.blocks import schedule as cron
from models import schedule as store
from models.base import iso, utcnow
from models.workflow import WorkflowRef

log = logging.getLogger(__name__)


def claim_due(now, late_after):
    """On the writer thread: claim every tick owed at `now`; returns those that should run."""
    to_run = []
    for row in store.deployed_schedules():
        since = max(t for t in (row["deployed_at"], row["last_tick"]) if t is not None)
        owed = cron.due(row["config"], since, now, late_after)
        if owed is None:
            continue
        tick, fire = owed
        if store.claim_tick(row["workflow_id"], row["block_id"], tick) and fire:
            to_run.append((row, tick))
        elif not fire:
            log.info("schedule %s/%s missed its tick at %s (server down?); catch_up is none",
                     row["workflow_id"], row["block_id"], iso(tick),
                     extra={"workflow_id": row["workflow_id"], "block_id": row["block_id"]})
    return to_run


class Scheduler:
    """Periodic passes over the schedule blocks of deployed workflows."""

    def __init__(self, writer, starter, runs, execute_timeout, interval, late_after=None):
        self._writer = writer
        self._starter = starter
        self._runs = runs
        self._execute_timeout = execute_timeout
        self._interval = interval
        # A tick more than this late was missed (the server was down), not merely slow.
        self._late_after = late_after if late_after is not None else max(60.0, 3 * interval)
        self._periodic = None
        self._busy = False

    def start(self):
        self._periodic = tornado.ioloop.PeriodicCallback(self._pass, self._interval * 1000)
        self._periodic.start()

    def stop(self):
        if self._periodic is not None:
            self._periodic.stop()

    async def _pass(self):
        if self._busy or not self._runs.accepting:
            return  # a slow pass is not stacked on another
        self._busy = True
        try:
            await self.run_due()
        except Exception:
            log.exception("schedule pass failed")
        finally:
            self._busy = False

    async def run_due(self, now=None):
        """Claim and start what is owed at `now` (default: the clock). Returns the runs started."""
        now = now or utcnow()
        owed = await self._writer.call(claim_due, now, self._late_after)
        runs = []
        for row, tick in owed:
            ref = WorkflowRef(id=row["workflow_id"], workspace=row["workspace"], version=row["version"])
            payload = {"tick": iso(tick), "timezone": row["config"].get("timezone", "UTC")}
            try:
                runs.append(await self._starter.start(
                    ref, row["config"].get("variables") or {}, "schedule",
                    self._execute_timeout, webhook_block=row["block_id"],
                    trigger_payload=payload))
            except Exception as exc:  # e.g. shutting down: this tick is claimed, and lost
                log.error("schedule %s/%s could not start its run for %s: %s",
                          row["workflow_id"], row["block_id"], iso(tick), exc,
                          extra={"workflow_id": row["workflow_id"], "block_id": row["block_id"]})
        return runs


def with_fire_times(workflow: dict, now=None, count=3) -> dict:
    """Add `next_fires` (the next `count` due times) to each schedule block of a workflow body."""
    now = now or utcnow()
    for block in workflow.get("blocks", ()):
        if block["type"] == "schedule" and isinstance(block["config"].get("cron"), str):
            try:
                block["next_fires"] = [iso(t) for t in cron.next_fires(block["config"], now, count)]
            except (ValueError, StopIteration, KeyError):
                block["next_fires"] = []
    return workflow
