"""The `actorflow` command driven for real: a server process, the command as a process
(piped, and once in a pseudo-terminal), and a real local OpenAI-compatible server."""

import json
import os
import pty
import re
import sqlite3
import subprocess
import sys

import pytest

from tests import openai_server as oa
from tests.databases import database_url, sqlite_only
from tests.processes import ROOT, ServerProcess, http, run_cli

KEY = "af_cli_tests_0123456789"
COLOUR = re.compile(rb"\x1b\[(?:[0-9;]*;)?(?:3[0-7]|9[0-7]|38;5;\d+)m")


@pytest.fixture(scope="module")
def llm():
    server = oa.FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory, llm):
    path = tmp_path_factory.mktemp("cli") / "af.db"
    env = {"ACTORFLOW_API_KEY": KEY, "ACTORFLOW_LLM_BASE_URL": llm.url, "ACTORFLOW_LLM_MODEL": "test-model"}
    server = ServerProcess(database_url(path.parent), env=env)
    server.db_path = path
    yield server
    server.stop()


def cli(served, *args, env=None, input=None):
    env = {"ACTORFLOW_URL": served.url, "ACTORFLOW_KEY": KEY, **(env or {})}
    return run_cli(*args, env=env, timeout=90, input=input)


def write(tmp_path, name, value):
    path = tmp_path / name
    path.write_text(json.dumps(value))
    return str(path)


GRAPH = {"blocks": [{"id": "start", "type": "starter"},
                    {"id": "calc", "type": "code", "config": {"code": "return {'n': variables['n'] * 2}"}},
                    {"id": "check", "type": "condition",
                     "config": {"conditions": [{"id": "big", "expression": "calc.n > 5"}]}},
                    {"id": "out", "type": "response",
                     "config": {"data": {"doubled": "{{ calc.n }}", "who": "{{ variables.who }}"}}},
                    {"id": "hook", "type": "webhook", "position": {"x": 5, "y": 7}}],
         "edges": [{"source": "start", "target": "calc"}, {"source": "calc", "target": "check"},
                   {"source": "check", "target": "out", "source_handle": "big"}]}


def new_workflow(served, tmp_path, graph=GRAPH, name="demo"):
    made = cli(served, "workflows", "create", name)
    assert made.returncode == 0, made.stderr
    wf = made.stdout.strip().splitlines()[-1]
    put = cli(served, "graph", "put", wf, write(tmp_path, "graph.json", graph))
    assert put.returncode == 0, put.stderr
    return wf


def test_workflow_commands(served, tmp_path):
    wf = new_workflow(served, tmp_path)
    assert wf in cli(served, "workflows", "list").stdout
    shown = cli(served, "workflows", "show", wf).stdout
    assert "demo" in shown and "condition" in shown
    bad = cli(served, "graph", "put", wf, write(tmp_path, "bad.json", {
        "blocks": [{"id": "start", "type": "starter"}, {"id": "x", "type": "nope"}], "edges": []}))
    assert bad.returncode == 1 and "[x]" in bad.stderr and "blocks[1].type" in bad.stderr
    exported = cli(served, "workflows", "export", wf)
    data = json.loads(exported.stdout)
    assert [b["id"] for b in data["blocks"]] == [b["id"] for b in GRAPH["blocks"]]
    assert "webhook_id" not in exported.stdout and "webhook_secret" not in exported.stdout
    assert data["blocks"][4]["position"] == {"x": 5, "y": 7}
    imported = cli(served, "workflows", "import", write(tmp_path, "wf.json", data), "--name", "copy")
    assert imported.returncode == 0, imported.stderr
    assert "new credentials issued" in imported.stderr
    copy = imported.stdout.strip().splitlines()[-1]
    original, twin = (http(served.url + f"/api/workflows/{i}", key=KEY)[1] for i in (wf, copy))
    assert twin["name"] == "copy" and twin["edges"] == original["edges"]
    assert twin["blocks"][4]["config"]["webhook_id"] != original["blocks"][4]["config"]["webhook_id"]
    assert cli(served, "workflows", "delete", copy).returncode == 0
    assert http(served.url + f"/api/workflows/{copy}", key=KEY)[0] == 404


