"""Several server processes on one database: what one process changes, the others see.

Real processes (`python run.py serve`) on the suite's database (SQLite file
or PostgreSQL, see tests/databases.py).
"""

from tests import crashload as cl
from tests.databases import ON_POSTGRES, database_url, query
from tests.echo_server import EchoServer
from tests.helpers import START, edge
from tests.processes import ServerProcess, http, make_workflow, run_cli, wait_until

KEY = "af_shared_database_key_000001"


def test_a_key_revoked_while_two_processes_use_it_is_refused_by_both(tmp_path):
    url = database_url(tmp_path)
    made = run_cli("create-key", "--name", "shared", "--database-url", url)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    key_id = run_cli("list-keys", "--database-url", url).stdout.strip().splitlines()[-1].split("\t")[0]
    servers = [ServerProcess(url), ServerProcess(url)]
    try:
        for server in servers:  # both have the key cached
            assert http(server.url + "/api/workflows", key=key)[0] == 200
        assert run_cli("revoke-key", key_id, "--database-url", url).returncode == 0

        # Each process's cache holds a key at most its ttl (2 s, on a fake clock in
        # tests/test_health_auth.py); a generous deadline here, so a loaded machine does not fail it.
        def refused_by_all():
            return all(http(s.url + "/api/workflows", key=key)[0] == 401 for s in servers)
        assert wait_until(refused_by_all, timeout=30, interval=0.1)
    finally:
        for server in servers:
            server.kill()


def test_a_run_of_one_process_followed_live_from_another(tmp_path):
    """Re-attach on b to a run of a. On PostgreSQL b reads only when notified (its polls
    and keep-alives are 10 minutes apart), also after its listening connection was cut."""
    url = database_url(tmp_path)
    echo = EchoServer().start()
    quiet = {"ACTORFLOW_REATTACH_POLL": "600", "ACTORFLOW_KEEPALIVE_INTERVAL": "600"} if ON_POSTGRES else {}
    a = ServerProcess(url, env={"ACTORFLOW_API_KEY": KEY})
    b = ServerProcess(url, env={"ACTORFLOW_API_KEY": KEY, **quiet})
    try:
        gate = lambda name: {"id": name, "type": "http", "config": {"url": f"{echo.url}/gate/{name}"}}  # noqa: E731
        wf = make_workflow(a.url, KEY, [START, gate("one"), gate("two"), cl.respond("out", {"ok": True})],
                           [edge("start", "one"), edge("one", "two"), edge("two", "out")])
        run = cl.Watched(a.url, KEY, wf, {}, None, "one")
        assert wait_until(lambda: echo.held("one"), timeout=60)
        seen = cl.Watched.attach(b.url, KEY, wf, run.execution_id)

        def got(block_id, kind):
            return lambda: any(e["type"] == kind and e.get("block_id") == block_id for _, e in seen.events)
        assert wait_until(got("one", "block_started"), timeout=60)      # the replay
        echo.open_gate("one")
        assert wait_until(got("two", "block_started"), timeout=60)      # live, woken by a notification

        if ON_POSTGRES:  # cut b's listening connection: it listens again, and reads what it missed
            listening = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND left(query, 6) = 'LISTEN'"
            before = query(url, listening)
            assert len(before) == 2                                     # a's and b's
            query(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND left(query, 6) = 'LISTEN'")
            assert wait_until(lambda: len(query(url, listening)) == 2, timeout=60)
        echo.open_gate("two")
        assert wait_until(lambda: seen.events and seen.events[-1][1]["type"] == "execution_completed",
                          timeout=60)
        assert wait_until(lambda: run.events and run.events[-1][1]["type"] == "execution_completed", timeout=60)
        assert [(i, e["type"]) for i, e in seen.events] == [(i, e["type"]) for i, e in run.events]
        assert [i for i, _ in seen.events] == list(range(1, len(seen.events) + 1))
    finally:
        a.kill()
        b.kill()
        echo.stop()


def test_a_graph_saved_or_deleted_on_one_process_is_what_the_other_streams_next(tmp_path):
    """b streams a workflow it has streamed before without reading it first; the start's
    own commit checks the version, so a graph saved on a, or the workflow deleted there,
    is what b runs (or reports) next."""
    url = database_url(tmp_path)
    a = ServerProcess(url, env={"ACTORFLOW_API_KEY": KEY})
    b = ServerProcess(url, env={"ACTORFLOW_API_KEY": KEY})

    def streamed(server, wf):
        run = cl.Watched(server.url, KEY, wf, {}, None, ())
        run.thread.join(60)
        return run.events[-1][1]

    try:
        wf = make_workflow(a.url, KEY, [START, cl.respond("out", "one")], [edge("start", "out")])
        for _ in range(2):  # the second from what b remembers
            end = streamed(b, wf)
            assert end["type"] == "execution_completed" and end["output"] == "one", end
        status, _ = http(f"{a.url}/api/workflows/{wf}/graph", "PUT",
                         {"blocks": [START, cl.respond("out", "two")], "edges": [edge("start", "out")]}, key=KEY)
        assert status == 200
        end = streamed(b, wf)
        assert end["type"] == "execution_completed" and end["output"] == "two", end
        status, body = http(f"{b.url}/api/workflows/{wf}/executions", key=KEY)
        assert body["total"] == 3 and [e["graph_version"] for e in body["executions"]] == [2, 1, 1]

        assert http(f"{a.url}/api/workflows/{wf}", "DELETE", key=KEY)[0] in (200, 204)
        end = streamed(b, wf)
        assert end["type"] == "error" and "not found" in end["error"].lower(), end
    finally:
        a.kill()
        b.kill()
