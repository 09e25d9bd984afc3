"""Server-sent events for one run on one connection: a bounded queue and its writer.

Everything here runs on the IOLoop thread. The run's listener (`push`) only
enqueues; one writer coroutine (`serve`) writes and awaits each flush, so a
reader that stops reading stalls its own writer and nothing else. What a
stalled connection can hold is bounded:

- the live queue: at most MAX_QUEUED_EVENTS events or about MAX_QUEUED_BYTES;
  past that the connection is closed (that client only; it can re-attach with
  Last-Event-ID, since every event it did get carried its id);
- one flushed batch (at most about BATCH_BYTES) in the socket's write buffer;
- a flush that makes no progress for `stall` seconds closes the connection.

Replayed events (the run's in-memory buffer, or pages of stored events) are
references to data already held, written page by page as the reader takes them.
"""

import asyncio
import json
import logging
import time

from actors.events import TERMINAL, end_event
from models.base import compact_json
from models.reads import stored_poll

log = logging.getLogger(__name__)

MAX_QUEUED_EVENTS = 2000
MAX_QUEUED_BYTES = 4 * 1024 * 1024
BATCH_BYTES = 256 * 1024
DB_PAGE = 500
MIN_STALL = 2.0           # a flush stuck this long (or 4 keep-alive intervals) ends the stream
STALL_FACTOR = 4

HEADERS = (("Content-Type", "text/event-stream"),
           ("Cache-Control", "no-cache"),
           ("X-Accel-Buffering", "no"))
KEEPALIVE = ": keep-alive\n\n"


def frame(seq, text):
    return f"id: {seq}\ndata: {text}\n\n"


def event_type(text):
    """The type of a stored event's JSON text (the coordinator writes `type` first)."""
    prefix = '{"type":"'
    if text.startswith(prefix):
        end = text.find('"', len(prefix))
        if end > 0:
            return text[len(prefix):end]
    try:
        return json.loads(text).get("type")
    except (ValueError, AttributeError):
        return None


def closing_event(last, end):
    """(seq, text) of an end event for a run that ended without storing one, else None.

    `last` is its last stored (seq, text), `end` its stored row (see
    models.reads.stored_poll). A run whose server died is marked failed by the
    next server without an `error` event; its stream still ends with one.
    """
    if last is not None and event_type(last[1]) in TERMINAL:
        return None
    if end is None or end[1] == "running":
        return None
    seq = (last[0] if last is not None else 0) + 1
    return seq, _dumps(end_event(*end))


