"""Pool modes: session keeps server state per client, transaction hands servers between
clients, statement refuses multi-statement transactions (see also test_errors.py)."""

import threading

import psycopg2
import pytest

from harness import raw_login, APP_USER, APP_PASSWORD


def test_session_mode_keeps_temp_table_across_transactions(tidepool, pg):
    d = tidepool({"pool_mode": "session", "default_pool_size": "2"})
    a = d.connect()
    other = d.connect()  # a second client busy on the same pool must not disturb the first
    try:
        with a.cursor() as cur:
            cur.execute("CREATE TEMP TABLE tp_session_tmp (x int)")
            cur.execute("BEGIN")
            cur.execute("INSERT INTO tp_session_tmp VALUES (1), (2)")
            cur.execute("COMMIT")
            with other.cursor() as oc:
                for _ in range(5):
                    oc.execute("SELECT 1")
            cur.execute("BEGIN")
            cur.execute("INSERT INTO tp_session_tmp VALUES (3)")
            cur.execute("COMMIT")
            cur.execute("SELECT sum(x) FROM tp_session_tmp")
            assert cur.fetchone() == (6,)
            cur.execute("SELECT pg_backend_pid()")
            pid_a = cur.fetchone()[0]
        with other.cursor() as oc:
            oc.execute("SELECT pg_backend_pid()")
            assert oc.fetchone()[0] != pid_a
            with pytest.raises(psycopg2.errors.UndefinedTable):
                oc.execute("SELECT * FROM tp_session_tmp")
    finally:
        a.close()
        other.close()


def test_session_mode_resets_server_between_clients(tidepool):
    d = tidepool({"pool_mode": "session", "default_pool_size": "1"})
    with d.connect() as a:
        with a.cursor() as cur:
            cur.execute("CREATE TEMP TABLE tp_leak (x int)")
            cur.execute("SELECT pg_backend_pid()")
            pid = cur.fetchone()[0]
    a.close()
    b = d.connect()
    try:
        with b.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            assert cur.fetchone()[0] == pid  # same server, reused ...
            cur.execute("SELECT count(*) FROM pg_class WHERE relname = 'tp_leak'")
            assert cur.fetchone() == (0,)  # ... after server_reset_query (DISCARD ALL)
    finally:
        b.close()


def test_transaction_mode_shares_one_server(tidepool, pg):
    d = tidepool({"pool_mode": "transaction", "default_pool_size": "1"})
    a, b = d.connect(), d.connect()
    try:
        pids = []
        for conn in (a, b, a, b):
            with conn.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                pids.append(cur.fetchone()[0])
        assert len(set(pids)) == 1, pids
        # transactions of the two clients interleave on the one server
        ca, cb = a.cursor(), b.cursor()
        ca.execute("BEGIN")
        ca.execute("CREATE TABLE IF NOT EXISTS tp_txmode (who text)")
        ca.execute("INSERT INTO tp_txmode VALUES ('a')")
        ca.execute("COMMIT")
        cb.execute("BEGIN")
        cb.execute("INSERT INTO tp_txmode VALUES ('b')")
        cb.execute("SELECT count(*) FROM tp_txmode")
        assert cb.fetchone()[0] >= 2
        cb.execute("COMMIT")
        ca.execute("DROP TABLE tp_txmode")
        pg.wait_backends_at_most(1)
    finally:
        a.close()
        b.close()


def test_transaction_mode_waiting_client_gets_server_after_commit(tidepool):
    d = tidepool({"pool_mode": "transaction", "default_pool_size": "1"})
    a, b = d.connect(), d.connect()
    try:
        ca = a.cursor()
        ca.execute("BEGIN")
        ca.execute("SELECT pg_backend_pid()")
        pid = ca.fetchone()[0]
        got = {}

        def run_b():
            with b.cursor() as cb:
                cb.execute("SELECT pg_backend_pid()")
                got["pid"] = cb.fetchone()[0]

        t = threading.Thread(target=run_b)
        t.start()
        t.join(1.0)
        assert t.is_alive(), "client b should wait while a holds the only server in a transaction"
        ca.execute("COMMIT")
        t.join(10)
        assert not t.is_alive()
        assert got["pid"] == pid
    finally:
        a.close()
        b.close()


def test_statement_mode_autocommit_statements_share_server(tidepool):
    d = tidepool({"pool_mode": "statement", "default_pool_size": "1"})
    a = raw_login(d.port, APP_USER, "appdb", APP_PASSWORD)
    b = raw_login(d.port, APP_USER, "appdb", APP_PASSWORD)
    try:
        pa = a.query("SELECT pg_backend_pid()")[0]
        pb = b.query("SELECT pg_backend_pid()")[0]
        assert pa == pb
    finally:
        a.close()
        b.close()
