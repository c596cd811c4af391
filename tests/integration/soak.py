#!/usr/bin/env python3
"""Soak test (`make soak`, not in CI): SOAK_SECONDS (default 3600) of mixed load through tidepool
with periodic PostgreSQL restarts and RELOADs, reporting the daemon's memory and file
descriptors over time.

Load (all through tidepool, transaction pooling):
  - 8 clients running short write transactions (INSERT a token, read it back, COMMIT);
  - 2 clients opening a new connection per statement (connection storm);
  - 1 client using the extended protocol with prepared statements (psycopg 3, prepare=True);
  - 1 client doing COPY FROM STDIN;
  - 1 console client (stats user) running SHOW POOLS / SHOW STATS.
Faults: PostgreSQL restarted every SOAK_RESTART_EVERY seconds (alternating -m fast and
-m immediate; default: SOAK_SECONDS / 6), RELOAD (SIGHUP with a changed default_pool_size)
every SOAK_RELOAD_EVERY seconds (default: SOAK_SECONDS / 15).
A sample line every SOAK_SAMPLE_EVERY seconds (default 10): RSS, fds, PostgreSQL backends,
transactions and errors so far. SOAK_CSV=path also writes the samples as CSV.

Pass criteria (exit status 0): tidepool never exits; no client ever reads another client's
token; every transaction whose COMMIT succeeded is in the table; after the load stops the fd
count returns to its level before the load; RSS at the end is within max(8 MB, 25 %) of the
RSS after the first restart cycle (warm-up).

    TIDEPOOL_BIN=$PWD/build/tidepool SOAK_SECONDS=120 /usr/bin/python3 tests/integration/soak.py
"""

import csv
import os
import signal
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True

import fault_helpers as fh  # noqa: E402
import harness  # noqa: E402

SECONDS = int(os.environ.get("SOAK_SECONDS", "3600"))
RESTART_EVERY = float(os.environ.get("SOAK_RESTART_EVERY", max(30, SECONDS / 6)))
RELOAD_EVERY = float(os.environ.get("SOAK_RELOAD_EVERY", max(15, SECONDS / 15)))
SAMPLE_EVERY = float(os.environ.get("SOAK_SAMPLE_EVERY", "10"))


def token():
    return uuid.uuid4().hex[:16]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = {}
        self.errors = {}
        self.mismatch = []
        self.committed = []

    def add_ok(self, kind):
        with self.lock:
            self.ok[kind] = self.ok.get(kind, 0) + 1

    def add_err(self, kind, e):
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        with self.lock:
            key = f"{kind}: {msg}"
            self.errors[key] = self.errors.get(key, 0) + 1

    def total_ok(self):
        with self.lock:
            return sum(self.ok.values())

    def total_err(self):
        with self.lock:
            return sum(self.errors.values())


def worker_txn(d, st, stop, idx):
    import psycopg2
    conn = None
    while not stop.is_set():
        t = f"t{idx}-{token()}"
        try:
            if conn is None:
                conn = d.connect(autocommit=False)
            with conn.cursor() as cur:
                cur.execute("INSERT INTO soak (v) VALUES (%s)", (t,))
                cur.execute("SELECT v FROM soak WHERE v = %s", (t,))
                got = cur.fetchone()
            conn.commit()
            if got != (t,):
                st.mismatch.append(("txn", t, got))
            with st.lock:
                st.committed.append(t)
            st.add_ok("txn")
        except psycopg2.Error as e:
            st.add_err("txn", e)
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001
                    pass
            conn = None
            time.sleep(0.2)
    if conn is not None:
        conn.close()


def worker_churn(d, st, stop):
    import psycopg2
    while not stop.is_set():
        t = token()
        try:
            with d.connect() as c, c.cursor() as cur:
                cur.execute("SELECT %s", (t,))
                got = cur.fetchone()
            c.close()
            if got != (t,):
                st.mismatch.append(("churn", t, got))
            st.add_ok("churn")
        except psycopg2.Error as e:
            st.add_err("churn", e)
            time.sleep(0.2)


