"""How much slower the same Python runs just after a thread wakes from a sleep.

    python bench/cold_cpu.py [--rounds 200]

A streamed LLM token (P5) reaches a server that has been idle for the 20 ms
since the last one. This times one fixed piece of work (parsing and encoding
a chat-completion chunk 20 times) back to back, and then right after sleeps
of 1, 5 and 20 ms, and prints each median and its ratio to the first. On a
virtual machine whose idle CPUs halt, the ratio after 20 ms says how much of
a token's time is the machine waking rather than the code.
"""

import argparse
import json
import statistics
import time

CHUNK = json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                    "choices": [{"index": 0, "delta": {"content": "t1 "}, "finish_reason": None}]})


def work():
    for _ in range(20):
        json.dumps(json.loads(CHUNK))


def timed(gap, rounds):
    times = []
    for _ in range(rounds):
        if gap:
            time.sleep(gap)
        t0 = time.perf_counter()
        work()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    warm = timed(0, args.rounds)
    print(f"back to back: {warm * 1e6:.0f} us")
    for gap in (0.001, 0.005, 0.02):
        after = timed(gap, args.rounds)
        print(f"after {gap * 1e3:.0f} ms asleep: {after * 1e6:.0f} us ({after / warm:.1f}x)")


if __name__ == "__main__":
    main()
