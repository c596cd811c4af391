"""Cancel requests go through the pooler to the right backend."""

import threading
import time

import psycopg
import psycopg2
import pytest


@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_cancel_pg_sleep(tidepool, mode):
    d = tidepool({"pool_mode": mode, "default_pool_size": "2"})
    conn = d.connect()
    bystander = d.connect()
    try:
        cancelled_at = {}

        def cancel_later():
            time.sleep(1.0)
            cancelled_at["t"] = time.monotonic()
            conn.cancel()

        t = threading.Thread(target=cancel_later)
        t.start()
        t0 = time.monotonic()
        with pytest.raises(psycopg2.errors.QueryCanceled) as ei:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_sleep(30)")
        ended = time.monotonic()
        t.join(5)
        assert "canceling statement due to user request" in str(ei.value)
        assert ei.value.pgcode == "57014"
        assert ended - cancelled_at["t"] <= 2.0, ended - cancelled_at["t"]
        assert ended - t0 < 5
        # the cancelled connection and the bystander still work
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
        with bystander.cursor() as cur:
            cur.execute("SELECT 2")
            assert cur.fetchone() == (2,)
    finally:
        conn.close()
        bystander.close()


def test_cancel_psycopg3(tidepool):
    d = tidepool({"pool_mode": "transaction", "default_pool_size": "1"})
    with psycopg.connect(d.dsn(), autocommit=True) as conn:
        timer = threading.Timer(1.0, conn.cancel)
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(30)")
        assert time.monotonic() - t0 < 4
        timer.join(5)
        assert conn.execute("SELECT 7").fetchone() == (7,)


def test_cancel_of_idle_client_is_harmless(tidepool):
    """A cancel for a client that has no query running must not hit another client's query."""
    d = tidepool({"pool_mode": "transaction", "default_pool_size": "1"})
    idle = d.connect()
    busy = d.connect()
    try:
        with idle.cursor() as cur:
            cur.execute("SELECT 1")  # idle now had the (only) server and released it
        result = {}

        def run_busy():
            with busy.cursor() as cur:
                cur.execute("SELECT pg_sleep(2), 'done'")
                result["v"] = cur.fetchone()[1]

        t = threading.Thread(target=run_busy)
        t.start()
        time.sleep(0.5)
        idle.cancel()
        t.join(10)
        assert result.get("v") == "done"
    finally:
        idle.close()
        busy.close()


def test_late_cancels_do_not_hit_the_next_client(tidepool):
    """Many cancels for one client's query: the server it used goes to the next client only
    after every cancel connection is done, so none of them cancels that client's query."""
    from concurrent.futures import ThreadPoolExecutor

    d = tidepool({"pool_mode": "transaction", "default_pool_size": "1"})
    first = psycopg.connect(d.dsn(), autocommit=True)
    second = psycopg.connect(d.dsn(), autocommit=True)
    try:
        with ThreadPoolExecutor(max_workers=60) as pool:
            q1 = pool.submit(first.execute, "SELECT pg_sleep(5)")
            time.sleep(0.5)
            q2 = pool.submit(second.execute, "SELECT pg_sleep(1)")  # waits for the one server
            time.sleep(0.5)
            cancels = [pool.submit(first.cancel) for _ in range(50)]
            for c in cancels:
                c.result()
            with pytest.raises(psycopg.errors.QueryCanceled):
                q1.result(timeout=10)
            q2.result(timeout=10)  # not cancelled by a late request for the first client
    finally:
        first.close()
        second.close()