def test_run_streams_lines_and_the_output(served, tmp_path, llm):
    wf = new_workflow(served, tmp_path)
    out = cli(served, "run", wf, "--var", "n=4", "--vars-file", write(tmp_path, "v.json", {"n": 1, "who": "Ada"}))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "  ▸ calc (code) started" in lines
    assert any(re.fullmatch(r"  ✓ calc finished in \d+ ms", line) for line in lines)
    assert "  - hook skipped" in lines
    tail = out.stdout[out.stdout.index("output:") + len("output:"):]
    assert json.loads(tail) == {"doubled": 8, "who": "Ada"}
    assert not COLOUR.search(out.stdout.encode())          # piped: plain
    # LLM tokens as they come
    llm.script(oa.text("Hello wide world"))
    talk = new_workflow(served, tmp_path, {"blocks": [{"id": "start", "type": "starter"},
                                                      {"id": "ask", "type": "llm", "config": {"prompt": "hi"}}],
                                           "edges": [{"source": "start", "target": "ask"}]}, name="talk")
    out = cli(served, "run", talk)
    assert out.returncode == 0, out.stderr
    assert "  ask> Hello wide world" in out.stdout.splitlines()


def test_run_exit_statuses_and_raw_events(served, tmp_path):
    slow = new_workflow(served, tmp_path, {
        "blocks": [{"id": "start", "type": "starter"},
                   {"id": "nap", "type": "code", "config": {"code": "import time\ntime.sleep(float(variables['s']))\nreturn 1"}},
                   {"id": "boom", "type": "code", "config": {"code": "raise ValueError('nope')"}}],
        "edges": [{"source": "start", "target": "nap"}, {"source": "nap", "target": "boom"}]}, name="slow")
    failed = cli(served, "run", slow, "--var", "s=0")
    assert failed.returncode == 1 and "boom failed" in failed.stdout
    assert cli(served, "run", "no-such-workflow").returncode == 2
    usage = cli(served, "run", slow, "--var", "novalue")
    assert usage.returncode == 2 and "NAME=VALUE" in usage.stderr
    raw = cli(served, "run", slow, "--var", "s=0", "--json")
    events = [json.loads(line) for line in raw.stdout.splitlines()]
    assert raw.returncode == 1
    assert events[0]["type"] == "execution_started" and events[-1]["type"] == "error"
    assert {"block_started", "block_completed", "block_failed"} <= {e["type"] for e in events}
    eid = events[0]["execution_id"]
    logs = cli(served, "logs", slow, eid)
    assert re.search(r"boom\tcode\tfailed\t\d*\t1\t.*nope", logs.stdout), logs.stdout
    listed = cli(served, "executions", slow, "--status", "failed")
    assert listed.stdout.count("\tfailed\t") == 2


def test_deploy_arm_and_call_the_webhook(served, tmp_path):
    wf = new_workflow(served, tmp_path)
    assert cli(served, "deploy", wf).returncode == 0
    armed = cli(served, "arm", wf)
    assert armed.returncode == 0, armed.stderr
    assert re.search(r"\(\d+ s left\)", armed.stdout)
    url = re.search(r"POST (\S+)", armed.stdout).group(1)
    secret = re.search(r"X-Webhook-Secret: (\S+)", armed.stdout).group(1)
    status, body = http(url, "POST", {"n": 1}, headers={"X-Webhook-Secret": secret})
    assert status == 202, body
    assert cli(served, "undeploy", wf).returncode == 0
    assert "\twebhook\t" in cli(served, "executions", wf).stdout


def test_run_in_a_terminal_shows_progress_and_colour(served, tmp_path):
    wf = new_workflow(served, tmp_path)
    for no_color in (False, True):
        output, status = _in_pty(served, ["run", wf, "--var", "n=4", "--var", "who=Ada"],
                                 {"NO_COLOR": "1"} if no_color else {})
        assert status == 0, output
        plain = re.sub(rb"\x1b\[[0-9;?]*[a-zA-Z]", b"", output).decode()
        assert re.search(r"blocks .* \d/5", plain)          # the progress bar
        assert "✓ out finished in" in plain and '"doubled": 8' in plain
        assert bool(COLOUR.search(output)) is not no_color


