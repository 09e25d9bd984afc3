"""What metrics cost on the execute path: the same server with ACTORFLOW_METRICS off and on.

    python bench/bench_metrics.py [--seconds 3] [--repeat 5]

Starts two `run.py` processes (metrics off, metrics on), drives each in turn
with the 3-block graph at 1 and 16 clients, and runs a 1000-block chain on
each; prints medians and the on/off ratio. Rounds alternate between the two
servers so that background load hits both alike.
"""

import argparse
import asyncio
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_execute import chain, three_blocks  # noqa: E402
from common import KEY, Servers, load, median, ms  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    servers = {"off": Servers(), "on": Servers({"ACTORFLOW_METRICS": "true"})}
    auth = {"Authorization": f"Bearer {KEY}"}
    body = {"variables": {"n": 9}}
    try:
        urls = {k: f"{s.url}/api/workflows/{s.workflow(*three_blocks())}/execute" for k, s in servers.items()}
        print(f"3-block graph, {args.seconds:g}s per round, median of {args.repeat} rounds (alternating)")
        print(f"{'clients':>8} {'off req/s':>10} {'on req/s':>10} {'on/off':>7} {'off p50':>11} {'on p50':>11}")
        for clients in (1, 16):
            rates, p50 = {"off": [], "on": []}, {"off": [], "on": []}
            for _ in range(args.repeat):
                for name in ("off", "on"):
                    lat, rate, errors = asyncio.run(load(urls[name], body, clients, args.seconds, auth))
                    assert errors == 0, f"{errors} failed requests"
                    rates[name].append(rate)
                    p50[name].append(median(lat))
            off, on = median(rates["off"]), median(rates["on"])
            print(f"{clients:>8} {off:>10.0f} {on:>10.0f} {on / off:>7.2f} "
                  f"{ms(median(p50['off']))} {ms(median(p50['on']))}")
        chains = {k: s.workflow(*chain(1000)) for k, s in servers.items()}
        times = {"off": [], "on": []}
        for _ in range(args.repeat):
            for name, s in servers.items():
                t0 = time.perf_counter()
                result = s.api("POST", f"/api/workflows/{chains[name]}/execute", {})
                times[name].append(time.perf_counter() - t0)
                assert result["status"] == "completed", result
        off, on = median(times["off"]), median(times["on"])
        print(f"1000-block chain: off {ms(off)}, on {ms(on)}, on/off {on / off:.2f}")
        with urllib.request.urlopen(servers["on"].url + "/metrics") as resp:
            text = resp.read().decode()
        started = [line for line in text.splitlines() if line.startswith("actorflow_runs_started_total")]
        print("counted by the metrics server:", "; ".join(started))
    finally:
        for s in servers.values():
            s.close()


if __name__ == "__main__":
    main()
