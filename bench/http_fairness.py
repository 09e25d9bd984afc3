"""Issue 9 item 7: workspace A's 200 http blocks on a slow endpoint, workspace B's trivial one.

    python3 bench/http_fairness.py [--slow 8] [--b-calls 10]

Starts Actorflow (run.py) with the given environment and a local slow HTTP
server; A runs 10 workflows of 20 parallel http blocks against `/slow`, B
then runs a one-block workflow against `/fast` `--b-calls` times. Prints the
most connections A had open at once and B's latencies. Run it once with the
defaults and once with ACTORFLOW_HTTP_PER_WORKSPACE=0 ACTORFLOW_HTTP_PER_RUN=0
in the environment to compare.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, Servers, ms  # noqa: E402


class Slow(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        owner = self.server
        if self.path.startswith("/slow"):
            with owner.lock:
                owner.open += 1
                owner.most = max(owner.most, owner.open)
            try:
                time.sleep(owner.delay)
            finally:
                with owner.lock:
                    owner.open -= 1
        data = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def call(url, key, path, body=None, method="POST"):
    req = urllib.request.Request(url + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=300) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def workflow(url, key, blocks):
    _, wf = call(url, key, "/api/workflows", {"name": "fair"})
    edges = [{"source": "start", "target": b["id"]} for b in blocks]
    status, body = call(url, key, f"/api/workflows/{wf['id']}/graph",
                        {"blocks": [{"id": "start", "type": "starter"}] + blocks, "edges": edges}, "PUT")
    assert status == 200, body
    return wf["id"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--slow", type=float, default=8.0, help="seconds the slow endpoint takes")
    parser.add_argument("--b-calls", type=int, default=10)
    args = parser.parse_args()

    slow = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    slow.daemon_threads = True
    slow.request_queue_size = 512
    slow.lock, slow.open, slow.most, slow.delay = threading.Lock(), 0, 0, args.slow
    threading.Thread(target=slow.serve_forever, daemon=True).start()
    target = f"http://127.0.0.1:{slow.server_address[1]}"

    env = {k: v for k, v in os.environ.items() if k.startswith("ACTORFLOW_HTTP_PER")}
    servers = Servers(extra_env=env)
    try:
        made = subprocess.run([sys.executable, "run.py", "create-key", "--workspace", "other",
                               "--database-url", f"sqlite:///{servers.tmp}/bench.db"],
                              cwd=ROOT, capture_output=True, text=True, check=True)
        other = made.stdout.strip().splitlines()[-1]
        from common import KEY
        wf_a = workflow(servers.url, KEY, [{"id": f"s{i}", "type": "http", "config": {
            "url": target + "/slow", "timeout": 120}} for i in range(20)])
        wf_b = workflow(servers.url, other, [{"id": "b", "type": "http", "config": {
            "url": target + "/fast", "timeout": 5}}])
        a_results = []
        a_threads = [threading.Thread(target=lambda: a_results.append(
            call(servers.url, KEY, f"/api/workflows/{wf_a}/execute", {})[0])) for _ in range(10)]
        for t in a_threads:
            t.start()
        time.sleep(1.0)
        latencies, errors = [], 0
        for _ in range(args.b_calls):
            t0 = time.perf_counter()
            status, body = call(servers.url, other, f"/api/workflows/{wf_b}/execute", {})
            latencies.append(time.perf_counter() - t0)
            errors += status != 200
        busy = slow.most
        for t in a_threads:
            t.join()
        print(f"limits: {env or 'defaults (50 per workspace, 10 per run)'}")
        print(f"A: 200 blocks, most open at once {busy}; runs {a_results.count(200)}/10 completed")
        print(f"B: {args.b_calls} runs, {errors} errors, median {ms(statistics.median(latencies))}, "
              f"max {ms(max(latencies))}")
    finally:
        servers.close()
        slow.shutdown()


if __name__ == "__main__":
    main()
