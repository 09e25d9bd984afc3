"""Schedule blocks: cron validated at save, fire times shown, one run per tick, catch-up, DST.

Time is injected: the tests call the scheduler's pass with the `now` they
want instead of waiting for a clock.
"""

import datetime
import logging
import subprocess
import sys

import pytest

from actors.blocks.schedule import due, next_fires
from tests.helpers import edge
from tests.processes import ROOT
from tests.databases import database_url

D = datetime.datetime


def schedule_graph(**config):
    config.setdefault("cron", "0 * * * *")
    return ([{"id": "tick", "type": "schedule", "config": config},
             {"id": "out", "type": "response",
              "config": {"data": {"at": "{{ tick.tick }}", "who": "{{ variables.who }}"}}}],
            [edge("tick", "out")])


@pytest.fixture
def scheduler(server):
    """The server's scheduler with its periodic passes off: each test passes its own `now`."""
    server.runtime.scheduler.stop()
    return server.runtime.scheduler


async def deployed(api, **config):
    wf = await api.workflow(*schedule_graph(**config))
    status, body = await api.post(f"/api/workflows/{wf}/deploy")
    assert status == 200, body
    return wf, D.fromisoformat(body["deployed_at"].rstrip("Z"))


async def stored_runs(api, wf):
    status, body = await api.get(f"/api/workflows/{wf}/executions")
    assert status == 200
    return body["executions"]


# -- pure: no server, no threads --------------------------------------------

def test_a_tick_is_due_once_it_passed_and_only_after_since():
    hourly = {"cron": "0 * * * *"}
    assert due(hourly, D(2026, 1, 1, 9, 30), D(2026, 1, 1, 9, 59), 60) is None
    assert due(hourly, D(2026, 1, 1, 9, 30), D(2026, 1, 1, 10, 0, 5), 60) == (D(2026, 1, 1, 10), True)
    # the same tick, once claimed (since = the tick), is owed no more
    assert due(hourly, D(2026, 1, 1, 10), D(2026, 1, 1, 10, 0, 30), 60) is None


def test_missed_ticks_fire_only_with_catch_up_latest():
    since, now = D(2026, 1, 1, 6), D(2026, 1, 1, 10, 30)  # down from 6:00 to 10:30
    assert due({"cron": "0 * * * *"}, since, now, 60) == (D(2026, 1, 1, 10), False)
    assert due({"cron": "0 * * * *", "catch_up": "latest"}, since, now, 60) == (D(2026, 1, 1, 10), True)


def test_daylight_saving_follows_cron_in_the_timezone():
    berlin = {"cron": "30 2 * * *", "timezone": "Europe/Berlin"}
    # 2026-03-29: clocks jump from 02:00 to 03:00; cron runs the 02:30 job at 03:00 (01:00 UTC).
    assert next_fires(berlin, D(2026, 3, 28, 0, 0)) == [
        D(2026, 3, 28, 1, 30), D(2026, 3, 29, 1, 0), D(2026, 3, 30, 0, 30)]
    # 2026-10-25: 02:30 happens twice (CEST, then CET); cron runs it once.
    fires = next_fires(berlin, D(2026, 10, 24, 12, 0), count=3)
    assert fires == [D(2026, 10, 25, 0, 30), D(2026, 10, 26, 1, 30), D(2026, 10, 27, 1, 30)]


# -- over HTTP, with the scheduler's clock injected ---------------------------

@pytest.mark.gen_test
async def test_bad_schedules_are_400_naming_the_block(api):
    status, wf = await api.post("/api/workflows", {"name": "s"})
    for config, path in (({"cron": "61 * * * *"}, "cron"), ({"cron": "* * *"}, "cron"),
                         ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, "timezone"),
                         ({"cron": "* * * * *", "catch_up": "all"}, "catch_up"),
                         ({"cron": "* * * * *", "variables": [1]}, "variables"), ({}, "cron")):
        blocks, edges = schedule_graph(**config) if config else (
            [{"id": "tick", "type": "schedule", "config": {}}], [])
        status, body = await api.put(f"/api/workflows/{wf['id']}/graph", {"blocks": blocks, "edges": edges})
        assert status == 400 and body["error_code"] == "VALIDATION_ERROR", (config, body)
        assert any(d.get("block_id") == "tick" and path in d["path"] for d in body["details"]), body


@pytest.mark.gen_test
async def test_get_shows_the_next_three_fire_times(api):
    wf = await api.workflow(*schedule_graph(cron="15 8 * * 1-5", timezone="America/New_York"))
    status, body = await api.get(f"/api/workflows/{wf}")
    block = next(b for b in body["blocks"] if b["id"] == "tick")
    fires = [D.fromisoformat(t.rstrip("Z")) for t in block["next_fires"]]
    assert len(fires) == 3 and fires == sorted(fires) and fires[0] > D.utcnow()
    assert all(f.weekday() < 5 and f.minute == 15 for f in fires)


