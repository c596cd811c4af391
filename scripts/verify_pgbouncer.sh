#!/usr/bin/env bash
# verify_pgbouncer.sh: the five checks of the setup guide, against the running container.
#   1. the container is running
#   2. port 6432 answers (from this machine, like Django would connect)
#   3. the admin console reports pool_mode = transaction and max_client_conn
#   4. a query through the pool works
#   5. SHOW POOLS shows clients multiplexed on fewer server connections
# Each prints PASS or FAIL (with a hint); the exit code is the number of failures.
# Needs only bash and docker here: psql runs inside the container.
#
# Environment: PGBOUNCER_CONTAINER (ahsp_pgbouncer), PGBOUNCER_PORT (host port, default from
# .env or 6432), PGBOUNCER_INNER_PORT (the port inside the container, 6432), DATABASES_USER and
# DATABASES_DBNAME (default from .env.pgbouncer, else postgres), VERIFY_CLIENTS (default:
# the pool's size + reserve + 10).
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)

# KEY=value from a dotenv file, without sourcing it (it may hold anything).
dotenv() { # file key
	[ -f "$1" ] || return 0
	sed -n "s/^[[:space:]]*$2[[:space:]]*=[[:space:]]*//p" "$1" | tail -n 1 | sed 's/^"\(.*\)"$/\1/; s/^'"'"'\(.*\)'"'"'$/\1/; s/[[:space:]]*$//'
}

CONTAINER=${PGBOUNCER_CONTAINER:-ahsp_pgbouncer}
PORT=${PGBOUNCER_PORT:-$(dotenv "$ROOT/.env" PGBOUNCER_PORT)}
PORT=${PORT:-6432}
INNER_PORT=${PGBOUNCER_INNER_PORT:-6432}
DBUSER=${DATABASES_USER:-$(dotenv "$ROOT/.env.pgbouncer" DATABASES_USER)}
DBUSER=${DBUSER:-postgres}
DBNAME=${DATABASES_DBNAME:-$(dotenv "$ROOT/.env.pgbouncer" DATABASES_DBNAME)}
DBNAME=${DBNAME:-postgres}
CLIENTS=${VERIFY_CLIENTS:-}

failures=0
pass() { printf 'PASS  %s\n' "$1"; }
fail() {
	printf 'FAIL  %s\n' "$1"
	shift
	for hint in "$@"; do printf '      hint: %s\n' "$hint"; done
	failures=$((failures + 1))
}

# psql inside the container (the image logs in without a prompt through its ~/.pgpass)
inpsql() { # db args...
	local db=$1
	shift
	docker exec "$CONTAINER" psql -h localhost -p "$INNER_PORT" -U "$DBUSER" -d "$db" -X -q "$@"
}

echo "Verifying the pooler in container $CONTAINER (host port $PORT, user $DBUSER, database $DBNAME)"

# 1. container running
state=$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}no-healthcheck{{end}}' "$CONTAINER" 2>/dev/null)
if [ "${state%% *}" = running ]; then
	pass "1. container $CONTAINER is running (health: ${state#* })"
else
	fail "1. container $CONTAINER is running (state: ${state:-not found})" \
		"start it: docker-compose -f docker-compose-pgbouncer.yml up -d pgbouncer" \
		"see why it stopped: docker logs $CONTAINER"
fi

# 2. the port answers the PostgreSQL protocol: an SSLRequest gets 'N' (or 'S')
# shellcheck disable=SC2016 # $1 is for the inner bash
answer=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
	printf "\000\000\000\010\004\322\026\057" >&3
	IFS= read -r -n 1 -t 3 a <&3 && printf %s "$a"' _ "$PORT" 2>/dev/null)
if [ "$answer" = N ] || [ "$answer" = S ]; then
	pass "2. port $PORT answers like PostgreSQL"
else
	fail "2. port $PORT answers like PostgreSQL" \
		"is another program on port $PORT? (Linux: ss -ltnp | grep $PORT; Windows: netstat -ano | findstr :$PORT)" \
		"is the port published? docker port $CONTAINER"
fi

# 3. admin console: pool_mode and max_client_conn (SHOW CONFIG, else our SHOW <setting>)
config=$(inpsql pgbouncer -At -F '|' -c 'SHOW CONFIG' 2>&1)
rc=$?
if [ $rc -eq 0 ]; then
	mode=$(printf '%s\n' "$config" | awk -F'|' '$1 == "pool_mode" {print $2}')
	maxc=$(printf '%s\n' "$config" | awk -F'|' '$1 == "max_client_conn" {print $2}')
