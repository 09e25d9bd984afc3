"""The running server's parts, built once from Settings and passed to handlers."""

import asyncio
import logging
import time

import pykka

from actors.blocks import default_registry
from actors.coordinator import Engine
from actors.http_slots import HttpSlots
from actors.netpolicy import NetPolicy
from actors.sandbox import SandboxPool
from actors.timers import Timers
from models import processes
from models.base import new_id
from models.db import migrate, open_database
from models.store import Readers, Store
from .auth import AuthCache
from .bridge import Bridge
from .followers import Followers
from .idle_work import IdleWork
from .ratelimit import FailureLimiter
from .resume import Recovery, claim_at_start
from .execution_start import RunStarter
from .memory import Housekeeper
from .runs import Runs
from .scheduler import Scheduler
from .subruns import SubRuns
from .webhook_lookup import WebhookLookup

log = logging.getLogger(__name__)


class Runtime:
    """Database, writer, timers, engine and live runs for one server process.

    Built in dependency order, each part given only what it uses. The one
    loop in the graph is deliberate: a block may start a run (a workflow, map
    or agent block), so the `subrun` service joins the engine's services once
    the runs it starts exist.
    """

    def __init__(self, settings, io_loop, registry=None, cpus=None):
        from models.writer import Writer
        self.settings = settings
        self.registry = registry or default_registry()
        self.db = open_database(settings.database_url, settings.db_busy_timeout)
        migrate()
        self.owner = new_id()
        processes.register(self.owner)
        # Runs of servers that stopped before this one started: claimed now, started once we listen.
        self._orphans = claim_at_start(self.db, self.owner, self.stale_after(), settings.resume)
        self.bridge = Bridge(io_loop)
        self.idle_work = IdleWork(io_loop.asyncio_loop)
        self.writer = Writer(self.db, self.bridge)
        self.writer.start()
        self.readers = Readers(self.db, settings.db_readers)
        self.readers.start()
        self.store = Store(self.writer, self.readers)
        self.followers = Followers(self.db, self.bridge, settings.reattach_poll)
        self.followers.start()
        self.timers = Timers()
        self.auth_cache = AuthCache()
        self.webhook_limiter = FailureLimiter(settings.webhook_failures_per_minute, window=60.0)
        self.services = {}
        self.services["netpolicy"] = NetPolicy.from_settings(settings)
        self.services["http_slots"] = HttpSlots(settings.http_per_workspace, settings.http_per_run)
        self.services["sandbox"] = SandboxPool(
            size=settings.sandbox_pool, memory_mb=settings.code_memory_mb,
            cpu_seconds=settings.code_cpu_seconds, concurrency=settings.code_concurrency,
            network=settings.code_network, max_result_bytes=settings.max_value_bytes, cpus=cpus)
        self.engine = Engine(registry=self.registry, writer=self.writer, timers=self.timers,
                             settings=settings, owner=self.owner, services=self.services,
                             after_published=self._after_published)
        self.runs = Runs(self.engine, self.bridge, settings.chunk_retention)
        self.housekeeper = Housekeeper(io_loop, lambda: not self.runs.live)
        self.runs.on_ended = self.housekeeper.run_ended
        self.runs.on_idle = self.housekeeper.idle
        self.recovery = Recovery(self.writer, self.bridge, self.runs, self.owner, self.stale_after(),
                                 settings.resume)
        self.starter = RunStarter(self.store, self.runs)
        self.webhooks = WebhookLookup(self.store)
        self.services["subrun"] = SubRuns(self.bridge, self.starter, self.runs, self.store.read,
                                          settings.max_depth, settings.execute_timeout)
        self.metrics = self.metrics_server = None
        if settings.metrics or settings.metrics_address:
            self._start_metrics()
        self._beat = self.timers.call_later(settings.heartbeat_interval, self._heartbeat)
        self.scheduler = Scheduler(self.writer, self.starter, self.runs, settings.execute_timeout,
                                   settings.schedule_interval)
        self.scheduler.start()
        self.closed = False
        self.in_flight = 0

    def _after_published(self, fn):
        """From any thread: `fn()` on the loop after what was published before it, and after the
        loop has acted on that (a stream's write, a 202), once it has nothing more urgent to do:
        other requests' answers go first (see idle_work)."""
        self.bridge.call(self.idle_work.add, fn)

    def listening_on(self, sockets):
        """Tell the engine where this server listens (once, after binding): http blocks may not call it."""
        own = [sock.getsockname()[:2] for sock in sockets]
        self.services["netpolicy"] = self.services["netpolicy"].listening_on(own)
        orphans, self._orphans = self._orphans, []
        self.recovery.start(orphans)

    def _start_metrics(self):
        from . import metrics
        self.metrics = metrics.Metrics(self)
        self.runs.observer = self.metrics
        self.writer.on_commit = self.metrics.committed
        if self.settings.metrics_address:
            self.metrics_server = metrics.listen(self.settings.metrics_address, self)

    def stale_after(self):
        return max(3 * self.settings.heartbeat_interval, 15.0)

    def _heartbeat(self):
        # On the timer thread: queue the writes, schedule the next beat.
        self.writer.submit(processes.heartbeat, (self.owner,))
        self.recovery.check()
        self._beat = self.timers.call_later(self.settings.heartbeat_interval, self._heartbeat)

    def requests_started(self):
        self.in_flight += 1

    def requests_ended(self):
        self.in_flight -= 1

    async def shutdown(self, grace=None):
        """Finish or fail live runs, let their answers go out, then close everything.

        Call on the loop, after the HTTP server stopped accepting connections.
        """
        if self.closed:
            return
        await self.runs.shutdown(self.settings.shutdown_grace if grace is None else grace)
        deadline = time.monotonic() + 5
        while self.in_flight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self.close()

    def close(self):
        if self.closed:
            return
        self.closed = True
        self.scheduler.stop()
        self.housekeeper.stop()
        if self.metrics_server is not None:
            self.metrics_server.stop()
        self._beat.cancel()
        self.timers.stop()
        sandbox = self.services.get("sandbox")
        if sandbox is not None:
            sandbox.close()
        self.followers.stop()
        self.writer.submit(processes.unregister, (self.owner,))
        self.writer.stop()
        self.readers.stop()
        for ref in pykka.ActorRegistry.get_all():
            ref.stop(block=False)
        self.db.close()