class Wake:
    """A flag the writer waits on, with a timeout: set, clear, is_set, wait.

    Like asyncio.Event, but `wait(timeout)` needs no task (asyncio.wait_for
    makes one per wait): the writer runs on the loop's next turn after `set`.
    Loop thread only.
    """

    def __init__(self):
        self._set = False
        self._waiter = None

    def set(self):
        self._set = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    def clear(self):
        self._set = False

    def is_set(self):
        return self._set

    async def wait(self, timeout):
        """True once set, False after `timeout` seconds."""
        if self._set:
            return True
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        timer = loop.call_later(timeout, _expire, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            self._waiter = None


def _expire(waiter):
    if not waiter.done():
        waiter.set_result(False)


class RunStream:
    """One SSE response: replay, then follow a run live (or from the database), then end."""

    def __init__(self, handler, runs, keepalive, store, followers):
        self.handler = handler
        self.runs = runs
        self.store = store  # reads of a run followed from the database
        self.followers = followers  # ... and what wakes us when its events commit (server.followers)
        self.keepalive = max(0.05, float(keepalive))
        self.stall = max(MIN_STALL, STALL_FACTOR * self.keepalive)
        # (seq, text, terminal, size) to write, in order: replayed ones (size 0: already in
        # memory) always come before live ones, which are bounded. A list, taken from a batch
        # at a time: an empty deque is 0.7 KB, and thousands of streams may wait at once.
        self.pending = []
        self.queued = 0          # live events pending ...
        self.queued_bytes = 0    # ... and their size
        self.last_seq = 0        # highest seq taken in (dedupes live batches)
        self.execution_id = None
        self.run = None          # the LiveRun we listen to, while we do
        self.poll = False        # follow the stored events (run not live in this process)
        self.complete = False    # nothing more will be taken in
        self.closed = False      # connection gone or dropped: write nothing more
        self.dropped = False
        self.wake = Wake()
        self.last_write = time.monotonic()
        self.parked = False      # the writer waits for news, all before it written and flushed
        self.sent = None         # (flush future, last) of what push() wrote, for the writer to see through

    # -- what to send (all synchronous, on the loop) --------------------------

    def start(self):
        self.handler.set_status(200)
        for name, value in HEADERS:
            self.handler.set_header(name, value)
        # Every event must leave at once. Tornado keeps Nagle's algorithm on until a
        # response finishes, so an event written just after another would wait for the
        # client's (delayed) acknowledgement of the first. Tornado turns it off again
        # when this response finishes, for the connection's next request.
        stream = getattr(self.handler.request.connection, "stream", None)
        if stream is not None:
            stream.set_nodelay(True)

    def fail(self, message, **extra):
        """The stream's only event: an error before any run exists (id 0)."""
        event = {"type": "error", "error": message}
        event.update(extra)
        self.pending.append((0, _dumps(event), True, 0))
        self.complete = True

    def follow(self, run, after=0):
        """Replay `run`'s buffered events after `after`, then its live ones.

        Copying the buffer and subscribing happen in one synchronous step on
        the loop, so no event is missed or repeated.
        """
        self.execution_id = run.execution_id
        self.last_seq = max(self.last_seq, after)
        for seq, event, text in run.events:
            if seq > self.last_seq:
                self.pending.append((seq, text, event["type"] in TERMINAL, 0))
                self.last_seq = seq
        if run.over or (self.pending and self.pending[-1][2]):
            self.complete = True
            return
        self.run = run
        run.listeners.add(self.push)

    def follow_stored(self, execution_id, after=0):
        """Replay the stored events (no chunks) and follow new ones until the run ends."""
        self.execution_id = execution_id
        self.last_seq = max(self.last_seq, after)
        self.poll = True
        self.followers.add(execution_id, self.wake.set)

    def push(self, batch):
        """The run's listener: take in a batch of (seq, event, text). Never writes."""
        if self.closed or self.complete:
            return
        for seq, event, text in batch:
            if seq <= self.last_seq:
                continue
            size = len(text) + 32
            if self.queued and (self.queued >= MAX_QUEUED_EVENTS
                                or self.queued_bytes + size > MAX_QUEUED_BYTES):
                self.drop(f"client too slow: more than {self.queued} events "
                          f"({self.queued_bytes} bytes) waiting")
                return
            terminal = event["type"] in TERMINAL
            self.pending.append((seq, text, terminal, size))
            self.queued += 1
            self.queued_bytes += size
            self.last_seq = seq
            if terminal:
                self.complete = True
                self._unsubscribe()
                break
        if self.parked:
            self._write_now()
        self.wake.set()

    def _write_now(self):
        """Write what came to a writer waiting for it, now rather than on its next turn
        of the loop (a token's way to the client is a loop turn shorter); the writer
        then only waits for the flush, as after its own writes."""
        self.parked = False  # news before the writer wakes only queues
        if self.closed or self._stream_closed():
            return
        text, last = self._take()
        if text:
            self.handler.write(text)
            future = self.handler.flush()
            future.add_done_callback(_quietly)  # seen, even if the connection closes first
            self.sent = (future, last)

    # -- ending ---------------------------------------------------------------

    def close(self):
        """The connection is gone: let go of the run and of what was queued, at once."""
        if self.closed:
            return
        self.closed = True
        self._unsubscribe()
        self.pending.clear()
        self.queued = self.queued_bytes = 0
        self.wake.set()

    def drop(self, reason):
        """End this client's stream now (it is not reading); the run goes on."""
        if self.closed:
            return
        log.warning("closing event stream of execution %s: %s", self.execution_id, reason,
                    extra={"execution_id": self.execution_id})
        self.dropped = True
        self.close()
        connection = self.handler.request.connection
        stream = getattr(connection, "stream", None)
        if stream is not None and not stream.closed():
            stream.close()

    def _unsubscribe(self):
        if self.run is not None:
            self.run.listeners.discard(self.push)  # an equal bound method
            self.run = None
        self._unfollow()

    def _unfollow(self):
        if self.poll:
            self.poll = False
            self.followers.discard(self.execution_id, self.wake.set)

    def _stream_closed(self):
        connection = self.handler.request.connection
        stream = getattr(connection, "stream", None)
        return stream is not None and stream.closed()

    # -- the writer -----------------------------------------------------------

    async def serve(self):
        """Write until the run's end (or the client's); then finish the response."""
        try:
            await self._serve()
        except Exception:
            log.exception("event stream of execution %s failed", self.execution_id,
                          extra={"execution_id": self.execution_id})
            self.drop("internal error")
        finally:
            self._unsubscribe()
        if not self.closed and not self._stream_closed() and not self.handler._finished:
            self.handler.finish()

    async def _serve(self):
        headers = True  # sent at once, with whatever is ready already (one write, not two)
        while not self.closed:
            if self.sent is not None:
                (future, last), self.sent = self.sent, None
                if not await self._flushed(future) or last:
                    return
                continue
            text, last = self._take()
            if text or headers:
                headers = False
                if text:
                    self.handler.write(text)
                if not await self._flush() or last:
                    return
                continue
            if self.poll:
                self.wake.clear()  # before the read: a wake-up during it means read again
                if await self._poll_once():
                    continue
                if self.complete:
                    return
                await self._quiet(self.followers.poll_interval(), clear=False)
                continue
            if self.complete:
                return
            await self._quiet(self.keepalive)

    def _take(self):
        """Frames to write next (replay first, then live), at most about BATCH_BYTES."""
        parts, size, last = [], 0, False
        pending, taken = self.pending, 0
        while taken < len(pending) and size < BATCH_BYTES and not last:
            seq, text, last, queued = pending[taken]
            taken += 1
            if queued:
                self.queued -= 1
                self.queued_bytes -= queued
            parts.append(frame(seq, text))
            size += len(text)
        del pending[:taken]
        return "".join(parts), last

    async def _poll_once(self):
        """Take the next stored events in; False when nothing new came (the caller waits)."""
        rows, status, last, end = await self.store.read(stored_poll, self.execution_id, self.last_seq,
                                                        DB_PAGE)
        if not rows:
            run = self.runs.get(self.execution_id)
            if run is not None:
                # The run is live here after all (e.g. resumed): follow it from memory.
                self._unfollow()
                self.follow(run, self.last_seq)
                return True
            if status == "running":
                return False  # owned by another process, or not yet written: wait, then look again
            self.complete = True
            closing = closing_event(last, end)
            if closing is None or closing[0] <= self.last_seq:
                return False
            rows = [closing]
        for seq, text in rows:
            terminal = event_type(text) in TERMINAL
            self.pending.append((seq, text, terminal, 0))
            self.last_seq = seq
            if terminal:
                self.complete = True
                break
        return True

    async def _quiet(self, wait, clear=True):
        """Wait for events (or the close), sending a keep-alive comment when it is due."""
        due = self.keepalive - (time.monotonic() - self.last_write)
        if due <= 0:
            self.handler.write(KEEPALIVE)
            await self._flush()
            return
        if clear:
            self.wake.clear()
        self.parked = not self.poll
        try:
            await self.wake.wait(min(wait, due))
        finally:
            self.parked = False

    async def _flush(self):
        """Flush what was written; False once the connection is gone or dropped."""
        if self.closed or self._stream_closed():
            self.close()
            return False
        return await self._flushed(self.handler.flush())

    async def _flushed(self, future):
        """Wait for a flush; False once the connection is gone or dropped."""
        if not future.done():
            done, _ = await asyncio.wait([future], timeout=self.stall)
            if not done:
                future.add_done_callback(_quietly)
                self.drop(f"client has not read for {self.stall:g}s")
                return False
        if future.exception() is not None or self._stream_closed():
            self.close()
            return False
        self.last_write = time.monotonic()
        return not self.closed


def _dumps(event):
    return compact_json(event)


def _quietly(future):
    if not future.cancelled():
        future.exception()
