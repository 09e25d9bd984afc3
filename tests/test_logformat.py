"""ACTORFLOW_LOG_FORMAT=json: one JSON object per log line; text stays the default."""

import io
import json
import logging
import os
import re
import urllib.request

from server import logformat
from tests.processes import ServerProcess
from tests.databases import ON_POSTGRES, database_url

KEY = "af_test_key_logformat_000000001"


def test_json_lines_carry_level_logger_message_and_ids():
    out = io.StringIO()
    logformat.configure("json", stream=out)
    try:
        log = logging.getLogger("actorflow.test")
        ids = {"execution_id": "e1", "workflow_id": "w1", "block_id": "b1"}
        log.warning("run %s: %s", "e1", "slow", extra=ids)
        try:
            raise ValueError("boom\nwith two lines")
        except ValueError:
            log.exception("it failed")
        logging.getLogger("tornado.access").info("200 GET /api/workflows/w9/executions/e9/logs (127.0.0.1) 1.00ms")
    finally:
        logformat.configure("text")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    first, second, access = (json.loads(line) for line in lines)
    assert first["level"] == "WARNING" and first["logger"] == "actorflow.test"
    assert first["message"] == "run e1: slow"
    assert (first["execution_id"], first["workflow_id"], first["block_id"]) == ("e1", "w1", "b1")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert "ValueError: boom" in second["exc_info"] and "execution_id" not in second
    assert (access["workflow_id"], access["execution_id"]) == ("w9", "e9")


def test_a_server_started_with_json_logs_writes_only_json_lines(tmp_path):
    log = tmp_path / "server.log"
    server = ServerProcess(database_url(tmp_path, "a.db"), stderr_to=log,
                           env={"ACTORFLOW_LOG_FORMAT": "json", "ACTORFLOW_API_KEY": KEY})
    try:
        urllib.request.urlopen(server.url + "/api/health").read()
        request = urllib.request.Request(server.url + "/api/workflows/nope", headers={"X-API-Key": KEY})
        try:
            urllib.request.urlopen(request)
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
    finally:
        assert server.stop(timeout=60) == 0
    err = log.read_text()
    lines = [line for line in err.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    missing = [e for e in entries if "/api/workflows/nope" in e["message"]]
    assert missing and missing[0]["workflow_id"] == "nope" and missing[0]["logger"] == "tornado.access"
    if not ON_POSTGRES:  # the database named on the command line, not another
        assert os.path.exists(tmp_path / "a.db")
