"""Client-visible errors: exact text, severity and SQLSTATE (docs/compatibility.md).

Login errors are checked twice: with psycopg2 (what Django uses; the FATAL text is in the
OperationalError message) and with a raw startup packet (exact severity and SQLSTATE).
Errors that arrive mid-session are checked with psycopg 3 (libpq keeps the FATAL text there;
psycopg2 only reports "server closed the connection unexpectedly") and the raw client.
"""

import asyncio
import threading
import time

import asyncpg
import psycopg
import psycopg2
import pytest

import harness
from harness import APP_PASSWORD, APP_USER, WireError, raw_login


def assert_fatal(excinfo_value, text, sqlstate="08P01"):
    e = excinfo_value
    assert e.message == text, e.fields
    assert e.sqlstate == sqlstate, e.fields
    assert e.fields.get("S") == "FATAL", e.fields


def test_wrong_password_md5(tidepool):
    d = tidepool({"auth_type": "md5"})
    with pytest.raises(psycopg2.OperationalError) as ei:
        d.connect(password="wrong")
    assert "FATAL:  password authentication failed" in str(ei.value)
    with pytest.raises(WireError) as ei:
        raw_login(d.port, APP_USER, "appdb", "wrong")
    assert_fatal(ei.value, "password authentication failed")
    # the right password still works
    with d.connect() as c, c.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)


def test_unknown_user_same_text_as_wrong_password(tidepool):
    d = tidepool({"auth_type": "md5"})
    with pytest.raises(psycopg2.OperationalError) as ei:
        d.connect(user="nobody", password="whatever")
    assert "FATAL:  password authentication failed" in str(ei.value)
    with pytest.raises(WireError) as ei:
        raw_login(d.port, "nobody", "appdb", "whatever")
    assert_fatal(ei.value, "password authentication failed")
    d.wait_log(r"no such user: nobody")


def test_wrong_password_scram(tidepool):
    d = tidepool({"auth_type": "scram-sha-256"}, skip_unsupported=True)
    with pytest.raises(WireError) as ei:
        raw_login(d.port, APP_USER, "appdb", "wrong")
    assert_fatal(ei.value, "SASL authentication failed")
    with pytest.raises(psycopg2.OperationalError) as ei2:
        d.connect(password="wrong")
    assert "SASL authentication failed" in str(ei2.value)
    # SCRAM with the right password goes through (raw client and libpq)
    c = raw_login(d.port, APP_USER, "appdb", APP_PASSWORD)
    assert c.query("SELECT 42")[0] == [["42"]]
    c.close()
    with d.connect() as c2, c2.cursor() as cur:
        cur.execute("SELECT current_user")
        assert cur.fetchone() == (APP_USER,)


def test_unknown_database(tidepool):
    d = tidepool()
    with pytest.raises(psycopg2.OperationalError) as ei:
        d.connect(dbname="nosuchdb")
    assert "FATAL:  no such database: nosuchdb" in str(ei.value)
    with pytest.raises(WireError) as ei:
        raw_login(d.port, APP_USER, "nosuchdb", APP_PASSWORD)
    assert_fatal(ei.value, "no such database: nosuchdb")


def test_max_client_conn(tidepool):
    d = tidepool({"max_client_conn": "2"})
    held = [d.connect(), d.connect()]
    try:
        with pytest.raises(psycopg2.OperationalError) as ei:
            d.connect()
        assert "no more connections allowed (max_client_conn)" in str(ei.value)
        with pytest.raises(WireError) as ei2:
            raw_login(d.port, APP_USER, "appdb", APP_PASSWORD)
        assert_fatal(ei2.value, "no more connections allowed (max_client_conn)")
        for c in held:  # the two admitted clients are unaffected
            with c.cursor() as cur:
                cur.execute("SELECT 1")
                assert cur.fetchone() == (1,)
    finally:
        for c in held:
            c.close()
    # a slot frees up once a client leaves
    harness.wait_until(lambda: d.connect().close() or True, 10, interval=0.2, what="a free client slot")


def test_query_wait_timeout(tidepool):
    d = tidepool({"pool_mode": "transaction", "default_pool_size": "1", "query_wait_timeout": "2"})
    holder = d.connect()
    cur = holder.cursor()
    cur.execute("BEGIN")
    cur.execute("SELECT 1")  # the only server is now tied to this open transaction
    try:
        waiter = psycopg.connect(d.dsn(), autocommit=True)
        t0 = time.monotonic()
        with pytest.raises(psycopg.OperationalError) as ei:
            waiter.execute("SELECT 1")
        elapsed = time.monotonic() - t0
        assert "query_wait_timeout" in str(ei.value)
        assert 1.5 <= elapsed <= 6, elapsed
        # raw client: exact severity and SQLSTATE
        raw = raw_login(d.port, APP_USER, "appdb", APP_PASSWORD)
        with pytest.raises(WireError) as ei2:
            raw.query("SELECT 1")
        assert_fatal(ei2.value, "query_wait_timeout")
        # the holder's transaction is intact
        cur.execute("SELECT 2")
        assert cur.fetchone() == (2,)
        cur.execute("COMMIT")
    finally:
        holder.close()
    # with the server free again a new client gets it at once
    with d.connect() as c, c.cursor() as cur2:
        cur2.execute("SELECT 3")
        assert cur2.fetchone() == (3,)


