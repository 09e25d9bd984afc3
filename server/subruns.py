"""Sub-runs: a block (the agent's workflow tool) runs another workflow and waits for its output.

The caller is a block-actor thread; runs live on the IOLoop. The only
crossing is `bridge.call`: the caller schedules `_start` on the loop,
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

The workflow and map blocks link their sub-runs to themselves (plan.Parent);
a map starts many with `begin` and collects them as they finish.
"""

import asyncio
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


class SubRun:
    """One sub-run in flight, as its caller sees it: done once `result` or `error` is set."""

    def __init__(self, workflow_id, tag=None, on_done=None):
        self.workflow_id = workflow_id
        self.tag = tag              # the caller's own (a map's item index)
        self.on_done = on_done      # called with this SubRun when it is done, from the loop
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.execution_id = None
        self.abandoned = False
        self.result = None
        self.error = None

    def finish(self, result=None, error=None):
        self.result, self.error = result, error
        self.done.set()
        if self.on_done is not None:
            self.on_done(self)


class SubRuns:
    """The `subrun` service (ctx.services["subrun"]).

    `starter` (execution_start.RunStarter) loads and starts runs, `runs` are
    the live ones, `read` awaits a read on the store; all three are used on
    the loop only, where `bridge` hands the callers' requests.
    """

    def __init__(self, bridge, starter, runs, read, max_depth, execute_timeout):
        self.bridge, self.starter, self.runs, self.read = bridge, starter, runs, read
        self.max_depth, self.execute_timeout = max_depth, execute_timeout
        self._starting = set()  # tasks starting sub-runs, held so they are not collected midway

    def run(self, workspace, workflow_id, variables, timeout, cancelled, depth=0, parent=None, retry=False):
        """Run `workflow_id` of `workspace` with `variables`; return its output. Call off the loop.

        `depth` is the calling run's. Raises SubRunFailed (a message for the
        model) when it cannot start, fails or times out, and BlockCancelled
        when `cancelled` is set.
        """
        sub = self.begin(workspace, workflow_id, variables, timeout, depth, parent=parent, retry=retry)
        give_up = time.monotonic() + self.timeout(timeout) + GRACE
        while not sub.done.wait(POLL):
            if cancelled is not None and cancelled.is_set():
                self.abandon(sub)
                raise BlockCancelled("cancelled")
            if time.monotonic() >= give_up:
                self.abandon(sub)
                raise SubRunFailed(f"workflow {workflow_id} did not finish within "
                                   f"{self.timeout(timeout):g}s")
        return self.outcome(sub)

    def timeout(self, timeout):
        """A sub-run's timeout: the caller's, at most ACTORFLOW_EXECUTE_TIMEOUT."""
        cap = self.execute_timeout
        return cap if timeout is None else min(float(timeout), cap)

    def begin(self, workspace, workflow_id, variables, timeout, depth=0, parent=None, tag=None,
              on_done=None, retry=False) -> SubRun:
        """Ask the loop to start the sub-run; do not wait. Call off the loop.

        `parent` (plan.Parent) links the sub-run to its block; a completed
        sub-run already linked there (the block ran before its server stopped)
        is reused instead of run again; on a `retry` of the block only a completed
        one is (a failed one runs again). Raises SubRunFailed when it cannot start.
        """
        depth += 1
        if depth > self.max_depth:
            raise SubRunFailed(f"depth limit reached ({self.max_depth} nested runs); "
                               f"workflow {workflow_id} was not started")
        if not isinstance(variables, dict):
            raise SubRunFailed("a workflow's variables must be an object")
        timeout = self.timeout(timeout)
        if timeout <= 0:
            raise SubRunFailed(f"no time left to run workflow {workflow_id}")
        sub = SubRun(workflow_id, tag, on_done)
        self.bridge.call(self._start, sub, workspace, workflow_id, variables, timeout, depth, parent, retry)
        return sub

    @staticmethod
    def outcome(sub):
        """A done sub-run's output; raises SubRunFailed with the child's error."""
        if sub.error is not None:
            raise SubRunFailed(sub.error)
        result, workflow_id = sub.result, sub.workflow_id
        if result["status"] == "completed":
            return result["output"]
        error = result.get("error") or result["status"]
        if result["status"] == "timeout":
            raise SubRunFailed(f"workflow {workflow_id} timed out: {error}")
        raise SubRunFailed(f"workflow {workflow_id} {result['status']}: {error}")

    def abandon(self, sub):
        """The caller no longer wants `sub`: cancel it (now, or as soon as it starts)."""
        with sub.lock:
            sub.abandoned = True
            execution_id = sub.execution_id
        if execution_id is not None:
            self.bridge.call(self.runs.cancel, execution_id)

    # -- on the IOLoop -----------------------------------------------------------

    def _start(self, *args):
        task = asyncio.ensure_future(self._start_run(*args))  # its reads are awaited, not run here
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    async def _start_run(self, sub, workspace, workflow_id, variables, timeout, depth, parent, retry):
        if sub.abandoned:
            return
        try:
            run = await self._earlier(parent, retry)
            if run is None:
                wf = await self.starter.load(workspace, workflow_id)
                run = await self.starter.start(wf, variables, "api", timeout, depth=depth, parent=parent)
        except ActorflowError as exc:
            if isinstance(exc, WorkflowNotFound):
                sub.finish(error=f"workflow {workflow_id} not found")
            else:
                sub.finish(error=f"workflow {workflow_id} cannot start: {exc.message}")
            return
        except Exception as exc:
            log.exception("could not start a sub-run of %s", workflow_id, extra={"workflow_id": workflow_id})
            sub.finish(error=f"could not start workflow {workflow_id}: {exc}")
            return
        if isinstance(run, dict):   # ended before its parent's server stopped
            sub.finish(result=run)
            return
        eid = run.execution_id
        with sub.lock:
            sub.execution_id = eid
            abandoned = sub.abandoned
        if abandoned:
            self.runs.cancel(eid)

        def finished(future):
            try:
                sub.finish(result=future.result())
            except Exception as exc:  # cancelled future: the loop is closing
                sub.finish(error=f"workflow {workflow_id} ended without a result: {exc!r}")

        run.finished.add_done_callback(finished)

    async def _earlier(self, parent, retry=False):
        """What this block's item ran before a stop: a result, a live run, or None (start it).

        A sub-run resumed here along with its parent is joined while it runs;
        one that has ended gives its result, also when it ended between the
        read and the look at the live runs. On a `retry` of the block only a
        completed one counts: the item failed before, so it runs again (a live
        one, perhaps still being cancelled by the failed try, is waited for first).
        """
        if parent is None:
            return None
        from models.reads import child_run_of
        read = self.read
        row = await read(child_run_of, parent.execution_id, parent.block_id, parent.index)
        if row is not None and row["status"] == "running":
            live = self.runs.get(row["id"])
            if live is not None and not retry:
                return live.result if live.over else live
            if live is not None:
                result = live.result if live.over else await asyncio.shield(live.finished)
                return result if result["status"] == "completed" else None
            row = await read(child_run_of, parent.execution_id, parent.block_id, parent.index)
        if row is None or row["status"] == "running":
            return None     # never started, or not resumed here: run it (at least once)
        if retry and row["status"] != "completed":
            return None
        return {"status": row["status"], "output": row["output"], "error": row["error"]}
