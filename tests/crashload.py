"""Runs of several shapes in flight when a server is killed: start them, watch them, check them.

Shared by tests/test_durable.py (a dozen runs), and by bench/crash_resume.py
and tests_slow/test_crash_resume.py (50, through `crash_and_resume`).
Blocking code (threads, urllib, http.client): the servers are real processes.
"""

import collections
import signal
import time
import http.client as httpclient
import json
import sqlite3
import threading
import urllib.error
import urllib.parse
import urllib.request

from tests.echo_server import EchoServer
from tests.helpers import edge  # noqa: F401  (cl.edge, for the crash tests' graphs)
from tests.processes import ServerProcess, wait_until

NAP = 4.0        # seconds a sleeping code block sleeps
HTTP_NAP = 3.0   # seconds the slow local server takes to answer


def http(base, method, path, body=None, key=None, headers=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def code(body, **extra):
    return {"type": "code", "config": dict(code=body, **extra)}


def block(block_id, spec):
    return dict(spec, id=block_id)


START = {"id": "start", "type": "starter"}


def shapes(slow_url, nap=NAP):
    """name -> (graph, expected output for variable n, the block that is slow).

    `nap`: seconds the slow blocks take (code blocks sleep, the local server waits).
    """
    sleep = f"import time\ntime.sleep({nap})\n"
    chain = [START, block("double", code("return variables['n'] * 2")),
             block("nap", code(sleep + "return inputs['double'] + 1")),
             respond("out", {"v": "{{ nap }}"})]
    fanjoin = [START, block("a", code("return variables['n'] + 1")),
               block("b", code(sleep + "return variables['n'] + 2")),
               block("c", code("import time\ntime.sleep(0.3)\nreturn variables['n'] + 3")),
               block("join", code("return inputs['a'] + inputs['b'] + inputs['c']")),
               respond("out", {"sum": "{{ join }}"})]
    branch = [START, {"id": "check", "type": "condition",
                      "config": {"conditions": [{"id": "big", "expression": "variables.n > 5"}]}},
              block("big", code(sleep + "return 'big'")), block("small", code(sleep + "return 'small'")),
              respond("out_big", {"b": "{{ big }}"}), respond("out_small", {"b": "{{ small }}"})]
    call = [START, {"id": "call", "type": "http",
                    "config": {"method": "POST", "url": f"{slow_url}/slow/{nap * HTTP_NAP / NAP:g}",
                               "body": {"n": "{{ variables.n }}"}}},
            respond("out", {"got": "{{ call.body.json.n }}"})]
    return {
        "chain": (graph(chain, [("start", "double"), ("double", "nap"), ("nap", "out")]),
                  lambda n: {"v": 2 * n + 1}, "nap"),
        "fanjoin": (graph(fanjoin, [("start", "a"), ("start", "b"), ("start", "c"), ("a", "join"),
                                    ("b", "join"), ("c", "join"), ("join", "out")]),
                    lambda n: {"sum": 3 * n + 6}, "b"),
        "branch": (graph(branch, [("start", "check"), ("check", "big", "big"), ("check", "small", "else"),
                                  ("big", "out_big"), ("small", "out_small")]),
                   lambda n: {"b": "big" if n > 5 else "small"}, ("big", "small")),
        "http": (graph(call, [("start", "call"), ("call", "out")]), lambda n: {"got": n}, "call"),
    }


def respond(block_id, data):
    return {"id": block_id, "type": "response", "config": {"data": data}}


def graph(blocks, edges):
    return {"blocks": blocks, "edges": [edge(*e) for e in edges]}


def make_workflows(base, key, slow_url, nap=NAP):
    """Save one workflow per shape; name -> (workflow id, expected fn, slow block)."""
    made = {}
    for name, (graph, expected, slow) in shapes(slow_url, nap).items():
        status, wf = http(base, "POST", "/api/workflows", {"name": name}, key)
        assert status == 201, wf
        status, body = http(base, "PUT", f"/api/workflows/{wf['id']}/graph", graph, key)
        assert status == 200, body
        made[name] = (wf["id"], expected, slow)
    return made


class Watched:
    """One run started with /execute/stream; its events as the client saw them."""

    def __init__(self, base, key, workflow_id, variables, expected, slow, timeout=None):
        self.workflow_id = workflow_id
        self.expected = expected
        self.slow = slow if isinstance(slow, tuple) else (slow,)
        self.events = []                 # (id, event)
        self.execution_id = None
        body = {"variables": variables}
        if timeout is not None:
            body["timeout"] = timeout
        path = f"/api/workflows/{workflow_id}/execute/stream"
        self.thread = threading.Thread(target=self._read, args=(base, "POST", path, body, key, None),
                                       daemon=True)
        self.thread.start()

    @classmethod
    def attach(cls, base, key, workflow_id, execution_id):
        """Another client following an existing run from its first event (in a thread)."""
        self = cls.__new__(cls)
        self.workflow_id, self.execution_id, self.expected, self.slow = workflow_id, execution_id, None, ()
        self.events = []
        self.thread = threading.Thread(target=self.reattach, args=(base, key), daemon=True)
        self.thread.start()
        return self

    def slow_started(self):
        return any(e["type"] == "block_started" and e["block_id"] in self.slow for _, e in self.events)

    def last_id(self):
        return self.events[-1][0] if self.events else 0

    def reattach(self, base, key):
        """Follow the run again from the last event seen (Last-Event-ID), to its end."""
        path = f"/api/workflows/{self.workflow_id}/executions/{self.execution_id}/stream"
        self._read(base, "GET", path, None, key, {"Last-Event-ID": str(self.last_id())})

    def _read(self, base, method, path, body, key, headers):
        parts = urllib.parse.urlsplit(base)
        conn = httpclient.HTTPConnection(parts.hostname, parts.port, timeout=120)
        try:
            data = json.dumps(body).encode() if body is not None else None
            hdrs = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
            if data is not None:
                hdrs["Content-Type"] = "application/json"
            hdrs.update(headers or {})
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            assert resp.status == 200, resp.read()
            seq = None
            for raw in resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("id: "):
                    seq = int(line[4:])
                elif line.startswith("data: "):
                    event = json.loads(line[6:])
                    self.events.append((seq, event))
                    if event["type"] == "execution_started":
                        self.execution_id = event["execution_id"]
                    if event["type"] in ("execution_completed", "error"):
                        return
        except (OSError, httpclient.HTTPException):
            pass  # the server was killed under us
        finally:
            conn.close()


def start_load(base, key, workflows, count):
    """`count` runs, the shapes in turn, each with its own n; returns [Watched]."""
    names = sorted(workflows)
    runs = []
    for i in range(count):
        wf_id, expected, slow = workflows[names[i % len(names)]]
        n = i % 11
        runs.append(Watched(base, key, wf_id, {"n": n}, expected(n), slow))
    return runs


def stored(db_path, sql, args=()):
    """Rows from the database: a SQLite file's path, or any database URL."""
    if "://" in str(db_path):
        from tests.databases import query
        return query(str(db_path), sql, list(args))
    db = sqlite3.connect(str(db_path), timeout=30)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def finished_blocks(db_path, execution_ids):
    """(execution, block) -> (status, finished_at, attempts) of every block that had ended."""
    marks = ",".join("?" * len(execution_ids))
    rows = stored(db_path, f"SELECT execution, block_id, status, finished_at, attempts FROM block_log "
                           f"WHERE execution IN ({marks}) AND status IN ('completed', 'skipped')",
                  list(execution_ids))
    return {(e, b): (s, f, a) for e, b, s, f, a in rows}


def wait_all_over(base, key, runs, timeout=180):
    """Poll until every run has ended; returns {execution id: execution}."""
    rows = {}

    def over():
        for run in runs:
            if run.execution_id in rows:
                continue
            status, row = http(base, "GET", f"/api/workflows/{run.workflow_id}/executions/{run.execution_id}",
                               key=key)
            if status == 200 and row["status"] != "running":
                rows[run.execution_id] = row
        return len(rows) == len(runs)

    assert wait_until(over, timeout=timeout, interval=0.25), \
        f"{len(runs) - len(rows)} runs still running"
    return rows


def check_runs(base, key, db_path, runs, rows, before, echo, cut):
    """Every way a resumed load can go wrong, as a list of problems (empty: all good).

    `cut`: ids of the runs still running at the kill. Returns (problems, how
    many blocks were started again).
    """
    problems, resumed = [], 0
    for run in runs:
        row = rows[run.execution_id]
        if row["status"] != "completed" or row["output"] != run.expected:
            problems.append((run.execution_id, "result", row["status"], row.get("output"), run.expected))
        status, logs = http(base, "GET", f"/api/workflows/{run.workflow_id}/executions/"
                                         f"{run.execution_id}/logs", key=key)
        for entry in logs["logs"]:
            mark = before.get((run.execution_id, entry["block_id"]))
            if mark is not None:
                if entry.get("resumed") or entry["status"] != mark[0] or entry["attempts"] != mark[2]:
                    problems.append((run.execution_id, "finished block ran again", entry))
            elif entry.get("resumed"):
                resumed += 1
                if entry["attempts"] < 2 or entry["status"] != "completed":
                    problems.append((run.execution_id, "resumed block", entry))
        after = finished_blocks(db_path, [run.execution_id])
        if any(after[k] != v for k, v in before.items() if k[0] == run.execution_id):
            problems.append((run.execution_id, "finished block changed"))
        seams = [e for _, e in run.events if e["type"] == "execution_resumed"]
        if len(seams) != (run.execution_id in cut):
            problems.append((run.execution_id, "seams", len(seams)))
    keys = idempotency_keys(echo)
    http_runs = {f"{r.execution_id}:call" for r in runs if r.slow == ("call",)}
    if set(keys) != http_runs or (keys and max(keys.values()) > 2):
        problems.append(("idempotency keys", dict(keys)))
    return problems + check_streams(runs), resumed


def check_streams(runs):
    """Each run's events, before and after the restart: ids 1..N once each, in order, one seam."""
    problems = []
    for run in runs:
        ids = [i for i, _ in run.events]
        types = [e["type"] for _, e in run.events]
        if ids != list(range(1, len(ids) + 1)):
            problems.append((run.execution_id, "ids", ids))
        if types[0] != "execution_started" or types[-1] != "execution_completed":
            problems.append((run.execution_id, "ends", types))
        if types.count("execution_started") != 1:
            problems.append((run.execution_id, "started", types))
    return problems


def idempotency_keys(echo):
    return collections.Counter(r["headers"].get("idempotency-key") for r in list(echo.requests))


KEY = "crash-load-key-0123456789abcdef"


def serve(url):
    # Enough code slots that every run sleeps in its slow block at the kill, none waits for one.
    return ServerProcess(url, env={"ACTORFLOW_API_KEY": KEY, "ACTORFLOW_HEARTBEAT_INTERVAL": "1",
                                   "ACTORFLOW_CODE_CONCURRENCY": "64"})


def crash_and_resume(url, count=50, processes=1, nap=12.0, say=print):
    """kill -9 a server with `count` runs in flight, then let a restarted one (processes=1) or a
    second one already on the database (processes=2) finish them; check everything.

    `nap`: seconds of the slow blocks, long enough that no run ends before the
    last one has started on a loaded machine. Returns a dict: problems (empty:
    all good), in_flight, finished_before, claimed_after, over_after (seconds
    after the kill), resumed (blocks started again), keys (how many distinct
    Idempotency-Keys), keys_max (most times one reached the http receiver).
    """
    echo = EchoServer().start()
    server = serve(url)
    other = serve(url) if processes == 2 else None
    report = {}
    try:
        workflows = make_workflows(server.url, KEY, echo.url, nap)
        runs = start_load(server.url, KEY, workflows, count)
        if not wait_until(lambda: all(r.slow_started() for r in runs), timeout=300):
            raise AssertionError("the load did not get going")
        calls = sum(r.slow == ("call",) for r in runs)
        wait_until(lambda: len(echo.requests) >= calls, timeout=60)  # the http calls are out
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
        killed = time.monotonic()
        ids = [r.execution_id for r in runs]
        before = finished_blocks(url, ids)
        status = dict(stored(url, "SELECT id, status FROM execution"))
        cut = {i for i in ids if status[i] == "running"}
        report.update(in_flight=len(cut), finished_before=len(before))
        say(f"{len(cut)} of {len(ids)} runs in flight at the kill, {len(before)} of their blocks finished")
        if other is None:
            server = serve(url)
            say(f"restarted in {time.monotonic() - killed:.2f} s")
        else:
            server, other = other, None
        marks = ",".join("?" * len(cut))
        me = stored(url, "SELECT id FROM process_row WHERE pid = ?", (server.proc.pid,))[0][0]
        wait_until(lambda: {o for (o,) in stored(
            url, f"SELECT owner FROM execution WHERE id IN ({marks})", list(cut))} <= {me},
            timeout=120, interval=0.02)
        report["claimed_after"] = time.monotonic() - killed
        say(f"all {len(cut)} runs claimed {report['claimed_after']:.2f} s after the kill")
        for run in runs:
            run.reattach(server.url, KEY)
        rows = wait_all_over(server.url, KEY, runs, timeout=600)
        report["over_after"] = time.monotonic() - killed
        say(f"all runs over {report['over_after']:.2f} s after the kill")
        problems, resumed = check_runs(server.url, KEY, url, runs, rows, before, echo, cut)
        keys = idempotency_keys(echo)
        report.update(problems=problems, resumed=resumed, keys=len(keys),
                      keys_max=max(keys.values()) if keys else 0)
        say(f"{resumed} blocks started again; idempotency keys: {len(keys)}, "
            f"seen at most {report['keys_max']} times")
        return report
    finally:
        server.kill()
        if other is not None:
            other.kill()
        echo.stop()
