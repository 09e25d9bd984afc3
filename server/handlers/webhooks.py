"""The webhook trigger (filled in by the webhook issue)."""

from .base import BaseHandler


class WebhookHandler(BaseHandler):
    auth_required = False
