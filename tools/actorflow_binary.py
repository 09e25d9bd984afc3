"""Entry point of the single binary built by tools/build_binary.py.

`actorflow ARGS` is the `actorflow` command. The binary is also the Python
that code blocks run on: the sandbox starts its child as
`python -I -S [-u] -c SOURCE ARGS...` (actors/sandbox.py), and a frozen
program has no `python` to name, so the binary answers that one form itself.
"""

import builtins
import os
import sys

PYTHON_FLAGS = {"-I", "-S", "-u"}  # the only flags the sandbox passes; isolation is the frozen default


def run_source(argv):
    """Act as `python [-I] [-S] [-u] -c SOURCE ARGS...`."""
    flags = []
    while argv and argv[0] in PYTHON_FLAGS:
        flags.append(argv.pop(0))
    if len(argv) < 2 or argv[0] != "-c":
        print("actorflow: only `-I -S -u -c SOURCE ARGS` is understood here", file=sys.stderr)
        return 2
    if "-u" in flags:
        sys.stdout.reconfigure(write_through=True)
        sys.stderr.reconfigure(write_through=True)
    source, sys.argv = argv[1], ["-c"] + argv[2:]
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    exec(compile(source, "<string>", "exec"), namespace)
    return 0


def share_runtime():
    """Let sandbox users read (never write) the files the bootloader unpacked.

    Code blocks run on them as a throw-away uid; the bootloader creates them
    0700/0600, owned by the server's user, who alone may still write them.
    """
    root = getattr(sys, "_MEIPASS", None)
    if not root:
        return
    for dirpath, _, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, 0o755 if os.stat(path).st_mode & 0o100 else 0o644)


def add_tzdata():
    """Make the time zone database (one zip next to the unpacked files) importable."""
    path = os.path.join(getattr(sys, "_MEIPASS", ""), "tzdata.zip")
    if os.path.exists(path):
        sys.path.append(path)


def main():
    add_tzdata()  # zoneinfo falls back to it where the host has no /usr/share/zoneinfo
    if sys.argv[1:2] and sys.argv[1] in PYTHON_FLAGS | {"-c"}:
        sys.exit(run_source(sys.argv[1:]))
    share_runtime()
    from server.cli import main as cli_main
    sys.exit(cli_main(prog="actorflow"))


if __name__ == "__main__":
    main()
