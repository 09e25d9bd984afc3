"""The server's threads on one CPU (server/one_cpu.py): the choice, the move, and the real program."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from server import one_cpu
from server.one_cpu import OneCpu, cpu_ticks, move_to, own_ticks
from tests.processes import ROOT, ServerProcess, http, wait_until
from tests.databases import database_url

CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
needs_two = pytest.mark.skipif(len(CPUS) < 2 or not os.path.isdir("/proc/self/task"),
                               reason="needs Linux and two CPUs to choose from")

STAT = """cpu  300 0 100 900 0 0 0 0 0 0
cpu0 {0} 0 0 {1} 0 0 0 0 0 0
cpu1 {2} 0 0 {3} 0 0 0 0 0 0
intr 1 2 3
"""


def stat(busy0, idle0, busy1, idle1):
    return STAT.format(busy0, idle0, busy1, idle1)


def self_stat(utime, stime, cpu=1):
    # pid (comm) state, then fields 4..: field 14 utime, 15 stime, 39 processor.
    rest = ["S"] + ["0"] * 10 + [str(utime), str(stime)] + ["0"] * 23 + [str(cpu)] + ["0"] * 10
    return "123 (python3 (a) b) " + " ".join(rest)


def test_reading_proc():
    assert cpu_ticks(stat(10, 90, 55, 45)) == {0: (10, 100), 1: (55, 100)}
    # steal counts as busy; iowait as idle
    assert cpu_ticks("cpu3 1 2 3 4 5 6 7 8 0 0\n") == {3: (1 + 2 + 3 + 6 + 7 + 8, 36)}
    assert own_ticks(self_stat(7, 5)) == 12
    assert one_cpu.current_cpu(self_stat(7, 5, cpu=1)) == 1


def test_the_server_stays_while_its_cpu_is_its_own():
    before = cpu_ticks(stat(0, 0, 0, 0))
    # Its CPU was 90% busy, all of it the server's own: no reason to move.
    assert move_to(0, {0, 1}, before, cpu_ticks(stat(90, 10, 5, 95)), own_used=90) is None
    # Others took 40%: not crowded enough.
    assert move_to(0, {0, 1}, before, cpu_ticks(stat(90, 10, 5, 95)), own_used=50) is None


def test_the_server_moves_off_a_crowded_cpu_to_an_idler_one():
    before = cpu_ticks(stat(0, 0, 0, 0))
    # Others took 80% of CPU 0; CPU 1 was 10% busy.
    assert move_to(0, {0, 1}, before, cpu_ticks(stat(100, 0, 10, 90)), own_used=20) == 1
    # ... but not to a CPU nearly as busy, nor to one it may not use.
    assert move_to(0, {0, 1}, before, cpu_ticks(stat(100, 0, 70, 30)), own_used=20) is None
    assert move_to(0, {0}, before, cpu_ticks(stat(100, 0, 10, 90)), own_used=20) is None


class FakeProc:
    def __init__(self):
        self.files = {"/proc/stat": stat(0, 0, 0, 0), "/proc/self/stat": self_stat(0, 0)}

    def read(self, path):
        return self.files[path]


def test_check_moves_every_thread_when_another_program_takes_the_cpu(caplog):
    proc, pinned = FakeProc(), []
    coins = [0.2, 0.7]   # popped from the end: tails, then heads
    one = OneCpu({0, 1}, read=proc.read, pin=pinned.append, chance=coins.pop)
    one.move(0)
    one.check()        # the first look only notes where things stand
    proc.files.update({"/proc/stat": stat(100, 0, 5, 95), "/proc/self/stat": self_stat(10, 5)})
    one.check()        # crowded, but the coin says stay (the other server may be moving)
    assert pinned == [0]
    proc.files.update({"/proc/stat": stat(200, 0, 10, 190), "/proc/self/stat": self_stat(20, 5)})
    with caplog.at_level("INFO"):
        one.check()
    assert pinned == [0, 1] and one.cpu == 1 and not coins
    assert "moving the server's threads to CPU 1" in caplog.text
    # The next window starts on the new CPU: one more look decides nothing.
    proc.files.update({"/proc/stat": stat(300, 0, 110, 290), "/proc/self/stat": self_stat(30, 5)})
    one.check()
    assert pinned == [0, 1]


def test_a_cpu_that_cannot_be_had_is_logged_and_the_server_stays(caplog):
    proc = FakeProc()

    def refuse(cpu):
        if cpu != 0:
            raise OSError(22, "Invalid argument")
    one = OneCpu({0, 1}, read=proc.read, pin=refuse, chance=lambda: 0.0)
    one.move(0)
    one.check()
    proc.files.update({"/proc/stat": stat(100, 0, 5, 95), "/proc/self/stat": self_stat(10, 5)})
    one.check()
    assert one.cpu == 0 and "could not move the server's threads to CPU 1" in caplog.text


def test_check_stays_where_it_is_without_proc():
    def unreadable(path):
        raise FileNotFoundError(path)
    pinned = []
    one = OneCpu({0, 1}, read=unreadable, pin=pinned.append)
    one.move(0)
    one.check()
    one.check()
    assert pinned == [0]


@needs_two
def test_every_thread_is_moved_also_those_started_meanwhile():
    # In a process of its own: this one's threads must keep their CPUs.
    script = textwrap.dedent(f"""
        import json, os, sys, threading
        sys.path.insert(0, {ROOT!r})
        from server.one_cpu import pin_threads
        stop = threading.Event()
        started = []
        def spawner():
            # Starts threads while the move runs, from a thread that may not be moved yet.
            while not stop.is_set():
                t = threading.Thread(target=stop.wait)
                t.start()
                started.append(t)
        threads = [threading.Thread(target=spawner) for _ in range(2)]
        for t in threads:
            t.start()
        pin_threads({CPUS[1]})
        masks = set()
        for name in os.listdir("/proc/self/task"):   # while they still start threads
            try:
                masks.add(tuple(sorted(os.sched_getaffinity(int(name)))))
            except ProcessLookupError:
                pass  # ended since the listing
        stop.set()
        print(json.dumps(sorted(masks)))
        for t in threads + started:
            t.join()
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [[CPUS[1]]]


