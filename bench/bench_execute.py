"""Execute benchmarks: a 3-block graph at 1 and 16 clients, a 1000-block chain and fan-out.

    python bench/bench_execute.py [--seconds 3] [--repeat 3]

Starts `run.py` (SQLite in a temp dir) and a bare Tornado JSON handler, and
drives both with the same client in the same run, so the ratio is fair.
"""

import argparse
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import KEY, Servers, load, median, ms  # noqa: E402


def three_blocks():
    return ([{"id": "start", "type": "starter"},
             {"id": "check", "type": "condition", "config": {"conditions": [{"id": "big", "expression": "start.n > 5"}]}},
             {"id": "out", "type": "response", "config": {"data": {"n": "{{ start.n }}"}}}],
            [{"source": "start", "target": "check"}, {"source": "check", "target": "out", "source_handle": "big"}])


def chain(n):
    blocks = [{"id": "start", "type": "starter"}] + [
        {"id": f"b{i}", "type": "response", "config": {"data": i}} for i in range(n - 1)]
    edges = [{"source": "start", "target": "b0"}] + [
        {"source": f"b{i}", "target": f"b{i + 1}"} for i in range(n - 2)]
    return blocks, edges


def fan_out(n):
    blocks = [{"id": "start", "type": "starter"}] + [
        {"id": f"b{i}", "type": "response", "config": {"data": i}} for i in range(n - 1)]
    return blocks, [{"source": "start", "target": f"b{i}"} for i in range(n - 1)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    servers = Servers()
    try:
        wf = servers.workflow(*three_blocks())
        url = f"{servers.url}/api/workflows/{wf}/execute"
        auth = {"Authorization": f"Bearer {KEY}"}
        body = {"variables": {"n": 9}}
        print(f"3-block graph (starter -> condition -> response), {args.seconds:g}s per round, "
              f"median of {args.repeat} rounds")
        print(f"{'clients':>8} {'bare req/s':>11} {'actorflow req/s':>16} {'ratio':>6} "
              f"{'bare p50':>11} {'actorflow p50':>14}")
        for clients in (1, 16):
            bare_rates, af_rates, bare_p50, af_p50 = [], [], [], []
            for _ in range(args.repeat):
                lat, rate, _ = asyncio.run(load(servers.bare_url, body, clients, args.seconds))
                bare_rates.append(rate)
                bare_p50.append(median(lat))
                lat, rate, errors = asyncio.run(load(url, body, clients, args.seconds, auth))
                assert errors == 0, f"{errors} failed requests"
                af_rates.append(rate)
                af_p50.append(median(lat))
            b, a = median(bare_rates), median(af_rates)
            print(f"{clients:>8} {b:>11.0f} {a:>16.0f} {a / b:>6.2f} {ms(median(bare_p50))} {ms(median(af_p50)):>14}")

        for name, graph in (("1000-block chain", chain(1000)), ("1000-wide fan-out", fan_out(1000))):
            times = servers.timed_runs(servers.workflow(*graph), args.repeat)
            print(f"{name}: median {ms(median(times))} end to end ({args.repeat} runs)")
    finally:
        servers.close()


if __name__ == "__main__":
    main()
