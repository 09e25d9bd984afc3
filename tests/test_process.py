"""The real program: CLI subcommands, first start, signals, and recovery after a crash."""

import datetime
import os
import signal


from tests.processes import ServerProcess, http, run_cli, wait_until
from tests.databases import database_url, query, sqlite_only


def db_url(tmp_path):
    return database_url(tmp_path)


def test_help_lists_subcommands_and_flags():
    out = run_cli("--help")
    assert out.returncode == 0
    for word in ("serve", "create-key", "list-keys", "revoke-key", "--host", "--port", "--database-url"):
        assert word in out.stdout


def _parsers(parser, path=()):
    """Every (command path, parser) of the `actorflow` command tree."""
    import argparse
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, path + (name,))


def test_help_on_every_level_gives_each_option_a_meaning_and_default():
    import argparse
    from server.cli import build_parser
    tree = list(_parsers(build_parser()))
    assert len(tree) > 20
    for path, parser in tree:
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)) \
                    or action.help == argparse.SUPPRESS:
                continue
            where = f"actorflow {' '.join(path)} {action.dest}"
            assert action.help and len(action.help) > 10, where      # says what it means
            if action.option_strings and action.nargs != 0 and action.dest not in ("url",):
                assert "default" in action.help, where
    # The real command prints it, at each level.
    for args, words in ((("--help",), ("--port", "default: 8080", "port to listen on")),
                        (("serve", "--help"), ("--shutdown-grace", "default: 30.0", "executions may finish")),
                        (("workflows", "--help"), ("export", "import")),
                        (("workflows", "list", "--help"), ("--limit", "default: 50", "ACTORFLOW_URL")),
                        (("run", "--help"), ("--var", "124", "the workflow's id"))):
        out = run_cli(*args)
        assert out.returncode == 0, out.stderr
        text = " ".join(out.stdout.split())
        for word in words:
            assert word in text, (args, word)


def test_version_and_the_start_up_line(tmp_path):
    from server import __version__
    from server.serve import redact_url
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"actorflow {__version__}"
    url = db_url(tmp_path)
    server = ServerProcess(url, env={"ACTORFLOW_API_KEY": "start-line-key-123456"})
    try:
        line = next(l for l in server.lines if l.startswith("Actorflow "))
        expected_dir = str(tmp_path) if url.startswith("sqlite") else "-"
        assert line == (f"Actorflow listening on {server.url} (version {__version__}, "
                        f"database {redact_url(url)}, data directory {expected_dir})"), line
    finally:
        assert server.stop() == 0


def test_key_commands(tmp_path):
    url = db_url(tmp_path)
    out = run_cli("create-key", "--workspace", "team", "--name", "laptop", "--database-url", url)
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip().splitlines()[-1]
    assert key.startswith("af_") and len(key) > 20
    other = run_cli("create-key", "--workspace", "team", "--name", "ci", "--database-url", url)
    other_key = other.stdout.strip().splitlines()[-1]
    listed = run_cli("list-keys", "--database-url", url)
    assert "team" in listed.stdout and "laptop" in listed.stdout and key not in listed.stdout
    key_id = next(line.split("\t")[0] for line in listed.stdout.splitlines() if "laptop" in line)
    server = ServerProcess(url)
    try:
        assert http(server.url + "/api/workflows", key=other_key)[0] == 200
        revoked = run_cli("revoke-key", key_id, "--database-url", url)
        assert revoked.returncode == 0
        # Never looked up, so not cached: refused at once (a cached key's expiry is
        # tested with a fake clock in test_health_auth.py).
        assert http(server.url + "/api/workflows", key=key)[0] == 401
        assert http(server.url + "/api/workflows", key=other_key)[0] == 200
        assert run_cli("revoke-key", "nope", "--database-url", url).returncode != 0
    finally:
        assert server.stop() == 0


def test_first_start_prints_a_key_once_and_env_key_works(tmp_path):
    url = db_url(tmp_path)
    server = ServerProcess(url)
    try:
        printed = [l for l in server.lines if l.startswith("af_")]
        assert len(printed) == 1
        assert http(server.url + "/api/workflows", key=printed[0])[0] == 200
    finally:
        assert server.stop() == 0
    server = ServerProcess(url)
    try:
        assert not [l for l in server.lines if l.startswith("af_")]
    finally:
        server.stop()
    server = ServerProcess(url, env={"ACTORFLOW_API_KEY": "env-key-123456789"})
    try:
        assert http(server.url + "/api/workflows", key="env-key-123456789")[0] == 200
    finally:
        server.stop()


def test_sigterm_and_sigint_exit_zero(tmp_path):
    for sig in (signal.SIGTERM, signal.SIGINT):
        server = ServerProcess(db_url(tmp_path), env={"ACTORFLOW_API_KEY": "k" * 20})
        status, wf = http(server.url + "/api/workflows", "POST", {"name": "x"}, key="k" * 20)
        assert status == 201
        assert server.stop(sig) == 0


def _orphan(url, owner, pid, heartbeat_age):
    """Write a run left `running` by a process `owner` (as a crashed server would leave it)."""
    from models.base import utcnow
    now = utcnow()
    beat = now - datetime.timedelta(seconds=heartbeat_age)
    eid = f"run-of-{owner}"
    query(url, "INSERT INTO process_row (id, host, pid, started_at, heartbeat_at) VALUES (?,?,?,?,?)",
          (owner, os.uname().nodename, pid, beat, beat))
    query(url, "INSERT INTO execution (id, workflow, workspace, status, \"trigger\", owner, started_at) "
               "VALUES (?, 'wf', 'ws', 'running', 'api', ?, ?)", (eid, owner, now))
    query(url, "INSERT INTO block_log (execution, seq, block_id, block_type, status, attempts) "
               "VALUES (?, 1, 'slow', 'code', 'running', 1)", (eid,))
    return eid


