"""Where a run's CPU goes: py-spy samples a live server while one graph runs again and again.

    python bench/profile_run.py chain|fanout|three|save [--runs 20] [--top 25]
    python bench/profile_run.py three --connections 16 [--seconds 5] [--pin]   (wrk drives it)

Needs py-spy (pip install py-spy) and ptrace rights. Prints the functions
with the most samples, self and inclusive, over the threads holding the GIL, and the collapsed stacks' path for flame graphs.
"""

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import KEY, Servers  # noqa: E402
from bench_execute import chain, three_blocks  # noqa: E402
from targets import fan_out_join, wrk  # noqa: E402

GRAPHS = {"chain": lambda: chain(1000), "fanout": lambda: fan_out_join(1000), "three": three_blocks,
          "save": lambda: chain(5000)}  # save: PUT the 5,000-block graph again instead of running


def _cpu(pid):
    """The process's user + system CPU seconds so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _switches(pid):
    """Context switches so far (voluntary and not), summed over the process's live threads."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                total += sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
        except OSError:
            pass  # the thread ended meanwhile
    return total


def _threads(pid):
    """{thread id: (CPU seconds, context switches)} of the process's live threads."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                switches = sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
        except OSError:
            continue  # the thread ended meanwhile
        out[int(tid)] = ((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), switches)
    return out


def per_thread(pid, before, after, runs):
    """Print the IOLoop thread's CPU and switches per run, and the other threads' (those alive at the end)."""
    loop = [0.0, 0]
    rest = [0.0, 0, 0]
    for tid, (cpu, switches) in after.items():
        cpu0, switches0 = before.get(tid, (0.0, 0))
        if tid == pid:
            loop = [cpu - cpu0, switches - switches0]
        else:
            rest = [rest[0] + cpu - cpu0, rest[1] + switches - switches0, rest[2] + 1]
    print(f"  IOLoop thread: {loop[0] / runs * 1e3:.3f} ms CPU and {loop[1] / runs:.1f} switches per run; "
          f"other threads ({rest[2]} alive at the end): {rest[0] / runs * 1e3:.3f} ms and {rest[1] / runs:.1f}")


def summarize(path, top):
    self_n, incl_n, total = collections.Counter(), collections.Counter(), 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            if not count.isdigit():
                continue  # a stack cut by a stray carriage return in a frame's text
            frames = [fr.split(" (")[0] + " (" + fr.split(" (")[1].split(":")[0] + ")" if " (" in fr else fr
                      for fr in stack.split(";")[1:]]  # drop the thread frame
            if not frames:
                continue
            count = int(count)
            total += count
            self_n[frames[-1]] += count
            for fr in set(frames):
                incl_n[fr] += count
    print(f"{total} samples")
    print("self:")
    for fr, n in self_n.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {fr}")
    print("inclusive:")
    for fr, n in incl_n.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {fr}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("graph", choices=sorted(GRAPHS))
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-spy", action="store_true", help="only time and count CPU, no sampling")
    parser.add_argument("--connections", type=int, help="drive /execute with wrk at this many connections")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long wrk drives it")
    parser.add_argument("--pin", action="store_true", help="the server on core 0, wrk on core 1 (as P1 pinned)")
    args = parser.parse_args()
    servers = Servers(server_cpu=0 if args.pin else None)
    out = tempfile.NamedTemporaryFile(suffix=".txt", delete=False).name
    try:
        graph = GRAPHS[args.graph]()
        wf = servers.workflow(*graph)
        blocks, edges = graph

        def once():
            if args.graph == "save":
                servers.api("PUT", f"/api/workflows/{wf}/graph", {"blocks": blocks, "edges": edges})
            else:
                servers.api("POST", f"/api/workflows/{wf}/execute", {"variables": {"n": 9}})
        once()  # warm
        pid = servers.procs[0].pid
        spy = None if args.no_spy else subprocess.Popen(
            ["py-spy", "record", "-p", str(pid), "-f", "raw", "-o", out, "-r", "200", "--gil", "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0 if args.no_spy else 1.0)
        times = []
        cpu0, switches0, threads0 = _cpu(pid), _switches(pid), _threads(pid)
        if args.connections:
            url = f"{servers.url}/api/workflows/{wf}/execute"
            rate, p50, _, _ = wrk(url, {"variables": {"n": 9}}, {"Authorization": f"Bearer {KEY}"},
                                  args.connections, args.seconds, cpu=1 if args.pin else None)
            args.runs = max(1, round(rate * args.seconds))
            times = [p50]
        for _ in range(0 if args.connections else args.runs):
            t0 = time.perf_counter()
            once()
            times.append(time.perf_counter() - t0)
        cpu = (_cpu(pid) - cpu0) / args.runs
        switches = (_switches(pid) - switches0) / args.runs
        threads1 = _threads(pid)
        if spy is not None:
            spy.send_signal(2)
            spy.wait(60)
    finally:
        servers.close()
    times.sort()
    print(f"{args.graph}: {args.runs} runs{f' at {args.connections} connections' if args.connections else ''}, "
          f"median {times[len(times) // 2] * 1e3:.1f} ms, server CPU {cpu * 1e3:.2f} ms and "
          f"{switches:.1f} context switches per run")
    per_thread(pid, threads0, threads1, args.runs)
    if not args.no_spy:
        summarize(out, args.top)
        print("stacks:", out)


if __name__ == "__main__":
    main()
