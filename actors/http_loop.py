"""One asyncio loop on a thread of its own, where outgoing HTTP waits.

An http block's request spends nearly all its life waiting on the other
end. On a thread each, thousands of them cost a thread's stack and state
apiece (about 32 KB of RSS per request measured, against 7 KB for the same
request waiting here). Only the I/O runs on this loop; what takes CPU
(rendering, parsing a large body, storing the output) stays on block
threads, so one big answer does not hold up every other request.
"""

import asyncio
import functools
import threading


class HttpLoop:
    """The loop and its thread. `start`, `submit` and `run` may be called from any thread."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="actorflow-http", daemon=True)
        self._thread.start()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self, coro, on_done):
        """Run `coro` on the loop as a task; `on_done(task)` is called on the loop when it ends.

        Lighter than `submit`: no concurrent.futures.Future, whose Condition
        (a lock and a deque) was about 2 KB of each waiting request.
        """
        self.loop.call_soon_threadsafe(_spawn, self.loop, coro, on_done)

    def submit(self, coro):
        """Run `coro` on the loop: a concurrent.futures.Future of its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro):
        """Run `coro` on the loop and wait for its result here. Never call it on the loop's own thread."""
        return self.submit(coro).result()


def _spawn(loop, coro, on_done):
    loop.create_task(coro).add_done_callback(functools.partial(_ended, on_done))


def _ended(on_done, task):
    if not task.cancelled():
        task.exception()  # retrieved here: whoever takes the result may be gone by then
    on_done(task)


_shared = None
_shared_lock = threading.Lock()


def http_loop() -> HttpLoop:
    """The process's one HttpLoop, started on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = HttpLoop()
        return _shared
