"""Smoke-test the single binary (tools/build_binary.py) as an on-prem host would run it.

    python3 tools/smoke_binary.py [dist/actorflow]

The binary runs under `env -i` with a PATH that holds no interpreter; this
script (any Python 3) only drives it over HTTP: create -> graph (code block,
http block to a local server, condition) -> execute -> execute/stream ->
deploy -> arm -> webhook. It prints the binary's size and its start-up time
to listening, and exits non-zero on the first thing that is wrong.
"""

import atexit
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

KEY = "smoke-key-0123456789abcdef"
START_DEADLINE = 120  # seconds; a loaded CI box unpacks slowly


class Echo(http.server.BaseHTTPRequestHandler):
    """The http block's target: answers {"echo": <the JSON it got>}."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        data = json.dumps({"echo": body}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def call(base, method, path, body=None, key=KEY, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("X-API-Key", key)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def api(base, method, path, body=None, want=200, **kw):
    status, raw = call(base, method, path, body, **kw)
    assert status == want, f"{method} {path}: {status} {raw[:500]!r}"
    return json.loads(raw) if raw else None


def graph(echo_url):
    code = ("import math, json, hashlib\n"  # extension modules load from the binary's own Python
            "return {'n': variables['n'] * 2, 'root': math.isqrt(variables['n'] * 16),\n"
            "        'h': hashlib.sha256(b'x').hexdigest()[:8]}")
    blocks = [{"id": "start", "type": "starter"},
              {"id": "calc", "type": "code", "config": {"code": code}},
              {"id": "call", "type": "http", "config": {"method": "POST", "url": echo_url + "/echo",
                                                        "body": {"n": "{{ calc.n }}"}}},
              {"id": "check", "type": "condition",
               "config": {"conditions": [{"id": "big", "expression": "calc.n > 5"}]}},
              {"id": "big", "type": "response",
               "config": {"data": {"size": "big", "echo": "{{ call.body.echo.n }}",
                                   "root": "{{ calc.root }}", "h": "{{ calc.h }}"}}},
              {"id": "small", "type": "response", "config": {"data": {"size": "small"}}}]
    edges = [("start", "calc"), ("calc", "call"), ("call", "check"), ("check", "big", "big"),
             ("check", "small", "else")]
    return {"blocks": blocks, "edges": [dict(source=e[0], target=e[1], **({"source_handle": e[2]} if len(e) > 2 else {}))
                                        for e in edges]}


def wait_run(base, wf, eid):
    end = time.monotonic() + 60
    while True:
        run = api(base, "GET", f"/api/workflows/{wf}/executions/{eid}")
        if run["status"] != "running":
            return run
        assert time.monotonic() < end, f"execution {eid} still running"
        time.sleep(0.1)


# Code blocks get their own empty /tmp (and /var/tmp, /dev/shm, /run/lock): a
# binary under one of those is invisible to the code processes it starts.
PRIVATE_TO_CODE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")


def installed_copy(binary):
    """Where an operator would keep it: a copy outside the folders private to code, if need be."""
    def private(path):
        return any(path == p or path.startswith(p + "/") for p in PRIVATE_TO_CODE)
    if not private(os.path.realpath(binary)):
        return binary
    for base in ("/opt", "/srv", "/var/lib", "/usr/local/lib"):
        if os.path.isdir(base) and os.access(base, os.W_OK) and not private(os.path.realpath(base)):
            folder = tempfile.mkdtemp(prefix="actorflow-smoke-bin-", dir=base)
            atexit.register(shutil.rmtree, folder, True)
            os.chmod(folder, 0o755)
            copy = os.path.join(folder, "actorflow")
            shutil.copy2(binary, copy)
            os.chmod(copy, 0o755)
            print(f"{binary} is under a folder private to code blocks; running a copy at {copy}")
            return copy
    raise SystemExit(f"{binary} is under {', '.join(PRIVATE_TO_CODE)}: install it elsewhere")


def main(binary):
    binary = installed_copy(os.path.abspath(binary))
    work = tempfile.mkdtemp(prefix="actorflow-smoke-")
    os.chmod(work, 0o755)
    echo = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    echo_url = f"http://127.0.0.1:{echo.server_address[1]}"

    version = subprocess.run(["env", "-i", "PATH=/nonexistent", binary, "--version"],
                             capture_output=True, text=True, timeout=START_DEADLINE)
    assert version.returncode == 0 and version.stdout.startswith("actorflow "), version
    print(version.stdout.strip())
    # The time zone database travels inside (zoneinfo's fallback on a host without one).
    tz = subprocess.run(["env", "-i", "PATH=/nonexistent", binary, "-I", "-S", "-c",
                         "import importlib.resources as r, sys\n"
                         "data = r.files('tzdata.zoneinfo').joinpath('Europe/Paris').read_bytes()\n"
                         "sys.exit(data[:4] != b'TZif')"],
                        capture_output=True, text=True, timeout=START_DEADLINE)
    assert tz.returncode == 0, tz

    key_file = os.path.join(work, "key")
    with open(key_file, "w") as f:
        f.write(KEY + "\n")
    os.chmod(key_file, 0o600)
    env = ["env", "-i", "PATH=/nonexistent", f"ACTORFLOW_API_KEY_FILE={key_file}",
           "ACTORFLOW_HTTP_ALLOW=127.0.0.1/32"]
    out_path = os.path.join(work, "out")
    out = open(out_path, "w")
    started = time.monotonic()
    proc = subprocess.Popen(env + [binary, "serve", "--port", "0",
                                   "--database-url", f"sqlite:///{work}/x.db"],
                            stdout=out, stderr=subprocess.STDOUT)
    try:
        base = None
        while base is None:
            with open(out_path) as f:
                m = re.search(r"^Actorflow listening on (http://\S+)", f.read(), re.M)
            if m:
                base = m.group(1)
                listening = time.monotonic() - started
                line = m.group(0) + open(out_path).read()[m.end():].split("\n", 1)[0]
                want = f"(version {version.stdout.split()[1]}, database sqlite:///{work}/x.db, data directory {work})"
                assert line.endswith(want), line
            elif proc.poll() is not None or time.monotonic() - started > START_DEADLINE:
                raise AssertionError("the binary did not start:\n" + open(out_path).read())
            else:
                time.sleep(0.02)
        print(f"size {os.path.getsize(binary) / 2**20:.1f} MiB, listening after {listening:.2f} s")
        check(base, echo_url)
        check_client(binary, base)
    except BaseException:
        print(open(out_path).read(), file=sys.stderr)
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        echo.shutdown()
    assert proc.returncode == 0, f"the binary exited with {proc.returncode}"
    print("binary smoke test passed")


def check_client(binary, base):
    """The binary's own client commands, against the server it runs: list, run (piped: plain lines)."""
    env = ["env", "-i", "PATH=/nonexistent", f"ACTORFLOW_URL={base}", f"ACTORFLOW_KEY={KEY}"]
    listed = subprocess.run(env + [binary, "workflows", "list"], capture_output=True, text=True,
                            timeout=START_DEADLINE)
    assert listed.returncode == 0 and "\tsmoke\t" in listed.stdout, listed
    wf = next(line.split("\t")[0] for line in listed.stdout.splitlines() if "\tsmoke\t" in line)
    ran = subprocess.run(env + [binary, "run", wf, "--var", "n=4"], capture_output=True, text=True,
                         timeout=START_DEADLINE)
    assert ran.returncode == 0 and "calc finished in" in ran.stdout and '"size": "big"' in ran.stdout, ran
    failed = subprocess.run(env + [binary, "run", wf, "--var", "n=nope"], capture_output=True, text=True,
                            timeout=START_DEADLINE)
    assert failed.returncode == 1, failed


