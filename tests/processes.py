"""Start `python run.py` as a real process, for tests that need one (CLI, signals, crashes)."""

import os
import re
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args, env=None, timeout=30):
    """Run a run.py subcommand to completion; returns CompletedProcess."""
    return subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, env=_env(env),
                          capture_output=True, text=True, timeout=timeout)


class ServerProcess:
    """`python run.py serve --port 0 ...`; `url` once it listens; `lines` it printed."""

    def __init__(self, database_url, env=None, args=()):
        self.proc = subprocess.Popen(
            [sys.executable, "run.py", "serve", "--port", "0", "--database-url", database_url, *args],
            cwd=ROOT, env=_env(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.url = None
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(60):  # generous: a loaded machine starts slowly
            self.kill()
            raise RuntimeError("server did not start:\n" + "\n".join(self.lines))

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                self.url = match.group(1)
                self._ready.set()
        self._ready.set()

    def stop(self, sig=None, timeout=30):
        import signal
        if self.proc.poll() is None:
            self.proc.send_signal(sig or signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def _env(extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTORFLOW_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def wait_until(predicate, timeout=10, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
