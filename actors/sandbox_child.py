"""The code block's child process: set limits, read one job, run it, answer, exit.

actors/sandbox.py starts this source as
``python -I -S -u -c <source> RESULT_FD AS_BYTES CPU_SECONDS NPROC FSIZE NOFILE``,
already as an unprivileged user, in a fresh directory, with a clean
environment and in its own session. It sets its own limits before it reads
anything, so no job ever runs without them.

Protocol: the job arrives on stdin as one JSON object ``{"code", "scope",
"memory_mb"}`` followed by EOF. Whatever the code prints (stdout, stderr, even
``os.write(1, ...)``) goes to fd 1, which the parent reads as the log's
stdout. The answer, ``{"value": ...}`` or ``{"error": "..."}``, goes only to
RESULT_FD, so printed text can never pass for the result.

Standard library only: it may run under another Python than the server's.
"""

import ast
import json
import linecache
import os
import resource
import sys
import traceback

FILENAME = "<code>"
BLOCK = "__block__"


def main(argv):
    result_fd, as_bytes, cpu, nproc, fsize, nofile = (int(a) for a in argv)
    _limit(resource.RLIMIT_AS, as_bytes)
    # SIGXCPU at the soft limit, SIGKILL one second later if that is ignored.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    _limit(resource.RLIMIT_NPROC, nproc)
    _limit(resource.RLIMIT_FSIZE, fsize)
    _limit(resource.RLIMIT_NOFILE, nofile)
    _limit(resource.RLIMIT_CORE, 0)
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
