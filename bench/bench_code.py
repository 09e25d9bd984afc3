"""Overhead of a trivial code block, through SandboxPool directly (no server).

    python bench/bench_code.py [--runs 50]

warm: a pre-started process was waiting (we wait until the pool is full);
cold: pool size 0, every run starts its interpreter;
back-to-back: warm pool, runs one after another with no pause (the pool
refills behind them as fast as it can);
in-process: exec of the same body in this process, the floor nobody gets.

On a busy machine the figures measure the scheduler; `chrt -f 10 python
bench/bench_code.py` (as root) shows what a block costs on an idle one.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from actors.sandbox import SandboxPool  # noqa: E402

CODE = "return inputs['start']['n'] + 1"
SCOPE = {"inputs": {"start": {"n": 41}}, "variables": {}}


def timed(pool, runs, pause):
    times = []
    for _ in range(runs):
        if pause:
            time.sleep(pause)
        if pool.size and pause:
            # Let the pool refill: we measure a warm take, not how fast it refills.
            deadline = time.monotonic() + 10
            while pool.idle_count() < pool.size and time.monotonic() < deadline:
                time.sleep(0.01)
        started = time.perf_counter()
        assert pool.run(CODE, SCOPE, timeout=10).value == 42
        times.append(time.perf_counter() - started)
    return times


def in_process(runs):
    body = "def f(inputs, variables):\n    " + CODE
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        scope = {}
        exec(compile(body, "<code>", "exec"), scope)
        assert scope["f"](**SCOPE) == 42
        times.append(time.perf_counter() - started)
    return times


def report(name, times):
    ordered = sorted(times)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    print(f"{name:<14} median {statistics.median(times) * 1000:8.2f} ms   p90 {p90 * 1000:8.2f} ms")
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    print(f"{args.runs} runs each; user switch: {'yes' if os.geteuid() == 0 else 'no (not root)'}")

    warm_pool = SandboxPool(size=2)
    cold_pool = SandboxPool(size=0)
    try:
        print(f"interpreter: {warm_pool.python}")
        timed(warm_pool, 3, 0.2)  # warm-up: imports, probe, page cache
        timed(cold_pool, 3, 0)
        warm = report("warm", timed(warm_pool, args.runs, 0.15))
        cold = report("cold", timed(cold_pool, args.runs, 0.02))
        report("back-to-back", timed(warm_pool, args.runs, 0))
        report("in-process", in_process(args.runs))
        print(f"cold / warm: {cold / warm:.1f}x")
    finally:
        warm_pool.close()
        cold_pool.close()


if __name__ == "__main__":
    main()
