"""P4: thousands of runs in flight, each waiting on a slow local endpoint; RSS and threads.

    python bench/inflight.py [--inflight 5000] [--sample 2000] [--steady 200] [--seconds 30]

The server (`run.py`) is a separate process; the slow endpoint (an asyncio
HTTP server) and the clients live in this process, on one event loop. Each
run is `starter -> http` against the endpoint, started over
/execute/stream; a run counts as started when its `execution_started`
event arrives, and as in flight once its http block's request is held by
the endpoint. RSS and live threads are read from the server's
/proc/PID/status, its CPU from /proc/PID/stat. Phases:

1. idle: after start-up and 20 warm runs;
2. `--sample` runs at once, each held by the endpoint until all are:
   RSS and threads then; then all are answered;
3. `--inflight` runs at once, the same way: seconds until every one had
   started, whether all were held at once and completed without an error,
   and the server's CPU per run;
4. `--inflight` requests at once to the bare Tornado handler, with the
   same client: how long this machine and this client take for the
   connections alone (the yardstick; its listen backlog is run.py's);
5. on a fresh server: `--steady` runs kept in flight for `--seconds`
   (each replaced as it ends, endpoint delay 0.2 s), RSS each second;
6. RSS once that load has ended, against that server's idle RSS.

With `--server-defaults` the server keeps its default limits (50 outgoing
connections per workspace, 192 block threads for one workspace): the rest of
the runs wait in their http block or in the launch queue, and a burst counts
from the first request until every run's `execution_started` (RSS and
threads a second later).

Every run is in the default workspace, so the per-workspace cap on outgoing
connections (ACTORFLOW_HTTP_PER_WORKSPACE, default 50) is raised to the
number in flight here; the launch budget (ACTORFLOW_MAX_BLOCK_THREADS) too,
to 4/3 of it since one workspace holds at most 3/4 of the budget, so every
run's http block is waiting on the endpoint rather than queued.
Not a test: it takes a few minutes.
"""

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import KEY, Servers  # noqa: E402
from soak import proc_status  # noqa: E402


class SlowEndpoint:
    """An HTTP server on this loop: every answer comes `delay` seconds after its request."""

    def __init__(self, delay):
        self.delay = delay
        self.waiting = 0      # requests being held now
        self.served = 0
        self.peak = 0
        self.release = None   # an asyncio.Event: when set, held requests are answered at once

    async def start(self):
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=8192)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader, writer):
        try:
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            self.waiting += 1
            self.peak = max(self.peak, self.waiting)
            try:
                if self.release is not None:
                    await asyncio.wait_for(self.release.wait(), self.delay)
                else:
                    await asyncio.sleep(self.delay)
            except asyncio.TimeoutError:
                pass
            finally:
                self.waiting -= 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
            await writer.drain()
            self.served += 1
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


class Client:
    """Runs over /execute/stream with plain asyncio sockets (cheap enough for thousands at once)."""

    def __init__(self, port, workflow):
        self.port = port
        self.request = self._post(f"/api/workflows/{workflow}/execute/stream")

    def _post(self, path):
        return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nAuthorization: Bearer {KEY}\r\n"
                "Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}").encode()

    async def _send(self):
        """The request on a new connection: (reader, writer, the answer's status line, or the error)."""
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 20)
        except OSError as exc:
            return None, None, f"connect: {exc}"
        try:
            writer.write(self.request)
            return reader, writer, await reader.readline()
        except OSError as exc:
            writer.close()
            return None, None, f"{type(exc).__name__}: {exc}"

    async def run(self, on_started=None):
        """One run: (ok, seconds until its execution_started, last event type or error)."""
        t0 = time.monotonic()
        started = None
        last = None
        reader, writer, status = await self._send()
        if writer is None:
            return False, None, status
        try:
            if b" 200 " not in status:
                return False, None, status.decode(errors="replace").strip()
            while True:
                line = await reader.readline()
                if not line:
                    break
                if not line.startswith(b"data: "):
                    continue
                last = json.loads(line[6:])["type"]
                if last == "execution_started" and started is None:
                    started = time.monotonic() - t0
                    if on_started is not None:
                        on_started()
                if last in ("execution_completed", "error"):
                    break
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            return False, started, f"{type(exc).__name__}: {exc}"
        finally:
            writer.close()
        return last == "execution_completed", started, last


