"""The webhook trigger: `POST /api/webhooks/{webhook_id}`, authenticated by the block's secret.

Checks, in the contract's order: unknown webhook id 404, body too large 413,
bad or missing secret 401 (429 once a webhook id has had too many failures
within a minute), then the arm: not deployed, not armed, expired or already
used 409. Only the last step changes anything: one writer job (`take_arm`)
whose conditional UPDATE picks the single accepted call, across threads and
processes, and which stores the run's row in the same transaction. So the
202 follows that one commit, and a store that refuses the run keeps the arm.
A webhook called before is not read again first (server/webhook_lookup.py).
"""

import hashlib
import hmac
import logging
import math

import tornado.web

from models import workflow as wf_model
from models.base import utcnow
from server import errors
from models.errors import (ActorflowError, Conflict, ExecutionFailed, ExecutionTimeout, NotFound,
                           ShuttingDown, StorageUnavailable, TooManyRequests, Unauthorized,
                           ValidationError)
from server.errors import CODED, PLAIN
from actors.coordinator import first_writes
from actors.persist import fail_unstarted
from server.execution_start import request_depth, sync_answer
from .base import BaseHandler, parse_json
from .executions import wait_for_end

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Webhook-Secret"
SIGNATURE_HEADER = "X-Webhook-Signature"
# Never passed on to the run (nor anywhere else).
HIDDEN_HEADERS = frozenset({"x-webhook-secret", "x-webhook-signature"})

# Calls that find the graph saved between their lookup and the arm plan again, this often.
ARM_TRIES = 3
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "")


class WebhookHandler(BaseHandler):
    auth_required = False

    found = None     # the webhook's WebhookRef
    looked = False   # `found` was read for this call, not taken from the lookup's cache

    async def prepare(self):
        # No API key here, and the body limit comes after the webhook id:
        # 404 comes before 413, which comes before 401.
        if self.request.method == "POST":
            # A known webhook needs no read, unless the body may be refused for its size.
            if self._declared_fits():
                self.found = self.runtime.webhooks.cached(self.path_args[0])
            if self.found is None:
                await self.look_again()
        self.check_length()

    def _declared_fits(self) -> bool:
        declared = self.request.headers.get("Content-Length", "")
        return declared.isdigit() and len(declared) < 19 and int(declared) <= self.body_limit

    async def look_again(self):
        """Read the webhook as stored now; NotFound when it is gone (or its block now elsewhere)."""
        hook = await self.runtime.webhooks.fresh(self.path_args[0])
        if hook is None or (self.found is not None and hook.pk != self.found.pk):
            raise NotFound("webhook not found")
        self.found, self.looked = hook, True
        return hook

    def on_finish(self):
        super().on_finish()
        if self.runtime.metrics is not None:
            self.runtime.metrics.webhook_answered(self.get_status())

    async def post(self, webhook_id):
        try:
            accepted = await self._accept(webhook_id)
        except Exception:
            if not self.looked:
                await self.look_again()  # a webhook removed since it was cached is a 404 first
            raise
        if accepted is None:
            return  # answered 429
        plan, wait = accepted
        timeout = self.settings_.execute_timeout
        if not wait:
            # Stored, so accepted: the answer goes out before the run's threads start.
            await self.write_json({"execution_id": plan.execution_id, "status": "running"}, 202)
            self._start(plan)
            return
        self.error_shape = CODED  # answers like /execute from here on
        run = self._start(plan)
        await wait_for_end(run, timeout)
        status, answer = sync_answer(run, run.result)
        await self.write_json(answer, status)

    async def _accept(self, webhook_id):
        """Check the call and take the arm, storing its run: (the run's plan, wait), None once
        answered 429, or raise."""
        hook = self.found
        if not authentic(self.request, hook.secret):
            if not self.looked:
                await self.look_again()
            verdict = self.runtime.webhook_limiter.fail(webhook_id)
            if verdict.throttled:
                await self._too_many(webhook_id, verdict)
                return None
            raise Unauthorized("missing or invalid webhook secret: send X-Webhook-Secret, "
                               "or X-Webhook-Signature: sha256=<HMAC-SHA256 of the body>")

        # Authenticated from here on. Nothing below uses up the arm until it is consumed.
        wait = wait_flag(self.query_args("wait")["wait"])
        depth = request_depth(self.request.headers, self.settings_.max_depth)  # before the arm is used
        payload = trigger_payload(self.request)
        if not self.runtime.runs.accepting:
            raise ShuttingDown("server is shutting down")

        body = payload["body"]
        variables = body if isinstance(body, dict) else {}
        timeout = self.settings_.execute_timeout
        for _ in range(ARM_TRIES):
            plan = await self.runtime.starter.plan(hook, variables, "webhook", timeout,
                                                   webhook_block=hook.block_id, trigger_payload=payload,
                                                   depth=depth, start_stored=True)
            ops, _ = first_writes(plan, self.runtime.owner)
            # The arm and the run's row commit together, or neither does (503, arm kept).
            if await self.runtime.writer.call(wf_model.take_arm, hook.pk, hook.version, ops):
                break
            now = await self.look_again()  # NotFound when deleted, or its block removed, meanwhile
            if now.version == hook.version or not wf_model.armed(now):
                raise Conflict(why_not_armed((now.deployed, now.armed_until)))
            hook = now  # the graph was saved meanwhile: the run starts from the new one
        else:
            raise Conflict("the workflow's graph kept changing during the call: call again")
        return plan, wait

    def _start(self, plan):
        """Start the stored run; one that cannot start ends `failed` (it exists, so it must end)."""
        try:
            return self.runtime.runs.start(plan)
        except Exception:
            fail_unstarted(self.runtime.writer, plan.execution_id, "internal error: the run could not start")
            raise

    async def _too_many(self, webhook_id, verdict):
        if verdict.first:
            log.warning("webhook %s: more than %d failed secret attempts within a minute "
                        "(latest from %s); answering 429", webhook_id,
                        self.settings_.webhook_failures_per_minute, self.request.remote_ip)
        exc = TooManyRequests("too many failed attempts for this webhook; try again later")
        self.set_header("Retry-After", str(int(math.ceil(verdict.retry_after))))
        await self.write_json(errors.error_body(exc, PLAIN), errors.status_of(exc))

    def log_exception(self, typ, value, tb):
        # Never tornado's default, which prints the request; only the path, never headers.
        if isinstance(value, ActorflowError) and errors.status_of(value) < 500:
            return
        if isinstance(value, tornado.web.HTTPError) and value.status_code < 500:
            return  # tornado's own 4xx (a query value that is not UTF-8, ...)
        if isinstance(value, (ExecutionFailed, ExecutionTimeout)):
            return
        if isinstance(value, StorageUnavailable):
            log.warning("webhook call %s: %s", self.request.path, value.message)
            return
        log.error("webhook call %s failed", self.request.path, exc_info=(typ, value, tb))


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "replace")


