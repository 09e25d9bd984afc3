"""The access log line, with secrets left out.

Query strings are replaced by `?…` (a key sent as `?api_key=` must not be
written down), and a webhook's path token by `…` (it is the credential),
also in a request sent in absolute form (`POST http://host/api/webhooks/…`).
"""

import re

from tornado.log import access_log

_WEBHOOK_PATH = "/api/webhooks/"
_WEBHOOK = re.compile(r"(/api/webhooks/)[^/?]+")


def redacted_path(uri: str) -> str:
    if "?" not in uri and _WEBHOOK_PATH not in uri:
        return uri  # most lines: nothing to hide, no regex
    path, sep, _ = uri.partition("?")
    path = _WEBHOOK.sub(r"\1…", path)
    return path + ("?…" if sep else "")


def log_request(handler):
    """Tornado's `log_function`: status, method, redacted path, client, time."""
    status = handler.get_status()
    if status < 400:
        write = access_log.info
    elif status < 500:
        write = access_log.warning
    else:
        write = access_log.error
    request = handler.request
    write("%d %s %s (%s) %.2fms", status, request.method, redacted_path(request.uri or ""),
          request.remote_ip, 1000.0 * request.request_time())
