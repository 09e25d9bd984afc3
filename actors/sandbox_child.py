"""The code block's child process: enter the sandbox, set limits, read one job, run it, answer, exit.

actors/sandbox.py starts this source as root (or as the server's user) with
``python -I -S -u -c <source> OPTIONS OWNER``: OPTIONS is a JSON object
(RESULT_FD, the lifeline fd, limits, the sandbox user id, the guards to enter),
OWNER names the server process that started it (``actorflow-sandbox-owner=
PID:START``) so a later server can tell a leftover from a live one.

The process splits in two. The outer half unshares the namespaces its guards
ask for (without root, from a new user namespace where it is uid 1000) and
forks; it then only waits, and if the server dies (the lifeline
pipe, whose write end only the server holds, reports hang-up) it kills the
inner half. The inner half is the first process of the new PID namespace: it
mounts a fresh /proc and private tmpfs on /tmp, /var/tmp, /dev/shm and
/run/lock, drops to the sandbox user (or, without root, every capability), installs a seccomp filter that refuses
new user namespaces, asks for SIGKILL when the outer half dies, sets its
limits, and only then reads the job. When it exits, the kernel kills
everything else in its PID namespace and drops its IPC and mount namespaces
with all they hold.

Protocol: the job arrives on stdin as one JSON object ``{"code", "scope",
"memory_mb"}`` followed by EOF. Whatever the code prints (stdout, stderr, even
``os.write(1, ...)``) goes to fd 1, which the parent reads as the log's
stdout. The answer, ``{"value": ...}`` or ``{"error": "..."}``, goes only to
RESULT_FD, so printed text can never pass for the result.

``python -c <source> probe`` instead tries each guard in a throw-away process
and prints ``{guard: null or why it failed}``.

Standard library only: it may run under another Python than the server's.
"""

import ast
import json
import linecache
import os
import resource
import select
import signal
import sys
import traceback

FILENAME = "<code>"
BLOCK = "__block__"
SETUP_FAILED = 70  # exit status when a guard cannot be entered: the job never runs unguarded

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 0x4000, 1 << 18
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_RELATIME = 1, 32, 4096, 1 << 21
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_SECCOMP, PR_SET_NO_NEW_PRIVS = 1, 4, 22, 38
PRIVATE_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
GUARDS = ("ipc", "mount", "pid", "net", "userns")

# machine -> (AUDIT_ARCH, syscall numbers, has the x32 ABI)
ARCHES = {
    "x86_64": (0xC000003E, {"clone": 56, "unshare": 272, "setns": 308, "clone3": 435}, True),
    "aarch64": (0xC00000B7, {"clone": 220, "unshare": 97, "setns": 268, "clone3": 435}, False),
}

_libc = []