def worker_extended(d, st, stop):
    import psycopg
    conn = None
    while not stop.is_set():
        t = token()
        try:
            if conn is None:
                conn = psycopg.connect(d.dsn(), autocommit=True)
            got = conn.execute("SELECT %s::text, %s::int", (t, 7), prepare=True).fetchone()
            if got != (t, 7):
                st.mismatch.append(("extended", t, got))
            st.add_ok("extended")
        except psycopg.Error as e:
            st.add_err("extended", e)
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001
                    pass
            conn = None
            time.sleep(0.2)
    if conn is not None:
        conn.close()


def worker_copy(d, st, stop):
    import io

    import psycopg2
    while not stop.is_set():
        t = f"copy-{token()}"
        try:
            with d.connect(autocommit=False) as c:
                with c.cursor() as cur:
                    cur.copy_from(io.StringIO("".join(f"{t}-{i}\n" for i in range(20))), "soak", columns=("v",))
                c.commit()
            c.close()
            with st.lock:
                st.committed.extend(f"{t}-{i}" for i in range(20))
            st.add_ok("copy")
        except psycopg2.Error as e:
            st.add_err("copy", e)
        time.sleep(0.5)


def worker_console(d, st, stop):
    while not stop.is_set():
        try:
            c = harness.raw_login(d.port, "app", "pgbouncer", harness.APP_PASSWORD)
            c.query("SHOW POOLS")
            c.query("SHOW STATS")
            c.close()
            st.add_ok("console")
        except Exception as e:  # noqa: BLE001
            st.add_err("console", e)
        time.sleep(2)