class BareClient(Client):
    """The same connections as Client, each POSTing to the bare Tornado handler instead."""

    def __init__(self, port):
        self.port = port
        self.request = self._post("/bare")

    async def run(self):
        """One request: (ok, seconds until its answer's status line, error)."""
        t0 = time.monotonic()
        reader, writer, status = await self._send()
        if writer is None:
            return False, None, status
        answered = time.monotonic() - t0
        try:
            await reader.read()
        except OSError as exc:
            return False, None, f"{type(exc).__name__}: {exc}"
        finally:
            writer.close()
        return b" 200 " in status, answered, None if b" 200 " in status else status.decode(errors="replace")


async def bare_burst(servers, count):
    """`count` requests at once to the bare handler, the same way: seconds until all were answered."""
    pid = servers.procs[1].pid
    cpu0 = cpu_seconds(servers, pid)
    results = await asyncio.gather(*[BareClient(servers.bare_port).run() for _ in range(count)])
    took = max(r[1] for r in results) if all(r[0] for r in results) else float("inf")
    per_request = (cpu_seconds(servers, pid) - cpu0) / count
    failed = sum(1 for r in results if not r[0])
    print(f"  bare Tornado handler, {count} at once: the last answered after {took:.2f} s; "
          f"its CPU {per_request * 1e3:.2f} ms per request; {failed} failed", flush=True)
    return took


def rss(servers):
    return proc_status(servers.procs[0].pid)