def main(argv):
    if argv[0] == "probe":
        sys.stdout.write(json.dumps(probe()))
        return
    opts = json.loads(argv[0])
    result_fd, lifeline = opts["result_fd"], opts["lifeline_fd"]
    guards = set(opts["guards"])
    if opts.get("cpus") and hasattr(os, "sched_setaffinity"):
        # The server's threads share one CPU (server/one_cpu.py); code gets all it was given.
        os.sched_setaffinity(0, opts["cpus"])
    _limit(resource.RLIMIT_CORE, 0)
    try:
        _enter_namespaces(_clone_flags(guards))
    except OSError as exc:
        _setup_failed("unshare", exc)
    child = os.fork()
    if child:
        _watch(child, lifeline, result_fd)
    os.close(lifeline)
    try:
        _enter(guards, opts)
    except OSError as exc:
        _setup_failed("sandbox set-up", exc)
    _limit(resource.RLIMIT_AS, opts["as_bytes"])
    # SIGXCPU at the soft limit, SIGKILL one second later if that is ignored.
    cpu = opts["cpu_seconds"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    _limit(resource.RLIMIT_NPROC, opts["nproc"])
    _limit(resource.RLIMIT_FSIZE, opts["fsize"])
    _limit(resource.RLIMIT_NOFILE, opts["nofile"])
    os.set_inheritable(result_fd, False)
    raw = sys.stdin.buffer.read()  # a warm process waits here
    if not raw:
        os._exit(0)  # the pool closed (or the server died) before giving us a job
    job = json.loads(raw)
    del raw
    me = os.getpid()
    reply = run(job["code"], job["scope"], job.get("memory_mb"))
    if os.getpid() == me:  # a process the code forked must not answer too
        _send(result_fd, reply)
    os._exit(0)  # no interpreter teardown: the parent waits for this exit


def _limit(which, value):
    resource.setrlimit(which, (value, value))


# -- the outer half ---------------------------------------------------------------------

def _watch(child, lifeline, result_fd):
    """Wait for the inner half; kill it if the server goes away. Exits as it exited."""
    for fd in (0, 1, 2, result_fd):
        os.close(fd)  # the job's pipes must reach EOF when the inner half is done
    try:
        pidfd = os.pidfd_open(child)
    except (AttributeError, OSError):
        pidfd = None  # old kernel: look every 100 ms
    poller = select.poll()
    poller.register(lifeline, select.POLLIN)
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    orphaned = False
    while True:
        events = dict(poller.poll(None if pidfd is not None else 100))
        if lifeline in events:
            orphaned = True
            break
        if pidfd in events or os.waitpid(child, os.WNOHANG)[0]:
            break
    if orphaned:
        # The server is gone. Its PID namespace goes with the inner half; without
        # one, the process group is the best we have (ourselves included).
        _kill(child)
        os.killpg(0, signal.SIGKILL)
    try:
        _, status = os.waitpid(child, 0)
    except ChildProcessError:  # reaped by the WNOHANG look above
        status = 0
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)  # die of the same signal, so the server can name it
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# -- the inner half ---------------------------------------------------------------------

def _enter(guards, opts):
    """Mounts, then the user switch, then the filter: each step needs the one before."""
    if guards & {"mount", "pid"}:
        _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount leaks out
    if "pid" in guards:
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    if "mount" in guards:
        runtime = _runtime_dir()
        keep = os.open(runtime, os.O_PATH | os.O_DIRECTORY) if runtime else None
        for path in PRIVATE_DIRS:
            if os.path.isdir(path):
                mb = opts["tmp_mb"] if path == "/tmp" else opts["small_tmp_mb"]
                _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV,
                       "mode=1777,size=%dm,nr_inodes=65536" % max(1, mb))
        if keep is not None:
            _bind_read_only(keep, runtime)
        os.chdir("/tmp")
    if os.geteuid() != 0:
        _drop_capabilities()  # those it got with its own user namespace
    uid = opts.get("uid")
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        # The uid change made us non-dumpable, which hides /proc/self from the
        # code itself; only the job's own processes share this uid.
        _prctl(PR_SET_DUMPABLE, 1)
    if "userns" in guards:
        _refuse_user_namespaces()
    # Set after the uid change (which clears it): if the outer half dies, so do we.
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _runtime_dir():
    """The single binary's unpacked files (its Python), if a private tmpfs would hide them."""
    path = getattr(sys, "_MEIPASS", None)
    if path and any(path == d or path.startswith(d + "/") for d in PRIVATE_DIRS):
        return path
    return None


def _bind_read_only(fd, path):
    """Show the directory open as `fd` at `path` again, read-only, over the new tmpfs:
    the code's later imports (extension modules) come from there."""
    os.makedirs(path, exist_ok=True)
    _mount("/proc/self/fd/%d" % fd, path, None, MS_BIND | MS_REC)
    os.close(fd)
    have = os.statvfs(path).f_flag  # a remount inside a user namespace must keep the locked flags
    flags = (have & (MS_NOSUID | MS_NODEV | MS_NOEXEC | 1024 | 2048)) | (MS_RELATIME if have & 4096 else 0)
    _mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | flags)


def _setup_failed(step, exc):
    os.write(1, ("sandbox: %s failed: %s\n" % (step, exc)).encode())
    os._exit(SETUP_FAILED)


def _clone_flags(guards):
    flags = 0
    if "ipc" in guards:
        flags |= CLONE_NEWIPC
    if guards & {"mount", "pid"}:
        flags |= CLONE_NEWNS
    if "pid" in guards:
        flags |= CLONE_NEWPID
    if "net" in guards:
        flags |= CLONE_NEWNET
    return flags


