#!/usr/bin/env bash
# docker-test.sh (make docker-test): the Docker deliverable tested with a real engine.
#
# Installs docker.io, docker-compose and mmdebstrap if missing; starts dockerd (vfs) if none
# answers (and leaves it running for reuse; it never stops a dockerd it did not start); makes
# or reuses the local Debian stand-ins for the Alpine base images; builds the Dockerfile with
# them; starts a PostgreSQL on 127.0.0.1; then runs the user's compose file with the test
# override (host networking) and checks what docker.md and issue 6 ask for. Prints PASS/FAIL
# per check, timings, the image size, and "docker-test: N passed, N failed".
#
# Environment: DOCKER_TEST_STOP_DOCKERD=1 stops the dockerd this script started;
# DOCKER_TEST_KEEP=1 leaves the container and PostgreSQL running for a look.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
IMAGE=${TIDEPOOL_TEST_IMAGE:-tidepool:test}
BUILD_BASE=${TIDEPOOL_BUILD_BASE:-tidepool-base/build:bookworm}
RUNTIME_BASE=${TIDEPOOL_RUNTIME_BASE:-tidepool-base/runtime:bookworm}
CONTAINER=ahsp_pgbouncer
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
DOCKERD_PIDFILE=/tmp/tidepool-docker-test-dockerd.pid
export DOCKER_BUILDKIT=0 # the legacy builder: docker.md requires the Dockerfile to work with it
export TIDEPOOL_TEST_IMAGE=$IMAGE

passed=0
failed=0
T_START=$(date +%s)
TIMINGS=()
pass() { echo "PASS  $1"; passed=$((passed + 1)); }
fail() {
	echo "FAIL  $1"
	shift
	for l in "$@"; do echo "      $l"; done
	failed=$((failed + 1))
}
now() { date +%s.%N; }
timing() { TIMINGS+=("$(printf '%-34s %6.1f s' "$1" "$(echo "$(now) - $2" | bc)")"); }
note() { echo "----  $*"; }

WORK=$(mktemp -d /tmp/tidepool-docker-test.XXXXXX)
chmod 755 "$WORK"
PG_STARTED=0
COMPOSE_FILES=(-f docker-compose-pgbouncer.yml -f compose/docker-compose.test.yml)

