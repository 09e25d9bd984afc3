"""Webhook ids seen lately, so a call to a known webhook needs no read before it takes the arm.

A webhook id names one block of one workflow for life, with one secret (the
server issues both and keeps them when the graph is saved again). So an entry
goes stale only when the webhook is removed or its workflow's graph is saved
again (a new version), and a call that trusts it is checked where that
matters: taking the arm names the graph version (a stale one takes nothing,
and the call looks again), and a call about to be refused looks again first,
so a removed webhook still answers 404 before any other check.
"""

from models import workflow as wf_model


class WebhookLookup:
    """Loop thread only; reads go to the store's readers."""

    def __init__(self, store, size=4096):
        self._store = store
        self._size = size
        self._entries = {}

    def cached(self, webhook_id):
        """The WebhookRef last read for this id, or None."""
        return self._entries.get(webhook_id)

    async def fresh(self, webhook_id):
        """The WebhookRef as stored now (kept for the next call), or None when there is no such webhook."""
        hook = await self._store.read(wf_model.find_webhook, webhook_id)
        if hook is None:
            self._entries.pop(webhook_id, None)
            return None
        if len(self._entries) >= self._size and webhook_id not in self._entries:
            self._entries.pop(next(iter(self._entries)))
        self._entries[webhook_id] = hook
        return hook