def _c():
    if not _libc:
        import ctypes
        _libc.append((ctypes, ctypes.CDLL(None, use_errno=True)))
    return _libc[0]


def _check(result, what):
    if result != 0:
        ctypes, _ = _c()
        errno = ctypes.get_errno()
        raise OSError(errno, "%s: %s" % (what, os.strerror(errno)))


def _enter_namespaces(flags):
    """unshare(flags); without root, inside a new user namespace of our own
    (our uid and gid mapped to 1000, no other ids) that makes the rest allowed."""
    if not flags or os.geteuid() == 0:
        _unshare(flags)
        return
    uid, gid = os.getuid(), os.getgid()
    _unshare(flags | CLONE_NEWUSER)
    for name, text in (("uid_map", "1000 %d 1" % uid), ("setgroups", "deny"),
                       ("gid_map", "1000 %d 1" % gid)):
        with open("/proc/self/" + name, "w") as f:
            f.write(text)


def _drop_capabilities():
    """Give up every capability (held in our own user namespace). As uid 1000
    there, no later exec gives them back."""
    ctypes, libc = _c()

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    _check(libc.capset(ctypes.byref(Header(0x20080522, 0)), (Data * 2)()), "capset")


def _unshare(flags):
    if flags:
        ctypes, libc = _c()
        _check(libc.unshare(ctypes.c_int(flags)), "unshare")


def _mount(source, target, fstype, flags, data=None):
    ctypes, libc = _c()
    enc = (lambda s: None if s is None else s.encode())
    _check(libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           "mount %s" % target)


def _prctl(option, value, arg3=None):
    ctypes, libc = _c()
    third = ctypes.c_ulong(0) if arg3 is None else arg3
    _check(libc.prctl(ctypes.c_int(option), ctypes.c_ulong(value), third,
                      ctypes.c_ulong(0), ctypes.c_ulong(0)), "prctl %d" % option)


def _refuse_user_namespaces():
    """A seccomp filter: unshare/clone with CLONE_NEWUSER and setns fail with EPERM.

    clone3 (whose flags a filter cannot read) fails with ENOSYS, so the C
    library falls back to clone. Other ABIs (i386, x32) get EPERM for every
    call. Needs no privilege: no_new_privs is set first.
    """
    import platform
    ctypes, _ = _c()
    machine = platform.machine()
    if machine not in ARCHES:
        raise OSError(0, "no seccomp filter for %s" % machine)
    arch, nr, x32 = ARCHES[machine]
    eperm, enosys = 0x00050000 | 1, 0x00050000 | 38
    allow = 0x7FFF0000
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    prog = [(ld, None, None, 4),                        # arch
            (jeq, None, "deny", arch),
            (ld, None, None, 0)]                        # syscall number
    if x32:
        prog.append((jge, "deny", None, 0x40000000))
    prog += [(jeq, "nosys", None, nr["clone3"]),
             (jeq, "deny", None, nr["setns"]),
             (jeq, "flags", None, nr["unshare"]),
             (jeq, "flags", "allow", nr["clone"]),
             ("flags", ld, None, None, 16),             # low half of the first argument
             (jset, "deny", "allow", CLONE_NEWUSER),
             ("allow", ret, None, None, allow),
             ("deny", ret, None, None, eperm),
             ("nosys", ret, None, None, enosys)]
    labels, rows = {}, []
    for i, row in enumerate(prog):
        if isinstance(row[0], str):
            labels[row[0]] = i
            row = row[1:]
        rows.append(row)

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte),
                    ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    def jump(i, target):
        return 0 if target is None else labels[target] - i - 1

    filters = (Filter * len(rows))(*[Filter(code, jump(i, jt), jump(i, jf), k)
                                     for i, (code, jt, jf, k) in enumerate(rows)])
    program = Program(len(rows), filters)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _prctl(PR_SET_SECCOMP, 2, ctypes.cast(ctypes.pointer(program), ctypes.c_void_p))


# -- the start-up probe -----------------------------------------------------------------

