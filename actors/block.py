"""The block actors: each runs one block (with its retries) and tells the coordinator."""

import dataclasses
import logging
import random
import time
from typing import Any

import pykka

from actors.errors import BlockError
from models.base import without_surrogates
from .threads import EngineActor, PooledActor, start_daemon
from .context import BlockCancelled, BlockContext, on_cancel
from .http_loop import http_loop
from .messages import BlockChunk, BlockDone, RunBlock
from .timers import shared_timers
from .values import storable, storable_text

log = logging.getLogger(__name__)

STDOUT_LIMIT = 64 * 1024


class _Attempts:
    """What both block actors share: an attempt's context, its outcome, the backoff before the next."""

    def _setup(self, coordinator, message, block_type, services, settings, workspace, execution_id,
               depth, on_exit):
        self._first = message
        self._done = None
        self._on_exit = on_exit  # the launch budget's release: called as the actor ends
        self.coordinator = coordinator
        self.block_type = block_type
        self.services = services
        self.settings = settings
        self.workspace = workspace
        self.execution_id = execution_id
        self.depth = depth
        self._limit = getattr(settings, "max_value_bytes", None)

    def _tell(self, message):
        try:
            self.coordinator.tell(message)
        except pykka.ActorDeadError:
            pass  # the run already ended; nobody wants this any more

    def _context(self, msg, attempts):
        return BlockContext(
            block_id=msg.block_id, block_type=msg.block_type, config=msg.config,
            inputs=msg.inputs, variables=msg.variables, trigger=msg.trigger,
            settings=self.settings, services=self.services,
            emit=lambda chunk, b=msg.block_id: self._tell(
                BlockChunk(b, storable(chunk, self._limit, "streamed chunk"))),
            cancelled=msg.cancelled,
            deadline=time.monotonic() + msg.timeout if msg.timeout else None,
            workspace=self.workspace, execution_id=self.execution_id, depth=self.depth,
            attempt=attempts,
        )

    def _outcome(self, msg, ctx, attempts, produce):
        """The BlockDone of an attempt whose output `produce()` makes (or raises), or None: try again."""
        try:
            output, text = storable_text(produce(), self._limit)
            return BlockDone(msg.block_id, True, output, None, attempts, _clip(ctx.stdout), text)
        except BlockCancelled:
            return BlockDone(msg.block_id, False, None, "cancelled", attempts, _clip(ctx.stdout))
        except BlockError as exc:
            error = _storable(exc.message)  # it may quote what the block saw
        except Exception as exc:  # a bug in a block type must fail the block, not the run's actor
            log.exception("block %s crashed", msg.block_id,
                          extra={"execution_id": ctx.execution_id, "block_id": msg.block_id})
            error = _storable(f"{type(exc).__name__}: {exc}")
        stdout = _clip(ctx.stdout)
        if msg.cancelled.is_set():
            return BlockDone(msg.block_id, False, None, "cancelled", attempts, stdout)
        if attempts > msg.retries:
            return BlockDone(msg.block_id, False, None, error, attempts, stdout)
        return None

    @staticmethod
    def _backoff(msg, attempts):
        """Seconds before attempt `attempts + 1`: exponential, with jitter."""
        return msg.retry_delay * (2 ** (attempts - 1)) * random.uniform(0.5, 1.5)


class BlockActor(_Attempts, EngineActor):
    """Runs one block, then stops; its BlockDone goes to the coordinator as its thread ends.

    Started with its RunBlock already in its inbox. The result is told last,
    after the actor has stopped and its launch slot is released, just before
    the thread waits for its next actor: the coordinator, woken by it, then
    finds the GIL free instead of waking only to wait for it.
    """

    def __init__(self, coordinator, message, block_type, services, settings, workspace, execution_id,
                 depth=0, on_exit=None, inline=False):
        super().__init__()
        self._setup(coordinator, message, block_type, services, settings, workspace, execution_id,
                    depth, on_exit)
        self._inline = inline  # run the loop now, on the starting (coordinator's) thread

    def _start_actor_loop(self):
        self.actor_ref.tell(self._first)  # in the inbox before the thread wakes: one wake-up, not two
        self._first = None
        if self._inline:
            self._loop_then_exit()
        else:
            start_daemon(self._loop_then_exit, "BlockActor")

    def _loop_then_exit(self):
        try:
            self._actor_loop()
        finally:
            if self._on_exit is not None:
                self._on_exit()
            if self._done is not None:
                self._tell(self._done)

    def on_receive(self, message):
        if isinstance(message, RunBlock):
            try:
                self._done = self._run(message)
            finally:
                self.stop()

    def _run(self, msg: RunBlock) -> BlockDone:
        attempts = 0
        while True:
            attempts += 1
            ctx = self._context(msg, attempts)
            done = self._outcome(msg, ctx, attempts, lambda: self.block_type.run(ctx))
            if done is not None:
                return done
            if msg.cancelled.wait(self._backoff(msg, attempts)):  # woken early by a cancel
                return BlockDone(msg.block_id, False, None, "cancelled", attempts, _clip(ctx.stdout))


