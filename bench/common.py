"""Shared bench plumbing: start servers, drive load, print medians."""

import asyncio
import ctypes
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "bench-key-0123456789abcdef"


def die_with_parent():
    """`preexec_fn` for a server: Linux sends it SIGTERM when this process dies.

    A bench killed (or timed out) before its `close()` would otherwise leave a
    server running, with its runs and threads, and the next timing on this
    machine would read slow for no visible reason.
    """
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: close() is all there is


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


class Servers:
    """Actorflow (`run.py`) and the bare handler, each in its own process."""

    def __init__(self, extra_env=None, server_cpu=None):
        self.tmp = tempfile.mkdtemp(prefix="actorflow-bench-")
        self.port, self.bare_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ACTORFLOW_")}
        env.update({"ACTORFLOW_API_KEY": KEY, "ACTORFLOW_PORT": str(self.port),
                    "ACTORFLOW_DATABASE_URL": f"sqlite:///{self.tmp}/bench.db"}, **(extra_env or {}))
        quiet = subprocess.DEVNULL
        # Pinned: both servers on one CPU, so the load generator can have the other.
        pin = ["taskset", "-c", str(server_cpu)] if server_cpu is not None else []
        self.procs = [
            subprocess.Popen(pin + [sys.executable, "run.py"], cwd=ROOT, env=env, stdout=quiet, stderr=quiet,
                             preexec_fn=die_with_parent),
            subprocess.Popen(pin + [sys.executable, "bench/bare_server.py", str(self.bare_port)], cwd=ROOT,
                             stdout=quiet, stderr=quiet, preexec_fn=die_with_parent),
        ]
        wait_listening(self.port)
        wait_listening(self.bare_port)
        self.url = f"http://127.0.0.1:{self.port}"
        self.bare_url = f"http://127.0.0.1:{self.bare_port}/bare"

    def api(self, method, path, body=None):
        req = urllib.request.Request(self.url + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {KEY}"})
        with urllib.request.urlopen(req, timeout=300) as resp:
            return json.loads(resp.read())

    def workflow(self, blocks, edges):
        wf = self.api("POST", "/api/workflows", {"name": "bench"})
        self.api("PUT", f"/api/workflows/{wf['id']}/graph", {"blocks": blocks, "edges": edges})
        return wf["id"]

    def timed_runs(self, wf, repeat):
        """Run workflow `wf` over /execute `repeat` times, one after another; seconds each."""
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            result = self.api("POST", f"/api/workflows/{wf}/execute", {})
            times.append(time.perf_counter() - t0)
            assert result["status"] == "completed", result
        return times

    def close(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(30)


async def load(url, body, clients, seconds, headers=None):
    """`clients` concurrent keep-alive loops POSTing `body` for `seconds`; returns latencies (s)."""
    from tornado.httpclient import AsyncHTTPClient
    client = AsyncHTTPClient(force_instance=True, max_clients=clients)
    payload = json.dumps(body)
    latencies, errors = [], 0
    stop = time.monotonic() + seconds

    async def worker():
        nonlocal errors
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            resp = await client.fetch(url, method="POST", body=payload, headers=headers or {},
                                      raise_error=False, request_timeout=60)
            if resp.code != 200:
                errors += 1
            latencies.append(time.perf_counter() - t0)

    t0 = time.monotonic()
    await asyncio.gather(*[worker() for _ in range(clients)])
    elapsed = time.monotonic() - t0
    client.close()
    return latencies, len(latencies) / elapsed, errors


def ms(seconds):
    return f"{seconds * 1000:8.2f} ms"


def median(values):
    return statistics.median(values)
