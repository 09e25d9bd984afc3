"""Map block at scale: one run mapping N items (default 1,000) at concurrency 16.

Measures the run's wall time (median of --runs) and the server process's
peak thread count while it runs (sampled from /proc every 5 ms), against its
idle count. Each item runs a small child workflow (starter -> response).

    python3 bench/bench_map.py [--items 1000] [--concurrency 16] [--runs 3]
"""

import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import Servers, median  # noqa: E402


def threads_of(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


class PeakThreads:
    """Samples a process's thread count on a thread of our own until stopped."""

    def __init__(self, pid, every=0.005):
        self.pid, self.every, self.peak = pid, every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, threads_of(self.pid))
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    servers = Servers(extra_env={"ACTORFLOW_EXECUTE_TIMEOUT": "600"})
    try:
        pid = servers.procs[0].pid
        start = {"id": "start", "type": "starter"}
        child = servers.workflow([start, {"id": "out", "type": "response", "config": {
            "data": {"item": "{{ variables.item }}", "index": "{{ variables.index }}"}}}],
            [{"source": "start", "target": "out"}])
        parent = servers.workflow([start, {"id": "each", "type": "map", "config": {
            "items": "{{ variables.list }}", "workflow_id": child,
            "concurrency": args.concurrency}}],
            [{"source": "start", "target": "each"}])
        items = list(range(args.items))
        idle = threads_of(pid)
        times, peaks = [], []
        for _ in range(args.runs):
            with PeakThreads(pid) as peak:
                t0 = time.perf_counter()
                body = servers.api("POST", f"/api/workflows/{parent}/execute",
                                   {"variables": {"list": items}, "timeout": 600})
                took = time.perf_counter() - t0
            out = body["output"]["each"]
            assert body["status"] == "completed" and [o["index"] for o in out] == items, body
            times.append(took)
            peaks.append(peak.peak)
            print(f"  {args.items} items at concurrency {args.concurrency}: {took:.2f} s, "
                  f"peak threads {peak.peak} (idle {idle})")
        print(f"median {median(times):.2f} s ({args.items / median(times):.0f} items/s), "
              f"peak threads max {max(peaks)}, idle {idle}, after {threads_of(pid)}")
    finally:
        servers.close()


if __name__ == "__main__":
    main()