def cpu_seconds(servers, pid=None):
    """The server's (or process `pid`'s) user + system CPU seconds so far."""
    with open(f"/proc/{pid or servers.procs[0].pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def burst(servers, slow, client, count, label, hold=True):
    """`count` runs at once, each held at the endpoint until all are (`hold`; else until
    all have started): (seconds until all started, RSS/threads once all wait, failures,
    most held at once, server CPU per run)."""
    slow.release = asyncio.Event()
    cpu0 = cpu_seconds(servers)
    t0 = time.monotonic()
    started = []
    tasks = [asyncio.ensure_future(client.run(lambda: started.append(time.monotonic() - t0)))
             for _ in range(count)]
    while (len(started) < count or (hold and slow.waiting < count)) and not any(t.done() for t in tasks):
        await asyncio.sleep(0.02)
    if not hold:
        await asyncio.sleep(1.0)   # the blocks just started settle
    all_started = max(started) if len(started) == count else float("inf")
    held = slow.waiting
    per_run = (cpu_seconds(servers) - cpu0) / count
    sample = rss(servers)
    slow.release.set()
    results = await asyncio.gather(*tasks)
    slow.release = None
    failures = [r[2] for r in results if not r[0]]
    print(f"  {label}: {len(started)}/{count} started, the last after {max(started or [0]):.2f} s; "
          f"{held} held at the endpoint at once; RSS {sample[0]:.0f} MiB, {sample[1]} threads; "
          f"server CPU {per_run * 1e3:.2f} ms per run; {len(failures)} failed {sorted(set(failures))[:3]}",
          flush=True)
    return all_started, sample, failures, held, per_run


async def steady(servers, slow, client, width, seconds):
    """`width` runs kept in flight for `seconds`; RSS samples (MiB) once a second, runs done, failures."""
    stop = time.monotonic() + seconds
    done, failures, samples = [0], [], []

    async def lane():
        while time.monotonic() < stop:
            ok, _, why = await client.run()
            done[0] += 1
            if not ok:
                failures.append(why)

    lanes = asyncio.gather(*[lane() for _ in range(width)])
    while not lanes.done():
        await asyncio.wait([lanes], timeout=1.0)
        samples.append(rss(servers))
    await lanes
    return samples, done[0], failures


def verdict(name, figure, goal, ok):
    print(f"  {name:<44} {figure:<34} goal {goal:<18} {'PASS' if ok else 'MISS'}", flush=True)
    return ok


async def prepare(servers, slow):
    await slow.start()
    wf = servers.workflow(
        [{"id": "start", "type": "starter"},
         {"id": "wait", "type": "http", "config": {"url": f"http://127.0.0.1:{slow.port}/", "timeout": 600}}],
        [{"source": "start", "target": "wait"}])
    client = Client(servers.port, wf)
    delay, slow.delay = slow.delay, 0.01
    for _ in range(20):  # warm: code paths, caches, the first commits
        ok, _, why = await client.run()
        assert ok, why
    slow.delay = delay
    await asyncio.sleep(3.0)  # the idle tidy-up (server/memory.py) has run
    idle = rss(servers)
    print(f"  idle: RSS {idle[0]:.1f} MiB, {idle[1]} threads", flush=True)
    return client, idle


async def bursts(args, servers):
    slow = SlowEndpoint(600)
    client, idle = await prepare(servers, slow)
    out = {"idle": idle}
    hold = not args.server_defaults
    out["sample"] = await burst(servers, slow, client, args.sample, f"{args.sample} at once", hold)
    await asyncio.sleep(3.0)
    out["burst"] = await burst(servers, slow, client, args.inflight, f"{args.inflight} at once", hold)
    await asyncio.sleep(args.settle)
    out["after"] = rss(servers)
    print(f"  after the bursts: RSS {out['after'][0]:.1f} MiB", flush=True)
    out["bare"] = await bare_burst(servers, args.inflight)
    slow.server.close()
    return out


async def steady_load(args, servers):
    slow = SlowEndpoint(args.steady_delay)
    client, idle = await prepare(servers, slow)
    samples, done, failures = await steady(servers, slow, client, args.steady, args.seconds)
    print(f"  steady: {args.steady} in flight for {args.seconds:g} s, {done} runs, {len(failures)} failed; "
          f"RSS each second {[round(s[0]) for s in samples]}", flush=True)
    await asyncio.sleep(args.settle)
    after = rss(servers)
    print(f"  after: RSS {after[0]:.1f} MiB", flush=True)
    slow.server.close()
    return {"idle": idle, "steady": (samples, done, failures), "after": after}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inflight", type=int, default=5000, help="runs at once in the big burst (default 5000)")
    parser.add_argument("--sample", type=int, default=2000, help="runs at once for the RSS sample (default 2000)")
    parser.add_argument("--steady", type=int, default=200, help="runs kept in flight under steady load (default 200)")
    parser.add_argument("--steady-delay", type=float, default=0.2, help="endpoint delay under steady load, s")
    parser.add_argument("--seconds", type=float, default=30.0, help="steady load duration (default 30)")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after the load before the last RSS")
    parser.add_argument("--env", action="append", default=[], help="extra server setting NAME=VALUE")
    parser.add_argument("--server-defaults", action="store_true",
                        help="keep the server's default limits; bursts count until every run has started")
    args = parser.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this process and the server
    most = max(args.inflight, args.sample, args.steady) + 100
    # One workspace holds at most limit - limit // 4 block threads (the fair share).
    env = {} if args.server_defaults else {
        "ACTORFLOW_HTTP_PER_WORKSPACE": str(most), "ACTORFLOW_MAX_BLOCK_THREADS": str(most * 4 // 3 + 4)}
    env.update(kv.split("=", 1) for kv in args.env)
    print(f"P4: server settings {env}; load average {os.getloadavg()[0]:.1f}", flush=True)
    servers = Servers(extra_env=env)
    try:
        out = asyncio.run(bursts(args, servers))
    finally:
        servers.close()
    print(f"steady load on a fresh server; load average {os.getloadavg()[0]:.1f}", flush=True)
    servers = Servers(extra_env=env)
    try:
        quiet = asyncio.run(steady_load(args, servers))
    finally:
        servers.close()
    idle = out["idle"][0]
    ok = [verdict("P4 idle RSS", f"{idle:.1f} MiB", "<= 60 MiB", idle <= 60)]
    _, sample, failures, held, _ = out["sample"]
    ok.append(verdict(f"P4 RSS with {args.sample} in flight", f"{sample[0]:.0f} MiB, {sample[1]} threads",
                      "<= 150 MiB", sample[0] <= 150 and not failures
                      and (held == args.sample or args.server_defaults)))
    took, sample, failures, held, per_run = out["burst"]
    ok.append(verdict(f"P4 {args.inflight} in flight, all started", f"{took:.2f} s (bare {out['bare']:.2f}), "
                      f"{held} held, {len(failures)} failed", "<= 2 s, 0 failed",
                      took <= 2 and not failures and (held == args.inflight or args.server_defaults)))
    print(f"  (server CPU {per_run * 1e3:.2f} ms per run in that burst; RSS {sample[0]:.0f} MiB, "
          f"{sample[1]} threads; RSS after the bursts {out['after'][0]:.0f} MiB)")
    samples, done, failures = quiet["steady"]
    values = [s[0] for s in samples]
    first, last = statistics.median(values[:len(values) // 2] or values), statistics.median(values[len(values) // 2:])
    ok.append(verdict("P4 RSS flat under steady load", f"{first:.0f} -> {last:.0f} MiB, {len(failures)} failed",
                      "<= +10%, 0 failed", last <= first * 1.1 and not failures))
    idle, after = quiet["idle"][0], quiet["after"][0]
    ok.append(verdict("P4 RSS back near idle after steady load", f"{after:.1f} MiB (idle {idle:.1f})",
                      "<= idle + 10%", after <= idle * 1.1))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    sys.exit(0 if all(ok) else 1)


if __name__ == "__main__":
    main()
