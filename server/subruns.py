"""Sub-runs: a block (the agent's workflow tool) runs another workflow and waits for its output.

The caller is a block-actor thread; runs live on the IOLoop. The only
crossing is `runtime.bridge.call`: the caller schedules `_start` on the loop,
which loads the workflow, starts the run exactly as /execute does (trigger
"api": it starts at the starter blocks and is listed with the workflow's
executions) and adds a done-callback on `run.finished` that hands the result
back through a threading.Event. The caller waits on that event, polling its
`cancelled` event; a cancelled caller asks the loop (again through the
bridge) to cancel the sub-run.

Depth: a sub-run is one deeper than the run that asked for it, and counts
toward the same limit as runs started by requests (ACTORFLOW_MAX_DEPTH, see
plan.DEPTH_HEADER): that stops an agent that calls its own workflow (or
A -> B -> A) from recursing for ever.
"""

import logging
import threading
import time

from actors.context import BlockCancelled
from actors.errors import BlockError
from models.errors import ActorflowError, WorkflowNotFound

log = logging.getLogger(__name__)

POLL = 0.1
GRACE = 5.0     # seconds past the sub-run's own timeout before the caller gives up on it


class SubRunFailed(BlockError):
    """The sub-run could not start, failed, timed out or was cancelled."""


class _Waiter:
    def __init__(self):
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.execution_id = None
        self.abandoned = False
        self.result = None
        self.error = None

    def finish(self, result=None, error=None):
        self.result, self.error = result, error
        self.done.set()


class SubRuns:
    """The `subrun` service (ctx.services["subrun"])."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.max_depth = runtime.settings.max_depth

    def run(self, workspace, workflow_id, variables, timeout, cancelled, depth=0):
        """Run `workflow_id` of `workspace` with `variables`; return its output. Call off the loop.

        `depth` is the calling run's. Raises SubRunFailed (a message for the
        model) when it cannot start, fails or times out, and BlockCancelled
        when `cancelled` is set.
        """
        depth += 1
        if depth > self.max_depth:
            raise SubRunFailed(f"depth limit reached ({self.max_depth} nested runs); "
                               f"workflow {workflow_id} was not started")
        if not isinstance(variables, dict):
            raise SubRunFailed("a workflow's variables must be an object")
        cap = self.runtime.settings.execute_timeout
        timeout = cap if timeout is None else min(float(timeout), cap)
        if timeout <= 0:
            raise SubRunFailed(f"no time left to run workflow {workflow_id}")
        waiter = _Waiter()
        self.runtime.bridge.call(self._start, waiter, workspace, workflow_id, variables,
                                 timeout, depth)
        give_up = time.monotonic() + timeout + GRACE
        while not waiter.done.wait(POLL):
            if cancelled is not None and cancelled.is_set():
                self._abandon(waiter)
                raise BlockCancelled("cancelled")
            if time.monotonic() >= give_up:
                self._abandon(waiter)
                raise SubRunFailed(f"workflow {workflow_id} did not finish within {timeout:g}s")
        if waiter.error is not None:
            raise SubRunFailed(waiter.error)
        result = waiter.result
        if result["status"] == "completed":
            return result["output"]
        error = result.get("error") or result["status"]
        if result["status"] == "timeout":
            raise SubRunFailed(f"workflow {workflow_id} timed out: {error}")
        raise SubRunFailed(f"workflow {workflow_id} {result['status']}: {error}")

    def _abandon(self, waiter):
        with waiter.lock:
            waiter.abandoned = True
            execution_id = waiter.execution_id
        if execution_id is not None:
            self.runtime.bridge.call(self.runtime.runs.cancel, execution_id)

    # -- on the IOLoop -----------------------------------------------------------

    def _start(self, waiter, workspace, workflow_id, variables, timeout, depth):
        from models import workflow as wf_model
        from server.execution_start import start_run
        if waiter.abandoned:
            return
        try:
            wf = wf_model.workflow_ref(workspace, workflow_id)
            run = start_run(self.runtime, wf, variables, "api", timeout, depth=depth)
        except ActorflowError as exc:
            if isinstance(exc, WorkflowNotFound):
                waiter.finish(error=f"workflow {workflow_id} not found")
            else:
                waiter.finish(error=f"workflow {workflow_id} cannot start: {exc.message}")
            return
        except Exception as exc:
            log.exception("could not start a sub-run of %s", workflow_id, extra={"workflow_id": workflow_id})
            waiter.finish(error=f"could not start workflow {workflow_id}: {exc}")
            return
        eid = run.execution_id
        with waiter.lock:
            waiter.execution_id = eid
            abandoned = waiter.abandoned
        if abandoned:
            self.runtime.runs.cancel(eid)

        def finished(future):
            try:
                waiter.finish(result=future.result())
            except Exception as exc:  # cancelled future: the loop is closing
                waiter.finish(error=f"workflow {workflow_id} ended without a result: {exc!r}")

        run.finished.add_done_callback(finished)