def check(base, echo_url):
    assert api(base, "GET", "/api/health", key=None)["ok"] is True
    wf = api(base, "POST", "/api/workflows", {"name": "smoke"}, want=201)["id"]
    api(base, "PUT", f"/api/workflows/{wf}/graph", graph(echo_url))
    want = {"size": "big", "echo": 8, "root": 8, "h": "2d711642"}

    body = api(base, "POST", f"/api/workflows/{wf}/execute", {"variables": {"n": 4}})
    assert body["output"] == want, body
    body = api(base, "POST", f"/api/workflows/{wf}/execute", {"variables": {"n": 1}})
    assert body["output"] == {"size": "small"}, body

    status, raw = call(base, "POST", f"/api/workflows/{wf}/execute/stream", {"variables": {"n": 4}})
    assert status == 200, raw
    events = [json.loads(line[5:]) for line in raw.decode().splitlines() if line.startswith("data:")]
    names = [e["type"] for e in events]
    assert names[-1] == "execution_completed" and events[-1]["output"] == want, raw[-800:]
    assert "block_completed" in names, names

    # The sandbox user reads the binary's unpacked Python but can write none of it.
    probe = ("import os, sys\nroot = sys._MEIPASS\nwrote = []\n"
             "for path in [root, os.path.join(root, 'base_library.zip')]:\n"
             "    try:\n"
             "        open(path if not os.path.isdir(path) else os.path.join(path, 'x'), 'ab').close()\n"
             "        wrote.append(path)\n"
             "    except OSError:\n"
             "        pass\n"
             "return {'uid': os.getuid(), 'wrote': wrote, 'frozen': getattr(sys, 'frozen', False)}")
    sand = api(base, "POST", "/api/workflows", {"name": "sandbox"}, want=201)["id"]
    api(base, "PUT", f"/api/workflows/{sand}/graph",
        {"blocks": [{"id": "start", "type": "starter"}, {"id": "p", "type": "code", "config": {"code": probe}},
                    {"id": "out", "type": "response", "config": {"data": "{{ p }}"}}],
         "edges": [{"source": "start", "target": "p"}, {"source": "p", "target": "out"}]})
    seen = api(base, "POST", f"/api/workflows/{sand}/execute", {"variables": {}})["output"]
    assert seen["frozen"] is True and seen["wrote"] == [], seen
    if os.geteuid() == 0:
        assert seen["uid"] != 0, seen

    api(base, "POST", f"/api/workflows/{wf}/deploy")
    hooked = {"blocks": [{"id": "hook", "type": "webhook"},
                         {"id": "calc", "type": "code", "config": {"code": "return inputs['hook']['body']['x'] + 1"}},
                         {"id": "out", "type": "response", "config": {"data": {"got": "{{ calc }}"}}}],
              "edges": [{"source": "hook", "target": "calc"}, {"source": "calc", "target": "out"}]}
    hook_wf = api(base, "POST", "/api/workflows", {"name": "hooked"}, want=201)["id"]
    api(base, "PUT", f"/api/workflows/{hook_wf}/graph", hooked)
    api(base, "POST", f"/api/workflows/{hook_wf}/deploy")
    api(base, "POST", f"/api/workflows/{hook_wf}/arm")
    config = next(b for b in api(base, "GET", f"/api/workflows/{hook_wf}")["blocks"] if b["id"] == "hook")["config"]
    body = api(base, "POST", f"/api/webhooks/{config['webhook_id']}", {"x": 41}, want=202, key=None,
               headers={"X-Webhook-Secret": config["webhook_secret"]})
    run = wait_run(base, hook_wf, body["execution_id"])
    assert run["status"] == "completed" and run["output"] == {"got": 42}, run


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "dist/actorflow")
