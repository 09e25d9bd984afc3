"""kill -9 with 50 runs in flight, restart, and check every one went on right.

    python3 bench/crash_resume.py [--runs 50] [--processes 1|2]

With --processes 2 a second server shares the database and takes the runs
over at its next heartbeat (nobody restarts the killed one). Prints how long
the takeover and the rest of the runs took, and every problem found (the
checks of tests/test_durable.py); exits 1 if there was one. Needs the test
install (it uses the tests' helpers).
"""

import argparse
import os
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests import crashload as cl  # noqa: E402
from tests.echo_server import EchoServer  # noqa: E402
from tests.processes import ServerProcess, wait_until  # noqa: E402

KEY = "bench-key-0123456789abcdef"


def serve(url):
    return ServerProcess(url, env={"ACTORFLOW_API_KEY": KEY, "ACTORFLOW_HEARTBEAT_INTERVAL": "1"})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--processes", type=int, choices=(1, 2), default=1)
    args = parser.parse_args()
    path = os.path.join(tempfile.mkdtemp(prefix="actorflow-crash-"), "af.db")
    url = f"sqlite:///{path}"
    echo = EchoServer().start()
    server = serve(url)
    other = serve(url) if args.processes == 2 else None
    try:
        workflows = cl.make_workflows(server.url, KEY, echo.url)
        runs = cl.start_load(server.url, KEY, workflows, args.runs)
        if not wait_until(lambda: all(r.slow_started() for r in runs), timeout=300):
            sys.exit("the load did not get going")
        calls = sum(r.slow == ("call",) for r in runs)
        wait_until(lambda: len(echo.requests) >= calls, timeout=60)  # the http calls are out
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
        killed = time.monotonic()
        ids = [r.execution_id for r in runs]
        before = cl.finished_blocks(path, ids)
        status = dict(cl.stored(path, "SELECT id, status FROM execution"))
        cut = {i for i in ids if status[i] == "running"}
        print(f"{len(cut)} of {len(ids)} runs in flight at the kill, "
              f"{len(before)} of their blocks finished")
        if other is None:
            server = serve(url)
            print(f"restarted in {time.monotonic() - killed:.2f} s")
        else:
            server = other
            other = None
        marks = ",".join("?" * len(cut))
        me = cl.stored(path, "SELECT id FROM process_row WHERE pid = ?", (server.proc.pid,))[0][0]
        wait_until(lambda: {o for (o,) in cl.stored(
            path, f"SELECT owner FROM execution WHERE id IN ({marks})", list(cut))} == {me},
            timeout=120, interval=0.02)
        print(f"all {len(cut)} runs claimed {time.monotonic() - killed:.2f} s after the kill")
        for run in runs:
            run.reattach(server.url, KEY)
        rows = cl.wait_all_over(server.url, KEY, runs, timeout=600)
        print(f"all runs over {time.monotonic() - killed:.2f} s after the kill")
        problems, resumed = cl.check_runs(server.url, KEY, path, runs, rows, before, echo, cut)
        keys = cl.idempotency_keys(echo)
        print(f"{resumed} blocks started again; idempotency keys: {len(keys)}, "
              f"seen at most {max(keys.values()) if keys else 0} times")
        for problem in problems:
            print("PROBLEM", problem)
        print("OK" if not problems else f"{len(problems)} problems")
        return 1 if problems else 0
    finally:
        server.kill()
        if other is not None:
            other.kill()
        echo.stop()


if __name__ == "__main__":
    sys.exit(main())
