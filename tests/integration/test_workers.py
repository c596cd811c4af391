"""workers = N: several event loops in threads, with each pool's limits holding across all of
them, idle servers moving to the worker whose clients wait, and the console reporting the whole
process. Each test pins `workers` so it does not depend on the machine's core count."""

import os
import subprocess
import threading
import time

import psycopg2
import pytest

import harness
from harness import APP_PASSWORD, APP_USER, raw_login
from test_pgbench import BackendSampler

pytestmark = pytest.mark.tidepool_only(reason="the workers setting is tidepool's")

ADMIN = {"admin_users": "postgres"}
USERS = {APP_USER: APP_PASSWORD, "postgres": "adminpw"}


def thread_cpu(pid):
    """CPU ticks per thread of the process (utime + stime), by thread id."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[int(tid)] = int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return out


def console(d):
    conn = psycopg2.connect(d.dsn(user="postgres", password="adminpw", dbname="pgbouncer"))
    conn.autocommit = True
    return conn


def show(d, what):
    conn = console(d)
    try:
        cur = conn.cursor()
        cur.execute(f"SHOW {what}")
        cols = [c.name for c in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]
    finally:
        conn.close()


def test_pool_limit_holds_across_two_workers(pgbench_db, tidepool):
    """200 pgbench clients on 2 workers, pool size 5: PostgreSQL never sees a 6th backend, no
    transaction fails, and both workers carried clients (each thread used CPU). A short
    query_wait_timeout makes starvation of one worker's clients a failure: the servers must go
    first come, first served across workers."""
    d = tidepool({"pool_mode": "transaction", "default_pool_size": "5", "max_client_conn": "300",
                  "workers": "2", "query_wait_timeout": "3", **ADMIN}, userlist=USERS, nofile=4096)
    # worker 0 runs on the main thread; worker 1's thread starts right after "process up"
    # (a sanitizer runtime may add a thread of its own)
    harness.wait_until(lambda: len(os.listdir(f"/proc/{d.pid}/task")) >= 2, 5, what="2 threads (2 workers)")
    cpu0 = thread_cpu(d.pid)
    sampler = BackendSampler(pgbench_db)
    sampler.start()
    r = subprocess.run([os.path.join(pgbench_db.bindir, "pgbench"), "-n", "-S", "-c", "200", "-j", "4",
                        "-T", "8"], env=d.env_for(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=120)
    sampler.stop_evt.set()
    sampler.join(10)
    cpu1 = thread_cpu(d.pid)
    assert r.returncode == 0, r.stdout
    assert "number of failed transactions: 0 " in r.stdout, r.stdout
    assert sampler.error is None, sampler.error
    assert sampler.samples and max(sampler.samples) <= 5, max(sampler.samples)
    used = {tid: cpu1.get(tid, 0) - cpu0.get(tid, 0) for tid in cpu1}
    busy = sorted(v for v in used.values() if v > 0)
    assert len(busy) >= 2, used
    print(f"\nbackends at most {max(sampler.samples)}; CPU ticks per busy thread {busy}")


def test_one_server_serves_the_clients_of_both_workers(tidepool, pg):
    """Pool size 1 and 2 workers, 16 clients querying without pause for 4 s: the only server
    connection moves to whichever worker's client has waited longest, so every client gets
    answers from the same backend, and none waits past query_wait_timeout = 2 (which it would
    if the worker holding the server kept serving its own queue first)."""
    d = tidepool({"pool_mode": "transaction", "default_pool_size": "1", "workers": "2",
                  "query_wait_timeout": "2", **ADMIN}, userlist=USERS)
    clients = [raw_login(d.port, APP_USER, "appdb", APP_PASSWORD) for _ in range(16)]
    errors, pids, counts = [], set(), [0] * len(clients)
    lock = threading.Lock()
    deadline = time.monotonic() + 4

    def run(i, c):
        try:
            k = 0
            while time.monotonic() < deadline:
                rows, _ = c.query(f"SELECT pg_backend_pid(), {i} * 100000 + {k}")
                assert rows[0][1] == str(i * 100000 + k), rows
                with lock:
                    pids.add(rows[0][0])
                k += 1
            counts[i] = k
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    ts = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    for c in clients:
        c.close()
    assert not errors, errors
    assert len(pids) == 1, pids
    assert min(counts) > 0, counts
    assert pg.count_backends() <= 1
    print(f"\nqueries per client in 4 s: {sorted(counts)}")


def test_max_client_conn_counts_every_worker(tidepool):
    """max_client_conn = 10 with 2 workers: 10 clients log in, the 11th is refused."""
    d = tidepool({"max_client_conn": "10", "workers": "2"})
    held = [raw_login(d.port, APP_USER, "appdb", APP_PASSWORD) for _ in range(10)]
    try:
        with pytest.raises(harness.WireError) as ei:
            raw_login(d.port, APP_USER, "appdb", APP_PASSWORD).close()
        assert "max_client_conn" in str(ei.value)
    finally:
        for c in held:
            c.close()
    # the slots come back: a new client gets in
    time.sleep(0.3)
    raw_login(d.port, APP_USER, "appdb", APP_PASSWORD).close()


def test_console_reports_the_whole_process(tidepool):
    """40 clients spread over 4 workers: SHOW POOLS has one appdb/app row counting all 40,
    SHOW CLIENTS lists all 40, SHOW DATABASES counts them, SHOW STATS sums every worker."""
    d = tidepool({"pool_mode": "transaction", "default_pool_size": "3", "workers": "4", **ADMIN},
                 userlist=USERS)
    clients = [raw_login(d.port, APP_USER, "appdb", APP_PASSWORD) for _ in range(40)]
    try:
        for i, c in enumerate(clients):
            assert c.query(f"SELECT {i}")[0] == [[str(i)]]
        pools = [p for p in show(d, "POOLS") if p["database"] == "appdb"]
        assert len(pools) == 1, pools
        assert int(pools[0]["cl_active"]) == 40, pools
        assert int(pools[0]["sv_idle"]) + int(pools[0]["sv_used"]) + int(pools[0]["sv_active"]) <= 3, pools
        assert len([r for r in show(d, "CLIENTS") if r["database"] == "appdb"]) == 40
        db = [r for r in show(d, "DATABASES") if r["name"] == "appdb"]
        assert len(db) == 1 and int(db[0]["current_client_connections"]) == 40, db
        stats = [r for r in show(d, "STATS") if r["database"] == "appdb"]
        assert len(stats) == 1 and int(stats[0]["total_query_count"]) >= 40, stats
        lists = {r["list"]: int(r["items"]) for r in show(d, "LISTS")}
        assert lists["used_clients"] >= 40 and lists["pools"] == 2, lists  # appdb/app and the console
    finally:
        for c in clients:
            c.close()


def test_cancel_reaches_a_client_of_another_worker(tidepool, pg):
    """A cancel request is accepted by whichever worker wakes first; the key names the worker
    that owns the client, which runs the cancel. Ten tries make both paths all but certain."""
    d = tidepool({"pool_mode": "transaction", "workers": "2"})

    def sleeping():
        return pg.sql("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                      "AND query = 'SELECT pg_sleep(10)'")[0][0] == 1

    for _ in range(10):
        conn = psycopg2.connect(d.dsn())
        cur = conn.cursor()
        err = []

        def cancel_when_running():
            try:
                harness.wait_until(sleeping, 10, what="the query running in PostgreSQL")
                conn.cancel()
            except Exception as e:  # noqa: BLE001
                err.append(repr(e))

        t = threading.Thread(target=cancel_when_running)
        t.start()
        t0 = time.monotonic()
        with pytest.raises(psycopg2.errors.QueryCanceled):
            cur.execute("SELECT pg_sleep(10)")
        t.join(15)
        assert not err, err
        assert time.monotonic() - t0 < 9
        conn.close()
