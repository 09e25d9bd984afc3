"""The base handler: bodies read in pieces under a limit, JSON in and out, API-key auth,
and errors mapped in one place."""

import asyncio
import concurrent.futures
import functools
import logging
import re

import tornado.iostream
import tornado.web

from models.base import compact_json
from models.reads import key_workspace
from schemas import jsonbody
from schemas.execution import execute_request
from server import errors
from server.errors import PLAIN
from models.errors import (ActorflowError, ExecutionFailed, ExecutionTimeout, NotFound, PayloadTooLarge,
                           StorageUnavailable, Unauthorized, ValidationError)

log = logging.getLogger(__name__)

JSON_TYPE = "application/json; charset=UTF-8"

# A body over its limit is answered 413 at once, then read on and thrown away
# up to this much more, so that a client that sends it all before reading
# still gets its answer (not a reset connection); past that the connection is
# closed. When Content-Length already says more than this, nothing is read.
DRAIN_BYTES = 16 * 1024 * 1024
# Bodies larger than this are parsed, and answers that may be larger encoded, off the IOLoop thread.
INLINE_PARSE_BYTES = 64 * 1024
# A large answer goes out in pieces of this size, one loop turn each (copying megabytes into
# the socket in one callback would hold the loop as long as encoding them).
SEND_PIECE = 256 * 1024
_CONTENT_LENGTH = re.compile(r"[0-9]+")

# CPU work of the door (parsing and checking big bodies), off the IOLoop thread.
_DOOR = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="actorflow-door")


async def off_loop(fn, *args):
    """`fn(*args)` on the door's threads; its result (or exception) handed back to the loop."""
    return await asyncio.get_running_loop().run_in_executor(_DOOR, functools.partial(fn, *args))


def parse_json(raw: bytes):
    """Decode a request body; None when empty. Raises ValidationError (see schemas.jsonbody)."""
    return jsonbody.parse(raw)


def dumps(obj) -> str:
    return compact_json(obj)


def encode(obj) -> bytes:
    """The answer's bytes: compact UTF-8 JSON."""
    return dumps(obj).encode()


def encoded(fn, *args) -> bytes:
    """`fn(*args)` as an answer's bytes, made where it runs (a reader thread), not on the loop."""
    return encode(fn(*args))


def may_be_large(obj, budget=INLINE_PARSE_BYTES) -> bool:
    """Whether `obj` may encode to more than `budget` bytes. Cheap at any size:
    it counts at least 16 bytes a value, so it looks at no more than budget / 16 of them."""
    stack = [obj]
    while stack:
        item = stack.pop()
        budget -= 16
        if isinstance(item, str):
            budget -= len(item)
        elif isinstance(item, (dict, list, tuple)):
            budget -= 16 * len(item)
            if budget < 0:
                return True
            stack.extend(item.keys() if isinstance(item, dict) else item)
            if isinstance(item, dict):
                stack.extend(item.values())
        if budget < 0:
            return True
    return False


def _body_read_first(method):
    """Wrap an HTTP verb: it runs only once the whole body is in and within its limit."""
    @functools.wraps(method)
    def verb(self, *args, **kwargs):
        if not self.end_body():
            return None
        return method(self, *args, **kwargs)
    verb.body_read_first = True
    return verb


