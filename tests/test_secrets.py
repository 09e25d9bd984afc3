"""Secrets: from files and never in ps, revocations that survive restarts, a quiet access log,
and an LLM client that takes nothing from the server's OPENAI_* environment."""

import socket

from tests import openai_server as oa
from tests.processes import ServerProcess, http, make_workflow, run_cli, wait_until
from tests.databases import database_url


def db_url(tmp_path):
    return database_url(tmp_path)


def secret_file(tmp_path, name, value):
    path = tmp_path / name
    path.write_text(value + "\n")
    return str(path)


def test_keys_from_files_never_show_in_the_command_line(tmp_path):
    key, llm_key = "af_from_file_0123456789", "sk-llm-from-file-42"
    llm = oa.FakeOpenAI().start()
    server = ServerProcess(db_url(tmp_path), env={"ACTORFLOW_LLM_BASE_URL": llm.url,
                                                  "ACTORFLOW_LLM_MODEL": "test-model"},
                           args=("--api-key-file", secret_file(tmp_path, "key", key),
                                 "--llm-api-key-file", secret_file(tmp_path, "llm", llm_key)))
    try:
        with open(f"/proc/{server.proc.pid}/cmdline", "rb") as f:
            cmdline = f.read().decode()
        assert "--api-key-file" in cmdline
        assert key not in cmdline and llm_key not in cmdline
        wf = make_workflow(server.url, key, [{"id": "start", "type": "starter"},
                                             {"id": "ask", "type": "llm", "config": {"prompt": "hi"}}],
                           [{"source": "start", "target": "ask"}])
        status, body = http(server.url + f"/api/workflows/{wf}/execute", "POST", {}, key=key)
        assert status == 200, body
        assert llm.headers[-1]["authorization"] == f"Bearer {llm_key}"
    finally:
        server.stop()
        llm.stop()


def test_a_secret_is_refused_as_a_flag():
    out = run_cli("serve", "--api-key", "af_secret_on_the_command_line")
    assert out.returncode == 2
    assert "--api-key-file" in out.stderr and "Traceback" not in out.stderr


def test_a_revoked_bootstrap_key_stays_revoked_after_restart(tmp_path):
    url, key = db_url(tmp_path), "af_bootstrap_0123456789"
    env = {"ACTORFLOW_API_KEY": key}
    server = ServerProcess(url, env=env)
    try:
        assert http(server.url + "/api/workflows", key=key)[0] == 200
    finally:
        assert server.stop() == 0
    key_id = [line.split("\t")[0] for line in run_cli("list-keys", "--database-url", url).stdout.splitlines()
              if "ACTORFLOW_API_KEY" in line][0]
    assert run_cli("revoke-key", key_id, "--database-url", url).returncode == 0
    server = ServerProcess(url, env=env)
    try:
        assert http(server.url + "/api/workflows", key=key)[0] == 401
        assert any("stays revoked" in line for line in server.lines)
    finally:
        server.stop()
    listed = run_cli("list-keys", "--database-url", url).stdout
    assert f"{key_id}\tdefault\tACTORFLOW_API_KEY" in listed and listed.rstrip().endswith("yes")


def test_query_strings_and_webhook_tokens_stay_out_of_the_access_log(tmp_path):
    key = "af_logged_never_0123456789"
    server = ServerProcess(db_url(tmp_path), env={"ACTORFLOW_API_KEY": key})
    try:
        http(server.url + f"/api/workflows?api_key={key}")
        http(server.url + "/api/webhooks/tok_secret_path_token", "POST", {})
        # The same token in a request line's absolute form (tornado answers 404).
        host = server.url.split("//", 1)[1]
        with socket.create_connection(tuple(host.rsplit(":", 1))) as sock:
            sock.sendall(f"POST http://{host}/api/webhooks/tok_absolute_form HTTP/1.1\r\nHost: {host}\r\n"
                         "Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
            assert sock.recv(100).startswith(b"HTTP/1.1 ")
        assert wait_until(lambda: sum("/api/webhooks/…" in line for line in server.lines) == 2)
        assert any("GET /api/workflows?…" in line for line in server.lines)
        assert not [line for line in server.lines
                    if key in line or "tok_secret_path_token" in line or "tok_absolute_form" in line]
    finally:
        server.stop()


def test_openai_environment_does_not_reach_the_provider(tmp_path):
    llm = oa.FakeOpenAI().start()
    decoy = oa.FakeOpenAI().start()    # where OPENAI_BASE_URL points: must get nothing
    key = "af_env_test_0123456789"
    env = {"ACTORFLOW_API_KEY": key, "ACTORFLOW_LLM_BASE_URL": llm.url,
           "ACTORFLOW_LLM_MODEL": "test-model",
           "OPENAI_API_KEY": "sk-from-env", "OPENAI_ADMIN_KEY": "sk-admin-from-env",
           "OPENAI_ORG_ID": "org-from-env", "OPENAI_PROJECT_ID": "proj-from-env",
           "OPENAI_BASE_URL": decoy.url, "OPENAI_LOG": "debug",
           "OPENAI_CUSTOM_HEADERS": "X-Leaked: yes\nAuthorization: Bearer sk-custom-from-env"}
    server = ServerProcess(db_url(tmp_path), env=env)
    try:
        wf = make_workflow(server.url, key, [{"id": "start", "type": "starter"},
                                             {"id": "ask", "type": "llm", "config": {"prompt": "hi"}}],
                           [{"source": "start", "target": "ask"}])
        status, body = http(server.url + f"/api/workflows/{wf}/execute", "POST", {}, key=key)
        assert status == 200 and body["status"] == "completed", body
        [headers] = llm.headers
        assert headers["authorization"] == "Bearer not-needed"
        for name in ("openai-organization", "openai-project", "x-leaked"):
            assert name not in headers
        assert "from-env" not in repr(headers)
        assert decoy.requests == []
        assert not [line for line in server.lines if "from-env" in line]
    finally:
        server.stop()
        llm.stop()
        decoy.stop()
