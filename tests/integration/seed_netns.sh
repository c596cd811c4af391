#!/bin/bash
# seed_netns.sh: run the user's own pgbouncer.ini (tests/integration/seed/pgbouncer.ini) unchanged,
# with its real paths (/etc/pgbouncer, /var/log/pgbouncer, /var/run/pgbouncer) and real addresses
# (127.0.0.1:6432 -> 127.0.0.1:5432), without touching the machine's /etc, /var or network.
#
# Must run as root inside fresh namespaces, as the test does:
#   unshare --mount --net -- bash seed_netns.sh DAEMON_BIN INI_FILE WORKDIR PG_BINDIR
# WORKDIR must not be under /tmp (a private tmpfs is mounted over /tmp here). Inside:
#   - loopback only, brought up here; PostgreSQL on 127.0.0.1:5432 (postgres, md5 password);
#   - tmpfs over /tmp, /var/log and /run (namespace-private); WORKDIR/etc, WORKDIR/log and
#     WORKDIR/run bind-mounted over /etc/pgbouncer, /var/log/pgbouncer, /var/run/pgbouncer;
#   - the daemon runs `-u postgres /etc/pgbouncer/pgbouncer.ini`, psql connects to ahsp_db.
# Results (for the test to check) are written to WORKDIR/out/*. Every wait is bounded; every
# process started here is stopped by PID on exit.
set -euo pipefail

BIN=$1
INI=$2
W=$3
PGBIN=$4
PASSWORD=seedpass
OUT=$W/out
DAEMON_PID=
CREATED_ETC=0

log() { echo "seed_netns: $*" >&2; }

cleanup() {
	set +e
	if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
		kill -QUIT "$DAEMON_PID"
		for _ in $(seq 1 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$DAEMON_PID" 2>/dev/null && kill -KILL "$DAEMON_PID"
	fi
	if [ -f "$W/pgdata/postmaster.pid" ]; then
		runuser -u postgres -- "$PGBIN/pg_ctl" -D "$W/pgdata" -m fast -w -t 30 stop >/dev/null 2>&1
	fi
	if [ "$CREATED_ETC" = 1 ]; then
		umount /etc/pgbouncer 2>/dev/null
		rmdir /etc/pgbouncer 2>/dev/null
	fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT

[ "$(id -u)" = 0 ] || { log "must run as root"; exit 2; }
case "$W" in /tmp/*) log "WORKDIR must not be under /tmp"; exit 2 ;; esac

# --- network: a namespace of our own with only loopback
ip link set lo up
if ip -o -4 addr show | grep -v ' lo ' | grep -q inet; then
	log "not in a private network namespace"; exit 2
fi

# --- files: namespace-private /tmp, /var/log, /run; our dirs over the seed's paths
mkdir -p "$W/etc" "$W/log" "$W/run" "$W/bin" "$OUT"
# The seed sets no unix_socket_dir, so the daemon makes /tmp/.s.PGSQL.6432: give it a private
# /tmp. That hides everything under the real /tmp (the binary may live there), so copy the
# binary out first and leave any /tmp working directory.
cp "$BIN" "$W/bin/"
BIN=$W/bin/$(basename "$BIN")
cd "$W"
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /var/log
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /var/log/pgbouncer /run/pgbouncer
if [ ! -d /etc/pgbouncer ]; then
	mkdir /etc/pgbouncer
	CREATED_ETC=1
fi
mount --bind "$W/etc" /etc/pgbouncer
mount --bind "$W/log" /var/log/pgbouncer
mount --bind "$W/run" /var/run/pgbouncer

# --- PostgreSQL on 127.0.0.1:5432, postgres with an md5 password
chown -R postgres: "$W"
runuser -u postgres -- "$PGBIN/initdb" -D "$W/pgdata" -U postgres -E UTF8 --locale=C -A trust --no-sync >"$OUT/initdb.log" 2>&1
cat >>"$W/pgdata/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = 5432
unix_socket_directories = '$W'
max_connections = 40
fsync = off
EOF
cat >"$W/pgdata/pg_hba.conf" <<EOF
local all all trust
host  all all 127.0.0.1/32 md5
EOF
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$W/pgdata" -l "$OUT/postgres.log" -w -t 60 start >/dev/null
"$PGBIN/psql" -X -q -h "$W" -p 5432 -U postgres -d postgres -v ON_ERROR_STOP=1 \
	-c "SET password_encryption = 'md5'" -c "ALTER ROLE postgres PASSWORD '$PASSWORD'"

# --- the seed's files at the seed's paths
cp "$INI" /etc/pgbouncer/pgbouncer.ini
hash=$(printf '%s' "${PASSWORD}postgres" | md5sum | cut -d' ' -f1)
printf '"postgres" "md5%s"\n' "$hash" >/etc/pgbouncer/userlist.txt
chown -R postgres: /etc/pgbouncer /var/log/pgbouncer /var/run/pgbouncer
chmod 600 /etc/pgbouncer/userlist.txt

# --- the daemon, with the ini verbatim
"$BIN" -u postgres /etc/pgbouncer/pgbouncer.ini >"$OUT/daemon.stderr" 2>&1 &
DAEMON_PID=$!
echo "$DAEMON_PID" >"$OUT/daemon.pid"
up=0
for _ in $(seq 1 150); do
	if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
		wait "$DAEMON_PID" && rc=0 || rc=$?
		echo "$rc" >"$OUT/daemon.exit"
		log "daemon exited with status $rc before listening"
		cat "$OUT/daemon.stderr" >&2
		DAEMON_PID=
		exit 3
	fi
	if (exec 3<>/dev/tcp/127.0.0.1/6432) 2>/dev/null; then
		up=1
		break
	fi
	sleep 0.1
done
[ "$up" = 1 ] || { log "daemon not listening on 127.0.0.1:6432 after 15 s"; exit 4; }

# --- the seed's verification: psql through 127.0.0.1:6432 to ahsp_db
PGPASSWORD=$PASSWORD PGCONNECT_TIMEOUT=10 "$PGBIN/psql" -X -A -t -h 127.0.0.1 -p 6432 -U postgres -d ahsp_db \
	-c "SELECT current_database(), current_user, 6 * 7, inet_server_port()" >"$OUT/psql.out" 2>"$OUT/psql.err"
# what the pidfile says, and that the process is still there after the query
cp /var/run/pgbouncer/pgbouncer.pid "$OUT/pidfile" 2>/dev/null || true
kill -0 "$DAEMON_PID"
# give the log a moment to get the disconnect line, bounded
for _ in $(seq 1 30); do
	grep -q 'closing because' /var/log/pgbouncer/pgbouncer.log 2>/dev/null && break
	sleep 0.1
done
cp /var/log/pgbouncer/pgbouncer.log "$OUT/pgbouncer.log"
log "ok"
