"""Runs `code` blocks, each in its own short-lived, unprivileged, limited process.

One job, one process: a child (actors/sandbox_child.py) is started with a clean
environment, no inherited descriptors, in its own session. It enters fresh
namespaces (IPC; mount, with private tmpfs on /tmp, /var/tmp, /dev/shm and
/run/lock; PID, with a fresh /proc, so the server is invisible; network,
unless the pool allows it), refuses to create user namespaces (a seccomp
filter), and sets CPU, memory, process, file-size and open-file limits on
itself before it reads its job. Which of these guards the kernel allows is
probed once per process; a missing one is logged once and left out. A small
pool keeps a few children started and waiting for their job on stdin, so a
block does not pay for an interpreter's start-up; each one is used once, then
killed with its whole PID namespace, and the pool refills in the background.
At most `concurrency` jobs run at once; the others wait their turn.

Nothing a job started outlives it or the server: when the job's first process
exits, the kernel kills the rest of its PID namespace; every child watches a
lifeline pipe whose write end only the server holds, and kills its job when
the server dies (kill -9 included); and a new pool kills any sandbox process
whose owning server (named in its command line) is gone.

When the server runs as root, every child runs as its own throw-away user id
(`uid_base` .. `uid_base + uid_count - 1`, none of them in /etc/passwd, no
groups), held by a lock file while in use so that two server processes never
share one. A job therefore cannot read the server's 0600/0700 files or
/proc/<server>/environ, signal or trace another job, or use up another job's
process limit; and after the job every process still running under its id
(even one that left the process group) is killed, and what it left in the
shared temporary directories is removed, before the id is used again. To reap
those orphans itself, the server process becomes a child subreaper
(prctl PR_SET_CHILD_SUBREAPER); it only ever reaps zombies under sandbox ids.
Without root, children run as the server's own user; they enter the same
namespaces from a user namespace of their own (where the kernel allows that),
then give up every capability. The guards and limits hold, but the files that
user can read are not protected.
"""

import fcntl
import grp
import json
import keyword
import logging
import os
import pwd
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from typing import Any, NamedTuple

from actors.errors import BlockError
from .context import BlockCancelled, BlockTimeout
from .values import too_large

log = logging.getLogger(__name__)

STDOUT_LIMIT = 64 * 1024
TRUNCATED = "\n[stdout truncated]"
POLL = 0.05  # how often a waiting run looks at its `cancelled` event
WAIT_POLL = 0.01  # the same, while it waits for a free slot (nothing else wakes it)
CHILD_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
GUARDS = {  # name -> what it gives, as the warning names it when the kernel refuses it
    "ipc": "private SysV IPC and POSIX message queues",
    "mount": "private /tmp, /var/tmp, /dev/shm and /run/lock",
    "pid": "an own PID namespace with a fresh /proc (the server stays invisible)",
    "net": "network isolation",
    "userns": "the filter refusing new user namespaces",
}
OWNER_MARK = "actorflow-sandbox-owner="

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox_child.py"),
          encoding="utf-8") as _f:
    CHILD_SOURCE = _f.read()  # passed with -c: nothing on disk has to be readable by the child


class SandboxResult(NamedTuple):
    """What a job gave back: its return value (JSON) and what it printed."""
    value: Any
    stdout: str | None


class SandboxError(BlockError):
    """A job failed. `stdout` keeps what it printed before it failed."""

    def __init__(self, message, stdout=None):
        super().__init__(message)
        self.stdout = stdout


