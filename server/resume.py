"""Runs whose server stopped: claim them and let them go on here.

At start-up and at every heartbeat the writer looks for running runs whose
owner is gone, claims each with one conditional UPDATE (so of several
processes on one database exactly one wins it) and reads what the run needs
to go on. Once that has committed, the runs start on the loop from their
restored state. With ACTORFLOW_RESUME=false they are marked failed instead.
"""

import logging

from actors.plan import plan_resume
from models import processes
from models.base import utcnow

log = logging.getLogger(__name__)


class Recovery:
    def __init__(self, runtime):
        self.runtime = runtime

    def at_start(self):
        """On the loop, before the writer runs: resolve orphans at once, on this thread's connection."""
        rt = self.runtime
        with rt.db.atomic():
            if not rt.settings.resume:
                _report_failed(processes.resolve_orphans(rt.owner, rt.stale_after()), None)
                return []
            return processes.claim_orphans(rt.owner, rt.stale_after())

    def check(self):
        """Queue one look for orphaned runs. Safe from any thread."""
        rt = self.runtime
        stale = rt.stale_after()
        if not rt.settings.resume:
            rt.writer.submit(processes.resolve_orphans, (rt.owner, stale), _report_failed)
        elif rt.runs.accepting:
            rt.writer.submit(processes.claim_orphans, (rt.owner, stale), self._claimed)

    def _claimed(self, claimed, error):
        # On the writer thread, after the claims committed.
        if error is not None:
            log.error("could not claim runs of stopped servers: %s", error)
        elif claimed:
            self.runtime.bridge.call(self.start, claimed)

    def start(self, claimed):
        """On the loop: start claimed runs from their restored state, as new runs start."""
        rt = self.runtime
        now = utcnow()
        for stored in claimed:
            execution_id = stored["run"]["id"]
            try:
                rt.runs.start(plan_resume(stored, now))
            except Exception:
                log.exception("could not resume run %s; marking it failed", execution_id)
                rt.writer.submit(processes.fail_runs, ([execution_id],))
        if claimed:
            log.warning("resumed %d runs of stopped servers", len(claimed))


def _report_failed(count, error):
    if error is not None:
        log.error("could not resolve runs of stopped servers: %s", error)
    elif count:
        log.warning("marked %d runs of stopped servers as failed", count)
