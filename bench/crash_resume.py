"""kill -9 with 50 runs in flight, restart, and check every one went on right.

    python3 bench/crash_resume.py [--runs 50] [--processes 1|2]

With --processes 2 a second server shares the database and takes the runs
over at its next heartbeat (nobody restarts the killed one). Prints how long
the takeover and the rest of the runs took, and every problem found (the
checks of tests/test_durable.py); exits 1 if there was one. Needs the test
install (it uses the tests' helpers; tests_slow/test_crash_resume.py runs the
same in CI).

The database is a fresh SQLite file, or, with ACTORFLOW_TEST_DATABASE_URL set
as for the test suite (a PostgreSQL server we may CREATE DATABASE on), a fresh
PostgreSQL database there, dropped at the end.
"""

import argparse
import os
import pathlib
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests import crashload as cl  # noqa: E402
from tests.databases import database_url, drop_created  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--processes", type=int, choices=(1, 2), default=1)
    args = parser.parse_args()
    url = database_url(pathlib.Path(tempfile.mkdtemp(prefix="actorflow-crash-")))
    print(f"database: {url.split('://')[0]}")
    try:
        report = cl.crash_and_resume(url, args.runs, args.processes)
    finally:
        drop_created()
    for problem in report["problems"]:
        print("PROBLEM", problem)
    print("OK" if not report["problems"] else f"{len(report['problems'])} problems")
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
