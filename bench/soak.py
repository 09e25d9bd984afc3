"""Soak: mixed execute / stream / webhook / code load for a while; errors, RSS and threads over time.

    python bench/soak.py [--minutes 3] [--clients 16] [--every 10]

Starts `run.py` on a temp SQLite file and drives it from this process with
`--clients` concurrent loops, each picking in turn: a 3-block /execute, the
same over /execute/stream (read to its end), arm + webhook call, and a code
block run. Every `--every` seconds it prints the operations done, errors, the
server's RSS and thread count (from /proc). At the end: RSS growth after the
first interval (the warm-up) and whether the targets hold (0 errors, growth
<= 10%). Not a test: it runs for minutes.
"""

import argparse
import asyncio
import collections
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import KEY, Servers  # noqa: E402
from bench_execute import three_blocks  # noqa: E402

AUTH = {"Authorization": f"Bearer {KEY}"}


def proc_status(pid):
    """(RSS MiB, threads) of a live process, from /proc."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])


def webhook_workflow(servers):
    wf = servers.workflow(
        [{"id": "hook", "type": "webhook"},
         {"id": "out", "type": "response", "config": {"data": {"got": "{{ hook.body }}"}}}],
        [{"source": "hook", "target": "out"}])
    servers.api("POST", f"/api/workflows/{wf}/deploy")
    block = next(b for b in servers.api("GET", f"/api/workflows/{wf}")["blocks"] if b["type"] == "webhook")
    return wf, block["config"]["webhook_id"], block["config"]["webhook_secret"]


class Soak:
    def __init__(self, servers, clients):
        from tornado.httpclient import AsyncHTTPClient
        self.servers = servers
        self.client = AsyncHTTPClient(force_instance=True, max_clients=clients * 2)
        self.done = collections.Counter()
        self.errors = collections.Counter()
        self.last_error = {}
        self.plain = servers.workflow(*three_blocks())
        self.code = servers.workflow(
            [{"id": "start", "type": "starter"},
             {"id": "calc", "type": "code", "config": {"code": "return sum(range(variables['n']))"}}],
            [{"source": "start", "target": "calc"}])
        self.hooks = [webhook_workflow(servers) for _ in range(clients)]

    async def post(self, path, body, headers=AUTH, **kw):
        return await self.client.fetch(self.servers.url + path, method="POST", body=json.dumps(body),
                                       headers=headers, raise_error=False, request_timeout=120, **kw)

    def count(self, kind, ok, detail=""):
        if ok:
            self.done[kind] += 1
        else:
            self.errors[kind] += 1
            self.last_error[kind] = detail[:200]

    async def execute(self):
        resp = await self.post(f"/api/workflows/{self.plain}/execute", {"variables": {"n": 9}})
        self.count("execute", resp.code == 200 and json.loads(resp.body)["output"] == {"n": 9},
                   f"{resp.code} {resp.body!r}")

    async def stream(self):
        resp = await self.post(f"/api/workflows/{self.plain}/execute/stream", {"variables": {"n": 9}})
        text = resp.body.decode() if resp.body else ""
        self.count("stream", resp.code == 200 and '"execution_completed"' in text, f"{resp.code} {text[-200:]}")

    async def code_block(self):
        resp = await self.post(f"/api/workflows/{self.code}/execute", {"variables": {"n": 1000}})
        self.count("code", resp.code == 200 and json.loads(resp.body)["output"] == {"calc": 499500},
                   f"{resp.code} {resp.body!r}")

    async def webhook(self, index):
        wf, hook_id, secret = self.hooks[index]
        resp = await self.post(f"/api/workflows/{wf}/arm", {})
        if resp.code != 200:
            return self.count("webhook", False, f"arm {resp.code} {resp.body!r}")
        resp = await self.post(f"/api/webhooks/{hook_id}?wait=true", {"i": index},
                               headers={"X-Webhook-Secret": secret})
        self.count("webhook", resp.code == 200 and json.loads(resp.body)["output"] == {"got": {"i": index}},
                   f"{resp.code} {resp.body!r}")

    async def worker(self, index, stop):
        steps = [self.execute, self.stream, self.code_block, lambda: self.webhook(index)]
        i = index
        while time.monotonic() < stop:
            try:
                await steps[i % len(steps)]()
            except Exception as exc:  # a dropped connection is an error too
                self.count("transport", False, repr(exc))
            i += 1


async def soak(servers, clients, seconds, every):
    run = Soak(servers, clients)
    pid = servers.procs[0].pid
    stop = time.monotonic() + seconds
    workers = asyncio.gather(*[run.worker(i, stop) for i in range(clients)])
    samples = []
    t0 = time.monotonic()
    print(f"{'t (s)':>6} {'ops':>8} {'errors':>7} {'RSS MiB':>8} {'threads':>8}")
    while not workers.done():
        await asyncio.wait([workers], timeout=every)
        rss, threads = proc_status(pid)
        samples.append((rss, threads))
        print(f"{time.monotonic() - t0:6.0f} {sum(run.done.values()):8d} {sum(run.errors.values()):7d} "
              f"{rss:8.1f} {threads:8d}", flush=True)
    await workers
    await asyncio.sleep(2)  # let the last runs be forgotten
    rss_after, threads_after = proc_status(pid)
    return run, samples, rss_after, threads_after


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--every", type=float, default=10.0)
    args = parser.parse_args()
    servers = Servers()
    try:
        idle_rss, idle_threads = proc_status(servers.procs[0].pid)
        print(f"idle: RSS {idle_rss:.1f} MiB, {idle_threads} threads; "
              f"{args.clients} clients for {args.minutes:g} min")
        run, samples, rss_after, threads_after = asyncio.run(
            soak(servers, args.clients, args.minutes * 60, args.every))
    finally:
        servers.close()
    print("done:", dict(run.done), "errors:", dict(run.errors))
    for kind, detail in run.last_error.items():
        print(f"  last {kind} error: {detail}")
    warm = samples[0][0] if samples else idle_rss
    peak = max(s[0] for s in samples) if samples else idle_rss
    growth = (samples[-1][0] - warm) / warm * 100 if samples else 0.0
    print(f"RSS after warm-up {warm:.1f} MiB, peak {peak:.1f}, at end {samples[-1][0]:.1f} "
          f"({growth:+.1f}%), after load {rss_after:.1f}; threads after load {threads_after}")
    errors = sum(run.errors.values())
    print(f"0 errors: {'PASS' if errors == 0 else 'MISS'} ({errors}); "
          f"RSS growth <= 10% after warm-up: {'PASS' if growth <= 10 else 'MISS'}")


if __name__ == "__main__":
    main()