def probe():
    """{guard: None if it can be entered here, else why not}, each tried in its own process."""
    return {guard: _try(guard) for guard in GUARDS}


def _try(guard):
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        try:
            _try_here(guard)
            os._exit(0)
        except BaseException as exc:
            os.write(write_fd, str(exc).encode()[:500])
            os._exit(1)
    os.close(write_fd)
    why = b""
    while True:
        chunk = os.read(read_fd, 4096)
        if not chunk:
            break
        why += chunk
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return None
    return why.decode("utf-8", "replace") or "exit status %d" % status


def _try_here(guard):
    if guard == "userns":
        _refuse_user_namespaces()
        ctypes, libc = _c()
        if libc.unshare(ctypes.c_int(CLONE_NEWUSER)) == 0:
            raise OSError(0, "the seccomp filter did not hold")
        return
    _enter_namespaces(_clone_flags({guard}))
    if guard == "mount":
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=1m")
    elif guard == "pid":
        pid = os.fork()
        if pid == 0:
            try:
                _mount(None, "/", None, MS_REC | MS_PRIVATE)
                _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
                os._exit(0 if os.getpid() == 1 and os.listdir("/proc") else 1)
            except BaseException as exc:
                os.write(2, str(exc).encode()[:500])
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            raise OSError(0, "could not mount a fresh /proc in a new PID namespace")


# -- the job ----------------------------------------------------------------------------

def run(code, scope, memory_mb=None):
    """Run `code` as a function body with `scope`'s keys as its arguments.

    Returns the answer as bytes-ready text: ``{"value": <json>}`` or ``{"error": msg}``.
    """
    try:
        block = _compile(code, list(scope))
    except SyntaxError as exc:
        return _error(_syntax_message(exc))
    except ValueError as exc:  # e.g. null bytes in the source
        return _error("syntax error: %s" % exc)
    try:
        value = block(**scope)
    except SystemExit as exc:
        return _error("code called sys.exit(%s)" % ("" if exc.code is None else repr(exc.code)))
    except BaseException as exc:
        return _error(_exception_message(exc, memory_mb))
    finally:
        _flush()
    try:
        text = json.dumps(value, allow_nan=False)
    except MemoryError:
        return _error("return value is too large to serialise (memory limit %s MB)" % memory_mb)
    except Exception as exc:
        return _error("return value is not JSON-serialisable: %s" % _describe(exc))
    return '{"value": %s}' % text


def _compile(code, names):
    # Parse the body as a module (so `return` is allowed by the parser), then
    # graft it into `def __block__(<scope names>)`: line numbers stay the user's.
    tree = ast.parse(code, FILENAME)
    wrapper = ast.parse("def %s(%s):\n    pass\n" % (BLOCK, ", ".join(names)))
    if tree.body:
        wrapper.body[0].body = tree.body
    linecache.cache[FILENAME] = (len(code), None, code.splitlines(True), FILENAME)
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    exec(compile(wrapper, FILENAME, "exec"), namespace)
    return namespace[BLOCK]


def _syntax_message(exc):
    message = "syntax error on line %s: %s" % (exc.lineno, exc.msg)
    if exc.text and exc.text.strip():
        message += "\n  " + exc.text.strip()
    return message


def _exception_message(exc, memory_mb):
    message = "code raised %s" % type(exc).__name__
    detail = _describe(exc)
    if detail:
        message += ": " + detail
    if isinstance(exc, MemoryError) and memory_mb:
        message += " (memory limit %s MB)" % memory_mb
    try:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == FILENAME]
    except Exception:
        frames = []
    for frame in frames[-5:]:
        where = "" if frame.name == BLOCK else ", in " + frame.name
        line = ": " + frame.line if frame.line else ""
        message += "\n  line %s%s%s" % (frame.lineno, where, line)
    return message


def _describe(exc):
    try:
        return str(exc)[:2000]
    except Exception:  # a user exception whose __str__ fails
        return ""


def _error(message):
    return json.dumps({"error": message})


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def _send(fd, reply):
    data = memoryview(reply.encode("utf-8", "surrogatepass"))
    while data:
        data = data[os.write(fd, data):]
    os.close(fd)


if __name__ == "__main__":
    main(sys.argv[1:])
