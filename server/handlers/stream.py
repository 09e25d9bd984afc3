"""SSE: /execute/stream and re-attaching to a run (filled in by the streaming issue)."""

from .base import BaseHandler


class ExecuteStreamHandler(BaseHandler):
    pass


class ReattachHandler(BaseHandler):
    pass
