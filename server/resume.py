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


def claim_at_start(db, owner, stale_after, resume):
    """Before the writer runs, on this thread's connection: the orphans' runs to start here.

    With resume off they are marked failed at once and nothing is returned.
    """
    with db.atomic():
        if not resume:
            _report_failed(processes.resolve_orphans(owner, stale_after), None)
            return []
        return processes.claim_orphans(owner, stale_after)


class Recovery:
    """Claims (or fails) orphaned runs at each heartbeat and starts the claimed ones here."""

    def __init__(self, writer, bridge, runs, owner, stale_after, resume):
        self._writer = writer
        self._bridge = bridge
        self._runs = runs
        self._owner = owner
        self._stale_after = stale_after
        self._resume = resume

    def check(self):
        """Queue one look for orphaned runs. Safe from any thread."""
        args = (self._owner, self._stale_after)
        if not self._resume:
            self._writer.submit(processes.resolve_orphans, args, _report_failed)
        elif self._runs.accepting:
            self._writer.submit(processes.claim_orphans, args, self._claimed)

    def _claimed(self, claimed, error):
        # On the writer thread, after the claims committed.
        if error is not None:
            log.error("could not claim runs of stopped servers: %s", error)
        elif claimed:
            self._bridge.call(self.start, claimed)

    def start(self, claimed):
        """On the loop: start claimed runs from their restored state, as new runs start."""
        now = utcnow()
        for stored in claimed:
            execution_id = stored["run"]["id"]
            try:
                self._runs.start(plan_resume(stored, now))
            except Exception:
                log.exception("could not resume run %s; marking it failed", execution_id,
                              extra={"execution_id": execution_id})
                self._writer.submit(processes.fail_runs, ([execution_id],))
        if claimed:
            log.warning("resumed %d runs of stopped servers", len(claimed))


def _report_failed(count, error):
    if error is not None:
        log.error("could not resolve runs of stopped servers: %s", error)
    elif count:
        log.warning("marked %d runs of stopped servers as failed", count)
