"""The thread behind every engine actor: pykka's, made cheaper to start.

A run starts one actor per block, so actor start-up is the engine's own
largest cost. Three changes keep pykka's semantics and cut it:

- the inbox is a `queue.SimpleQueue` (pykka only needs put/get/empty; the
  full `queue.Queue` also tracks tasks and takes a lock per call);
- a thread whose actor has ended waits a moment (PARK_SECONDS) for the next
  actor to start, and runs that one's loop instead of a new thread being
  made: creating a thread holds the GIL through `clone` and maps a fresh
  stack, about a third of a long chain's CPU. Each actor still has its own
  loop, inbox and life; only the OS thread under it is used again. At most
  PARK_MAX threads wait; the rest end, and a waiting one ends after
  PARK_SECONDS without work;
- a new thread is started without `Thread.start()`'s handshake, which makes
  the starting thread (the coordinator, or the IOLoop for a coordinator)
  wait until the new thread has been scheduled. Only on CPython versions
  whose `threading` internals this was checked against; elsewhere the
  ordinary `start()`.

`PooledActor` (a run's coordinator) goes further: it holds a thread only
while it has messages to handle, so a run waiting on its blocks holds none.
"""

import _thread
import itertools
import logging
import queue
import sys
import threading
import uuid

import pykka
import pykka.messages

from .flags import Flag
from .messages import Idle

log = logging.getLogger(__name__)

_NO_HANDSHAKE = sys.version_info[:2] in ((3, 11), (3, 12)) and hasattr(threading, "_limbo")

PARK_SECONDS = 1.0
PARK_MAX = 32
PARKED_NAME = "actorflow-parked"

# Actor URNs: one random UUID per process whose last 48 bits count up, instead
# of pykka's uuid4 per actor (a getrandom system call for every block).
_URN_HEAD = uuid.uuid4().urn[:-12]
_serial = itertools.count(1)

_holds_lock = threading.Lock()  # PooledActor._holds, counted down from any thread

_parked = []  # the inboxes of waiting threads, the most recently parked last
_parked_lock = threading.Lock()


def start_daemon(target, name):
    """Run `target()` on a daemon thread named `name`: a waiting one, else a new one.

    Never waits for the thread to be scheduled.
    """
    with _parked_lock:
        slot = _parked.pop() if _parked else None
    if slot is not None:
        slot.put((target, name))
        return
    # Handed over in a list the thread empties: threading keeps a thread's target and
    # args until the thread ends, which would keep the first actor (and through it
    # its run and engine) alive for as long as the thread goes on serving others.
    _new_thread(_serve, name, [target, name])


def _serve(first):
    """Run `target`, then wait for the next one for a while. An exception ends the thread, as before."""
    target, name = first
    first.clear()
    me = threading.current_thread()
    slot = None
    while True:
        me.name = name
        target()
        me.name = PARKED_NAME
        target = None  # let the ended actor go while waiting
        if slot is None:
            slot = queue.SimpleQueue()
        with _parked_lock:
            if len(_parked) >= PARK_MAX:
                return
            _parked.append(slot)
        try:
            target, name = slot.get(timeout=PARK_SECONDS)
        except queue.Empty:
            with _parked_lock:
                if slot in _parked:
                    _parked.remove(slot)
                    return
            target, name = slot.get()  # taken just now: its work is on the way


def _new_thread(target, name, arg):
    thread = threading.Thread(target=target, args=(arg,), name=name, daemon=True)
    if not _NO_HANDSHAKE:
        thread.start()
        return
    # What Thread.start() does, minus waiting on `_started`: the thread still
    # registers itself in `threading` from its own bootstrap. Nobody waits on
    # `_started` then (threading only sets and reads it): a Flag does.
    thread._started = Flag()
    with threading._active_limbo_lock:
        threading._limbo[thread] = thread
    try:
        _thread.start_new_thread(thread._bootstrap, ())
    except Exception:
        with threading._active_limbo_lock:
            threading._limbo.pop(thread, None)
        raise


class _Refs:
    """pykka's registry of live actors, kept in an insertion-ordered dict.

    pykka keeps a list and removes each stopped actor with a scan of it: with
    thousands of runs in flight, every actor's end cost a scan of every
    live actor (0.2 ms at 10,000). Same operations, O(1) add and remove.
    """

    def __init__(self, refs=()):
        self._refs = dict.fromkeys(refs)

    def append(self, ref):
        self._refs[ref] = None

    def remove(self, ref):
        del self._refs[ref]

    def __contains__(self, ref):
        return ref in self._refs

    def __iter__(self):
        return iter(list(self._refs))

    def __len__(self):
        return len(self._refs)

    def __getitem__(self, index):
        return list(self._refs)[index]