def main():
    if SECONDS <= 0:
        print("SOAK_SECONDS must be > 0", file=sys.stderr)
        return 2
    harness.raise_nofile(8192)
    # synchronous_commit on: "-m immediate" must not lose a commit the client was told about
    # (the test cluster's default, off, would).
    pg = harness.PostgresServer(max_connections=60, extra_conf={"synchronous_commit": "on"})
    d = None
    stop = threading.Event()
    threads = []
    failures = []
    samples = []
    try:
        pg.init()
        pg.sql("CREATE TABLE soak (v text)", dbname="appdb")
        pg.sql(f"GRANT ALL ON soak TO {harness.APP_USER}", dbname="appdb")
        settings = {"pool_mode": "transaction", "default_pool_size": "10", "max_client_conn": "500",
                    "server_login_retry": "1", "query_wait_timeout": "60", "stats_users": "app",
                    "stats_period": "10"}
        d = harness.Daemon(pg, settings, nofile=8192)
        d.start()
        st = Stats()
        for i in range(8):
            threads.append(threading.Thread(target=worker_txn, args=(d, st, stop, i), daemon=True))
        for _ in range(2):
            threads.append(threading.Thread(target=worker_churn, args=(d, st, stop), daemon=True))
        threads.append(threading.Thread(target=worker_extended, args=(d, st, stop), daemon=True))
        threads.append(threading.Thread(target=worker_copy, args=(d, st, stop), daemon=True))
        threads.append(threading.Thread(target=worker_console, args=(d, st, stop), daemon=True))
        fds_idle = fh.fd_count(d.pid)
        t0 = time.monotonic()
        for t in threads:
            t.start()
        next_restart = t0 + RESTART_EVERY
        next_reload = t0 + RELOAD_EVERY
        next_sample = t0
        restarts = reloads = 0
        pool_size = 10
        warm_rss = None
        print(f"soak: {SECONDS}s, restart every {RESTART_EVERY:.0f}s, reload every {RELOAD_EVERY:.0f}s; "
              f"tidepool pid {d.pid}, postgres port {pg.port}", flush=True)
        print(f"{'t(s)':>6} {'rss(kB)':>9} {'fds':>5} {'backends':>8} {'ok':>8} {'errors':>7}  event", flush=True)
        while True:
            now = time.monotonic()
            if now - t0 >= SECONDS:
                break
            event = ""
            if not d.alive():
                failures.append(f"tidepool exited (status {d.proc.returncode}) at t={now - t0:.0f}s")
                break
            if now >= next_restart:
                mode = "fast" if restarts % 2 == 0 else "immediate"
                pg.stop(mode)
                time.sleep(1)
                pg.start()
                restarts += 1
                next_restart = now + RESTART_EVERY
                event = f"postgres restarted (-m {mode})"
                if restarts == 1:
                    warm_rss = None  # take the warm-up RSS at the next sample
            elif now >= next_reload:
                pool_size = 12 if pool_size == 10 else 10
                settings["default_pool_size"] = str(pool_size)
                d.rewrite_ini(settings)
                d.reload()
                reloads += 1
                next_reload = now + RELOAD_EVERY
                event = f"RELOAD (default_pool_size={pool_size})"
            if now >= next_sample or event:
                try:
                    backends = pg.count_backends()
                except Exception:  # noqa: BLE001
                    backends = -1
                s = {"t": round(now - t0), "rss_kb": fh.rss_kb(d.pid), "fds": fh.fd_count(d.pid),
                     "backends": backends, "ok": st.total_ok(), "errors": st.total_err(), "event": event}
                samples.append(s)
                if restarts >= 1 and warm_rss is None and not event:
                    warm_rss = s["rss_kb"]
                print(f"{s['t']:>6} {s['rss_kb']:>9} {s['fds']:>5} {s['backends']:>8} {s['ok']:>8} {s['errors']:>7}  {event}",
                      flush=True)
                if now >= next_sample:
                    next_sample = now + SAMPLE_EVERY
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(60)
        alive = d.alive()
        if not alive and not failures:
            failures.append(f"tidepool exited (status {d.proc.returncode})")
        if alive:
            try:
                harness.wait_until(lambda: fh.fd_count(d.pid) <= fds_idle + 20, 30, what="fds to settle")
            except TimeoutError:
                pass
            fds_end = fh.fd_count(d.pid)
            rss_end = fh.rss_kb(d.pid)
            # idle clients are gone; the pool's idle servers (<= pool size) may remain
            if fds_end > fds_idle + 20:
                failures.append(f"fds did not return: {fds_idle} before the load, {fds_end} after")
            base = warm_rss or (samples[0]["rss_kb"] if samples else rss_end)
            if rss_end - base > max(8 * 1024, base // 4):
                failures.append(f"RSS grew from {base} kB (after warm-up) to {rss_end} kB")
        else:
            fds_end = rss_end = -1
        # data: every committed token is there
        if st.mismatch:
            failures.append(f"{len(st.mismatch)} clients read another client's data, e.g. {st.mismatch[:3]}")
        rows = {r[0] for r in pg.sql("SELECT v FROM soak", dbname="appdb")}
        missing = [t for t in st.committed if t not in rows]
        if missing:
            failures.append(f"{len(missing)} committed rows missing, e.g. {missing[:3]}")
        rss = [s["rss_kb"] for s in samples]
        fds = [s["fds"] for s in samples]
        print("\nsoak summary")
        print(f"  duration {SECONDS}s, postgres restarts {restarts}, reloads {reloads}")
        print(f"  successful operations: {dict(sorted(st.ok.items()))}")
        print(f"  errors ({st.total_err()}), by kind:")
        for k, v in sorted(st.errors.items(), key=lambda kv: -kv[1])[:15]:
            print(f"    {v:>6}  {k}")
        if rss:
            print(f"  RSS kB: first {rss[0]}, after warm-up {warm_rss}, max {max(rss)}, end {rss_end}")
            print(f"  fds: before load {fds_idle}, max {max(fds)}, end {fds_end}")
        print(f"  committed rows checked: {len(st.committed)}, missing {len(missing)}; "
              f"token mix-ups: {len(st.mismatch)}")
        path = os.environ.get("SOAK_CSV")
        if path:
            with open(path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=["t", "rss_kb", "fds", "backends", "ok", "errors", "event"])
                w.writeheader()
                w.writerows(samples)
            print(f"  samples written to {path}")
        if failures:
            print("SOAK FAILED:\n  " + "\n  ".join(failures))
            print(d.log()[-3000:] if d else "")
            return 1
        print("SOAK PASSED")
        return 0
    finally:
        stop.set()
        if d is not None:
            d.stop(signal.SIGQUIT)
            if os.environ.get("SOAK_KEEP_LOG"):
                print(f"daemon log kept in {d.dir}")
            else:
                d.cleanup()
        pg.cleanup()


if __name__ == "__main__":
    sys.exit(main())
