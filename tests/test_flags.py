"""Flag (actors/flags.py): the one-way Event behind actors' stop and blocks' cancel."""

import threading

import pykka

from actors.context import CancelFlag
from actors.flags import Flag
from actors.threads import EngineActor
from tests.helpers import wait_until


def test_flag_wait_wakes_when_set_from_another_thread():
    flag = Flag()
    assert not flag.is_set() and flag.wait(0.01) is False
    woke = []
    waiters = [threading.Thread(target=lambda: woke.append(flag.wait(30))) for _ in range(3)]
    for t in waiters:
        t.start()
    assert wait_until(lambda: flag._event is not None)  # at least one waits on the event now
    flag.set()
    for t in waiters:
        t.join(30)
    assert woke == [True, True, True] and flag.is_set()
    assert flag.wait() is True and flag.wait(0) is True  # set stays set


def test_cancel_flag_calls_back_once_and_can_drop_a_call():
    flag = CancelFlag()
    heard, dropped = [], []
    flag.on_set(lambda: heard.append(1))
    flag.on_set(lambda: dropped.append(1))()  # dropped before the set
    flag.set()
    flag.set()
    assert heard == [1] and dropped == [] and flag.is_set() and flag.wait(0)
    flag.on_set(lambda: heard.append(2))  # already set: at once
    assert heard == [1, 2]


class _Echo(EngineActor):
    def on_receive(self, message):
        return message


def test_engine_actor_stop_is_seen_through_its_ref():
    ref = _Echo.start()
    assert isinstance(ref.actor_stopped, Flag)
    assert ref.is_alive() and ref.ask("hi", timeout=10) == "hi"
    assert ref.stop(timeout=10) is True
    assert not ref.is_alive()
    try:
        ref.tell("late")
    except pykka.ActorDeadError:
        pass
    else:
        raise AssertionError("a stopped actor took a message")


def test_engine_threads_report_alive_and_survive_a_fork():
    """Engine threads' `_started` is a Flag (when started without the handshake):
    threading still sees them start, and a fork from one still works."""
    import os

    from actors.threads import start_daemon

    seen = {}
    done = threading.Event()

    def body():
        me = threading.current_thread()
        seen["alive"] = me.is_alive()
        pid = os.fork()
        if pid == 0:  # the child: threading has reset this thread's state
            os._exit(0 if threading.current_thread().is_alive() else 3)
        seen["child"] = os.waitpid(pid, 0)[1]
        done.set()

    start_daemon(body, "test-fork")
    assert done.wait(30)
    assert seen == {"alive": True, "child": 0}
