#!/usr/bin/env bash
# setup_pgbouncer.sh: start the pooler for the Django app (Linux and WSL).
#   1. creates .env from the template if it is missing, and stops until the password is set;
#   2. refuses the placeholder password;
#   3. builds and starts the container (docker-compose-pgbouncer.yml, service pgbouncer);
#   4. waits until it is healthy, then prints how to connect.
# Windows without WSL: scripts\setup_pgbouncer.bat does the same.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
COMPOSE_FILE=docker-compose-pgbouncer.yml
CONTAINER=ahsp_pgbouncer
PLACEHOLDERS="CHANGE_ME your_actual_password your_postgres_password changeme"

die() {
	printf 'setup_pgbouncer: %s\n' "$1" >&2
	shift
	for line in "$@"; do printf '  %s\n' "$line" >&2; done
	exit 1
}

dotenv() { # file key: the value, without sourcing the file
	[ -f "$1" ] || return 0
	sed -n "s/^[[:space:]]*$2[[:space:]]*=[[:space:]]*//p" "$1" | tail -n 1 | sed 's/^"\(.*\)"$/\1/; s/^'"'"'\(.*\)'"'"'$/\1/; s/[[:space:]]*$//'
}

command -v docker >/dev/null 2>&1 || die "docker is not installed" \
	"Linux: sudo apt-get install docker.io docker-compose (or Docker Engine); WSL: Docker Desktop with WSL integration"
docker info >/dev/null 2>&1 || die "the Docker engine is not running (or you may not use it)" \
	"Linux: sudo systemctl start docker, and add yourself to the docker group; Docker Desktop: start it"
if command -v docker-compose >/dev/null 2>&1; then
	COMPOSE=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
	COMPOSE=(docker compose)
else
	die "neither docker-compose nor 'docker compose' is available" "install docker-compose"
fi

# 1. .env with the password (docker-compose reads it for ${POSTGRES_PASSWORD} and ${PGBOUNCER_PORT})
if [ ! -f .env ]; then
	cat >.env <<'EOF'
# Read by docker-compose for docker-compose-pgbouncer.yml (see .env.pgbouncer for the settings).
# The PostgreSQL password of DATABASES_USER (postgres):
POSTGRES_PASSWORD=CHANGE_ME
# The port Django connects to (Django's PORT setting):
PGBOUNCER_PORT=6432
EOF
	chmod 600 .env
	die "created .env from the template: put your PostgreSQL password in it, then run me again" \
		"edit $ROOT/.env: POSTGRES_PASSWORD=your_actual_password"
fi
password=${POSTGRES_PASSWORD:-$(dotenv .env POSTGRES_PASSWORD)}
[ -n "$password" ] || die ".env has no POSTGRES_PASSWORD" "add a line: POSTGRES_PASSWORD=your_actual_password"
for p in $PLACEHOLDERS; do
	[ "$password" = "$p" ] && die "POSTGRES_PASSWORD in .env is still the placeholder \"$p\"" \
		"set it to the real password of the PostgreSQL user in .env.pgbouncer (DATABASES_USER)"
done
port=${PGBOUNCER_PORT:-$(dotenv .env PGBOUNCER_PORT)}
port=${port:-6432}
user=$(dotenv .env.pgbouncer DATABASES_USER)
user=${user:-postgres}
dbname=$(dotenv .env.pgbouncer DATABASES_DBNAME)
dbname=${dbname:-postgres}

# A port taken by something else is the most common failure: say so before starting.
if command -v ss >/dev/null 2>&1 && ss -ltn 2>/dev/null | awk '{print $4}' | grep -qE "[:.]$port\$"; then
	if [ "$(docker inspect -f '{{.State.Running}}' "$CONTAINER" 2>/dev/null)" != true ]; then
		die "port $port is already in use by another program" \
			"find it: ss -ltnp | grep :$port   (a local PgBouncer? sudo systemctl stop pgbouncer)" \
			"or use another port: PGBOUNCER_PORT=6433 in .env (and in Django's settings)"
	fi
fi

# 2. build and start
echo "Building and starting $CONTAINER ..."
"${COMPOSE[@]}" -f "$COMPOSE_FILE" up -d --build pgbouncer

# 3. wait until healthy
printf 'Waiting for the health check'
for _ in $(seq 1 60); do
	state=$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$CONTAINER" 2>/dev/null || echo missing)
	case $state in
	"running healthy")
		echo " healthy."
		break
		;;
	exited* | dead* | missing | restarting*)
		echo
		docker logs --tail 20 "$CONTAINER" >&2 || true
		die "the container stopped: the lines above say why" \
			"fix .env.pgbouncer or .env, then run me again"
		;;
	esac
	printf '.'
	sleep 2
done
if [ "${state:-}" != "running healthy" ]; then
	echo
	docker logs --tail 20 "$CONTAINER" >&2 || true
	die "the container did not become healthy within 2 minutes"
fi

cat <<EOF

The pooler is up: $CONTAINER, listening on port $port.

  Connect (password: POSTGRES_PASSWORD from .env):
    psql -h localhost -p $port -U $user -d $dbname
  Admin console and pool statistics:
    docker exec -it $CONTAINER psql -h localhost -p 6432 -U $user -d pgbouncer    (then: SHOW POOLS;)
  Logs:
    docker logs $CONTAINER
  Django settings (transaction pooling):
    'PORT': '$port', 'CONN_MAX_AGE': 0, 'DISABLE_SERVER_SIDE_CURSORS': True
  Check everything:
    scripts/verify_pgbouncer.sh
EOF
