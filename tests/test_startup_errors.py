"""Operator errors: one line naming the problem and the fix, exit 2, no traceback;
flags before or after the subcommand; a second Ctrl-C while draining stops at once."""

import importlib.util
import signal
import socket
import time

import pytest

from tests.processes import ServerProcess, http, make_workflow, run_cli, wait_until
from tests.databases import database_url, query


def db_url(tmp_path):
    return database_url(tmp_path)


def one_line_error(out, *words):
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert "Traceback" not in out.stderr and len(lines) == 1, out.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_port_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = run_cli("serve", "--port", str(port), "--database-url", db_url(tmp_path))
    one_line_error(out, f"port {port}", "in use", "--port")


def test_bad_host(tmp_path):
    out = run_cli("serve", "--host", "no-such-host.invalid", "--database-url", db_url(tmp_path))
    one_line_error(out, "no-such-host.invalid", "--host")


def test_unwritable_data_directory(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    out = run_cli("serve", "--database-url", f"sqlite:///{tmp_path / 'a-file' / 'data' / 'af.db'}")
    one_line_error(out, "data directory", "--database-url")


def test_postgresql_without_its_driver(tmp_path):
    env = {}
    if importlib.util.find_spec("psycopg2") is not None:
        # Installed here: hide it the way a machine without it would look.
        (tmp_path / "psycopg2").mkdir()
        (tmp_path / "psycopg2" / "__init__.py").write_text("raise ImportError('No module named psycopg2')\n")
        env["PYTHONPATH"] = str(tmp_path)
    out = run_cli("serve", "--database-url", "postgresql://u:p@127.0.0.1:1/x", env=env)
    one_line_error(out, "PostgreSQL", "psycopg2")


def test_config_file_then_environment_then_flags(tmp_path):
    from server import settings as settings_mod
    (tmp_path / "llm-key").write_text("sk-from-config-file\n")
    config = tmp_path / "actorflow.toml"
    key_path = tmp_path / "llm-key"
    config.write_text(f'port = 9001\nhost = "0.0.0.0"\nexecute_timeout = 12\nllm_api_key_file = "{key_path}"\n')
    parser = settings_mod.argparse.ArgumentParser()
    settings_mod.add_flags(parser)
    env = {"ACTORFLOW_CONFIG": str(config), "ACTORFLOW_PORT": "9002", "ACTORFLOW_HOST": "127.0.0.2"}
    loaded = settings_mod.load(env, parser.parse_args(["--port", "9003"]))
    assert (loaded.port, loaded.host, loaded.execute_timeout) == (9003, "127.0.0.2", 12.0)
    assert loaded.llm_api_key == "sk-from-config-file"
    config.write_text("port = 70000\n")
    with pytest.raises(settings_mod.SettingsError, match="port"):
        settings_mod.load({"ACTORFLOW_CONFIG": str(config)})
    config.write_text("prot = 1\n")
    with pytest.raises(settings_mod.SettingsError, match="unknown setting 'prot'"):
        settings_mod.load({"ACTORFLOW_CONFIG": str(config)})


def test_the_real_command_takes_flag_then_environment_then_config_file(tmp_path):
    # Where the server listens shows which layer won.
    config = tmp_path / "actorflow.toml"
    config.write_text('host = "127.0.0.2"\n')
    url = db_url(tmp_path)
    for env, before, host in (({"ACTORFLOW_CONFIG": str(config)}, (), "127.0.0.2"),
                              ({"ACTORFLOW_CONFIG": str(config), "ACTORFLOW_HOST": "127.0.0.3"}, (), "127.0.0.3"),
                              ({"ACTORFLOW_HOST": "127.0.0.3"}, ("--config", str(config), "--host", "127.0.0.4"),
                               "127.0.0.4")):
        server = ServerProcess(url, env={"ACTORFLOW_API_KEY": "layers-key-0123456789", **env}, before=before)
        try:
            assert server.url.startswith(f"http://{host}:"), (env, before, server.url)
            assert http(server.url + "/api/health")[0] == 200
        finally:
            assert server.stop() == 0


@pytest.mark.parametrize("env, words", [
    ({"ACTORFLOW_PORT": "99999"}, ["ACTORFLOW_PORT", "1-65535"]),
    ({"ACTORFLOW_PORT": "eighty"}, ["ACTORFLOW_PORT", "int"]),
    ({"ACTORFLOW_EXECUTE_TIMEOUT": "-5"}, ["ACTORFLOW_EXECUTE_TIMEOUT", "greater than 0"]),
    ({"ACTORFLOW_SANDBOX_POOL": "-1"}, ["ACTORFLOW_SANDBOX_POOL", "0 or more"]),
    ({"ACTORFLOW_DB_BUSY_TIMEOUT": "0"}, ["ACTORFLOW_DB_BUSY_TIMEOUT", "greater than 0"]),
    ({"ACTORFLOW_CODE_CONCURRENCY": "0"}, ["ACTORFLOW_CODE_CONCURRENCY", "greater than 0"]),
    ({"ACTORFLOW_MAX_VALUE_BYTES": "0"}, ["ACTORFLOW_MAX_VALUE_BYTES", "greater than 0"]),
    ({"ACTORFLOW_ARM_WINDOW": "inf"}, ["ACTORFLOW_ARM_WINDOW", "finite"]),
    ({"ACTORFLOW_DATABASE_URL": "mysql://x"}, ["mysql://x"]),
])
def test_bad_setting_values_are_refused(env, words):
    one_line_error(run_cli("serve", env=env), *words)


def test_bad_flag_value_is_refused(tmp_path):
    one_line_error(run_cli("--execute-timeout", "0", "list-keys", "--database-url", db_url(tmp_path)),
                   "--execute-timeout")


def test_create_key_refuses_labels_no_store_can_hold(tmp_path):
    url = db_url(tmp_path)
    one_line_error(run_cli("create-key", "--name", "x" * 256, "--database-url", url), "--name", "255")
    one_line_error(run_cli("create-key", "--workspace", "w" * 256, "--database-url", url), "--workspace")
    one_line_error(run_cli("create-key", "--workspace", "", "--database-url", url), "--workspace")
    made = run_cli("create-key", "--name", "x" * 255, "--database-url", url)
    assert made.returncode == 0, made.stderr
    assert "x" * 255 in run_cli("list-keys", "--database-url", url).stdout


def test_flags_work_before_and_after_the_subcommand(tmp_path):
    url = db_url(tmp_path)
    made = run_cli("--database-url", url, "create-key", "--name", "before")
    assert made.returncode == 0, made.stderr
    listed = run_cli("list-keys", "--database-url", url)
    assert "before" in listed.stdout
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ServerProcess(url, args=(), before=("--port", str(port)))
    try:
        assert server.url == f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_a_second_interrupt_while_draining_stops_at_once(tmp_path):
    key = "af_drain_0123456789"
    url = db_url(tmp_path)
    server = ServerProcess(url, env={"ACTORFLOW_API_KEY": key, "ACTORFLOW_SHUTDOWN_GRACE": "120"})
    wf = make_workflow(server.url, key, [{"id": "start", "type": "starter"},
                                         {"id": "slow", "type": "code",
                                          "config": {"code": "import time\ntime.sleep(120)\nreturn 1"}}],
                       [{"source": "start", "target": "slow"}])
    import threading
    threading.Thread(target=lambda: http(server.url + f"/api/workflows/{wf}/execute", "POST", {}, key=key),
                     daemon=True).start()
    assert wait_until(lambda: http(server.url + f"/api/workflows/{wf}/executions", key=key)[1]["total"] == 1)
    server.proc.send_signal(signal.SIGINT)
    assert wait_until(lambda: any("letting runs finish" in line for line in server.lines))
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(60) == 0
    assert time.monotonic() - t0 < 60          # far below the 120 s grace
    assert wait_until(lambda: any("second signal" in line for line in server.lines))
    assert query(url, "SELECT status FROM execution") == [("failed",)]


def test_a_package_of_another_project_with_the_same_name_is_named(tmp_path):
    import subprocess
    import sys
    from tests.processes import ROOT
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("# someone else's models\n")
    # The working directory comes first on sys.path: its `models` shadows Actorflow's.
    out = subprocess.run([sys.executable, "-c", "import sys; from server.cli import main; sys.exit(main(['list-keys']))"],
                         cwd=tmp_path, env={"PYTHONPATH": ROOT, "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=60)
    line = one_line_error(out, "'models'", str(tmp_path / "models"), "not Actorflow's")
    assert "virtual environment" in line
