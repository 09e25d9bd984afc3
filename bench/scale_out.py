"""Runs/s of N Actorflow processes sharing one database, N = 1, 2, 3.

    python3 bench/scale_out.py --server postgresql://user@127.0.0.1:5432/postgres [--seconds 10]

Each N gets a fresh database on that PostgreSQL server (CREATE DATABASE), N
`run.py` processes on it, and the same load (starter -> response via
/execute, keep-alive clients spread evenly over the processes). Prints a
markdown table: runs/s, p50 latency, errors. Needs the postgres and test extras.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import KEY, ROOT, die_with_parent, free_port, load, wait_listening  # noqa: E402


def fresh_database(server):
    import psycopg2
    name = "af_bench_" + uuid.uuid4().hex[:12]
    admin = psycopg2.connect(server)
    admin.autocommit = True
    try:
        admin.cursor().execute(f"CREATE DATABASE {name}")
    finally:
        admin.close()
    return server.rsplit("/", 1)[0] + "/" + name


def start(url, count):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTORFLOW_")}
    env.update(ACTORFLOW_API_KEY=KEY, ACTORFLOW_DATABASE_URL=url)
    procs, ports = [], []
    for _ in range(count):
        port = free_port()
        procs.append(subprocess.Popen([sys.executable, "run.py", "--port", str(port)], cwd=ROOT,
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      preexec_fn=die_with_parent))
        wait_listening(port, timeout=60)  # one at a time: the first makes the schema
        ports.append(port)
    return procs, ports


def workflow(port):
    import json
    import urllib.request

    def call(method, path, body):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {KEY}"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    wf = call("POST", "/api/workflows", {"name": "bench"})
    call("PUT", f"/api/workflows/{wf['id']}/graph", {
        "blocks": [{"id": "start", "type": "starter"},
                   {"id": "out", "type": "response", "config": {"data": {"ok": True}}}],
        "edges": [{"source": "start", "target": "out"}]})
    return wf["id"]


async def drive(ports, wf_id, clients, seconds):
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    per = max(1, clients // len(ports))
    results = await asyncio.gather(*[
        load(f"http://127.0.0.1:{p}/api/workflows/{wf_id}/execute", {}, per, seconds, headers)
        for p in ports])
    latencies = [x for lat, _, _ in results for x in lat]
    return sum(r for _, r, _ in results), statistics.median(latencies), sum(e for _, _, e in results)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="a PostgreSQL URL we may CREATE DATABASE on")
    parser.add_argument("--processes", default="1,2,3")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=24)
    args = parser.parse_args()
    print("| processes | runs/s | p50 | errors |\n| --- | --- | --- | --- |")
    for count in [int(n) for n in args.processes.split(",")]:
        procs, ports = start(fresh_database(args.server), count)
        try:
            wf_id = workflow(ports[0])
            asyncio.run(drive(ports, wf_id, args.clients, 2))  # warm up
            rate, p50, errors = asyncio.run(drive(ports, wf_id, args.clients, args.seconds))
            print(f"| {count} | {rate:.0f} | {p50 * 1000:.1f} ms | {errors} |", flush=True)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
