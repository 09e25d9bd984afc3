"""Instructions per 3-block /execute, counted by valgrind: checkouts and the bare handler.

    python bench/instructions.py NAME=PATH [NAME=PATH ...] [--requests 300] [--rounds 3]

Each server runs under `valgrind --tool=callgrind` with counting switched on
(`callgrind_control -i on`) only while `--requests` requests are sent one
after another on one connection, after 30 warm ones. Instructions are
user-space instructions of every thread of the server (no system calls, no
waiting), so the count does not drift with this machine's speed the way
time does: repeated rounds agree within about 2%. That resolves changes of a
few percent that timings on this machine cannot. Rounds alternate between
the servers. Needs valgrind (Debian package `valgrind`). Takes about 15 s a
server per round.
"""

import argparse
import glob
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import KEY, die_with_parent, free_port, wait_listening  # noqa: E402
from bench_execute import three_blocks  # noqa: E402

BARE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bare_server.py")
BODY = json.dumps({"variables": {"n": 9}})


def count(tree, requests):
    """Million instructions per request of `tree`'s run.py (None: the bare handler)."""
    tmp = tempfile.mkdtemp(prefix="actorflow-bench-")
    port, out = free_port(), os.path.join(tmp, "callgrind.out")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTORFLOW_")}
    env.update(ACTORFLOW_API_KEY=KEY, ACTORFLOW_PORT=str(port),
               ACTORFLOW_DATABASE_URL=f"sqlite:///{tmp}/bench.db")
    command = [sys.executable, BARE, str(port)] if tree is None else [sys.executable, "run.py"]
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no",
                             f"--callgrind-out-file={out}"] + command,
                            cwd=tree or os.getcwd(), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
    try:
        wait_listening(port, timeout=300)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

        def call(method, path, body):
            conn.request(method, path, body=body, headers={"Authorization": f"Bearer {KEY}"})
            answer = conn.getresponse()
            data = answer.read()
            assert answer.status < 300, (answer.status, data)
            return json.loads(data)

        if tree is None:
            path = "/bare"
        else:
            wf = call("POST", "/api/workflows", json.dumps({"name": "bench"}))["id"]
            blocks, edges = three_blocks()
            call("PUT", f"/api/workflows/{wf}/graph", json.dumps({"blocks": blocks, "edges": edges}))
            path = f"/api/workflows/{wf}/execute"
        for _ in range(30):
            call("POST", path, BODY)
        time.sleep(2)  # parked threads end, timers settle
        control = ["callgrind_control", "-i"]
        subprocess.run(control + ["on", str(proc.pid)], capture_output=True, check=True)
        for _ in range(requests):
            call("POST", path, BODY)
        subprocess.run(control + ["off", str(proc.pid)], capture_output=True, check=True)
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], capture_output=True, check=True)
    finally:
        proc.terminate()
        proc.wait(120)
    total = 0
    for name in glob.glob(out + "*"):
        with open(name, errors="replace") as f:
            found = re.search(r"^totals:\s+(\d+)", f.read(), re.M)
        total += int(found.group(1)) if found else 0
    return total / requests / 1e6


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("trees", nargs="+", help="NAME=PATH of a checkout")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    servers = [("bare", None)] + [tuple(t.split("=", 1)) for t in args.trees]
    figures = {name: [] for name, _ in servers}
    for round_ in range(args.rounds):
        order = servers if round_ % 2 == 0 else servers[::-1]
        for name, tree in order:
            figures[name].append(count(os.path.abspath(tree) if tree else None, args.requests))
    bare = statistics.median(figures["bare"])
    print(f"million instructions per request, median of {args.rounds} rounds of {args.requests}:")
    for name, values in figures.items():
        each = ", ".join(f"{v:.3f}" for v in values)
        print(f"  {name:10s} {statistics.median(values):7.3f}  ({each}); bare / this {bare / statistics.median(values):.3f}")


if __name__ == "__main__":
    main()
