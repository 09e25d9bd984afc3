"""The server's threads on one CPU, moved when another program crowds it.

The IOLoop, the writer, the HTTP loop and the actors' threads take turns on
one GIL: together they never use much more than one CPU. Spread over CPUs,
every hand-off between two of them (a run's start from the loop to the
writer, its commit back to the loop) wakes a thread on a CPU that was idle;
on a virtual machine that wake-up alone takes 0.1–0.3 ms, more than the
work handed over. On one CPU a hand-off is a switch on a CPU already awake.
Code blocks' processes keep every CPU the server was given (the sandbox sets
theirs back to `spread`).

A CPU shared with a busy program would halve the server, and the kernel can
no longer move it away: `check()`, every few seconds on the loop, compares
how busy its CPU was with what the server itself used, and moves every
thread to the idlest other CPU when others took much of it (at even odds
each time, so that two servers crowding one CPU part instead of swapping).

Linux only (sched_setaffinity and /proc); elsewhere `start()` does nothing.
"""

import logging
import os
import random

log = logging.getLogger(__name__)

CHECK_EVERY = 5.0   # seconds between looks at the CPUs
CROWDED = 0.5       # others used at least this share of our CPU ...
MARGIN = 0.25       # ... and another CPU was idler than that by this share: move,
MOVE_CHANCE = 0.5   # at this chance per look: two servers crowding each other part, not swap


def cpu_ticks(stat_text):
    """{cpu: (busy, total)} in clock ticks, from /proc/stat's text. Steal counts as busy:
    the hypervisor gave that time to someone else."""
    ticks = {}
    for line in stat_text.splitlines():
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *fields = line.split()
        user, nice, system, idle, iowait, irq, softirq, steal = (int(f) for f in fields[:8])
        busy = user + nice + system + irq + softirq + steal
        ticks[int(name[3:])] = (busy, busy + idle + iowait)
    return ticks


def _stat_fields(self_stat_text):
    """/proc/self/stat's fields from the third (state) on: the name before may hold spaces."""
    return self_stat_text.rsplit(")", 1)[1].split()


def own_ticks(self_stat_text):
    """The process's CPU time (user + system, all threads) in clock ticks, from /proc/self/stat."""
    fields = _stat_fields(self_stat_text)
    return int(fields[11]) + int(fields[12])


def current_cpu(self_stat_text):
    """The CPU the process's main thread last ran on, from /proc/self/stat."""
    return int(_stat_fields(self_stat_text)[36])


def move_to(current, allowed, before, after, own_used):
    """The CPU to move to, or None to stay. Pure.

    `before` and `after` are cpu_ticks() readings; `own_used` is the ticks the
    server used between them (all on `current`).
    """
    spent = {cpu: (after[cpu][0] - before[cpu][0], after[cpu][1] - before[cpu][1])
             for cpu in set(allowed) | {current} if cpu in before and cpu in after}
    busy, total = spent.get(current, (0, 0))
    if total <= 0:
        return None
    others = max(0, busy - own_used) / total
    if others < CROWDED:
        return None
    shares = {cpu: b / t for cpu, (b, t) in spent.items() if cpu != current and t > 0}
    if not shares:
        return None
    idlest = min(shares, key=lambda cpu: (shares[cpu], cpu))
    return idlest if shares[idlest] + MARGIN <= others else None


def pin_threads(cpu, task_dir="/proc/self/task"):
    """Set every thread of this process to `cpu` alone.

    A thread started meanwhile by one not yet moved would keep the old CPU:
    look again until a pass finds none left.
    """
    for _ in range(3):
        left = 0
        for name in os.listdir(task_dir):
            tid = int(name)
            try:
                if os.sched_getaffinity(tid) != {cpu}:
                    os.sched_setaffinity(tid, {cpu})
                    left += 1
            except (ProcessLookupError, PermissionError):
                pass  # ended meanwhile
        if not left:
            break


def _read(path):
    with open(path) as f:
        return f.read()


class OneCpu:
    """Keeps the server on one CPU of `spread` (the CPUs it was started with)."""

    def __init__(self, spread, read=_read, pin=pin_threads, chance=random.random):
        self.spread = frozenset(spread)
        self.cpu = None
        self._read = read
        self._pin = pin
        self._chance = chance
        self._last = None  # (cpu_ticks, own ticks) at the last check

    @classmethod
    def start(cls):
        """Pin this process to the CPU it runs on now; None when there is no choice to make
        (one CPU allowed, or no way to set it here)."""
        if not hasattr(os, "sched_setaffinity"):
            return None
        spread = os.sched_getaffinity(0)
        if len(spread) < 2:
            return None
        one = cls(spread)
        try:
            here = current_cpu(one._read("/proc/self/stat"))
        except (OSError, ValueError, IndexError):
            here = min(spread)
        try:
            one.move(here if here in spread else min(spread))
        except OSError as exc:  # e.g. a sandbox that refuses sched_setaffinity
            log.warning("could not keep the server's threads on one CPU: %s", exc)
            return None
        return one

    def move(self, cpu):
        self._pin(cpu)
        self.cpu = cpu

    def check(self):
        """On the loop, every CHECK_EVERY seconds: move when another program crowds our CPU."""
        try:
            now = (cpu_ticks(self._read("/proc/stat")), own_ticks(self._read("/proc/self/stat")))
        except (OSError, ValueError, IndexError):
            return  # no /proc to read: stay where we are
        last, self._last = self._last, now
        if last is None:
            return
        target = move_to(self.cpu, self.spread, last[0], now[0], now[1] - last[1])
        if target is not None and self._chance() < MOVE_CHANCE:
            log.info("CPU %d is busy with other programs; moving the server's threads to CPU %d",
                     self.cpu, target)
            try:
                self.move(target)
            except OSError as exc:  # the CPU was taken from us (a container's CPU set changed)
                log.warning("could not move the server's threads to CPU %d: %s", target, exc)
            self._last = None  # the next window starts afresh
