"""Prometheus metrics for operators (prometheus_client), off unless asked for.

`ACTORFLOW_METRICS=true` serves GET /metrics on the API's own address;
`ACTORFLOW_METRICS_ADDRESS=host:port` serves it on a separate listener
instead (and turns metrics on). Labels are only bounded, non-secret values:
trigger, status, block type, outcome. Never a workspace, workflow name, id or key.

Cheap by design: the engine is not touched. Run and block numbers come from
the events the loop already receives for every live run (one pass over each
published batch, no lock beyond prometheus_client's own); queue depths and
pool sizes are read only when /metrics is scraped.
"""

import logging

import tornado.httpserver
import tornado.web
import tornado.netutil
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)

PREFIX = "actorflow_"
# Seconds: from a 1 ms block to a 5 min run.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
WEBHOOK_OUTCOMES = {202: "accepted", 200: "completed", 400: "bad_request", 401: "unauthorized",
                    404: "not_found", 409: "refused", 413: "too_large", 429: "throttled",
                    500: "failed", 503: "unavailable", 504: "timeout"}


class Metrics:
    """One server process's metrics, in a registry of its own."""

    def __init__(self, runtime):
        self.registry = registry = CollectorRegistry(auto_describe=True)

        def metric(kind, name, doc, *args, **kw):
            return kind(PREFIX + name, doc, *args, registry=registry, **kw)

        self.runs_started = metric(Counter, "runs_started", "Runs started", ["trigger"])
        self.runs_ended = metric(Counter, "runs_ended", "Runs ended", ["trigger", "status"])
        self.run_seconds = metric(Histogram, "run_duration_seconds", "Run duration", ["trigger"],
                                  buckets=BUCKETS)
        self.runs_in_flight = metric(Gauge, "runs_in_flight", "Runs running in this process")
        self.block_seconds = metric(Histogram, "block_duration_seconds",
                                    "Duration of finished blocks (completed or failed)",
                                    ["block_type", "status"], buckets=BUCKETS)
        self.blocks_in_flight = metric(Gauge, "blocks_in_flight", "Blocks running in this process")
        self.commit_seconds = metric(Histogram, "writer_commit_seconds",
                                     "Time to run and commit one batch of writes", buckets=COMMIT_BUCKETS)
        self.webhook_calls = metric(Counter, "webhook_calls", "Webhook calls answered", ["outcome"])
        self.sse_open = metric(Gauge, "sse_connections", "Server-sent event streams open")
        registry.register(_Polled(runtime.writer, runtime.services.get("sandbox")))

    # -- hooks ------------------------------------------------------------------

    def run_started(self, run, trigger):
        """On the loop, when a run's coordinator is started."""
        run.metric_trigger = trigger
        run.metric_blocks = 0
        self.runs_started.labels(trigger).inc()
        self.runs_in_flight.inc()

    def run_events(self, run, events, result):
        """On the loop, for each published batch of a live run: [(seq, event, text)], end result."""
        running = 0
        for _, event, _ in events:
            kind = event["type"]
            if kind == "block_started":
                running += 1
            elif kind == "block_completed" or kind == "block_failed":
                running -= 1
                took = event.get("duration_ms")
                if took is not None:
                    status = "completed" if kind == "block_completed" else "failed"
                    self.block_seconds.labels(event["block_type"], status).observe(took / 1000)
        if running:
            run.metric_blocks += running
            self.blocks_in_flight.inc(running)
        if result is not None:
            # Blocks still counted as running were cancelled with the run.
            if run.metric_blocks:
                self.blocks_in_flight.dec(run.metric_blocks)
                run.metric_blocks = 0
            self.runs_in_flight.dec()
            self.runs_ended.labels(run.metric_trigger, result["status"]).inc()
            if result.get("duration_ms") is not None:
                self.run_seconds.labels(run.metric_trigger).observe(result["duration_ms"] / 1000)

    def committed(self, seconds):
        """On the writer thread, after each batch."""
        self.commit_seconds.observe(seconds)

    def webhook_answered(self, status):
        self.webhook_calls.labels(WEBHOOK_OUTCOMES.get(status, "other")).inc()

    # -- exposition ------------------------------------------------------------

    def exposition(self):
        """(body, content type) in Prometheus text format."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _Polled:
    """What is read only at scrape time: the writer's queue and the code sandbox pool."""

    def __init__(self, writer, sandbox):
        self.writer = writer
        self.sandbox = sandbox

    def describe(self):
        return []

    def collect(self):
        yield GaugeMetricFamily(PREFIX + "writer_queue_depth", "Writes waiting for the writer",
                                value=self.writer.pending())
        if self.sandbox is None:
            return
        yield GaugeMetricFamily(PREFIX + "sandbox_pool_size", "Warm code processes waiting for a block",
                                value=self.sandbox.idle_count())
        yield GaugeMetricFamily(PREFIX + "sandbox_pool_target", "Warm code processes the pool keeps",
                                value=self.sandbox.size)
        yield CounterMetricFamily(PREFIX + "sandbox_cold_starts", "Code blocks that found no warm "
                                  "process waiting and started their own", value=self.sandbox.cold_starts)
        yield GaugeMetricFamily(PREFIX + "sandbox_running", "Code blocks holding one of the "
                                "ACTORFLOW_CODE_CONCURRENCY slots", value=self.sandbox.running)
        yield GaugeMetricFamily(PREFIX + "sandbox_waiting", "Code blocks waiting for a slot now",
                                value=self.sandbox.waiting)
        yield CounterMetricFamily(PREFIX + "sandbox_waits", "Code blocks that had to wait for a slot",
                                  value=self.sandbox.slot_waits)


def listen(address, runtime):
    """Serve /metrics alone on `host:port` (a separate listener); returns the HTTPServer."""
    from .handlers.base import NotFoundHandler
    from .handlers.metrics import MetricsHandler
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port)
    except ValueError:
        raise SystemExit(f"ACTORFLOW_METRICS_ADDRESS={address!r}: give host:port, e.g. 127.0.0.1:9464")
    deps = {"runtime": runtime}
    app = tornado.web.Application([(r"/metrics", MetricsHandler, dict(deps, always=True))],
                                  default_handler_class=NotFoundHandler, default_handler_args=deps)
    try:
        sockets = tornado.netutil.bind_sockets(port, host)
    except OSError as exc:
        raise SystemExit(f"ACTORFLOW_METRICS_ADDRESS={address}: cannot listen ({exc.strerror}); "
                         "choose a free port")
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    server.metrics_port = sockets[0].getsockname()[1]
    log.info("metrics on http://%s:%d/metrics", host, server.metrics_port)
    return server