class SandboxPool:
    """A thread-safe pool of single-use sandbox processes.

    `size` processes are kept started and waiting; `memory_mb` bounds each
    one's address space, `cpu_seconds` its CPU time; `cpus`, when given, are
    the CPUs each runs on (the server's own threads may be on fewer). `run` may
    be called from any number of threads at once; `close` kills every process.
    """

    def __init__(self, size=2, memory_mb=512, cpu_seconds=60, *, max_processes=32,
                 file_mb=16, max_files=256, max_result_bytes=16 * 1024 * 1024, python=None,
                 uid_base=60600, uid_count=512, lock_dir="/run/actorflow-sandbox",
                 network=False, concurrency=None, cpus=None):
        self.size = max(0, int(size))
        self.memory_mb = int(memory_mb)
        self.cpu_seconds = int(cpu_seconds)
        self.max_result = int(max_result_bytes)  # ACTORFLOW_MAX_VALUE_BYTES
        self.concurrency = max(1, int(concurrency or 2 * (os.cpu_count() or 1)))
        self._limits = {"as_bytes": self.memory_mb * 1024 * 1024, "cpu_seconds": self.cpu_seconds,
                        "nproc": max_processes, "fsize": file_mb * 1024 * 1024,
                        "nofile": max_files, "tmp_mb": max(1, self.memory_mb // 2),
                        "small_tmp_mb": file_mb,
                        "cpus": sorted(cpus) if cpus else None}  # what the processes run on
        self._slots = _Slots(self.concurrency)
        self._guards = ()
        self._cond = threading.Condition()
        self._idle = deque()
        self._live = set()
        self._trash = deque()
        self._starting = 0
        self._closed = False
        self.cold_starts = 0  # blocks that found no warm process (metrics)
        self._uids = None
        self.python = None
        self._unavailable = None
        # Finding the interpreter and probing the kernel start processes (in the
        # single binary: the binary itself). The pool's thread does it, so the
        # server listens meanwhile; a block waits for it (see `run`).
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._maintain, name="sandbox-pool", daemon=True,
                                        args=(python, network, (uid_base, uid_count, lock_dir)))
        self._thread.start()

    @property
    def unavailable(self):
        """Why code blocks cannot run here, or None (waits for the start-up probe)."""
        self._ready.wait()
        return self._unavailable

    @property
    def guards(self):
        """The guards the kernel allows and children use (waits for the start-up probe)."""
        self._ready.wait()
        return self._guards

    def _prepare(self, python, network, uid_args):
        """Find the interpreter and the usable guards; on the pool's thread, once."""
        try:
            if os.geteuid() == 0:
                self._uids = _Uids(*uid_args)
            self.python = _find_python(python, self._uids)
            self._guards = _usable_guards(self.python, network)
            _reap_leftovers()
        except (OSError, RuntimeError, BlockError) as exc:
            self._unavailable = str(exc)
            log.error("code blocks are unavailable: %s", exc)
        if self._uids is None and self._unavailable is None:
            log.warning("not running as root: code blocks run as the server's own user")
        self._ready.set()

    # -- the public surface ------------------------------------------------------

    def run(self, code, scope, timeout=None, cancelled=None, workspace=None) -> SandboxResult:
        """Run `code` (a function body) with `scope`'s keys in scope; return its value.

        Raises BlockTimeout after `timeout` seconds, BlockCancelled soon after
        `cancelled` (a threading.Event) is set, SandboxError for anything else.
        `workspace` shares the code slots fairly between workspaces.
        """
        if timeout is not None and timeout <= 0:
            raise BlockTimeout("code timed out before it started")
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wait_ready(deadline, cancelled, timeout)
        if self._unavailable is not None:
            raise BlockError(f"code blocks are unavailable: {self._unavailable}")
        bad = [k for k in scope
               if not (isinstance(k, str) and k.isidentifier() and not keyword.iskeyword(k))]
        if bad:
            raise BlockError(f"scope names must be identifiers: {bad}")
        try:
            job = json.dumps({"code": code, "scope": scope, "memory_mb": self.memory_mb},
                             allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise BlockError(f"code block inputs are not JSON: {exc}") from None
        self._slots.acquire(deadline, cancelled, timeout, workspace)  # the wait counts toward the timeout
        try:
            worker = self._take()
            answer = None
            try:
                reason, reply, out, truncated = self._talk(worker, job, deadline, cancelled)
                answer = _parse(reply)
                if reason is None and answer is None:
                    worker.reap()  # its exit status says why it gave no answer
            finally:
                worker.kill()
                self._retire(worker)  # reaped and cleaned up in the background
        finally:
            self._slots.release(workspace)
        stdout = _stdout_text(out, truncated)
        if reason in ("timeout", "cancelled"):
            exc = (BlockTimeout(f"code timed out after {_seconds(timeout)}s")
                   if reason == "timeout" else BlockCancelled("cancelled"))
            exc.stdout = stdout  # as SandboxError has it
            raise exc
        if reason == "closed":
            raise SandboxError("code stopped: the sandbox was closed", stdout)
        if reason == "too_big":
            raise SandboxError(too_large("return value", self.max_result).message, stdout)
        if answer is None:
            raise SandboxError(self._death_message(worker.proc.returncode), stdout)
        if "error" in answer:
            raise SandboxError(str(answer["error"]), stdout)
        return SandboxResult(answer["value"], stdout)

    def _wait_ready(self, deadline, cancelled, timeout):
        """Wait for the start-up probe (only the first blocks after a start ever do)."""
        while not self._ready.wait(POLL):
            if self._closed:
                raise BlockError("code stopped: the sandbox was closed")
            if cancelled is not None and cancelled.is_set():
                raise BlockCancelled("cancelled")
            if deadline is not None and time.monotonic() >= deadline:
                raise BlockTimeout(f"code timed out after {_seconds(timeout)}s")

    def idle_count(self) -> int:
        """Warm processes waiting for a block now."""
        return len(self._idle)

    @property
    def running(self):
        """How many jobs hold one of the `concurrency` slots now."""
        return self._slots.busy

    @property
    def waiting(self):
        """How many jobs wait for a slot now."""
        return self._slots.waiting

    @property
    def slot_waits(self):
        """How many jobs have had to wait for a slot so far."""
        return self._slots.waits

    def close(self):
        """Kill every process (waiting or running) and wait for the pool's thread."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = list(self._idle), deque()
            live = list(self._live)
            self._cond.notify_all()
        self._slots.close()
        for worker in live:
            worker.stop("closed")
        if self._thread.is_alive():
            self._thread.join(10)
        for worker in idle:
            worker.reap()
            self._retire(worker)
        with self._cond:
            trash, self._trash = list(self._trash), deque()
        for worker in trash:
            self._cleanup(worker)

    # -- one job -------------------------------------------------------------------

    def _talk(self, worker, job, deadline, cancelled):
        """Send the job, collect output and answer until the child exits or must die."""
        proc = worker.proc
        out, reply = bytearray(), bytearray()
        truncated = False
        reason = None
        pending = memoryview(job)
        sel = selectors.DefaultSelector()
        for fd in (proc.stdin.fileno(), proc.stdout.fileno(), worker.result_fd):
            os.set_blocking(fd, False)
        sel.register(proc.stdin.fileno(), selectors.EVENT_WRITE, "in")
        sel.register(proc.stdout.fileno(), selectors.EVENT_READ, "out")
        sel.register(worker.result_fd, selectors.EVENT_READ, "result")
        if worker.pidfd is not None:
            sel.register(worker.pidfd, selectors.EVENT_READ, "exit")  # wakes us the moment it exits
        reading = (proc.stdout.fileno(), worker.result_fd)
        try:
            while not worker.exited():
                if reply and not any(fd in sel.get_map() for fd in reading):
                    # Answered and closed both pipes: done, without waiting for the
                    # exit (tearing down its namespaces takes the kernel a while).
                    break
                if worker.stopped:
                    reason = worker.stopped
                    break
                if cancelled is not None and cancelled.is_set():
                    reason = "cancelled"
                    break
                wait = POLL
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        reason = "timeout"
                        break
                for key, _ in sel.select(wait):
                    if key.data == "in":
                        try:
                            pending = pending[os.write(key.fd, pending[:65536]):]
                        except BlockingIOError:
                            continue
                        except OSError:  # it died before reading everything
                            pending = pending[:0]
                        if not pending:
                            sel.unregister(key.fd)
                            proc.stdin.close()
                    elif key.data == "out":
                        truncated |= _read_into(key.fd, out, STDOUT_LIMIT, sel)
                    elif key.data == "result":
                        if _read_into(key.fd, reply, self.max_result, sel):
                            reason = "too_big"
                    if reason:
                        break
                if reason:
                    break
        finally:
            sel.close()
        reason = reason or worker.stopped  # close() may have killed it just before we looked
        worker.kill()  # the whole group, grandchildren included
        # What the child wrote before it exited is all in the pipes by now.
        truncated |= _read_into(proc.stdout.fileno(), out, STDOUT_LIMIT, chunks=64)
        if _read_into(worker.result_fd, reply, self.max_result, chunks=1024) and reason is None:
            reason = "too_big"
        return reason, bytes(reply), bytes(out), truncated

    def _death_message(self, code):
        if code is None or code >= 0:
            return f"code process died (exit code {code}) without returning a result"
        sig = -code
        if sig == signal.SIGXCPU:
            return f"code process used up its CPU time limit ({self.cpu_seconds}s)"
        name = _signal_name(sig)
        if sig == signal.SIGKILL:
            return f"code process died (exit code {code}, {name}: memory or CPU limit?)"
        return f"code process died (exit code {code}, {name})"

    # -- the pool --------------------------------------------------------------------

    def _take(self):
        with self._cond:
            if self._closed:
                raise BlockError("code stopped: the sandbox was closed")
            worker = None
            while self._idle:
                candidate = self._idle.popleft()
                if not candidate.exited():
                    worker = candidate
                    break
                self._live.discard(candidate)
                self._trash.append(candidate)  # died while waiting (killed from outside?)
            if worker is None:
                self.cold_starts += 1
            self._cond.notify_all()  # refill, and clean up
        return worker or self._spawn()

    def _spawn(self):
        """Start one child, waiting for its job. Raises BlockError if it cannot."""
        uid = self._uids.acquire() if self._uids else None
        cwd = read_fd = write_fd = None
        try:
            if "mount" in self._guards:
                home = "/tmp"  # its own empty tmpfs
            else:
                cwd = home = tempfile.mkdtemp(prefix="actorflow-code-")
                if uid is not None:
                    os.chown(cwd, uid, uid)
            read_fd, write_fd = os.pipe()
            # It starts as the server's user (entering namespaces needs root) and
            # switches to `uid` itself before it reads a job.
            lifeline = _lifeline()
            opts = dict(self._limits, result_fd=write_fd, lifeline_fd=lifeline,
                        uid=uid, guards=list(self._guards))
            proc = subprocess.Popen(
                [self.python, "-I", "-S", "-u", "-c", CHILD_SOURCE, json.dumps(opts),
                 _owner_mark()],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                bufsize=0, cwd=cwd or "/", env=dict(_child_env(), HOME=home, TMPDIR=home),
                close_fds=True, pass_fds=(write_fd, lifeline),
                start_new_session=True, umask=0o077)
        except BaseException as exc:
            if read_fd is not None:
                os.close(read_fd)
            if cwd is not None:
                shutil.rmtree(cwd, ignore_errors=True)
            if uid is not None:
                self._uids.release(uid)
            if isinstance(exc, OSError):
                raise BlockError(f"could not start the code process: {exc}") from None
            raise
        finally:
            if write_fd is not None:
                os.close(write_fd)
        worker = _Worker(proc, read_fd, uid, cwd)
        with self._cond:
            closed = self._closed
            if not closed:
                self._live.add(worker)
        if closed:
            worker.reap()
            self._cleanup(worker)
            raise BlockError("code stopped: the sandbox was closed")
        return worker

    def _retire(self, worker):
        """A used (or dead) child: clean up after it, in the background while open."""
        with self._cond:
            self._live.discard(worker)
            if not self._closed:
                self._trash.append(worker)
                self._cond.notify_all()
                return
        self._cleanup(worker)

    def _cleanup(self, worker):
        worker.reap()
        if worker.uid is not None:
            self._uids.kill_all(worker.uid)
            if worker.cwd is not None:  # no private mounts: it may have used the shared ones
                _remove_owned(worker.uid)
        if worker.cwd is not None:
            shutil.rmtree(worker.cwd, ignore_errors=True)
        if worker.uid is not None:
            self._uids.release(worker.uid)

    def _maintain(self, python, network, uid_args):
        """The pool's thread: probe, then keep `size` children waiting, and clean up used ones."""
        self._prepare(python, network, uid_args)
        if self._unavailable is not None:
            return
        refilled = False
        while True:
            with self._cond:
                while not self._closed and not self._trash and \
                        len(self._idle) + self._starting >= self.size:
                    self._cond.wait()
                if self._closed:
                    return
                refill = len(self._idle) + self._starting < self.size
                # Take turns: under steady use a refill is always due, and used
                # children left in the trash would keep their uids (and stay
                # unreaped) until every uid is gone.
                if self._trash and (not refill or refilled or len(self._trash) > self.size):
                    trash, refill = self._trash.popleft(), False
                else:
                    trash = None
                if refill:
                    self._starting += 1
            refilled = refill
            if trash is not None:
                self._cleanup(trash)
                continue
            worker = None
            try:
                worker = self._spawn()
            except BlockError as exc:
                if not self._closed:
                    log.warning("could not refill the sandbox pool: %s", exc.message)
            except Exception:
                log.exception("could not refill the sandbox pool")
            with self._cond:
                self._starting -= 1
                if worker is not None:
                    # Closed meanwhile: close() cleans up the trash after joining us.
                    (self._trash if self._closed else self._idle).append(worker)
                elif not self._closed:
                    self._cond.wait(1.0)  # back off before trying again


class _Worker:
    """One child process and what belongs to it."""

    def __init__(self, proc, result_fd, uid, cwd):
        self.proc = proc
        self.result_fd = result_fd
        self.uid = uid
        self.cwd = cwd
        self.stopped = None  # set by close(): why the pool killed it
        try:
            self.pidfd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            self.pidfd = None  # old kernel: exits are noticed by polling instead
        self._reaped = False

    def exited(self):
        """True once the child has exited; it is not reaped, so its pgid stays ours."""
        if self.proc.returncode is not None:
            return True
        try:
            return os.waitid(os.P_PID, self.proc.pid,
                             os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def kill(self):
        if self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def stop(self, why):
        self.stopped = why
        self.kill()

    def reap(self):
        """Kill the group, wait for the child, close our ends. Idempotent."""
        if self._reaped:
            return
        self._reaped = True
        self.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        for fd in (self.result_fd, self.pidfd):
            if fd is not None:
                os.close(fd)


class _Slots:
    """At most `count` jobs at once; later ones wait their turn.

    Shared between workspaces like the launch budget (actors/launches.py):
    one workspace holds at most `count - count // 4` slots, and a freed slot
    goes to the waiting workspace holding the fewest (first come, first
    served within a workspace).
    """

    def __init__(self, count):
        self.count = count
        self.per_workspace = max(1, count - count // 4)
        self._busy = 0
        self._held = Counter()  # workspace -> slots it holds
        self._lines = {}        # workspace -> deque of Events, set when the slot is handed over
        self._lock = threading.Lock()
        self.waits = 0  # jobs that had to wait for a slot (metrics)

    def acquire(self, deadline, cancelled, timeout, workspace=None):
        """Take a slot. Raises BlockTimeout at `deadline`, BlockCancelled once
        `cancelled` is set (looked at every WAIT_POLL seconds)."""
        with self._lock:
            if self._busy < self.count and self._held[workspace] < self.per_workspace \
                    and workspace not in self._lines:
                self._take(workspace)
                return
            turn = threading.Event()
            self._lines.setdefault(workspace, deque()).append(turn)
            self.waits += 1
        try:
            while True:
                wait = WAIT_POLL if deadline is None else min(WAIT_POLL, deadline - time.monotonic())
                if turn.wait(max(0.0, wait)):
                    return
                if cancelled is not None and cancelled.is_set():
                    raise BlockCancelled("cancelled")
                if deadline is not None and time.monotonic() >= deadline:
                    raise BlockTimeout(f"code timed out after {_seconds(timeout)}s while waiting"
                                       f" for a free code slot ({self.count} run at once)")
        except BaseException:
            with self._lock:
                if turn.is_set():
                    self._give_back(workspace)  # it was handed to us as we gave up: hand it on
                else:
                    line = self._lines[workspace]
                    line.remove(turn)
                    if not line:
                        del self._lines[workspace]
                self._pass_on()
            raise

    @property
    def busy(self):
        return min(self._busy, self.count)

    @property
    def waiting(self):
        return sum(len(line) for line in self._lines.values())

    def release(self, workspace=None):
        with self._lock:
            self._give_back(workspace)
            self._pass_on()

    def _take(self, workspace):
        self._busy += 1
        self._held[workspace] += 1

    def _give_back(self, workspace):
        self._busy -= 1
        self._held[workspace] -= 1
        if self._held[workspace] <= 0:
            del self._held[workspace]

    def _pass_on(self):
        """Free slots go straight to the waiting workspaces holding fewest, under their share."""
        while self._busy < self.count:
            waiting = [w for w in self._lines if self._held[w] < self.per_workspace]
            if not waiting:
                return
            workspace = min(waiting, key=lambda w: self._held[w])
            line = self._lines[workspace]
            turn = line.popleft()
            if not line:
                del self._lines[workspace]
            self._take(workspace)
            turn.set()

    def close(self):
        """Let every waiter through: the closed pool then refuses them."""
        with self._lock:
            lines, self._lines = self._lines, {}
            for workspace, line in lines.items():
                for _ in line:
                    self._take(workspace)
        for line in lines.values():
            for turn in line:
                turn.set()


class _Uids:
    """Throw-away user ids for jobs, one per live child, locked across processes."""

    def __init__(self, base, count, lock_dir):
        self.base, self.count = base, count
        self.lock_dir = _private_dir(lock_dir)
        self._held = {}
        self._taken_by_accounts = set()
        self._next = 0
        self._lock = threading.Lock()
        _become_subreaper()

    def acquire(self):
        """A uid nobody else uses now, with no process left under it."""
        for _ in range(self.count):
            uid = self._lock_next()
            if self.kill_all(uid):
                return uid
            # Zombies only init can reap (an init that never does, as in some
            # containers) still count against this uid's process limit.
            log.warning("sandbox user %d has processes that cannot be removed; skipping it", uid)
            self.release(uid)
        raise BlockError("no usable sandbox user left")

    def _lock_next(self):
        with self._lock:
            for i in range(self.count):
                uid = self.base + (self._next + i) % self.count
                if uid in self._held or self._is_account(uid):
                    continue
                fd = os.open(os.path.join(self.lock_dir, str(uid)),
                             os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    continue  # another server process has it
                self._held[uid] = fd
                self._next = (self._next + i + 1) % self.count  # rotate: reuse ids late
                return uid
        raise BlockError("too many code blocks running at once (no free sandbox user)")

    def release(self, uid):
        with self._lock:
            fd = self._held.pop(uid, None)
        if fd is not None:
            os.close(fd)

    def _is_account(self, uid):
        if uid in self._taken_by_accounts:
            return True
        try:
            pwd.getpwuid(uid)
        except KeyError:
            try:
                grp.getgrgid(uid)
            except KeyError:
                return False
        self._taken_by_accounts.add(uid)
        return True

    @staticmethod
    def kill_all(uid, rounds=400):
        """SIGKILL every process whose real uid is `uid` and reap those we adopted.

        True once none is left; False if zombies that only init may reap remain.
        """
        me = os.getpid()
        for attempt in range(rounds):
            live, adopted, orphaned, waiting = _census(uid, me)
            for pid in adopted:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            for pid in live:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if not (live or adopted or waiting or orphaned):
                return True
            if not (live or adopted) and attempt > 4:
                # Only zombies we cannot reap are left: init's, or another process's
                # that is not reaping them. Waiting longer does not help.
                return False
            time.sleep(0.005)
        log.error("processes of sandbox user %d survived SIGKILL", uid)
        return False


def _census(uid, me):
    """Processes of `uid`: (live, zombies we may reap, zombies of init, other zombies)."""
    live, adopted, orphaned, waiting = [], [], [], []
    wanted = b"\nUid:\t%d\t" % uid  # the real uid comes first
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as f:
                status = f.read(4096)
        except OSError:
            continue  # gone
        if wanted not in status:
            continue
        fields = dict(line.split(b":", 1) for line in status.splitlines() if b":" in line)
        pid = int(name)
        if fields.get(b"State", b"").strip()[:1] not in (b"Z", b"X"):
            live.append(pid)
            continue
        parent = int(fields.get(b"PPid", b"0"))
        (adopted if parent == me else orphaned if parent == 1 else waiting).append(pid)
    return live, adopted, orphaned, waiting


_subreaper = []


def _become_subreaper():
    """Adopt our children's orphans (a killed job's grandchildren) so we can reap them.

    Otherwise they go to init, and an init that does not reap (some container
    runtimes) keeps them as zombies, counted against the uid's process limit.
    Not inherited by children; only zombies under sandbox uids are reaped here.
    """
    if _subreaper:
        return
    _subreaper.append(True)
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
            log.warning("could not become a child subreaper: errno %d", ctypes.get_errno())
    except (OSError, AttributeError) as exc:
        log.warning("could not become a child subreaper: %s", exc)


def _remove_owned(uid):
    """Remove what `uid` left at the top of the world-writable temporary directories."""
    for top in SHARED_TMP:
        try:
            entries = list(os.scandir(top))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            except OSError:
                pass


def _private_dir(path):
    """`path` as a root-only directory (created if needed); refuse one anybody else controls."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if not os.path.isdir(path) or os.path.islink(path) or st.st_uid != 0 or st.st_mode & 0o022:
        raise RuntimeError(f"{path} must be a directory owned by root and writable only by it")
    return path


_probed = {}  # python -> {guard: None or why the kernel refused it}
_warned = set()


def _usable_guards(python, network):
    """The guards this kernel allows, probed once per interpreter; a missing one is logged once."""
    if python not in _probed:
        _probed[python] = _probe(python)
        usable = [g for g, why in _probed[python].items() if why is None]
        log.info("code sandbox guards available: %s", ", ".join(usable) or "none")
    guards = []
    for guard, what in GUARDS.items():
        if guard == "net" and network:
            continue  # ACTORFLOW_CODE_NETWORK=true: code may use the network
        why = _probed[python].get(guard, "not probed")
        if why is None:
            guards.append(guard)
        elif guard not in _warned:
            _warned.add(guard)
            log.warning("code sandbox runs without %s: %s", what, why)
    return tuple(guards)


def _probe(python):
    try:
        done = subprocess.run([python, "-I", "-S", "-c", CHILD_SOURCE, "probe"], cwd="/",
                              env=_child_env(), stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=30)
        found = json.loads(done.stdout)
        return {g: found.get(g, "not probed") for g in GUARDS}
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return {g: f"the probe failed: {exc}" for g in GUARDS}


_lifelines = []
_lifeline_lock = threading.Lock()


def _lifeline():
    """The read end of this process's lifeline pipe. The write end is never
    closed and never inherited: when this process dies, every child sees EOF."""
    with _lifeline_lock:
        if not _lifelines:
            _lifelines.extend(os.pipe())
        return _lifelines[0]


def _start_time(pid):
    """The process's start time in clock ticks since boot (with its pid: a unique name)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rsplit(b")", 1)[1].split()[19].decode()


def _owner_mark():
    """Put in each child's command line: which server process it belongs to."""
    pid = os.getpid()
    return f"{OWNER_MARK}{pid}:{_start_time(pid)}"


def _owner_alive(owner):
    pid, _, start = owner.partition(":")
    try:
        return _start_time(int(pid)) == start
    except (OSError, ValueError, IndexError):
        return False


def _reap_leftovers():
    """Kill sandbox processes whose server is gone (and so could not kill them itself)."""
    mark = OWNER_MARK.encode()
    killed = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        owners = [a[len(mark):].decode("ascii", "replace") for a in argv if a.startswith(mark)]
        if not owners or _owner_alive(owners[-1]):
            continue
        try:
            os.kill(int(name), signal.SIGKILL)  # its PID namespace, if any, dies with it
            killed += 1
        except OSError:
            pass
    if killed:
        log.warning("killed %d code processes left by a server that is gone", killed)
    return killed


def _child_env():
    """The child's environment. In the single binary (sys.frozen) the binary is the
    child's Python; its bootloader's own variables make it run from the files the
    server unpacked at start instead of unpacking itself again for every job."""
    if not getattr(sys, "frozen", False):
        return CHILD_ENV
    return dict(CHILD_ENV, **{k: v for k, v in os.environ.items() if k.startswith("_PYI_")})


_pythons = {}  # (explicit, root) -> path: probing costs a process start, do it once


def _find_python(explicit, uids):
    """The first interpreter a sandbox user can run: the server's own, else the system's.

    The server's interpreter often lives where other users cannot reach it
    (pyenv under /root, a 0700 home). The child uses only the standard
    library, so the system's python3 does as well.
    """
    key = (explicit, uids is not None)
    if key in _pythons:
        return _pythons[key]
    candidates = [explicit] if explicit else [
        sys.executable, "/usr/bin/python3", "/usr/local/bin/python3",
        shutil.which("python3", path=CHILD_ENV["PATH"])]
    tried = []
    for path in dict.fromkeys(c for c in candidates if c):
        tried.append(path)
        if _can_run(path, uids):
            if path != candidates[0]:
                log.info("code blocks run under %s (%s is not usable by sandbox users)",
                         path, candidates[0])
            _pythons[key] = path
            return path
    raise RuntimeError("no Python interpreter the sandbox user can run (tried "
                       + ", ".join(tried) + "); pass SandboxPool(python=...)")


def _can_run(path, uids):
    uid = uids.acquire() if uids else None
    ids = {"user": uid, "group": uid, "extra_groups": []} if uid is not None else {}
    probe = "import ast, json, resource, sys; sys.exit(sys.version_info < (3, 8))"
    try:
        done = subprocess.run([path, "-I", "-S", "-c", probe], cwd="/", env=_child_env(),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=30, **ids)
        return done.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        if uid is not None:
            uids.kill_all(uid)
            uids.release(uid)


def _read_into(fd, buffer, limit, sel=None, chunks=16):
    """Read what `fd` has now (at most `chunks` reads) into `buffer`, up to
    `limit` bytes; the rest is read and dropped, so the child never blocks.
    True if anything was dropped. At EOF, unregister it from `sel`."""
    dropped = False
    for _ in range(chunks):
        try:
            chunk = os.read(fd, 65536)
        except (BlockingIOError, InterruptedError):
            return dropped
        except OSError:
            chunk = b""
        if not chunk:
            if sel is not None:
                sel.unregister(fd)
            return dropped
        room = limit - len(buffer)
        if len(chunk) > room:
            dropped = True
        buffer += chunk[:max(0, room)]
    return dropped


def _stdout_text(data, truncated):
    if not data and not truncated:
        return None
    text = data.decode("utf-8", "replace")
    if truncated or len(text) > STDOUT_LIMIT:
        # Keep the whole thing, marker included, within the limit (block.py clips at it too).
        text = text[:STDOUT_LIMIT - len(TRUNCATED)] + TRUNCATED
    return text


def _parse(reply):
    """The child's answer, or None if it sent none (or nonsense)."""
    if not reply:
        return None
    try:
        answer = json.loads(reply, parse_constant=_reject)
    except (ValueError, RecursionError):
        return None
    if isinstance(answer, dict) and ("value" in answer or "error" in answer):
        return answer
    return None


def _reject(name):
    raise ValueError(f"{name} is not JSON")


def _seconds(t):
    return f"{round(t, 1):g}" if t >= 1 else f"{t:.2g}"


def _signal_name(sig):
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"
