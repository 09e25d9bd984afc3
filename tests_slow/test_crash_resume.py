"""kill -9 with 50 runs in flight (chains, fan-outs with joins, condition branches, code
blocks sleeping, http blocks on a slow local server), then restart: every run completes
with the right output, no finished block runs twice, each Idempotency-Key reaches the
receiver at most twice, every event stream is whole. Then the same with a second process
taking the runs over instead of a restart.

About 30 s each, so not in the README's test command; `.ci/run` runs tests_slow on
SQLite and this file again on PostgreSQL (the suite's database, tests/databases.py).
"""

import pytest

from tests import crashload as cl
from tests.databases import database_url, drop_created


@pytest.mark.parametrize("processes", [1, 2])
def test_fifty_runs_in_flight_survive_kill_9(tmp_path, processes):
    url = database_url(tmp_path)
    try:
        report = cl.crash_and_resume(url, 50, processes)
    finally:
        drop_created()
    assert report["problems"] == []
    assert report["in_flight"] == 50
    assert report["resumed"] >= 50
    assert report["keys"] == 12 and 1 <= report["keys_max"] <= 2
