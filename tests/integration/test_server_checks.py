"""server_check_query runs only on a server that has served a client before (a fresh login is
known good), and server_fast_close closes a session-pooled server marked for closing as soon
as its client is between transactions."""

import time

import psycopg2
import pytest

import harness


def checks_run(pg):
    return pg.sql("SELECT last_value, is_called FROM tp_checks", dbname="appdb")[0]


def test_check_query_skips_a_fresh_server(tidepool, pg):
    pg.sql("DROP SEQUENCE IF EXISTS tp_checks; CREATE SEQUENCE tp_checks; "
           f"GRANT USAGE ON SEQUENCE tp_checks TO {harness.APP_USER}", dbname="appdb")
    d = tidepool({"server_check_delay": "0", "server_check_query": "SELECT nextval('tp_checks')",
                  "default_pool_size": "1"})
    for expected in (None, 1, 2):
        conn = d.connect()
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
        conn.close()
        value, called = checks_run(pg)
        assert (value if called else None) == expected
    pg.wait_backends_at_most(1)


@pytest.mark.parametrize("fast_close", ["0", "1"])
def test_server_fast_close_in_session_mode(tidepool, fast_close):
    d = tidepool({"pool_mode": "session", "server_fast_close": fast_close, "admin_users": "postgres"},
                 userlist={harness.APP_USER: harness.APP_PASSWORD, "postgres": "adminpass"})
    conn = d.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
    admin = d.connect(user="postgres", password="adminpass", dbname="pgbouncer")
    admin.cursor().execute("RECONNECT appdb")
    time.sleep(1)
    if fast_close == "1":
        with pytest.raises(psycopg2.OperationalError):
            conn.cursor().execute("SELECT 1")
        assert "closing because: database configuration changed" in d.log()
    else:
        with conn.cursor() as cur:  # the server is kept until the client lets go of it
            cur.execute("SELECT 1")
        conn.close()
        d.wait_log(r"S-0x\S+ .*closing because")  # and then it goes
    admin.close()
