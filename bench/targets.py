"""The performance targets P1–P5, side by side with a bare Tornado handler in the same run.

    python bench/targets.py [--seconds 5] [--repeat 3] [--only P1,P2,...] [--inflight 5000]

P1 drives `POST /execute` of starter -> condition -> response with wrk (a
separate process; `apt-get install wrk`, else the Python client, said so),
pinned (server on CPU 0, wrk on CPU 1, with taskset) and unpinned, next to
the bare handler. P2 times a 1000-block chain, a 1000-wide fan-out with a
join, and saving a 5,000-block graph. P3 is webhook -> 202 at one
connection. P4 puts thousands of runs in flight, each waiting on a slow local
endpoint, and reads RSS and threads. P5 is SSE: request -> first event, and
how much a streamed LLM token adds between provider and client. Last, a warm
code block's overhead. Each target prints PASS or MISS; figures are medians
of --repeat rounds. Not a test: it takes minutes, and the machine is noisy.
"""

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import KEY, Servers, load, median, wait_listening  # noqa: E402
from bench_execute import chain, three_blocks  # noqa: E402
from soak import proc_status, webhook_workflow  # noqa: E402

AUTH = {"Authorization": f"Bearer {KEY}"}
results = []  # (target, figure, goal, ok)


def verdict(target, figure, goal, ok):
    results.append((target, figure, goal, ok))
    print(f"  {target:<44} {figure:<28} goal {goal:<18} {'PASS' if ok else 'MISS'}", flush=True)


# -- wrk --------------------------------------------------------------------

