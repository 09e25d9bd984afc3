"""The base handler: JSON in and out, API-key auth, and errors mapped in one place."""

import json
import logging

import tornado.web

from models.workspace import workspace_for_key
from server import errors
from server.errors import PLAIN
from models.errors import (ActorflowError, ExecutionFailed, ExecutionTimeout, NotFound, PayloadTooLarge,
                           Unauthorized, ValidationError)

log = logging.getLogger(__name__)

JSON_TYPE = "application/json; charset=UTF-8"


def _no_constants(name):
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes):
    """Decode a request body; None when empty. Raises ValidationError when malformed."""
    if not raw or not raw.strip():
        return None
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValidationError(f"request body is not valid JSON: {exc}")


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class BaseHandler(tornado.web.RequestHandler):
    """Subclasses set `error_shape` (PLAIN or CODED) and may turn off `auth_required`."""

    error_shape = PLAIN
    auth_required = True
    max_body_setting = "max_body"

    def initialize(self, runtime):
        self.runtime = runtime
        self.settings_ = runtime.settings
        self.workspace = None
        self._counted = True
        runtime.requests_started()  # so shutdown can wait for answers in flight

    def on_finish(self):
        self._uncount()

    def on_connection_close(self):
        self._uncount()

    def _uncount(self):
        if getattr(self, "_counted", False):
            self._counted = False
            self.runtime.requests_ended()

    def prepare(self):
        if self.auth_required:
            self.workspace = self.authenticate()
        limit = getattr(self.settings_, self.max_body_setting)
        if len(self.request.body) > limit:
            raise PayloadTooLarge(f"request body is larger than {limit} bytes")

    def authenticate(self) -> str:
        key = self.request.headers.get("X-API-Key")
        header = self.request.headers.get("Authorization", "")
        if not key and header[:7].lower() == "bearer ":
            key = header[7:].strip()
        if not key:
            raise Unauthorized("missing API key: send Authorization: Bearer <key> or X-API-Key")
        workspace = self.runtime.auth_cache.get(key, workspace_for_key)
        if workspace is None:
            raise Unauthorized("invalid API key")
        return workspace

    def json_body(self):
        return parse_json(self.request.body)

    def write_json(self, obj, status=200):
        self.set_status(status)
        self.set_header("Content-Type", JSON_TYPE)
        self.finish(dumps(obj))

    def public_url(self):
        return self.settings_.public_url or f"{self.request.protocol}://{self.request.host}"

    # -- errors: the one place exceptions become answers ---------------------

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if not isinstance(exc, ActorflowError):
            if isinstance(exc, tornado.web.HTTPError):
                exc = errors.from_status(exc.status_code, exc.log_message)
            else:
                exc = errors.from_status(status_code, None if status_code != 500 else "internal server error")
        self.set_status(errors.status_of(exc))
        self.clear_header("Content-Type")
        self.set_header("Content-Type", JSON_TYPE)
        self.finish(dumps(errors.error_body(exc, self.error_shape)))

    def log_exception(self, typ, value, tb):
        if isinstance(value, ActorflowError) and errors.status_of(value) < 500:
            return
        if isinstance(value, (ExecutionFailed, ExecutionTimeout)):
            return
        super().log_exception(typ, value, tb)


class NotFoundHandler(BaseHandler):
    """Unknown routes: JSON 404, whatever the method."""
    auth_required = False

    def prepare(self):
        raise NotFound(f"no route for {self.request.method} {self.request.path}")


class HealthHandler(BaseHandler):
    auth_required = False

    def get(self):
        from server import __version__
        self.write_json({"ok": True, "version": __version__})
