#!/usr/bin/env bash
# Start a throw-away PostgreSQL cluster in a temp directory, as an unprivileged
# user, on a free local port. Prints `export` lines: eval them, and call
# `pg_ctl -D "$PGTEST_DIR/data" stop` (as the same user) when done.
# Installs PostgreSQL from the Debian packages when no pg_ctl is found.
set -euo pipefail
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/pg_ctl" ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q postgresql >&2
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
dir=$(mktemp -d /tmp/actorflow-pg.XXXXXX)
as=()
if [ "$(id -u)" = 0 ]; then  # initdb refuses root
  chown nobody "$dir"
  as=(runuser -u nobody --)
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${as[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >&2
# fsync off: a throw-away cluster for tests; many connections: servers run in parallel.
"${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w start \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" >&2
echo "export PGTEST_DIR=$dir PGTEST_BIN=$bindir PGTEST_RUNAS='${as[*]}'"
echo "export ACTORFLOW_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:$port/postgres"