def _in_pty(served, args, env):
    import fcntl
    import struct
    import termios
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 110, 0, 0))
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ACTORFLOW_") and k != "NO_COLOR"}
    full_env.update({"ACTORFLOW_URL": served.url, "ACTORFLOW_KEY": KEY, "TERM": "xterm-256color", **env})
    proc = subprocess.Popen([sys.executable, "run.py", *args], cwd=ROOT, env=full_env,
                            stdin=follower, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    output = b""
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:     # EIO: the command closed the terminal
            break
        if not data:
            break
        output += data
    os.close(leader)
    return output, proc.wait(60)


@sqlite_only
def test_backup_and_migrate_while_serving(served, tmp_path):
    wf = new_workflow(served, tmp_path, name="kept")
    url = f"sqlite:///{served.db_path}"
    assert "up to date" in run_cli("migrate", "--database-url", url).stdout
    target = tmp_path / "copy.db"
    out = run_cli("backup", str(target), "--database-url", url)
    assert out.returncode == 0, out.stderr
    with sqlite3.connect(target) as db:
        assert db.execute("SELECT name FROM workflow WHERE id = ?", (wf,)).fetchone() == ("kept",)
    again = run_cli("backup", str(target), "--database-url", url)
    assert again.returncode == 2 and "exists" in again.stderr


def test_client_settings_flag_then_environment_then_config_file(served, tmp_path):
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"     # nothing listens there
    (tmp_path / "key").write_text(KEY + "\n")
    config = tmp_path / "client.toml"
    config.write_text(f'url = "{served.url}"\nkey_file = "{tmp_path / "key"}"\n')

    def client(*args, **env):
        return subprocess.run([sys.executable, "run.py", "workflows", "list", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=60,
                              env={**{k: v for k, v in os.environ.items() if not k.startswith("ACTORFLOW_")},
                                   **env})

    assert client("--config", str(config)).returncode == 0               # the file alone
    assert client(ACTORFLOW_CONFIG=str(config)).returncode == 0
    refused = client("--config", str(config), ACTORFLOW_URL=dead)          # the environment beats it
    assert refused.returncode == 1 and "cannot reach" in refused.stderr
    assert client("--config", str(config), "--url", served.url, ACTORFLOW_URL=dead).returncode == 0
    wrong = client("--config", str(config), ACTORFLOW_KEY="af_not_a_key_0123456789")
    assert wrong.returncode == 1 and "401" in wrong.stderr
    assert client("--config", str(config), "--key-file", str(tmp_path / "key"),
                  ACTORFLOW_KEY="af_not_a_key_0123456789").returncode == 0


def test_client_flags_before_between_and_after_the_action(served, tmp_path):
    (tmp_path / "key").write_text(KEY + "\n")
    flags = ["--url", served.url, "--key-file", str(tmp_path / "key")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTORFLOW_")}
    for argv in (flags + ["workflows", "list"], ["workflows"] + flags + ["list"],
                 ["workflows", "list"] + flags):
        out = subprocess.run([sys.executable, "run.py", *argv, "--json"], cwd=ROOT, capture_output=True,
                             text=True, timeout=60, env=env)
        assert out.returncode == 0, (argv, out.stderr)
        assert "workflows" in json.loads(out.stdout), argv


def test_no_key_is_a_usage_error(served):
    out = subprocess.run([sys.executable, "run.py", "workflows", "list", "--url", served.url], cwd=ROOT,
                         capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items() if not k.startswith("ACTORFLOW_")})
    assert out.returncode == 2 and "ACTORFLOW_KEY" in out.stderr


# Last in the module: after a timed-out code block the sandbox takes a while to serve the next one.
def test_a_run_that_times_out_exits_124(served, tmp_path):
    wf = new_workflow(served, tmp_path, {
        "blocks": [{"id": "start", "type": "starter"},
                   {"id": "nap", "type": "code", "config": {"code": "import time\ntime.sleep(30)\nreturn 1"}}],
        "edges": [{"source": "start", "target": "nap"}]}, name="nap")
    timed_out = cli(served, "run", wf, "--timeout", "1")
    assert timed_out.returncode == 124 and "timed out" in timed_out.stdout
    assert cli(served, "executions", wf, "--status", "timeout").stdout.count("\ttimeout\t") == 1