def _asyncpg_connect(port, **kw):
    async def go():
        c = await asyncpg.connect(host="127.0.0.1", port=port, user=APP_USER, password=APP_PASSWORD,
                                  database="appdb", statement_cache_size=0, timeout=10, **kw)
        try:
            return await c.fetchval("SHOW search_path")
        finally:
            await c.close()

    return asyncio.run(go())


def test_unsupported_startup_parameter(tidepool):
    d = tidepool()
    with pytest.raises(WireError) as ei:
        raw_login(d.port, APP_USER, "appdb", APP_PASSWORD, params={"search_path": "x"})
    assert_fatal(ei.value, "unsupported startup parameter: search_path")
    with pytest.raises(asyncpg.PostgresError) as ei2:
        _asyncpg_connect(d.port, server_settings={"search_path": "x"})
    assert "unsupported startup parameter: search_path" in str(ei2.value)
    assert ei2.value.sqlstate == "08P01"
    # parameters PgBouncer tracks itself are accepted
    c = raw_login(d.port, APP_USER, "appdb", APP_PASSWORD,
                  params={"application_name": "tp-test", "client_encoding": "UTF8", "DateStyle": "ISO, MDY"})
    assert c.query("SELECT current_setting('application_name')")[0] == [["tp-test"]]
    c.close()


def test_ignore_startup_parameters(tidepool):
    d = tidepool({"ignore_startup_parameters": "search_path, extra_float_digits"})
    c = raw_login(d.port, APP_USER, "appdb", APP_PASSWORD, params={"search_path": "x", "extra_float_digits": "3"})
    rows, _ = c.query("SELECT 1")
    assert rows == [["1"]]
    c.close()
    # ignored means ignored: the server keeps its own search_path
    assert _asyncpg_connect(d.port, server_settings={"search_path": "x"}) == '"$user", public'


def test_statement_mode_rejects_transaction_blocks(tidepool):
    d = tidepool({"pool_mode": "statement"})
    raw = raw_login(d.port, APP_USER, "appdb", APP_PASSWORD)
    with pytest.raises(WireError) as ei:
        raw.query("BEGIN")
    assert_fatal(ei.value, "transaction blocks not allowed in statement pooling mode")
    with psycopg.connect(d.dsn(), autocommit=True) as c:
        with pytest.raises(psycopg.OperationalError) as ei2:
            c.execute("BEGIN")
            c.execute("SELECT 1")
            c.execute("COMMIT")
        assert "transaction blocks not allowed in statement pooling mode" in str(ei2.value)
    # single statements, and a whole transaction inside one query string, are fine
    raw = raw_login(d.port, APP_USER, "appdb", APP_PASSWORD)
    assert raw.query("SELECT 1")[0] == [["1"]]
    rows, tags = raw.query("BEGIN; SELECT 5; COMMIT")
    assert rows == [["5"]] and tags == ["BEGIN", "SELECT 1", "COMMIT"]
    raw.close()


def test_pool_exhaustion_does_not_leak_between_clients(tidepool, pg):
    """Many failing logins must not consume server connections."""
    d = tidepool({"default_pool_size": "2"})
    errs = []

    def bad_login():
        try:
            raw_login(d.port, APP_USER, "appdb", "wrong")
        except WireError as e:
            errs.append(e.message)

    ts = [threading.Thread(target=bad_login) for _ in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    assert errs == ["password authentication failed"] * 20
    pg.wait_backends_at_most(0)


def test_login_error_reaches_clients_waiting_for_a_server(tidepool, pg):
    """After RECONNECT a new client waits for a new server (tidepool logs it in from the pool's
    known welcome and it waits at its first query; PgBouncer waits at login). When that server's
    login fails with PostgreSQL's error and no usable server is left, the waiting client gets
    the error at once instead of waiting for query_wait_timeout."""
    pg.sql("DROP DATABASE IF EXISTS tp_waitdb")
    pg.sql(f"CREATE DATABASE tp_waitdb OWNER {APP_USER}")
    d = tidepool({"query_wait_timeout": "20", "server_login_retry": "1", "admin_users": "postgres"},
                 databases={"waitdb": f"host=127.0.0.1 port={pg.port} dbname=tp_waitdb"},
                 userlist={APP_USER: APP_PASSWORD, "postgres": "adminpw"})
    try:
        raw_login(d.port, APP_USER, "waitdb", APP_PASSWORD).close()  # the welcome is known now
        pg.sql("ALTER DATABASE tp_waitdb ALLOW_CONNECTIONS false")
        admin = raw_login(d.port, "postgres", "pgbouncer", "adminpw")
        admin.query("RECONNECT")
        admin.close()
        t0 = time.monotonic()
        with pytest.raises(WireError) as ei:
            raw_login(d.port, APP_USER, "waitdb", APP_PASSWORD).query("SELECT 1")
        assert "not currently accepting connections" in ei.value.message, ei.value.fields
        assert ei.value.sqlstate == "55000", ei.value.fields
        assert time.monotonic() - t0 < 10
    finally:
        pg.sql("ALTER DATABASE tp_waitdb ALLOW_CONNECTIONS true")
        d.stop()
        pg.sql("DROP DATABASE IF EXISTS tp_waitdb")