def why_not_armed(state):
    """Why a call found its webhook's workflow not armed; `state` is (deployed, armed_until) or None."""
    if state is None or not state[0]:
        return "workflow is not deployed: deploy and arm it before calling its webhook"
    if state[1] is not None and state[1] <= utcnow():
        return "the arm window has expired: arm the workflow again"
    return ("webhook is not armed: each arming accepts exactly one call; "
            "arm the workflow again")


def authentic(request, secret: str | None) -> bool:
    """Does the call carry the block's secret, or a valid HMAC-SHA256 of its body?

    Either header suffices; both are compared in constant time.
    """
    if not isinstance(secret, str) or not secret:
        return False
    key = _bytes(secret)
    ok = False
    given = request.headers.get(SECRET_HEADER)
    if given:
        ok = hmac.compare_digest(_bytes(given), key) or ok
    signature = request.headers.get(SIGNATURE_HEADER)
    if signature:
        scheme, _, digest = signature.strip().partition("=")
        expected = hmac.new(key, request.body, hashlib.sha256).hexdigest()
        if scheme.strip().lower() == "sha256":
            ok = hmac.compare_digest(_bytes(digest.strip().lower()), _bytes(expected)) or ok
    return ok


def wait_flag(raw) -> bool:
    """`?wait=` exactly as sent: true/1/yes/on or false/0/no/off (any case), nothing else."""
    if raw is None:
        return False
    value = raw.lower() if raw.isascii() else raw
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValidationError("wait must be true or false")


def trigger_payload(request) -> dict:
    """The webhook block's output: body, headers, query, method. Raises ValidationError."""
    headers = {}
    for name, value in request.headers.get_all():
        name = name.lower()
        if name in HIDDEN_HEADERS:
            continue
        headers[name] = value if name not in headers else f"{headers[name]}, {value}"
    query = {}
    for name, values in request.query_arguments.items():
        name = name.encode("latin-1").decode("utf-8", "replace")  # tornado decodes names as latin-1
        decoded = [v.decode("utf-8", "replace") for v in values]
        query[name] = decoded[0] if len(decoded) == 1 else decoded
    return {"body": _body(request), "headers": headers, "query": query,
            "method": request.method}


def _body(request):
    """The body parsed as JSON when it is JSON, else as text (UTF-8, bad bytes replaced)."""
    raw = request.body or b""
    text = raw.decode("utf-8", "replace")
    if not raw.strip():
        return text
    mime = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    declared = mime == "application/json" or mime.endswith("+json")
    try:
        return parse_json(raw)
    except ValidationError as exc:
        if declared:
            raise ValidationError(f"Content-Type is {mime} but the body is not valid JSON: "
                                  f"{exc.message.split(': ', 1)[-1]}")
        return text
