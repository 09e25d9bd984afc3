"""GET /metrics: Prometheus text format, when metrics are on for this address."""

from models.errors import NotFound
from .base import BaseHandler


class MetricsHandler(BaseHandler):
    """On the API's address only with ACTORFLOW_METRICS=true; always on the metrics address."""
    auth_required = False

    def initialize(self, runtime, always=False):
        super().initialize(runtime)
        self.always = always

    def get(self):
        metrics = getattr(self.runtime, "metrics", None)
        if metrics is None or not (self.always or self.settings_.metrics):
            raise NotFound("metrics are off on this address (set ACTORFLOW_METRICS=true)")
        body, content_type = metrics.exposition()
        self.set_header("Content-Type", content_type)
        self.finish(body)