with pykka.ActorRegistry._actor_refs_lock:
    if not isinstance(pykka.ActorRegistry._actor_refs, _Refs):
        pykka.ActorRegistry._actor_refs = _Refs(pykka.ActorRegistry._actor_refs)

_REGISTRY = pykka.ActorRegistry
ACTOR_STOP = pykka.messages._ActorStop  # an actor's own stop (what `stop()` tells it)
_PYKKA_MESSAGES = frozenset({pykka.messages._ActorStop, pykka.messages.ProxyCall,
                             pykka.messages.ProxyGetAttr, pykka.messages.ProxySetAttr})


class EngineActor(pykka.ThreadingActor):
    """A pykka ThreadingActor on a daemon thread, with a cheaper inbox, start and stop flag."""

    use_daemon_thread = True  # a stuck block must never keep the process alive

    def __init__(self, *_args, **_kwargs):
        # pykka's Actor.__init__, with a counted URN in place of a fresh uuid4, and a
        # Flag for `actor_stopped`: pykka only sets and reads it (ref.is_alive, its loop).
        self.actor_urn = f"{_URN_HEAD}{next(_serial) & 0xFFFFFFFFFFFF:012x}"
        self.actor_inbox = self._create_actor_inbox()
        self.actor_stopped = Flag()
        self._actor_ref = pykka.ActorRef(self)

    @classmethod
    def start(cls, *args, **kwargs):
        """pykka's `Actor.start`, minus its debug lines (see `_stop`)."""
        obj = cls(*args, **kwargs)
        with _REGISTRY._actor_refs_lock:
            _REGISTRY._actor_refs.append(obj.actor_ref)
        obj._start_actor_loop()
        return obj.actor_ref

    def _stop(self):
        # pykka's, minus its debug lines: they format the actor's name whether or not
        # debug logging is on, four times per actor in all, and a run starts one per block.
        with _REGISTRY._actor_refs_lock:
            if self.actor_ref in _REGISTRY._actor_refs:
                _REGISTRY._actor_refs.remove(self.actor_ref)
        self.actor_stopped.set()
        try:
            self.on_stop()
        except Exception:
            self._handle_failure(*sys.exc_info())

    def _handle_receive(self, message):
        # pykka tests every message against its own four kinds first; ours are none of them.
        if message.__class__ in _PYKKA_MESSAGES:
            return super()._handle_receive(message)
        return self.on_receive(message)

    @staticmethod
    def _create_actor_inbox():
        return queue.SimpleQueue()

    def _start_actor_loop(self):
        start_daemon(self._actor_loop, f"{type(self).__name__}")


class _IdleEnvelope:
    """What pykka's loop reads from an envelope: the message and where to reply (nowhere)."""
    __slots__ = ()
    message = Idle()
    reply_to = None


_IDLE = _IdleEnvelope()


class LingeringInbox(queue.SimpleQueue):
    """An inbox whose next blocking get may give up after `linger` seconds, with an Idle message.

    The actor sets `linger` when it would rather wait a little for more news
    than act now; the wait is spent blocked on the queue, so a message that
    comes meanwhile is taken at once. Applies to one get, then clears.
    """

    linger = None
    no_wait = False  # a linger gives up at once: the turn is on a thread that must not wait

    def get(self, block=True, timeout=None):
        linger = self.linger
        if linger is None or not block or timeout is not None:
            return super().get(block, timeout)
        self.linger = None
        try:
            return super().get(True, 0 if self.no_wait else linger)
        except queue.Empty:
            return _IDLE


class PooledInbox(LingeringInbox):
    """A LingeringInbox that asks for a thread when news comes to an actor holding none.

    `running` is true while a thread is handling the inbox (or is on its way
    to): then a put only queues. `done()` gives the thread back, unless news
    came meanwhile.
    """

    running = False
    wake = None    # the actor's turn, set while the actor lives
    name = None    # its threads' name
    light = None   # (message) -> bool: news the telling thread may handle itself (PooledActor.light)
    here = None    # the actor's turn on the telling thread

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()

    def put(self, item, block=True, timeout=None):
        super().put(item)
        with self._lock:
            if self.running:
                return
            self.running = True
            wake, light = self.wake, self.light
        if wake is None:
            return
        if light is not None and light(item.message):
            self.here()
        else:
            start_daemon(wake, self.name)

    def done(self) -> bool:
        """The turn found the inbox empty: True if the thread may go (nothing came meanwhile)."""
        with self._lock:
            if not self.empty():
                return False
            self.running = False
            return True