# shellcheck disable=SC2317 # runs from the EXIT trap
cleanup() {
	if [ "${DOCKER_TEST_KEEP:-0}" = 1 ]; then
		note "DOCKER_TEST_KEEP=1: leaving $CONTAINER and PostgreSQL ($WORK) running"
		return
	fi
	if docker inspect "$CONTAINER" >/dev/null 2>&1 &&
		[ "$(docker inspect -f '{{index .Config.Labels "org.tidepool.docker-test"}}' "$CONTAINER" 2>/dev/null)" = 1 ]; then
		docker rm -f "$CONTAINER" >/dev/null 2>&1
	fi
	if [ "$PG_STARTED" = 1 ]; then
		runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m fast -w stop >/dev/null 2>&1
	fi
	if [ -n "${DOCKERD_STARTED:-}" ] && [ "${DOCKER_TEST_STOP_DOCKERD:-0}" = 1 ]; then
		kill "$DOCKERD_STARTED" 2>/dev/null && rm -f "$DOCKERD_PIDFILE"
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

finish() {
	echo
	echo "Timings:"
	printf '  %s\n' "${TIMINGS[@]}"
	echo "  total                              $(($(date +%s) - T_START)) s"
	echo
	echo "docker-test: $passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit $?
}

# ---- 1. tools ----
t=$(now)
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
command -v pgbench >/dev/null 2>&1 || missing+=(postgresql-client)
[ -x "$PGBIN/initdb" ] || missing+=(postgresql)
command -v file >/dev/null 2>&1 || missing+=(file)
command -v bc >/dev/null 2>&1 || missing+=(bc)
if [ ${#missing[@]} -gt 0 ]; then
	note "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y -qq "${missing[@]}" >"$WORK/apt.log" 2>&1; then
		apt-get update -qq >>"$WORK/apt.log" 2>&1
		apt-get install -y -qq "${missing[@]}" >>"$WORK/apt.log" 2>&1 || {
			tail -n 20 "$WORK/apt.log"
			fail "install ${missing[*]}"
			finish
		}
	fi
fi

# ---- 2. the engine ----
if ! docker info >/dev/null 2>&1; then
	note "no Docker engine answers: starting dockerd --storage-driver=vfs (left running for reuse)"
	nohup dockerd --storage-driver=vfs >/tmp/tidepool-docker-test-dockerd.log 2>&1 &
	DOCKERD_STARTED=$!
	echo "$DOCKERD_STARTED" >"$DOCKERD_PIDFILE"
	for _ in $(seq 1 60); do
		docker info >/dev/null 2>&1 && break
		sleep 1
	done
fi
if ! docker info >/dev/null 2>&1; then
	tail -n 20 /tmp/tidepool-docker-test-dockerd.log 2>/dev/null
	fail "a Docker engine answers"
	finish
fi
timing "tools and engine" "$t"

# ---- 3. base images and the image ----
t=$(now)
if ! TIDEPOOL_BUILD_BASE=$BUILD_BASE TIDEPOOL_RUNTIME_BASE=$RUNTIME_BASE docker/make-base-images.sh; then
	fail "local base images"
	finish
fi
timing "base images (cached or made)" "$t"
t=$(now)
if docker build --build-arg BUILDER_IMAGE="$BUILD_BASE" --build-arg RUNTIME_IMAGE="$RUNTIME_BASE" \
	--build-arg REVISION="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
	-t "$IMAGE" . >"$WORK/build.log" 2>&1; then
	pass "docker build (legacy builder, Debian stand-in bases)"
else
	tail -n 30 "$WORK/build.log"
	fail "docker build"
	finish
fi
timing "docker build" "$t"
# Earlier builds' images are untagged now: remove them (vfs keeps a full copy of every layer),
# but keep the newest build stage, which is the build cache of the next run.
docker images -q --filter dangling=true --filter label=org.opencontainers.image.title=tidepool |
	xargs -r docker rmi >/dev/null 2>&1
docker images -q --filter dangling=true --filter label=org.tidepool.stage=build | tail -n +2 |
	xargs -r docker rmi >/dev/null 2>&1

# ---- 4. PostgreSQL on 127.0.0.1 ----
t=$(now)
port_free() { ! ss -ltn 2>/dev/null | awk '{print $4}' | grep -qE "[:.]$1\$"; }
free_port() {
	local p
	for p in $(seq "$1" $(($1 + 200))); do
		port_free "$p" && { echo "$p"; return; }
	done
}
PGPORT=5432
port_free $PGPORT || PGPORT=$(free_port 15432)
PORT=6432
port_free $PORT || PORT=$(free_port 16432)
PW="tp-$(od -An -N9 -tx1 /dev/urandom | tr -d ' \n')"
mkdir -p "$WORK/pg/sock"
chown -R postgres:postgres "$WORK/pg"
if ! runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/pg/data" -U postgres --auth-local=trust \
	--auth-host=scram-sha-256 >"$WORK/initdb.log" 2>&1; then
	tail -n 20 "$WORK/initdb.log"
	fail "initdb"
	finish
fi
cat >>"$WORK/pg/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$WORK/pg/sock'
max_connections = 100
password_encryption = 'scram-sha-256'
fsync = off
EOF
if ! runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w start >/dev/null 2>&1; then
	tail -n 20 "$WORK/pg/log"
	fail "PostgreSQL starts"
	finish
fi
PG_STARTED=1
PGPID=$(head -n 1 "$WORK/pg/data/postmaster.pid")
runuser -u postgres -- psql -h "$WORK/pg/sock" -p "$PGPORT" -U postgres -d postgres -X -q \
	-c "ALTER ROLE postgres PASSWORD '$PW'" -c "CREATE TABLE docker_test_stop (id int)"
note "PostgreSQL $PGPID on 127.0.0.1:$PGPORT (SCRAM password, random); pooler port $PORT"
timing "PostgreSQL" "$t"
pgdirect() { PGPASSWORD=$PW psql -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -X -q -At "$@"; }

# Ports other than the seed's only when those are taken on this machine.
if [ "$PGPORT" != 5432 ] || [ "$PORT" != 6432 ]; then
	cat >"$WORK/ports.yml" <<EOF
version: "3.8"
services:
  pgbouncer:
    environment:
      DATABASES_PORT: "$PGPORT"
      LISTEN_PORT: "$PORT"
EOF
	COMPOSE_FILES+=(-f "$WORK/ports.yml")
	note "5432 or 6432 is taken here: using $PGPORT and $PORT"
fi
# docker-py refuses published ports with host networking, and an override file cannot remove
# the user's "ports:", so compose runs on the merged configuration of the user's file and the
# overrides (docker-compose config) with only "ports" taken out: host networking publishes
# nothing anyway. Everything else (env_file, healthcheck, restart, ulimits, grace period,
# container name) comes from docker-compose-pgbouncer.yml as the user has it.
compose() {
	(umask 077 && POSTGRES_PASSWORD=$PW PGBOUNCER_PORT=$PORT docker-compose "${COMPOSE_FILES[@]}" config \
		>"$WORK/compose-merged.yml") || return 1
	python3 - "$WORK/compose-merged.yml" "$WORK/compose.yml" <<'PY' || return 1
import os, sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
for svc in doc.get("services", {}).values():
    if svc.get("network_mode") == "host":
        svc.pop("ports", None)
os.umask(0o077)
yaml.safe_dump(doc, open(sys.argv[2], "w"), default_flow_style=False)
PY
	docker-compose -p tidepool-docker-test -f "$WORK/compose.yml" "$@"
}

# A container of that name that this test did not create is someone's: leave it alone.
if docker inspect "$CONTAINER" >/dev/null 2>&1; then
	if [ "$(docker inspect -f '{{index .Config.Labels "org.tidepool.docker-test"}}' "$CONTAINER")" = 1 ]; then
		docker rm -f "$CONTAINER" >/dev/null
	else
		fail "a container named $CONTAINER exists that this test did not create: remove it first"
		finish
	fi
fi

# ---- 5. up with the seed's variables; healthy ----
t=$(now)
if compose up -d --no-build pgbouncer >"$WORK/up.log" 2>&1; then
	pass "docker-compose -f docker-compose-pgbouncer.yml -f compose/docker-compose.test.yml up -d pgbouncer"
else
	cat "$WORK/up.log"
	fail "docker-compose up"
	finish
fi
health=""
for _ in $(seq 1 60); do
	health=$(docker inspect -f '{{.State.Status}} {{.State.Health.Status}}' "$CONTAINER" 2>/dev/null)
	case $health in "running healthy" | exited* | dead*) break ;; esac
	sleep 1
done
if [ "$health" = "running healthy" ]; then
	pass "container becomes healthy ($(printf '%.1f' "$(echo "$(now) - $t" | bc)") s)"
else
	docker logs "$CONTAINER" 2>&1 | tail -n 20
	fail "container becomes healthy (state: $health)"
	finish
fi
timing "up until healthy" "$t"

# ---- 6. logs: startup lines, no password ----
logs=$(docker logs "$CONTAINER" 2>&1)
md5=$(printf '%s' "${PW}postgres" | md5sum | cut -d' ' -f1)
if grep -q "wrote /etc/pgbouncer/pgbouncer.ini" <<<"$logs" && grep -q "listening on 0.0.0.0:$PORT" <<<"$logs" &&
	grep -q "process up" <<<"$logs"; then
	pass "docker logs shows the generated config (masked) and the startup lines"
else
	fail "docker logs shows the startup lines" "$(head -n 20 <<<"$logs")"
fi
if ! grep -qF -- "$PW" <<<"$logs" && ! grep -qF -- "$md5" <<<"$logs"; then
	pass "docker logs contains no password (nor its md5)"
else
	fail "docker logs contains the password"
fi
note "docker logs $CONTAINER:"
printf '%s\n' "$logs" | sed 's/^/      | /'

# ---- 7. tini is PID 1, the daemon its child, non-root ----
procs=$(docker exec "$CONTAINER" sh -c 'for p in /proc/[0-9]*; do
	printf "%s %s %s %s\n" "${p#/proc/}" "$(sed -n "s/^PPid:\t//p" $p/status)" "$(sed -n "s/^Uid:\t\([0-9]*\).*/\1/p" $p/status)" "$(cat $p/comm)"
	done' 2>/dev/null)
if grep -qE '^1 0 [0-9]+ tini$' <<<"$procs" && grep -qE '^[0-9]+ 1 10001 tidepool$' <<<"$procs"; then
	pass "PID 1 is tini; the daemon (uid 10001) is its child"
else
	fail "PID 1 is tini and the daemon its child" "$procs"
fi

# ---- 8. the admin console through docker exec ----
# a pool exists once a client has used it (the * entry makes pools on demand)
docker exec "$CONTAINER" psql -h localhost -p "$PORT" -U postgres -d postgres -X -q -c 'SELECT 1' >/dev/null 2>&1
if out=$(docker exec "$CONTAINER" psql -h localhost -p "$PORT" -U postgres -d pgbouncer -c 'SHOW POOLS' 2>&1) &&
	grep -qE '^ *postgres *\| *postgres' <<<"$out"; then
	pass "docker exec $CONTAINER psql ... -d pgbouncer -c 'SHOW POOLS' lists the pool"
else
	fail "docker exec psql -d pgbouncer -c 'SHOW POOLS'" "$(head -n 3 <<<"$out")"
fi
out=$(docker exec "$CONTAINER" psql -h localhost -p "$PORT" -U postgres -d pgbouncer -At -c 'SHOW pool_mode' 2>&1)
if [ "$out" = transaction ]; then
	pass "SHOW pool_mode says transaction"
else
	fail "SHOW pool_mode says transaction" "$(head -n 3 <<<"$out")"
fi

# ---- 9. pgbench: 100 clients through the container ----
t=$(now)
PGPASSWORD=$PW pgbench -i -s 1 -q -h 127.0.0.1 -p "$PGPORT" -U postgres postgres >"$WORK/pgbench-init.log" 2>&1
maxsrv=0
(
	while :; do
		pgdirect -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'
			AND pid <> pg_backend_pid()" 2>/dev/null
		sleep 0.3
	done
) >"$WORK/servers.txt" &
monitor=$!
PGPASSWORD=$PW pgbench -n -c 100 -j 2 -T 10 -h 127.0.0.1 -p "$PORT" -U postgres postgres >"$WORK/pgbench.log" 2>&1 &
bench=$!
sleep 6
pools_during=$(docker exec "$CONTAINER" psql -h localhost -p "$PORT" -U postgres -d pgbouncer -c 'SHOW POOLS' 2>&1)
wait "$bench"
bench_rc=$?
note "SHOW POOLS during the run:"
printf '%s\n' "$pools_during" | sed 's/^/      | /'
kill "$monitor" 2>/dev/null
wait "$monitor" 2>/dev/null
maxsrv=$(sort -n "$WORK/servers.txt" | tail -n 1)
maxsrv=${maxsrv:-0}
tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$WORK/pgbench.log" | head -n 1)
failed_tx=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$WORK/pgbench.log")
if [ $bench_rc -eq 0 ] && [ "${failed_tx:-x}" = 0 ] && grep -q "number of clients: 100" "$WORK/pgbench.log"; then
	pass "pgbench -c 100 -T 10 through the container: 0 failed transactions (tps ${tps:-?})"
else
	fail "pgbench -c 100 through the container (rc $bench_rc, failed ${failed_tx:-?})" "$(tail -n 8 "$WORK/pgbench.log")"
fi
if [ "$maxsrv" -gt 0 ] && [ "$maxsrv" -le 30 ]; then
	pass "at most 25+5 server connections during the run (max seen: $maxsrv)"
else
	fail "at most 25+5 server connections during the run (max seen: $maxsrv)"
fi
timing "pgbench 100 clients" "$t"

# ---- 10. the user's verify script ----
t=$(now)
PGBOUNCER_PORT=$PORT PGBOUNCER_INNER_PORT=$PORT scripts/verify_pgbouncer.sh >"$WORK/verify.log" 2>&1
vrc=$?
sed 's/^/      | /' "$WORK/verify.log"
if [ $vrc -eq 0 ] && [ "$(grep -c '^PASS' "$WORK/verify.log")" -eq 5 ]; then
	pass "scripts/verify_pgbouncer.sh: all five checks pass"
else
	fail "scripts/verify_pgbouncer.sh: $vrc of 5 checks failed"
fi
timing "verify_pgbouncer.sh" "$t"

# ---- 11. docker stop: in-flight transaction finishes, within the grace period ----
t=$(now)
PGPASSWORD=$PW psql -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -X -q \
	-c "BEGIN; SELECT pg_sleep(3); INSERT INTO docker_test_stop VALUES (1); COMMIT;" >"$WORK/inflight.log" 2>&1 &
inflight=$!
sleep 1
s=$(now)
docker stop "$CONTAINER" >/dev/null 2>&1
stop_secs=$(echo "$(now) - $s" | bc)
wait "$inflight"
inflight_rc=$?
exit_code=$(docker inspect -f '{{.State.ExitCode}}' "$CONTAINER")
grace=$(docker inspect -f '{{.Config.StopTimeout}}' "$CONTAINER")
signal=$(docker inspect -f '{{.Config.StopSignal}}' "$CONTAINER")
rows=$(pgdirect -c "SELECT count(*) FROM docker_test_stop")
if [ $inflight_rc -eq 0 ] && [ "$rows" = 1 ]; then
	pass "docker stop: the in-flight transaction committed (psql rc 0, row present)"
else
	fail "docker stop: the in-flight transaction committed (psql rc $inflight_rc, rows $rows)" "$(cat "$WORK/inflight.log")"
fi
if [ "$exit_code" = 0 ] && [ "$(echo "$stop_secs < ${grace:-10}" | bc)" = 1 ]; then
	pass "docker stop ($signal) took $(printf '%.1f' "$stop_secs") s of the ${grace:-10} s grace period, exit code 0"
else
	fail "docker stop within the grace period (took $stop_secs s of ${grace:-10}, exit code $exit_code)"
fi
note "last lines of docker logs after stop:"
docker logs "$CONTAINER" 2>&1 | tail -n 3 | sed 's/^/      | /'
timing "docker stop" "$t"

# ---- 12. a wrong POOL_MODE: exits with one clear line ----
t=$(now)
SAVED_FILES=("${COMPOSE_FILES[@]}")
COMPOSE_FILES+=(-f compose/docker-compose.test-bad-pool-mode.yml)
compose up -d --no-build pgbouncer >"$WORK/up-bad.log" 2>&1
state=""
for _ in $(seq 1 30); do
	state=$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$CONTAINER" 2>/dev/null)
	case $state in exited*) break ;; esac
	sleep 0.5
done
badlogs=$(docker logs "$CONTAINER" 2>&1)
nlines=$(grep -c . <<<"$badlogs")
if [ "${state%% *}" = exited ] && [ "${state#* }" != 0 ] && [ "$nlines" -eq 1 ] &&
	grep -q "POOL_MODE" <<<"$badlogs" && grep -q "transaction" <<<"$badlogs"; then
	pass "POOL_MODE=transcation: exit code ${state#* }, one line: $badlogs"
else
	fail "POOL_MODE=transcation stops with one clear line (state: $state, $nlines lines)" "$badlogs"
fi
COMPOSE_FILES=("${SAVED_FILES[@]}")
timing "bad POOL_MODE" "$t"

# ---- 13. static binaries, image size ----
docker rm -f tidepool-docker-test-static >/dev/null 2>&1
docker create --name tidepool-docker-test-static "$IMAGE" >/dev/null
for b in tidepool tidepool-entrypoint; do
	docker cp "tidepool-docker-test-static:/usr/local/bin/$b" "$WORK/$b" >/dev/null 2>&1
	desc=$(file -b "$WORK/$b" 2>&1)
	if grep -q "statically linked" <<<"$desc" && ! ldd "$WORK/$b" >/dev/null 2>&1; then
		pass "$b is static (file: statically linked; ldd: not a dynamic executable; $(($(stat -c %s "$WORK/$b") / 1024)) KiB)"
	else
		fail "$b is static" "$desc"
	fi
done
docker rm -f tidepool-docker-test-static >/dev/null 2>&1
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
base=$(docker image inspect -f '{{.Size}}' "$RUNTIME_BASE")
note "image $IMAGE: $((size / 1000000)) MB (runtime stand-in base $RUNTIME_BASE: $((base / 1000000)) MB; our layers: $(((size - base) / 1000)) kB)"

# ---- 14. the documented env-var table matches --help ----
if [ -f README.md ]; then
	docker run --rm --network none "$IMAGE" --help-markdown >"$WORK/help.md" 2>&1
	sed -n '/<!-- env-table:begin -->/,/<!-- env-table:end -->/p' README.md | sed '1d;$d' >"$WORK/readme.md"
	if diff -q "$WORK/help.md" "$WORK/readme.md" >/dev/null; then
		pass "README.md's variable table is the image's --help-markdown"
	else
		fail "README.md's variable table differs from --help-markdown (run: make docker-doc)" \
			"$(diff "$WORK/help.md" "$WORK/readme.md" | head -n 6)"
	fi
fi

compose down >/dev/null 2>&1
finish