@tornado.web.stream_request_body
class BaseHandler(tornado.web.RequestHandler):
    """Subclasses set `error_shape` (PLAIN or CODED) and may turn off `auth_required`.

    Bodies arrive in pieces (`data_received`) and are kept only up to the
    route's limit (`max_body_setting`); a body over it, however large and
    however sent (Content-Length, chunked), is answered 413 in JSON without
    being held in memory. The HTTP verbs run once the body is complete, with
    `self.request.body` set.
    """

    error_shape = PLAIN
    auth_required = True
    max_body_setting = "max_body"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in ("get", "post", "put", "patch", "delete", "head", "options"):
            verb = cls.__dict__.get(name)
            if verb is not None and not getattr(verb, "body_read_first", False):
                setattr(cls, name, _body_read_first(verb))

    def initialize(self, runtime):
        self.runtime = runtime
        self.settings_ = runtime.settings
        self.workspace = None
        self._chunks = []
        self._received = 0
        self._counted = True
        runtime.requests_started()  # so shutdown can wait for answers in flight

    def on_finish(self):
        self._uncount()

    def on_connection_close(self):
        super().on_connection_close()  # ends the wait for a body that will never come
        self._uncount()

    def _uncount(self):
        if getattr(self, "_counted", False):
            self._counted = False
            self.runtime.requests_ended()

    async def prepare(self):
        if self.auth_required:
            self.workspace = await self.authenticate()
        self.check_length()

    def decode_argument(self, value, name=None):
        """Path and query values as text; one holding NUL is 400 (PostgreSQL cannot even look it up)."""
        text = super().decode_argument(value, name)
        if "\x00" in text:
            raise ValidationError(f"{name or 'path segment'} must not contain a NUL character (%00)")
        return text

    # -- the body ------------------------------------------------------------

    @property
    def body_limit(self) -> int:
        return getattr(self.settings_, self.max_body_setting)

    def too_large(self):
        return PayloadTooLarge(f"request body is larger than {self.body_limit} bytes")

    def check_length(self):
        """Before the body: refuse at once one whose Content-Length is far over the limit
        (or over it, from a client waiting for `100 Continue`)."""
        declared = self.request.headers.get("Content-Length")
        if declared is None:
            return
        if not _CONTENT_LENGTH.fullmatch(declared):
            raise ValidationError("Content-Length must be a plain non-negative integer")
        length = int(declared) if len(declared) <= 19 else float("inf")
        if length > self.body_limit and (
                length > self.body_limit + DRAIN_BYTES
                or self.request.headers.get("Expect", "").lower() == "100-continue"):
            raise self.too_large()

    def data_received(self, chunk):
        self._received += len(chunk)
        over = self._received - self.body_limit
        if over <= 0:
            self._chunks.append(chunk)
            return None
        if self._chunks is not None:
            # Over the limit: answer now; the rest is counted, never kept.
            self._chunks = None
            status, body = self.error_answer(self.too_large())
            self.set_status(status)
            self.set_header("Content-Type", JSON_TYPE)
            self.set_header("Content-Length", str(len(body)))
            self.write(body)
            return self._flush_quietly()  # read on only once the answer is out
        if over > DRAIN_BYTES and not self._finished:
            self.finish()  # enough thrown away: hang up
        return None

    async def _flush_quietly(self):
        try:
            await self.flush()
        except tornado.iostream.StreamClosedError:
            pass  # the client left; tornado ends the request

    def end_body(self) -> bool:
        """The whole body is in: make it `request.body`. False when it was already refused."""
        if self._chunks is None:
            if not self._finished:
                self.finish()
            return False
        self.request.body = b"".join(self._chunks)
        self._chunks = []
        return True

    async def execute_body(self):
        """(variables, timeout) of an execute request's body. Raises ValidationError."""
        return execute_request(await self.json_body(), self.settings_.execute_timeout)

    async def json_body(self):
        """The body as strict JSON (None when empty); big bodies are parsed off the loop."""
        raw = self.request.body
        if len(raw) > INLINE_PARSE_BYTES:
            return await off_loop(parse_json, raw)
        return parse_json(raw)

    async def authenticate(self) -> str:
        key = self.request.headers.get("X-API-Key")
        header = self.request.headers.get("Authorization", "")
        if not key and header[:7].lower() == "bearer ":
            key = header[7:].strip()
        if not key:
            raise Unauthorized("missing API key: send Authorization: Bearer <key> or X-API-Key")
        cache = self.runtime.auth_cache
        known, workspace = cache.peek(key)
        if not known:  # a key not seen within the cache's ttl: one read off the loop
            workspace = await cache.read(key, lambda: self.runtime.store.read(key_workspace, key))
        if workspace is None:
            raise Unauthorized("invalid API key")
        return workspace

    async def write_read(self, fn, *args):
        """Answer with `fn(*args)`, read and encoded on a reader thread: the loop only sends bytes."""
        await self.write_json(await self.runtime.store.read(encoded, fn, *args))

    def query_args(self, *names) -> dict:
        """Query values exactly as sent (not stripped), None when absent; the schema judges them."""
        return {name: self.get_query_argument(name, None, strip=False) for name in names}

    async def write_json(self, obj, status=200):
        """Answer `obj` as JSON (bytes: already encoded); one that may be large is encoded
        off the loop thread, and sent in pieces."""
        if isinstance(obj, bytes):
            body = obj
        else:
            body = await off_loop(encode, obj) if may_be_large(obj) else encode(obj)
        self.set_status(status)
        self.set_header("Content-Type", JSON_TYPE)
        sent = 0
        if len(body) > SEND_PIECE:
            self.set_header("Content-Length", str(len(body)))
            while len(body) - sent > SEND_PIECE:
                self.write(body[sent:sent + SEND_PIECE])
                sent += SEND_PIECE
                try:
                    await self.flush()
                except tornado.iostream.StreamClosedError:
                    return  # the client left; tornado ends the request
        self.finish(body[sent:])

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
        status, body = self.error_answer(exc)
        self.set_status(status)
        self.clear_header("Content-Type")
        self.set_header("Content-Type", JSON_TYPE)
        self.finish(body)

    def error_answer(self, exc: ActorflowError):
        """(status, JSON text) for `exc` in this route's shape."""
        return errors.status_of(exc), dumps(errors.error_body(exc, self.error_shape))

    def log_exception(self, typ, value, tb):
        if isinstance(value, ActorflowError) and errors.status_of(value) < 500:
            return
        if isinstance(value, (ExecutionFailed, ExecutionTimeout)):
            return
        if isinstance(value, StorageUnavailable):  # logged where the store refused; no traceback
            log.warning("%s %s: %s", self.request.method, self.request.path, value.message)
            return
        super().log_exception(typ, value, tb)


class NotFoundHandler(BaseHandler):
    """Unknown routes: JSON 404, whatever the method (413 first if the body is over the limit)."""
    auth_required = False

    def _no_route(self, *args):
        raise NotFound(f"no route for {self.request.method} {self.request.path}")

    get = post = put = patch = delete = head = options = _no_route


class HealthHandler(BaseHandler):
    auth_required = False

    async def get(self):
        from server import __version__
        await self.write_json({"ok": True, "version": __version__})