else
	mode=$(inpsql pgbouncer -At -c 'SHOW pool_mode' 2>/dev/null)
	maxc=$(inpsql pgbouncer -At -c 'SHOW max_client_conn' 2>/dev/null)
fi
if [ "$mode" = transaction ] && [ -n "$maxc" ]; then
	pass "3. admin console: pool_mode = $mode, max_client_conn = $maxc"
else
	fail "3. admin console: pool_mode = ${mode:-?} (want transaction), max_client_conn = ${maxc:-?}" \
		"set POOL_MODE=transaction in .env.pgbouncer, then docker-compose -f docker-compose-pgbouncer.yml up -d pgbouncer" \
		"$(printf '%s' "$config" | head -n 1)"
fi

# 4. a query through the pool reaches PostgreSQL
out=$(inpsql "$DBNAME" -At -c "SELECT 'pooled:' || current_user" 2>&1)
if [ "$out" = "pooled:$DBUSER" ]; then
	pass "4. a query through the pool works (database $DBNAME as $DBUSER)"
else
	fail "4. a query through the pool works: $(printf '%s' "$out" | head -n 1)" \
		"authentication failed: is POSTGRES_PASSWORD in .env the PostgreSQL password of $DBUSER?" \
		"connection refused/timeout: is PostgreSQL running and listening for the container (DATABASES_HOST, listen_addresses, pg_hba.conf)?" \
		"details: docker logs $CONTAINER | tail -n 20"
fi

# 5. multiplexing: more clients than the pool can ever have servers (default_pool_size +
#    reserve_pool_size + 10) each run one query and stay connected. In transaction mode they
#    are all cl_active on at most pool-size servers; in session mode cl_active could never
#    exceed the servers.
if [ -z "$CLIENTS" ]; then
	size=$(printf '%s\n' "$config" | awk -F'|' '$1 == "default_pool_size" {print $2}')
	reserve=$(printf '%s\n' "$config" | awk -F'|' '$1 == "reserve_pool_size" {print $2}')
	CLIENTS=$((${size:-25} + ${reserve:-5} + 10))
fi
# Each client stays until the marker file appears (at most 40 s); SHOW POOLS is polled until
# the clients are all in, or the pooler shows them on fewer servers, or 40 s pass.
marker=/tmp/verify_pgbouncer.$$
docker exec "$CONTAINER" sh -c '
	i=0
	while [ $i -lt "$1" ]; do
		psql -h localhost -p "$2" -U "$3" -d "$4" -X -q -c "SELECT 1" \
			-c "\\! n=0; while [ ! -e $5 ] && [ \$n -lt 200 ]; do sleep 0.2; n=\$((n + 1)); done" >/dev/null 2>&1 &
		i=$((i + 1))
		sleep 0.05
	done
	wait
	rm -f "$5"' _ "$CLIENTS" "$INNER_PORT" "$DBUSER" "$DBNAME" "$marker" </dev/null >/dev/null 2>&1 &
launcher=$!
clients=0
servers=0
rc=1
for _ in $(seq 1 40); do
	sleep 1
	pools=$(inpsql pgbouncer -A -F '|' -c 'SHOW POOLS' 2>&1)
	rc=$?
	[ $rc -eq 0 ] || continue
	read -r clients servers < <(printf '%s\n' "$pools" | awk -F'|' '
		NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
		/^\(/ || col["database"] == "" || $col["database"] == "pgbouncer" { next }
		{ c += $col["cl_active"]
		  s += $col["sv_active"] + $col["sv_idle"] + $col["sv_used"] + $col["sv_tested"] + $col["sv_login"] }
		END { print c + 0, s + 0 }')
	if [ "$clients" -ge "$CLIENTS" ] || { [ "$clients" -ge 2 ] && [ "$servers" -lt "$clients" ]; }; then
		break
	fi
done
docker exec "$CONTAINER" touch "$marker" >/dev/null 2>&1
wait "$launcher" 2>/dev/null
if [ $rc -eq 0 ] && [ "$clients" -ge 2 ] && [ "$servers" -lt "$clients" ]; then
	pass "5. SHOW POOLS: $clients active clients on $servers server connections"
else
	fail "5. SHOW POOLS: ${clients:-0} active clients on ${servers:-0} server connections (want fewer servers than clients)" \
		"pool_mode must be transaction (check 3), and queries must work (check 4)" \
		"$(printf '%s' "$pools" | head -n 1)"
fi

if [ $failures -eq 0 ]; then
	echo "All 5 checks passed."
else
	echo "$failures of 5 checks failed."
fi
exit $failures
