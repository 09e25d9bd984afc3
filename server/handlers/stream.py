"""SSE: /execute/stream, and re-attaching to a run (live or finished).

POST /api/workflows/{id}/execute/stream: the key and the body's size are
checked first (401 and 413, JSON); from then on the answer is 200
text/event-stream and every error is an `error` event. Errors before a run
exists (unknown workflow, validation) are the stream's only event, with id 0.

GET /api/workflows/{id}/executions/{eid}/stream: an unknown workflow or
execution, or a bad Last-Event-ID, is answered as plain JSON (404/400) before
any stream starts; then the run's events are replayed after Last-Event-ID
(header, else `?last_event_id=`) and followed live until the end.
"""

import logging
import re

from models import reads
from models.errors import ActorflowError, ValidationError
from server.errors import CODED
from server.execution_start import request_depth
from server.sse import RunStream
from .base import BaseHandler

log = logging.getLogger(__name__)

TRIGGER = "stream"


class _StreamHandler(BaseHandler):
    sse = None

    def open_stream(self) -> RunStream:
        self.sse = RunStream(self, self.runtime.runs, self.settings_.keepalive_interval,
                             self.runtime.store, self.runtime.followers)
        self.sse.start()
        if self.runtime.metrics is not None:
            self.runtime.metrics.sse_open.inc()
        return self.sse

    def on_connection_close(self):
        # The client left: drop our listener and queue now; the run goes on.
        super().on_connection_close()
        if self.sse is not None:
            self.sse.close()
        self._stream_gone()

    def on_finish(self):
        super().on_finish()
        self._stream_gone()

    def _stream_gone(self):
        if self.sse is not None and self.runtime.metrics is not None and not getattr(self, "_gone", False):
            self._gone = True
            self.runtime.metrics.sse_open.dec()
        # The stream points back at us: let go, so both are freed as soon as the request is.
        self.sse = None


class ExecuteStreamHandler(_StreamHandler):
    error_shape = CODED     # only for the 409 below: later errors are events
    depth = 0

    async def prepare(self):
        # Only the key, the depth and the body's size are checked before the
        # stream; the rest answers as an event. Too deep is a 409 and too large
        # a 413, as on /execute, so that a calling http block fails at once.
        self.workspace = await self.authenticate()
        self.depth = request_depth(self.request.headers, self.settings_.max_depth)
        self.check_length()

    async def post(self, workflow_id):
        sse = self.open_stream()
        try:
            run, _ = await self.runtime.starter.start_request(self.workspace, workflow_id, self.execute_body,
                                                              TRIGGER, self.depth, len(self.request.body))
        except ActorflowError as exc:
            extra = {k: exc.extra[k] for k in ("details", "details_omitted") if k in exc.extra}
            sse.fail(exc.message, **extra)
        except Exception:
            log.exception("could not start a streamed run of workflow %s", workflow_id,
                          extra={"workflow_id": workflow_id})
            sse.fail("internal server error")
        else:
            # Replays what the run has published so far (its start, when it started
            # from memory), then follows it live.
            sse.follow(run)
        await sse.serve()


class ReattachHandler(_StreamHandler):
    async def get(self, workflow_id, execution_id):
        read = self.runtime.store.read
        wf_id = await read(reads.workflow_exists, self.workspace, workflow_id)
        after = self.last_event_id()
        run = self.runtime.runs.get(execution_id)
        if run is not None and run.workflow_id == wf_id and after + 1 >= run.first_seq:
            # Live, or ended within the chunk retention: replay and subscribe in one step.
            # (A resumed run's earlier events are only on disk: read those first, below.)
            self.open_stream().follow(run, after)
        else:
            _, eid, _ = await read(reads.execution_of, self.workspace, workflow_id, execution_id)
            self.open_stream().follow_stored(eid, after)
        await self.sse.serve()

    def last_event_id(self) -> int:
        raw = self.request.headers.get("Last-Event-ID")
        name = "Last-Event-ID"
        if raw is None or not raw.strip():
            raw = self.get_query_argument("last_event_id", None)
            name = "last_event_id"
        if raw is None or not raw.strip():
            return 0
        raw = raw.strip()
        if not re.fullmatch(r"[0-9]{1,18}", raw):
            raise ValidationError(f"{name} must be a non-negative integer")
        return int(raw)
