"""The block actor: runs one block (with its retries) and tells the coordinator."""

import logging
import random
import time

import pykka

from actors.errors import BlockError
from models.base import without_surrogates
from .threads import EngineActor, start_daemon
from .context import BlockCancelled, BlockContext
from .messages import BlockChunk, BlockDone, RunBlock
from .values import storable, storable_text

log = logging.getLogger(__name__)

STDOUT_LIMIT = 64 * 1024


class BlockActor(EngineActor):
    """Runs one block, then stops; its BlockDone goes to the coordinator as its thread ends.

    Started with its RunBlock already in its inbox. The result is told last,
    after the actor has stopped and its launch slot is released, just before
    the thread waits for its next actor: the coordinator, woken by it, then
    finds the GIL free instead of waking only to wait for it.
    """

    def __init__(self, coordinator, message, block_type, services, settings, workspace, execution_id,
                 depth=0, on_exit=None, inline=False):
        super().__init__()
        self._first = message
        self._inline = inline  # run the loop now, on the starting (coordinator's) thread
        self._done = None
        self._on_exit = on_exit  # the launch budget's release: called as the thread ends
        self.coordinator = coordinator
        self.block_type = block_type
        self.services = services
        self.settings = settings
        self.workspace = workspace
        self.execution_id = execution_id
        self.depth = depth
        self._limit = getattr(settings, "max_value_bytes", None)

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

    def _tell(self, message):
        try:
            self.coordinator.tell(message)
        except pykka.ActorDeadError:
            pass  # the run already ended; nobody wants this any more

    def _run(self, msg: RunBlock) -> BlockDone:
        attempts = 0
        error = None
        stdout = None
        while True:
            attempts += 1
            ctx = BlockContext(
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
            try:
                output, text = storable_text(self.block_type.run(ctx), self._limit)
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
            # Exponential backoff with jitter, woken early by a cancel.
            delay = msg.retry_delay * (2 ** (attempts - 1)) * random.uniform(0.5, 1.5)
            if msg.cancelled.wait(delay):
                return BlockDone(msg.block_id, False, None, "cancelled", attempts, stdout)


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
