"""Start-up time: from exec to the first `200` of GET /api/health.

    python bench/bench_startup.py [--runs 9] [COMMAND ...]

COMMAND is what starts Actorflow (default: this checkout's `python3 run.py`;
e.g. `dist/actorflow` for the single binary); `serve --port P --database-url
...` is appended. Each run uses a fresh SQLite database (first start: the
schema is made) outside /tmp and is stopped with SIGTERM once it answered.
Polling every 5 ms, the figure is at most that late.

On a busy machine the figures measure the scheduler; `chrt -f 10 python
bench/bench_startup.py dist/actorflow` (as root) shows an idle one's.
"""

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from common import KEY, ROOT, die_with_parent, free_port


def answers(port):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/api/health")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def once(command):
    folder = tempfile.mkdtemp(prefix="actorflow-bench-", dir="/var/tmp")
    port = free_port()
    env = dict(os.environ, ACTORFLOW_API_KEY=KEY)
    started = time.perf_counter()
    proc = subprocess.Popen(command + ["serve", "--port", str(port),
                                       "--database-url", f"sqlite:///{folder}/af.db"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=die_with_parent)
    try:
        while not answers(port):
            if proc.poll() is not None:
                raise SystemExit(f"{' '.join(command)} exited with {proc.returncode}")
            time.sleep(0.005)
        return time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(folder, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("command", nargs="*", default=[sys.executable, "run.py"])
    args = parser.parse_args()
    times = [once(args.command) for _ in range(args.runs)]
    print(f"{' '.join(args.command)}: start to first answer, {args.runs} runs: "
          f"median {statistics.median(times):.2f} s, min {min(times):.2f} s, max {max(times):.2f} s")


if __name__ == "__main__":
    main()
