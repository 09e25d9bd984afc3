"""Two checkouts side by side: the 3-block /execute at one connection, requests alternating.

    python bench/ab_execute.py NAME=PATH NAME=PATH [--requests 1500] [--stream]

Starts `run.py` of each checkout (each on its own SQLite file) and the bare
Tornado handler, then sends one request to each in turn (the order flipped
every round), so a drift in this machine's speed hits all of them alike.
Prints p25, p50 and p75 of each. For changes too small to see in two
separate runs of `targets.py`. `--stream`: /execute/stream instead, timed
to its first event (P5); the bare handler is still a plain request.
"""

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import KEY, die_with_parent, free_port, wait_listening  # noqa: E402
from bench_execute import three_blocks  # noqa: E402

BARE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bare_server.py")


def start(tree):
    port, tmp = free_port(), tempfile.mkdtemp(prefix="actorflow-bench-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTORFLOW_")}
    env.update(ACTORFLOW_API_KEY=KEY, ACTORFLOW_PORT=str(port),
               ACTORFLOW_DATABASE_URL=f"sqlite:///{tmp}/bench.db")
    proc = subprocess.Popen([sys.executable, "run.py"], cwd=tree, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
    wait_listening(port)
    return proc, port


def call(conn, path, body):
    conn.request("POST", path, body=json.dumps(body),
                 headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def first_event(conn, path, body):
    """POST to an /execute/stream path: seconds until the first `data:` line; the rest is read."""
    t0 = time.perf_counter()
    conn.request("POST", path, body=json.dumps(body),
                 headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    response = conn.getresponse()
    took = None
    for line in response:
        if took is None and line.startswith(b"data: "):
            took = time.perf_counter() - t0
    assert response.status == 200 and took is not None
    return took


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="+", help="NAME=PATH of a checkout")
    parser.add_argument("--requests", type=int, default=1500, help="requests to each (default 1500)")
    parser.add_argument("--stream", action="store_true", help="time /execute/stream to its first event")
    args = parser.parse_args()
    procs, targets = [], {}
    try:
        for name, tree in (t.split("=", 1) for t in args.trees):
            proc, port = start(tree)
            procs.append(proc)
            conn = http.client.HTTPConnection("127.0.0.1", port)
            _, wf = call(conn, "/api/workflows", {"name": "ab"})
            blocks, edges = three_blocks()
            conn.request("PUT", f"/api/workflows/{wf['id']}/graph", json.dumps({"blocks": blocks, "edges": edges}),
                         {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
            response = conn.getresponse()
            assert response.status == 200, response.read()
            response.read()
            targets[name] = (conn, f"/api/workflows/{wf['id']}/execute" + ("/stream" if args.stream else ""))
        bare_port = free_port()
        procs.append(subprocess.Popen([sys.executable, BARE, str(bare_port)], stdout=subprocess.DEVNULL,
                                      preexec_fn=die_with_parent))
        wait_listening(bare_port)
        targets["bare"] = (http.client.HTTPConnection("127.0.0.1", bare_port), "/bare")
        body = {"variables": {"n": 9}}
        for conn, path in targets.values():
            for _ in range(50):  # warm
                first_event(conn, path, body) if path.endswith("/stream") else call(conn, path, body)
        times = {name: [] for name in targets}
        names = list(targets)
        for i in range(args.requests):
            for name in names if i % 2 == 0 else names[::-1]:
                conn, path = targets[name]
                if path.endswith("/stream"):
                    times[name].append(first_event(conn, path, body))
                    continue
                t0 = time.perf_counter()
                status, answer = call(conn, path, body)
                times[name].append(time.perf_counter() - t0)
                assert status == 200, answer
        print(f"{'/execute/stream to its first event' if args.stream else '/execute'} at one connection, "
              f"{args.requests} requests each, alternating "
              f"(load average {os.getloadavg()[0]:.1f}):")
        for name, values in times.items():
            q = statistics.quantiles(values, n=4)
            print(f"  {name:<10} p25 {q[0] * 1e3:.3f}  p50 {q[1] * 1e3:.3f}  p75 {q[2] * 1e3:.3f} ms")
    finally:
        for proc in procs:
            proc.kill()


if __name__ == "__main__":
    main()
