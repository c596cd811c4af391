"""PostgreSQL restarted mid-load: the pooler survives and clients recover."""

import threading
import time

import psycopg2
import pytest

import harness

RECOVERY_BUDGET = 30.0


class Worker(threading.Thread):
    def __init__(self, pool, stop_evt, idx):
        super().__init__(daemon=True)
        self.pool, self.stop_evt, self.idx = pool, stop_evt, idx
        self.ok = 0
        self.errors = []
        self.last_ok = 0.0
        self.failing = False
        self.recovered_at = 0.0  # first success after the latest error

    def run(self):
        conn = None
        deadline = time.monotonic() + 120  # bounded even if never stopped
        while not self.stop_evt.is_set() and time.monotonic() < deadline:
            try:
                if conn is None:
                    conn = self.pool.connect()
                with conn.cursor() as cur:
                    cur.execute("BEGIN")
                    cur.execute("SELECT %s, count(*) FROM pg_class", (self.idx,))
                    assert cur.fetchone()[0] == self.idx
                    cur.execute("COMMIT")
                self.ok += 1
                self.last_ok = time.monotonic()
                if self.failing:
                    self.failing = False
                    self.recovered_at = self.last_ok
            except psycopg2.Error as e:
                self.failing = True
                self.errors.append(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001
                        pass
                conn = None
                self.stop_evt.wait(0.1)
        if conn is not None:
            conn.close()


@pytest.mark.timeout(180)
def test_postgres_restart_mid_load(tidepool, pg):
    pool = tidepool({"pool_mode": "transaction", "default_pool_size": "20"})
    stop_evt = threading.Event()
    workers = [Worker(pool, stop_evt, i) for i in range(10)]
    for w in workers:
        w.start()
    try:
        # every client has completed a transaction (a fixed sleep was flaky on a loaded machine)
        try:
            harness.wait_until(lambda: all(w.ok > 0 for w in workers), 20, what="load running")
        except TimeoutError:
            pytest.fail(repr([w.errors[:3] for w in workers]))
        before = sum(w.ok for w in workers)
        pg.restart()
        t_back = time.monotonic()
        assert pool.alive(), pool.log()[-3000:]
        # every worker completes a transaction after PostgreSQL is back, within the budget
        deadline = t_back + RECOVERY_BUDGET
        while time.monotonic() < deadline and not all(w.last_ok > t_back for w in workers):
            time.sleep(0.2)
        recovered = [w.last_ok > t_back for w in workers]
        recovery = max(max(w.recovered_at for w in workers) - t_back, 0.0)
        assert all(recovered), (recovered, [w.errors[-3:] for w in workers])
        assert pool.alive()
        # a brand-new client works too
        with pool.connect() as c, c.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
        c.close()
    finally:
        stop_evt.set()
        for w in workers:
            w.join(15)
    after = sum(w.ok for w in workers)
    errors = sorted({e for w in workers for e in w.errors})
    print(f"restart: {before} ok before, {after} total, recovery {recovery:.1f}s, distinct errors: {errors}")
    assert pool.alive()