def _masks(pid):
    masks = {}
    for name in os.listdir(f"/proc/{pid}/task"):
        try:
            masks[name] = os.sched_getaffinity(int(name))
        except ProcessLookupError:
            pass
    return masks


@needs_two
def test_the_server_runs_on_one_cpu_and_its_code_blocks_on_all(tmp_path):
    key = "af_onecpu_test_key"
    server = ServerProcess(database_url(tmp_path), env={"ACTORFLOW_API_KEY": key})
    try:
        masks = {frozenset(m) for m in _masks(server.proc.pid).values()}
        assert len(masks) == 1 and len(next(iter(masks))) == 1
        status, wf = http(f"{server.url}/api/workflows", "POST", {"name": "cpus"}, key=key)
        assert status == 201
        graph = {"blocks": [{"id": "start", "type": "starter"},
                            {"id": "c", "type": "code",
                             "config": {"code": "import os\nreturn sorted(os.sched_getaffinity(0))"}}],
                 "edges": [{"source": "start", "target": "c"}]}
        status, _ = http(f"{server.url}/api/workflows/{wf['id']}/graph", "PUT", graph, key=key)
        assert status == 200
        status, run = http(f"{server.url}/api/workflows/{wf['id']}/execute", "POST", {}, key=key)
        assert status == 200, run
        assert run["output"]["c"] == CPUS
        # Threads started since (the run's, the sandbox pool's) are on the server's CPU too.
        assert {frozenset(m) for m in _masks(server.proc.pid).values()} == masks
    finally:
        server.stop()


@needs_two
def test_one_cpu_false_leaves_the_threads_where_the_kernel_puts_them(tmp_path):
    server = ServerProcess(database_url(tmp_path), env={"ACTORFLOW_ONE_CPU": "false"})
    try:
        assert wait_until(lambda: len(_masks(server.proc.pid)) > 3, 30)
        assert all(m == set(CPUS) for m in _masks(server.proc.pid).values())
    finally:
        server.stop()