def _status(url, eid):
    row = query(url, "SELECT status, error FROM execution WHERE id = ?", (eid,))[0]
    log = query(url, "SELECT status FROM block_log WHERE execution = ?", (eid,))[0]
    return row, log


def test_runs_of_dead_processes_are_resolved_on_start_but_live_ones_are_not(tmp_path):
    url = path = db_url(tmp_path)
    # make the schema
    assert run_cli("list-keys", "--database-url", url).returncode == 0
    import subprocess
    import sys
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout.strip()
    crashed = _orphan(path, "crashed", int(dead_pid), heartbeat_age=1)   # killed just now
    stale = _orphan(path, "stale", os.getpid(), heartbeat_age=3600)       # pid reused, heartbeat old
    alive = _orphan(path, "alive", os.getpid(), heartbeat_age=0)          # another live server
    server = ServerProcess(url)
    try:
        row, log = _status(path, crashed)
        assert row == ("failed", "server stopped before the run finished") and log == ("cancelled",)
        assert _status(path, stale)[0][0] == "failed"
        assert _status(path, alive)[0][0] == "running"
    finally:
        server.stop()


@sqlite_only
def test_database_files_are_private(tmp_path):
    path = tmp_path / "fresh" / "af.db"
    assert run_cli("list-keys", "--database-url", f"sqlite:///{path}").returncode == 0
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def _slow_workflow(url, key, seconds):
    status, wf = http(url + "/api/workflows", "POST", {"name": "slow"}, key=key)
    graph = {"blocks": [{"id": "start", "type": "starter"},
                        {"id": "slow", "type": "code", "config": {"code": f"import time\ntime.sleep({seconds})\nreturn 1"}}],
             "edges": [{"source": "start", "target": "slow"}]}
    assert http(url + f"/api/workflows/{wf['id']}/graph", "PUT", graph, key=key)[0] == 200
    return wf["id"]


def _block_running(url, key, wf, block_id):
    status, runs = http(url + f"/api/workflows/{wf}/executions", key=key)
    if status != 200 or not runs["executions"]:
        return False
    eid = runs["executions"][0]["id"]
    status, logs = http(url + f"/api/workflows/{wf}/executions/{eid}/logs", key=key)
    return any(l["block_id"] == block_id and l["status"] == "running" for l in logs["logs"])


def test_sigterm_lets_runs_finish_within_grace_and_fails_the_rest(tmp_path):
    import threading
    key = "k" * 20
    url = db_url(tmp_path)
    server = ServerProcess(url, env={"ACTORFLOW_API_KEY": key, "ACTORFLOW_SHUTDOWN_GRACE": "3"})
    quick = _slow_workflow(server.url, key, 1)
    stuck = _slow_workflow(server.url, key, 60)
    answers = {}

    def call(name, wf):
        answers[name] = http(server.url + f"/api/workflows/{wf}/execute", "POST", {}, key=key)

    threads = [threading.Thread(target=call, args=("quick", quick)),
               threading.Thread(target=call, args=("stuck", stuck))]
    for t in threads:
        t.start()
    import time
    for wf in (quick, stuck):
        assert wait_until(lambda: _block_running(server.url, key, wf, "slow"), timeout=30)
    t0 = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - t0 < 10
    for t in threads:
        t.join(10)
    assert answers["quick"][0] == 200 and answers["quick"][1]["output"] == {"slow": 1}
    assert answers["stuck"][0] == 500
    assert "server stopped" in answers["stuck"][1]["error"]
    rows = dict(query(url, "SELECT workflow, status FROM execution"))
    assert rows == {quick: "completed", stuck: "failed"}


def test_kill_9_then_restart_without_resume_fails_the_run(tmp_path):
    key = "k" * 20
    url = db_url(tmp_path)
    server = ServerProcess(url, env={"ACTORFLOW_API_KEY": key})
    wf = _slow_workflow(server.url, key, 60)
    import threading

    def doomed_call():  # its server is killed under it
        try:
            http(server.url + f"/api/workflows/{wf}/execute", "POST", {}, key)
        except OSError:
            pass

    threading.Thread(target=doomed_call, daemon=True).start()
    # Killed once its slow block's start is on disk (not merely the run's row).
    assert wait_until(lambda: _block_running(server.url, key, wf, "slow"), timeout=30)
    listed = http(server.url + f"/api/workflows/{wf}/executions", key=key)[1]
    eid = listed["executions"][0]["id"]
    assert listed["executions"][0]["status"] == "running"
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    # ACTORFLOW_RESUME=false keeps the first release's behaviour (tests/test_durable.py resumes).
    server = ServerProcess(url, env={"ACTORFLOW_API_KEY": key, "ACTORFLOW_RESUME": "false"})
    try:
        status, row = http(server.url + f"/api/workflows/{wf}/executions/{eid}", key=key)
        assert row["status"] == "failed" and row["error"] == "server stopped before the run finished"
        status, logs = http(server.url + f"/api/workflows/{wf}/executions/{eid}/logs", key=key)
        assert [(l["block_id"], l["status"]) for l in logs["logs"]] == [("start", "completed"), ("slow", "cancelled")]
    finally:
        assert server.stop() == 0