@dataclasses.dataclass(frozen=True)
class _Answered:
    """The HTTP loop -> a waiting block actor: attempt `attempt` has ended; `future` (its task) holds how."""
    attempt: int
    ctx: Any
    future: Any


@dataclasses.dataclass(frozen=True)
class _Retry:
    """A timer or the block's cancel -> a waiting block actor: the backoff before `attempt` is over."""
    attempt: int


class WaitingBlockActor(_Attempts, PooledActor):
    """Runs one block of a type with `wait` (see BlockType): no thread while it waits.

    Each attempt's coroutine runs on the HTTP loop; its end comes back as a
    message, handled on a thread taken for that turn, where the output is made.
    A backoff between attempts is a timer, cut short by a cancel. As
    BlockActor, its BlockDone is told once it has stopped and released its
    launch slot.
    """

    def __init__(self, coordinator, message, block_type, services, settings, workspace, execution_id,
                 depth=0, on_exit=None, inline=False):
        super().__init__()
        self._setup(coordinator, message, block_type, services, settings, workspace, execution_id,
                    depth, on_exit)
        self._msg = None
        self._attempt = 0
        self._stdout = None     # the last attempt's, while a backoff waits
        self._backoff_timer = None
        self._unhook = None

    # Its first turn only starts the request's coroutine on the HTTP loop: short and
    # bounded (the config is rendered already), so it runs on the thread that launches
    # the block rather than on one more pooled thread. What comes back, the stop
    # included, is handled on a pooled thread: a stop here would pass its launch slot
    # on from here too, starting the next block inside this one's start.
    turn_here = True

    def fits_here(self, message):
        return message.__class__ is RunBlock

    def _start_actor_loop(self):
        self.actor_ref.tell(self._first)
        self._first = None
        super()._start_actor_loop()

    def on_receive(self, message):
        try:
            if isinstance(message, RunBlock):
                self._msg = message
                self._start(1)
            elif isinstance(message, _Answered) and message.attempt == self._attempt:
                self._answered(message)
            elif isinstance(message, _Retry) and message.attempt == self._attempt + 1 and self._done is None:
                self._retry(message.attempt)
        except Exception as exc:  # never leave the coordinator without an answer
            log.exception("block %s crashed", self._msg.block_id)
            self._end(BlockDone(self._msg.block_id, False, None, _storable(f"{type(exc).__name__}: {exc}"),
                                max(self._attempt, 1), None))

    def _start(self, attempt):
        self._attempt = attempt
        ctx = self._context(self._msg, attempt)  # not kept: it refers back to this actor
        http_loop().start(self.block_type.wait(ctx), lambda task: self._tell_self(_Answered(attempt, ctx, task)))

    def _answered(self, message):
        msg = self._msg
        future = message.future
        try:
            done = self._outcome(msg, message.ctx, message.attempt, lambda: future.result()())
        finally:
            failure = future.exception()
            if failure is not None:
                # Raised here, it now holds this frame, which holds the message holding it.
                failure.__traceback__ = None
        if done is not None:
            self._end(done)
            return
        self._stdout = _clip(message.ctx.stdout)
        nxt = _Retry(message.attempt + 1)
        self._backoff_timer = shared_timers().call_later(self._backoff(msg, message.attempt), self._tell_self, nxt)
        self._unhook = on_cancel(msg.cancelled, lambda: self._tell_self(nxt))

    def _retry(self, attempt):
        self._stop_backoff()
        if self._msg.cancelled.is_set():
            self._end(BlockDone(self._msg.block_id, False, None, "cancelled", self._attempt, self._stdout))
        else:
            self._start(attempt)

    def _stop_backoff(self):
        timer, unhook, self._backoff_timer, self._unhook = self._backoff_timer, self._unhook, None, None
        if timer is not None:
            timer.cancel()
        if unhook is not None:
            unhook()

    def _end(self, done):
        self._stop_backoff()
        self._done = done
        self.stop()

    def _tell_self(self, message):
        try:
            self.actor_ref.tell(message)
        except pykka.ActorDeadError:
            pass

    def _actor_loop_teardown(self):
        try:
            super()._actor_loop_teardown()
        finally:
            if self._on_exit is not None:
                self._on_exit()
            if self._done is not None:
                self._tell(self._done)


def start_block(coordinator, message, block_type, *args, on_exit=None, inline=False):
    """Start the actor for one block: one that waits without a thread for types with `wait`."""
    actor = WaitingBlockActor if block_type.wait is not None else BlockActor
    return actor.start(coordinator, message, block_type, *args, on_exit=on_exit, inline=inline)


def _clip(text):
    if text is None:
        return None
    text = _storable(text)
    if len(text) > STDOUT_LIMIT:
        return text[:STDOUT_LIMIT] + "\n[stdout truncated]"
    return text


def _storable(text):
    """Text any store's text column can hold: lone surrogates and NUL (not in PostgreSQL) as U+FFFD."""
    return without_surrogates(text).replace("\x00", "\ufffd")
