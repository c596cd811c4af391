"""pgbench through the pooler: 100 clients, pool of 20, PostgreSQL max_connections=30.

0 failed transactions, and a sampler polling pg_stat_activity every 100 ms shows PostgreSQL
never sees more than 20 backends of app/appdb.
"""

import os
import re
import subprocess
import threading
import time

import pytest

import harness

POOL = 20


class BackendSampler(threading.Thread):
    def __init__(self, pg, interval=0.1):
        super().__init__(daemon=True)
        self.pg, self.interval = pg, interval
        self.samples = []
        self.stop_evt = threading.Event()
        self.error = None

    def run(self):
        try:
            conn = self.pg.connect()
            cur = conn.cursor()
            deadline = time.monotonic() + 300  # bounded even if nobody stops us
            while not self.stop_evt.is_set() and time.monotonic() < deadline:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND datname = %s "
                            "AND backend_type = 'client backend'", (harness.APP_USER, "appdb"))
                self.samples.append(cur.fetchone()[0])
                self.stop_evt.wait(self.interval)
            conn.close()
        except Exception as e:  # noqa: BLE001
            self.error = e

    def stop(self):
        self.stop_evt.set()
        self.join(10)
        assert self.error is None, self.error
        return self.samples


def run_pgbench(pg, pool, duration, protocol):
    args = [os.path.join(pg.bindir, "pgbench"), "-c", "100", "-j", "2", "-T", str(duration),
            f"--protocol={protocol}", "-n"]
    env = pool.env_for()
    return subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=duration + 90)


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("protocol,duration", [("simple", 30), ("extended", 10)])
def test_pgbench_100_clients_pool_20(pgbench_db, tidepool, protocol, duration):
    pg = pgbench_db
    assert pg.max_connections == 30
    pool = tidepool({"pool_mode": "transaction", "default_pool_size": str(POOL), "max_client_conn": "200"})
    pg.wait_backends_at_most(0)
    sampler = BackendSampler(pg)
    sampler.start()
    try:
        r = run_pgbench(pg, pool, duration, protocol)
    finally:
        samples = sampler.stop()
    out = r.stdout
    assert r.returncode == 0, out[-3000:]
    m = re.search(r"number of failed transactions: (\d+)", out)
    assert m and m.group(1) == "0", out[-3000:]
    processed = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))
    assert processed > 100 * 5, out[-3000:]
    assert "error" not in out.lower(), out[-3000:]
    assert len(samples) >= duration * 5, len(samples)  # the sampler really ran throughout
    peak = max(samples)
    assert peak <= POOL, f"PostgreSQL saw {peak} backends through a pool of {POOL}"
    assert peak >= 2, f"pooling never ran in parallel? peak={peak}"
    assert pool.alive()
    print(f"pgbench {protocol}: {processed} transactions, peak backends {peak}")
