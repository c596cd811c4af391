#!/bin/sh
# bench.sh: tidepool vs PgBouncer vs direct PostgreSQL, printed as one Markdown table
# (also written to bench-results/latest.md). `make bench` runs it after building;
# BENCH_QUICK=1 is the short CI smoke mode (< 3 minutes). See scripts/bench/README.md.
# Exit status 0 unless something is broken (setup failure, pooler crash); never on speed.
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
missing=""
[ -x "${PGBOUNCER_BIN:-/usr/sbin/pgbouncer}" ] || missing="$missing pgbouncer"
command -v pgbench >/dev/null 2>&1 || missing="$missing postgresql-contrib"
command -v psql >/dev/null 2>&1 || missing="$missing postgresql-client"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || [ -n "${PG_BINDIR:-}" ] || missing="$missing postgresql"
if [ -n "$missing" ]; then
	echo "bench.sh: missing Debian packages:$missing (apt-get install -y$missing)" >&2
	exit 1
fi
exec "$PY" scripts/bench/bench.py "$@"
