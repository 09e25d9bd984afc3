"""Schemathesis against a real server process: every operation, >= 1,000 cases, zero failures.

    python3 .ci/fuzz_api.py                      # the CI run (settings in .ci/schemathesis.toml)
    python3 .ci/fuzz_api.py -n 300 --seed 7      # a longer local run; extra flags go to schemathesis

Starts `run.py serve` on a free port with a fresh SQLite file and a key,
runs `schemathesis run` on its /api/openapi.json with the four checks (every
phase, then the stateful phase alone once more), and stops the server.
Exits non-zero on any failure or when fewer cases ran.
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "af_fuzz_key_0123456789abcdef"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
MIN_CASES = 1000


def start_server(folder):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTORFLOW_")}
    env.update(ACTORFLOW_API_KEY=KEY, ACTORFLOW_METRICS="true", ACTORFLOW_EXECUTE_TIMEOUT="20",
               PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "run.py", "serve", "--port", "0",
         "--database-url", f"sqlite:///{folder}/fuzz.db"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    found = threading.Event()
    url = []
    log = open(os.path.join(folder, "server.log"), "w")

    def read():
        for line in proc.stdout:
            log.write(line)
            log.flush()
            match = re.search(r"listening on (http://\S+)", line)
            if match and not url:
                url.append(match.group(1))
                found.set()
        found.set()

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(60) or not url:
        proc.kill()
        sys.exit("the server did not start; see " + log.name)
    return proc, url[0]


def main(extra):
    folder = tempfile.mkdtemp(prefix="actorflow-fuzz-")
    proc, url = start_server(folder)
    results = []
    try:
        cmd = ["schemathesis", "--config-file", os.path.join(ROOT, ".ci", "schemathesis.toml"),
               "run", f"{url}/api/openapi.json", "--checks", CHECKS, *extra]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, ".ci")]),
                   ACTORFLOW_FUZZ_KEY=KEY)
        # Every phase, then the stateful phase again on its own: after the other phases it
        # stops after a dozen scenarios; alone it runs its full count (create -> PUT graph ->
        # execute -> executions -> logs chains).
        for phases in ([], ["--phases", "stateful"]):
            result = subprocess.run(cmd + phases, cwd=folder, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            print(result.stdout)
            results.append(result)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    cases = 0
    for result in results:
        found = re.search(r"(\d+) generated", result.stdout)
        cases += int(found.group(1)) if found else 0
        if result.returncode != 0:
            sys.exit(f"schemathesis failed (exit {result.returncode}); server log: {folder}/server.log")
    if len(results) < 2:
        sys.exit("schemathesis did not run both passes")
    if cases < MIN_CASES:
        sys.exit(f"only {cases} generated cases; at least {MIN_CASES} are required")
    print(f"schemathesis: {cases} passed, 0 failed")


if __name__ == "__main__":
    main(sys.argv[1:])
