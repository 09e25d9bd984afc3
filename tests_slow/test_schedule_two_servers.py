"""Two real server processes on one database, a schedule firing every minute: one run per tick.

Slow (it waits for real minute boundaries), so not part of the README's test
command; `.ci/run` runs it as its own stage: `python3 -m pytest tests_slow`.
"""

import json
import time
import urllib.request

from tests.databases import database_url, drop_created
from tests.processes import ServerProcess, wait_until

KEY = "af_schedule_two_servers_key_00001"


def call(url, method="GET", body=None):
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def test_each_tick_runs_once_with_two_servers_on_one_database(tmp_path):
    url = database_url(tmp_path)      # SQLite, or PostgreSQL with ACTORFLOW_TEST_DATABASE_URL
    env = {"ACTORFLOW_API_KEY": KEY, "ACTORFLOW_SCHEDULE_INTERVAL": "0.2"}
    first = ServerProcess(url, env=env)
    second = ServerProcess(url, env=env)
    try:
        wf = call(first.url + "/api/workflows", "POST", {"name": "every minute"})["id"]
        call(first.url + f"/api/workflows/{wf}/graph", "PUT", {
            "blocks": [{"id": "tick", "type": "schedule", "config": {"cron": "* * * * *"}},
                       {"id": "out", "type": "response", "config": {"data": "{{ tick.tick }}"}}],
            "edges": [{"source": "tick", "target": "out"}]})
        call(first.url + f"/api/workflows/{wf}/deploy", "POST")

        def runs():
            return call(second.url + f"/api/workflows/{wf}/executions")["executions"]

        # Two ticks pass (at most two minutes); both servers look five times a second.
        assert wait_until(lambda: len(runs()) >= 2, timeout=150, interval=1)
        time.sleep(2)  # any duplicate of the second tick would have started by now
        ticks = [r for r in runs() if r["trigger"] == "schedule"]
        outputs = [call(first.url + f"/api/workflows/{wf}/executions/{r['id']}")["output"] for r in ticks]
        assert len(outputs) == len(set(outputs)), outputs  # no tick ran twice
        assert all(o.endswith(":00.000Z") for o in outputs), outputs   # each a minute's tick
        assert all(r["status"] == "completed" for r in ticks)
    finally:
        first.kill()
        second.kill()
        drop_created()
