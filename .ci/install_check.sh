#!/usr/bin/env bash
# A fresh, non-editable install in a new venv starts with `actorflow serve` and answers /api/health
# and the console's files.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q .
cd "$work"    # away from the checkout: the installed packages must be the ones imported
"$work/venv/bin/actorflow" --version
"$work/venv/bin/actorflow" serve --port 0 --database-url "sqlite:///$work/af.db" >"$work/out" 2>&1 &
pid=$!
for _ in $(seq 600); do
  url=$(sed -n 's/^Actorflow listening on \(http:[^ ]*\).*/\1/p' "$work/out")
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/out"; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "actorflow serve did not start"; cat "$work/out"; exit 1; }
python3 - "$url" <<'PY'
import json, sys, urllib.request
body = json.load(urllib.request.urlopen(sys.argv[1] + "/api/health", timeout=10))
assert body["ok"] is True, body
# the console's static files come with the package (no build step)
for path in ("/", "/console/js/app.js", "/console/app.css"):
    answer = urllib.request.urlopen(sys.argv[1] + path, timeout=10)
    assert answer.status == 200 and "script-src 'self'" in answer.headers["Content-Security-Policy"], path
print("installed actorflow serves", sys.argv[1], body)
PY
kill -TERM "$pid"; wait "$pid"