@pytest.mark.gen_test
async def test_each_tick_runs_exactly_once_while_deployed(api, scheduler):
    wf, deployed_at = await deployed(api, cron="0 * * * *", variables={"who": "cron"})
    never = await api.workflow(*schedule_graph(cron="0 * * * *"))      # saved, never deployed
    tick = next_fires({"cron": "0 * * * *"}, deployed_at, 1)[0]
    assert await scheduler.run_due(now=tick - datetime.timedelta(seconds=1)) == []
    runs = await scheduler.run_due(now=tick + datetime.timedelta(seconds=2))
    assert len(runs) == 1
    result = await runs[0].finished
    assert result["status"] == "completed"
    assert result["output"] == {"at": tick.isoformat(timespec="milliseconds") + "Z", "who": "cron"}
    # the same tick again, later in the window: nothing more
    assert await scheduler.run_due(now=tick + datetime.timedelta(seconds=30)) == []
    [stored] = await stored_runs(api, wf)
    assert stored["trigger"] == "schedule" and stored["status"] == "completed"
    status, one = await api.get(f"/api/workflows/{wf}/executions/{stored['id']}")
    assert one["trigger_payload"] == {"tick": tick.isoformat(timespec="milliseconds") + "Z", "timezone": "UTC"}
    assert one["variables"] == {"who": "cron"}
    # undeployed: the next tick is not run
    await api.post(f"/api/workflows/{wf}/undeploy")
    assert await scheduler.run_due(now=tick + datetime.timedelta(hours=1, seconds=1)) == []
    assert len(await stored_runs(api, wf)) == 1
    assert await stored_runs(api, never) == []


@pytest.mark.gen_test
async def test_after_downtime_catch_up_none_skips_and_latest_runs_once(api, scheduler, caplog):
    caplog.set_level(logging.INFO, logger="server.scheduler")
    skip, deployed_at = await deployed(api, cron="*/10 * * * *", variables={"who": "a"})
    catch, _ = await deployed(api, cron="*/10 * * * *", catch_up="latest", variables={"who": "b"})
    # A dozen ticks missed; the latest one is 5 minutes old (late, not merely slow).
    latest = next_fires({"cron": "*/10 * * * *"}, deployed_at + datetime.timedelta(hours=2), 1)[0]
    later = latest + datetime.timedelta(minutes=5)
    runs = await scheduler.run_due(now=later)
    assert [r.workflow_id for r in runs] == [catch]
    result = await runs[0].finished
    assert result["output"] == {"at": latest.isoformat(timespec="milliseconds") + "Z", "who": "b"}
    assert await scheduler.run_due(now=later + datetime.timedelta(seconds=5)) == []
    assert await stored_runs(api, skip) == []
    # The skipped tick is logged with its workflow and block (fields of ACTORFLOW_LOG_FORMAT=json).
    missed = [r for r in caplog.records if "missed its tick" in r.getMessage()]
    assert missed and {(r.workflow_id, r.block_id) for r in missed} == {(skip, "tick")}


def test_a_tick_is_claimed_by_exactly_one_of_several_processes(tmp_path):
    """The claim is one conditional UPDATE: four processes race for one tick on one SQLite file."""
    url = database_url(tmp_path)
    race = ("import sys, datetime\n"
            "from models.db import migrate, open_database\n"
            "from models.schedule import claim_tick\n"
            "from models.base import database\n"
            "open_database(sys.argv[1]); migrate()\n"
            "with database.atomic():\n"
            "    won = claim_tick('wf', 'tick', datetime.datetime(2026, 1, 1, 10))\n"
            "print('won' if won else 'lost')\n")
    subprocess.run([sys.executable, "-c", race, url], cwd=ROOT, check=True, capture_output=True)  # migrate once
    procs = [subprocess.Popen([sys.executable, "-c", race, url], cwd=ROOT, stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    outcomes = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    # the first call above already claimed it: nobody wins the same tick again
    assert outcomes == ["lost"] * 4, outcomes
    newer = race.replace("2026, 1, 1, 10", "2026, 1, 1, 11")
    procs = [subprocess.Popen([sys.executable, "-c", newer, url], cwd=ROOT, stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    outcomes = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outcomes == ["lost"] * 3 + ["won"], outcomes


@pytest.mark.gen_test(timeout=60)
async def test_daylight_saving_nights_run_the_tick_once_over_http(api, scheduler):
    """A Berlin 02:30 job, the scheduler's clock walked through both 2027 change nights every 30 min."""
    wf, _ = await deployed(api, cron="30 2 * * *", timezone="Europe/Berlin", variables={"who": "dst"})
    for night, expected in ((D(2027, 3, 27, 23), D(2027, 3, 28, 1)),        # 02:30 missing: 03:00 CEST
                            (D(2027, 10, 30, 23), D(2027, 10, 31, 0, 30))):  # 02:30 twice: the first
        ticks = []
        for step in range(9):
            now = night + datetime.timedelta(minutes=30 * step, seconds=2)
            for run in await scheduler.run_due(now=now):
                ticks.append((await run.finished)["output"]["at"])
        assert ticks == [expected.isoformat(timespec="milliseconds") + "Z"], (night, ticks)
    runs = await stored_runs(api, wf)
    assert len(runs) == 2 and {r["trigger"] for r in runs} == {"schedule"}
