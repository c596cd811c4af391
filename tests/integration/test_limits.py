"""Connection limits as PgBouncer 1.25 applies them: client limits on the console (admin_users
exempt), min_pool_size for a forced-user database without clients, and idle servers of other
pools giving way when max_db_connections / max_user_connections is full."""

import threading

import psycopg2
import pytest

import harness
from test_admin import console

ADMIN, ADMIN_PW = "postgres", "adminpass"
APP, APP_PW = harness.APP_USER, harness.APP_PASSWORD
MD5, MD5_PW = harness.MD5_USER, harness.MD5_PASSWORD
THIRD, THIRD_PW = "limituser", "limitpass"
USERLIST = {APP: APP_PW, MD5: MD5_PW, ADMIN: ADMIN_PW, THIRD: THIRD_PW}


def console_dsn(d, user, password):
    return f"host=127.0.0.1 port={d.port} dbname=pgbouncer user={user} password={password}"


@pytest.mark.tidepool_only(reason="PgBouncer 1.18 has no max_db_client_connections")
def test_client_limits_hold_on_the_console_except_for_admins(tidepool):
    d = tidepool({"max_db_client_connections": "2", "stats_users": APP, "admin_users": ADMIN},
                 userlist=USERLIST)
    stats = [psycopg2.connect(console_dsn(d, APP, APP_PW)) for _ in range(2)]
    for c in stats:
        c.autocommit = True
    with pytest.raises(psycopg2.OperationalError, match="max_db_client_connections"):
        psycopg2.connect(console_dsn(d, APP, APP_PW))
    # an admin is counted (SHOW DATABASES says 3) but never refused
    admin = psycopg2.connect(console_dsn(d, ADMIN, ADMIN_PW))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SHOW DATABASES")
        names = [col[0] for col in cur.description]
        row = dict(zip(names, next(r for r in cur.fetchall() if r[0] == "pgbouncer")))
    assert row["current_client_connections"] == 3 and row["max_client_connections"] == 2
    for c in stats + [admin]:
        c.close()


@pytest.mark.tidepool_only(reason="PgBouncer 1.18 has no max_user_client_connections")
def test_user_client_limit_holds_on_the_console(tidepool):
    d = tidepool({"max_user_client_connections": "1", "stats_users": APP, "admin_users": ADMIN},
                 userlist=USERLIST)
    first = psycopg2.connect(console_dsn(d, APP, APP_PW))
    with pytest.raises(psycopg2.OperationalError, match="max_user_client_connections"):
        psycopg2.connect(console_dsn(d, APP, APP_PW))
    admins = [psycopg2.connect(console_dsn(d, ADMIN, ADMIN_PW)) for _ in range(2)]
    for c in admins + [first]:
        c.close()


def test_min_pool_size_of_a_forced_user_database_added_by_reload(tidepool, pg):
    d = tidepool({"admin_users": ADMIN}, userlist=USERLIST)
    assert pg.count_backends(user=APP, dbname="appdb") == 0
    dbs = d.default_databases()
    dbs["forced"] = f"host=127.0.0.1 port={pg.port} dbname=appdb user={APP} min_pool_size=3"
    d.rewrite_ini({"admin_users": ADMIN}, databases=dbs, userlist=USERLIST)
    d.reload()
    harness.wait_until(lambda: pg.count_backends(user=APP, dbname="appdb") == 3, 10,
                       what="3 servers for the forced user without any client")
    pg.wait_backends_at_most(0, user=APP, dbname="postgres", timeout=1)


@pytest.mark.parametrize("limit", ["max_db_connections", "max_user_connections"])
def test_idle_servers_of_other_pools_give_way_to_a_full_limit(tidepool, pg, limit):
    """Three users (or three databases of one user) share a limit of 2 servers; each pool's
    clients finish although the other pools' servers stay idle once used."""
    if limit == "max_db_connections":
        dbs = {"shared": f"host=127.0.0.1 port={pg.port} dbname=appdb max_db_connections=2"}
        targets = [("shared", APP, APP_PW), ("shared", MD5, MD5_PW), ("shared", THIRD, THIRD_PW)]
        settings = {}
    else:
        dbs = {f"db{i}": f"host=127.0.0.1 port={pg.port} dbname=appdb" for i in range(3)}
        targets = [(f"db{i}", APP, APP_PW) for i in range(3)]
        settings = {"max_user_connections": "2"}
    if not pg.sql("SELECT 1 FROM pg_roles WHERE rolname = %s", (THIRD,)):
        pg.sql(f"SET password_encryption = 'scram-sha-256'; CREATE ROLE {THIRD} LOGIN PASSWORD '{THIRD_PW}'")
        pg.sql(f"GRANT CONNECT ON DATABASE appdb TO {THIRD}")
    d = tidepool({"pool_mode": "transaction", "server_idle_timeout": "600", **settings},
                 databases=dbs, userlist=USERLIST)
    errors = []

    def run(db, user, password):
        try:
            conn = psycopg2.connect(f"host=127.0.0.1 port={d.port} dbname={db} user={user} "
                                    f"password={password} connect_timeout=10")
            conn.autocommit = True
            with conn.cursor() as cur:
                for _ in range(2):
                    cur.execute("SELECT pg_sleep(0.3)")
            conn.close()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run, args=t) for t in targets for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    assert "evicted" in d.log()