def _seconds(text):
    number, unit = re.match(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def wrk(url, body, headers, connections, seconds, cpu=None):
    """(req/s, p50 s, p99 s, non-2xx) from one wrk run."""
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(json.dumps(body))}",
             'wrk.headers["Content-Type"] = "application/json"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    script.write("\n".join(lines) + "\n")
    script.close()
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", script.name, url]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu)] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    os.unlink(script.name)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    # Anchored: a thread-stats column such as "72.50%" also ends in "50%".
    p50 = _seconds(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1))
    p99 = _seconds(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rate, p50, p99, int(bad.group(1)) if bad else 0


def python_load(url, body, headers, connections, seconds, cpu=None):
    latencies, rate, errors = asyncio.run(load(url, body, connections, seconds, headers))
    latencies.sort()
    return rate, median(latencies), latencies[int(len(latencies) * 0.99) - 1], errors


def p1(args, driver):
    print("P1: 3-block /execute, every row committed before the answer")
    body = {"variables": {"n": 9}}
    for pinned in (True, False):
        servers = Servers(server_cpu=0 if pinned else None)
        try:
            wf = servers.workflow(*three_blocks())
            url = f"{servers.url}/api/workflows/{wf}/execute"
            cpu = 1 if pinned else None
            driver(url, body, AUTH, 16, 1, cpu)  # warm-up
            rounds = {"bare16": [], "af16": [], "af1": []}
            rss = []
            for _ in range(args.repeat):
                rounds["bare16"].append(driver(servers.bare_url, body, {}, 16, args.seconds, cpu))
                rounds["af16"].append(driver(url, body, AUTH, 16, args.seconds, cpu))
                rss.append(proc_status(servers.procs[0].pid)[0])
                rounds["af1"].append(driver(url, body, AUTH, 1, args.seconds, cpu))
            bare = median([r[0] for r in rounds["bare16"]])
            af = median([r[0] for r in rounds["af16"]])
            p50_16 = median([r[1] for r in rounds["af16"]])
            p99_16 = median([r[2] for r in rounds["af16"]])
            p50_1 = median([r[1] for r in rounds["af1"]])
            errors = sum(r[3] for rs in rounds.values() for r in rs)
            where = "pinned" if pinned else "unpinned"
            print(f"  {where}: bare {bare:.0f} req/s, actorflow {af:.0f} req/s, "
                  f"p50/p99 at 16 {p50_16 * 1e3:.2f}/{p99_16 * 1e3:.2f} ms, "
                  f"p50 at 1 {p50_1 * 1e3:.2f} ms, errors {errors}, RSS per round {[round(r) for r in rss]} MiB")
            goal = 0.33 if pinned else 0.25
            verdict(f"P1 ratio at 16 connections, {where}", f"{af / bare:.3f}x", f">= {goal}x", af / bare >= goal)
            if pinned:
                verdict("P1 p50 at 1 connection", f"{p50_1 * 1e3:.2f} ms", "<= 1.5 ms", p50_1 <= 0.0015)
                verdict("P1 p99 / p50 at 16 connections", f"{p99_16 / p50_16:.1f}", "<= 10", p99_16 <= 10 * p50_16)
                verdict("P1 no failed requests", str(errors), "0", errors == 0)
        finally:
            servers.close()


# -- P2 ---------------------------------------------------------------------

def fan_out_join(n):
    blocks = [{"id": "start", "type": "starter"}] + [
        {"id": f"b{i}", "type": "response", "config": {"data": i}} for i in range(n - 2)] + [
        {"id": "join", "type": "response", "config": {"data": "joined"}}]
    edges = [{"source": "start", "target": f"b{i}"} for i in range(n - 2)]
    edges += [{"source": f"b{i}", "target": "join"} for i in range(n - 2)]
    return blocks, edges


def p2(args):
    print("P2: large graphs, end to end over HTTP, every log on disk before the answer")
    servers = Servers()
    try:
        for name, graph in (("1000-block chain", chain(1000)), ("1000-wide fan-out + join", fan_out_join(1000))):
            times = servers.timed_runs(servers.workflow(*graph), args.repeat)
            verdict(f"P2 {name}", f"{median(times) * 1e3:.0f} ms", "<= 150 ms", median(times) <= 0.15)
        blocks, edges = chain(5000)
        wf = servers.api("POST", "/api/workflows", {"name": "big"})["id"]
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            servers.api("PUT", f"/api/workflows/{wf}/graph", {"blocks": blocks, "edges": edges})
            times.append(time.perf_counter() - t0)
        verdict("P2 save a 5,000-block graph", f"{median(times) * 1e3:.0f} ms", "<= 1000 ms", median(times) <= 1.0)
    finally:
        servers.close()


# -- P3 ---------------------------------------------------------------------

def p3(args):
    print("P3: webhook call -> 202 at one connection")
    servers = Servers()
    try:
        wf, hook, secret = webhook_workflow(servers)
        times = []
        for i in range(200 * args.repeat):
            servers.api("POST", f"/api/workflows/{wf}/arm")
            t0 = time.perf_counter()
            status = _post(servers.url + f"/api/webhooks/{hook}", {"i": i}, {"X-Webhook-Secret": secret})
            times.append(time.perf_counter() - t0)
            assert status == 202, status
        verdict("P3 webhook -> 202 p50", f"{median(times) * 1e3:.2f} ms", "<= 2 ms", median(times) <= 0.002)
    finally:
        servers.close()


def _post(url, body, headers):
    import http.client
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    conn.request("POST", parts.path, json.dumps(body), {"Content-Type": "application/json", **headers})
    status = conn.getresponse().status
    conn.close()
    return status


# -- P4 ---------------------------------------------------------------------

class SlowEndpoint:
    """A local HTTP server whose every answer takes `delay` seconds (asyncio, any number at once)."""

    def __init__(self, delay):
        self.port = _free_port()
        code = ("import asyncio,sys\n"
                "async def handle(r, w):\n"
                "    try:\n"
                "        while (await r.readline()) not in (b'\\r\\n', b''): pass\n"
                f"        await asyncio.sleep({delay})\n"
                "        w.write(b'HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n"
                "Content-Length: 2\\r\\nConnection: close\\r\\n\\r\\n{}')\n"
                "        await w.drain()\n"
                "    finally:\n"
                "        w.close()\n"
                "async def main():\n"
                f"    s = await asyncio.start_server(handle, '127.0.0.1', {self.port}, backlog=8192)\n"
                "    await s.serve_forever()\n"
                "asyncio.run(main())\n")
        self.proc = subprocess.Popen([sys.executable, "-c", code])
        wait_listening(self.port)

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _in_flight(servers, wf, count, started_at, sample_when=None):
    """Start `count` streamed runs at once; (seconds until every run had started, RSS/threads sample, failures)."""
    from tornado.httpclient import AsyncHTTPClient
    client = AsyncHTTPClient(force_instance=True, max_clients=count)
    started = []
    sample = {}
    failures = []

    async def one():
        seen = False

        def chunk(data):
            nonlocal seen
            if not seen and b"execution_started" in data:
                seen = True
                started.append(time.monotonic() - started_at)
                if sample_when is not None and len(started) == sample_when:
                    sample["at"] = proc_status(servers.procs[0].pid)
        resp = await client.fetch(f"{servers.url}/api/workflows/{wf}/execute/stream", method="POST",
                                  body="{}", headers=AUTH, streaming_callback=chunk,
                                  request_timeout=600, connect_timeout=120, raise_error=False)
        if resp.code != 200 or not seen:
            failures.append(resp.code)

    done = asyncio.gather(*[one() for _ in range(count)])
    await done
    client.close()
    return (max(started) if started else float("inf")), sample.get("at"), failures


def p4(args):
    print(f"P4: {args.inflight} runs in flight, each waiting on a slow local endpoint")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server inherits it
    slow = SlowEndpoint(delay=8)
    # One workspace holds every run here: lift its fair-share cap on outgoing connections.
    servers = Servers(extra_env={"ACTORFLOW_HTTP_PER_WORKSPACE": str(args.inflight + 100)})
    try:
        idle = proc_status(servers.procs[0].pid)
        verdict("P4 idle RSS", f"{idle[0]:.0f} MiB", "<= 60 MiB", idle[0] <= 60)
        wf = servers.workflow(
            [{"id": "start", "type": "starter"},
             {"id": "wait", "type": "http", "config": {"url": f"http://127.0.0.1:{slow.port}/", "timeout": 120}}],
            [{"source": "start", "target": "wait"}])
        t0 = time.monotonic()
        took, sample, failures = asyncio.run(_in_flight(servers, wf, 2000, t0, sample_when=2000))
        if sample:
            verdict("P4 RSS with 2,000 in flight", f"{sample[0]:.0f} MiB, {sample[1]} threads",
                    "<= 150 MiB", sample[0] <= 150)
        t0 = time.monotonic()
        took, _, failures = asyncio.run(_in_flight(servers, wf, args.inflight, t0))
        verdict(f"P4 {args.inflight} in flight: all started", f"{took:.2f} s, {len(failures)} failed",
                "<= 2 s, 0 failed", took <= 2 and not failures)
        time.sleep(2)
        after = proc_status(servers.procs[0].pid)
        verdict("P4 RSS back near idle after load", f"{after[0]:.0f} MiB (idle {idle[0]:.0f})",
                "<= idle + 10%", after[0] <= idle[0] * 1.1)
    finally:
        servers.close()
        slow.close()


# -- P5 ---------------------------------------------------------------------

class TimedProvider:
    """An OpenAI-compatible streaming endpoint that notes when it wrote each token."""

    def __init__(self, tokens, gap):
        sent = self.sent = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for i in range(tokens):
                    time.sleep(gap)
                    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                             "choices": [{"index": 0, "delta": {"content": f"t{i} "}, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                    sent.append(time.monotonic())
                done = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def _sse(url, body):
    """Yield (monotonic time, parsed event) for each data line of a streamed POST."""
    import http.client
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    conn.request("POST", parts.path, json.dumps(body), {"Content-Type": "application/json", **AUTH})
    resp = conn.getresponse()
    while True:
        line = resp.fp.readline()
        if not line:
            break
        if line.startswith(b"data: "):
            event = json.loads(line[6:])
            yield time.monotonic(), event
            if event["type"] in ("execution_completed", "error"):
                break
    conn.close()


def p5(args):
    print("P5: SSE first event, and what a streamed LLM token adds")
    provider = TimedProvider(tokens=20, gap=0.02)
    servers = Servers(extra_env={"ACTORFLOW_LLM_BASE_URL": provider.url, "ACTORFLOW_LLM_API_KEY": "x",
                                 "ACTORFLOW_LLM_MODEL": "m"})
    try:
        wf = servers.workflow(*three_blocks())
        url = f"{servers.url}/api/workflows/{wf}/execute/stream"
        firsts = []
        for _ in range(100 * args.repeat):
            t0 = time.monotonic()
            for at, event in _sse(url, {"variables": {"n": 9}}):
                firsts.append(at - t0)
                break
        verdict("P5 request -> first SSE event p50", f"{median(firsts) * 1e3:.2f} ms", "<= 2 ms",
                median(firsts) <= 0.002)
        llm = servers.workflow([{"id": "start", "type": "starter"},
                                {"id": "ask", "type": "llm", "config": {"prompt": "hi"}}],
                               [{"source": "start", "target": "ask"}])
        added = []
        for _ in range(args.repeat):
            provider.sent.clear()
            arrivals = [at for at, e in _sse(f"{servers.url}/api/workflows/{llm}/execute/stream", {})
                        if e["type"] == "block_chunk"]
            added += [a - s for a, s in zip(arrivals, provider.sent)]
        verdict("P5 LLM token, provider -> client p50", f"{median(added) * 1e3:.2f} ms", "<= 1 ms",
                median(added) <= 0.001)
    finally:
        servers.close()
        provider.close()


# -- code block -------------------------------------------------------------

def code(args):
    print("Code block: a warm block's own overhead")
    from bench_code import timed
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from actors.sandbox import SandboxPool
    pool = SandboxPool(size=2, memory_mb=256, cpu_seconds=10)
    try:
        times = timed(pool, 30 * args.repeat, pause=0.05)
    finally:
        pool.close()
    verdict("warm code block overhead p50", f"{median(times) * 1e3:.2f} ms", "<= 5 ms", median(times) <= 0.005)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per P1 round (default 5)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per figure (default 3)")
    parser.add_argument("--only", default="P1,P2,P3,P4,P5,code", help="which targets (default all)")
    parser.add_argument("--inflight", type=int, default=5000, help="runs in flight for P4 (default 5000)")
    args = parser.parse_args()
    only = set(args.only.split(","))
    driver = wrk if shutil.which("wrk") else python_load
    if driver is python_load:
        print("wrk not found (apt-get install wrk): P1 uses the Python client in this process instead")
    for name, fn in (("P1", lambda: p1(args, driver)), ("P2", lambda: p2(args)), ("P3", lambda: p3(args)),
                     ("P4", lambda: p4(args)), ("P5", lambda: p5(args)), ("code", lambda: code(args))):
        if name in only:
            fn()
    print("\nsummary")
    for target, figure, goal, ok in results:
        print(f"  {target:<44} {figure:<28} goal {goal:<18} {'PASS' if ok else 'MISS'}")


if __name__ == "__main__":
    main()
