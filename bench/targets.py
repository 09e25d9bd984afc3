"""The performance targets P1–P5, side by side with a bare Tornado handler in the same run.

    python bench/targets.py [--seconds 5] [--repeat 3] [--only P1,P2,...] [--inflight 5000]

P1 drives `POST /execute` of starter -> condition -> response with wrk (a
separate process; `apt-get install wrk`, else the Python client, said so),
pinned (server on CPU 0, wrk on CPU 1, with taskset) and unpinned (the
server keeps its threads on a CPU of its choosing: ACTORFLOW_ONE_CPU), next
to the bare handler. P2 times a 1000-block chain, a 1000-wide fan-out with a
join, and saving a 5,000-block graph. P3 is webhook -> 202 at one
connection. P4 puts thousands of runs in flight, each waiting on a slow local
endpoint, and reads RSS and threads. P5 is SSE: request -> first event, and
how much a streamed LLM token adds between provider and client, next to a
bare relay (a thread reading the provider, the loop writing). Last, a warm
code block's overhead. Each target prints PASS or MISS; figures are medians
of --repeat rounds. Not a test: it takes minutes, and the machine is noisy.
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import KEY, Servers, load, median  # noqa: E402
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
        bare = _bare_p50(servers, 200 * args.repeat)
        verdict("P3 webhook -> 202 p50", f"{median(times) * 1e3:.2f} ms (bare {bare * 1e3:.2f})", "<= 2 ms",
                median(times) <= 0.002)
    finally:
        servers.close()


def _bare_p50(servers, count):
    """p50 of the bare handler at one connection, the same way (a new connection per call)."""
    times = []
    for i in range(count):
        t0 = time.perf_counter()
        _post(servers.bare_url, {"i": i}, {})
        times.append(time.perf_counter() - t0)
    return median(times)


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

def p4(args):
    """bench/inflight.py, which holds thousands of runs at a slow endpoint; its verdicts are copied here."""
    print(f"P4: {args.inflight} runs in flight, each waiting on a slow local endpoint (bench/inflight.py)")
    cmd = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "inflight.py"),
           "--inflight", str(args.inflight)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600).stdout
    for line in out.splitlines():
        print(line, flush=True)
        found = re.match(r"\s+(P4 .+?)\s{2,}(.+?)\s+goal (.+?)\s{2,}(PASS|MISS)$", line)
        if found:
            results.append((found.group(1), found.group(2), found.group(3), found.group(4) == "PASS"))


# -- P5 ---------------------------------------------------------------------

def timed_provider(tokens, gap):
    """The repository's OpenAI-compatible test server (tests/openai_server.py), noting when each token left."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from tests import openai_server
    provider = openai_server.FakeOpenAI()
    provider.sent = []
    handler = provider._httpd.RequestHandlerClass

    class Timed(handler):
        def setup(self):
            super().setup()
            wfile, sent = self.wfile, provider.sent

            class Flushed:
                def write(self, data):
                    self.last = data
                    return wfile.write(data)

                def flush(self):
                    wfile.flush()
                    if b'"content": "t' in getattr(self, "last", b""):
                        sent.append(time.monotonic())

                def __getattr__(self, name):
                    return getattr(wfile, name)
            self.wfile = Flushed()

    provider._httpd.RequestHandlerClass = Timed
    provider.script_tokens = lambda: provider.script(
        openai_server.text("", delay=gap, tokens=[f"t{i} " for i in range(tokens)]))
    return provider.start()


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
    provider = timed_provider(tokens=20, gap=0.02)
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
        bare = _bare_p50(servers, 100 * args.repeat)
        verdict("P5 request -> first SSE event p50", f"{median(firsts) * 1e3:.2f} ms (bare {bare * 1e3:.2f})",
                "<= 2 ms", median(firsts) <= 0.002)
        llm = servers.workflow([{"id": "start", "type": "starter"},
                                {"id": "ask", "type": "llm", "config": {"prompt": "hi"}}],
                               [{"source": "start", "target": "ask"}])
        relay = servers.bare_url.replace("/bare", "/relay")
        added, bare_added = [], []
        for into, url, body in ((added, f"{servers.url}/api/workflows/{llm}/execute/stream", {}),
                                (bare_added, relay, {"url": provider.url})):
            for _ in range(args.repeat):
                provider.sent.clear()
                provider.script_tokens()
                arrivals = [at for at, e in _sse(url, body) if e["type"] == "block_chunk"]
                into += [a - s for a, s in zip(arrivals, provider.sent)]
        verdict("P5 LLM token, provider -> client p50",
                f"{median(added) * 1e3:.2f} ms (bare relay {median(bare_added) * 1e3:.2f})", "<= 1 ms",
                median(added) <= 0.001)
    finally:
        servers.close()
        provider.stop()


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
