"""Start `python run.py` as a real process, for tests that need one (CLI, signals, crashes)."""

import os
import re
import subprocess
import sys
import threading

from tests.helpers import wait_until  # noqa: F401  (the suite's one poll helper; imported from here too)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args, env=None, timeout=30, input=None):
    """Run a run.py subcommand to completion; returns CompletedProcess."""
    return subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, env=_env(env),
                          capture_output=True, text=True, timeout=timeout, input=input)


class ServerProcess:
    """`python run.py serve --port 0 ...`; `url` once it listens; `lines` it printed.

    The suite's one launcher of server processes.
    """

    def __init__(self, database_url, env=None, args=(), before=(), command=None, stderr_to=None):
        """`before`: flags put ahead of `serve`; `command`: argv instead of `python run.py`;
        `stderr_to`: a file for the log (stderr) alone, instead of mixing it into `lines`."""
        command = list(command or [sys.executable, "run.py"])
        port = () if "--port" in before else ("--port", "0")
        log = subprocess.STDOUT if stderr_to is None else open(stderr_to, "w")
        self.proc = subprocess.Popen(
            [*command, *before, "serve", *port, "--database-url", database_url, *args],
            cwd=ROOT, env=_env(env), stdout=subprocess.PIPE, stderr=log, text=True)
        if stderr_to is not None:
            log.close()
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


def http(url, method="GET", body=None, key=None, headers=None):
    """One JSON request with urllib: (status, parsed body)."""
    import json
    import urllib.error
    import urllib.request
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def make_workflow(url, key, blocks, edges, name="wf"):
    """Create a workflow with this graph on a running server; returns its id."""
    status, wf = http(url + "/api/workflows", "POST", {"name": name}, key=key)
    assert status == 201, wf
    status, body = http(url + f"/api/workflows/{wf['id']}/graph", "PUT",
                        {"blocks": blocks, "edges": edges}, key=key)
    assert status == 200, body
    return wf["id"]