class PooledActor(EngineActor):
    """An EngineActor that holds a thread only while it has messages to handle.

    A run's coordinator spends nearly all its life waiting for its blocks:
    with thousands of runs in flight, a thread each was the largest share of
    their memory (about 15 KB of RSS per thread) and a thread start per run.
    Here news for an idle actor takes a thread (a waiting one, else a new
    one: `start_daemon`) for one turn: the actor handles everything in its
    inbox, one message at a time and in order as in pykka's own loop, then
    the thread is free again. A linger (see LingeringInbox) is waited on the
    turn's thread. Two turns may run elsewhere, never lingering: the first, on
    the thread that releases it (`turn_here`, `fits_here`), and one for light
    news told while the actor is idle, on the telling thread (`light`).
    """

    @staticmethod
    def _create_actor_inbox():
        return PooledInbox()

    def _start_actor_loop(self):
        inbox = self.actor_inbox
        inbox.running = True     # the first turn is on its way: puts until then only queue
        inbox.wake, inbox.name = self._turn, type(self).__name__
        if self.light is not None:
            inbox.light, inbox.here = self.light, self._turn_on_teller
        self.release_first_turn()

    _holds = 1  # what the first turn still waits for: the start, and each hold_first_turn()
    turn_here = False  # the first turn runs on the thread that releases it, never lingering
    _carry = None      # the message that turn left for the next one, on a pooled thread

    def fits_here(self, message) -> bool:
        """Whether the first turn on the releasing thread may handle `message`; if not, the
        turn hands it, and all that follows, to a pooled thread."""
        return True

    light = None  # (message) -> bool: news cheap enough that, told while the actor is idle,
    #               the telling thread takes the turn itself (never lingering), handing
    #               anything else that comes meanwhile to a pooled thread

    def hold_first_turn(self):
        """Before the start: the first turn also waits for one `release_first_turn()` more."""
        self._holds += 1

    def release_first_turn(self):
        """One of the things the first turn waits for has happened (the start is one). Any thread.

        The last one takes a thread for the first turn; messages told meanwhile wait in the inbox.
        With `turn_here`, the first turn runs on the calling thread instead, lingers
        not at all (that thread, the IOLoop, must not wait), and stops at the first
        message that does not fit there (`fits_here`).
        """
        with _holds_lock:
            self._holds -= 1
            if self._holds:
                return
        if self.turn_here:
            self._without_waiting(self._first_turn, self.fits_here)
            return
        try:
            start_daemon(self._first_turn, self.actor_inbox.name)
        except BaseException:
            self.actor_inbox.wake = self.actor_inbox.light = self.actor_inbox.here = None
            raise

    def _first_turn(self, fits=None):
        self._actor_loop_setup()
        self._turn(fits)

    def _turn_on_teller(self):
        self._without_waiting(self._turn, self.light)

    def _without_waiting(self, turn, fits):
        """`turn(fits)` on a thread that must not wait: any linger gives up at once."""
        self.actor_inbox.no_wait = True
        try:
            turn(fits)
        finally:
            self.actor_inbox.no_wait = False

    def _turn(self, fits=None):
        """Handle the inbox until it is empty. `fits`, on a thread not the actor's own (the
        starting or the telling one): the first message it refuses, and all after it,
        go to a pooled thread."""
        inbox = self.actor_inbox
        carried, self._carry = self._carry, None
        if carried is not None and not self.actor_stopped.is_set():
            self._handle_envelope(carried)
        while not self.actor_stopped.is_set():
            if inbox.linger is None:
                try:
                    envelope = inbox.get(block=False)
                except queue.Empty:
                    if inbox.done():
                        return
                    continue
            else:
                envelope = inbox.get()   # waits up to the linger for news, else Idle
            if fits is not None and not fits(envelope.message) and self._hand_over(envelope):
                return
            self._handle_envelope(envelope)
        inbox.wake = inbox.light = inbox.here = None   # no more turns; and no cycle through the inbox
        self._actor_loop_teardown()

    def _hand_over(self, envelope):
        """Leave `envelope` and the rest of the inbox to a pooled thread (the inbox stays
        running). False when no thread could be had: then it is handled here after all."""
        self._carry = envelope
        try:
            start_daemon(self._turn, self.actor_inbox.name)
        except Exception:
            self._carry = None
            log.warning("no thread to hand %s over to; handling it on this one", self, exc_info=True)
            return False
        return True

    def _handle_envelope(self, envelope):
        # The body of pykka's Actor._actor_loop_running, for one envelope.
        try:
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:
            if envelope.reply_to is not None:
                log.info("Exception returned from %s to caller:", self, exc_info=True)
                envelope.reply_to.set_exception()
            else:
                self._handle_failure(*sys.exc_info())
                try:
                    self.on_failure(*sys.exc_info())
                except Exception:
                    self._handle_failure(*sys.exc_info())
        except BaseException as exc:
            log.debug("%r in %s. Stopping all actors.", exc, self)
            self._stop()
            pykka.ActorRegistry.stop_all()
