"""Command line and signals (docs/compatibility.md): SIGINT safe shutdown, SIGTERM waits for
clients (PgBouncer >= 1.23), SIGHUP reload, -d with pidfile, refusing root without -u."""

import os
import signal
import subprocess
import time

import psycopg
import pytest

import harness


def wait_exit(d, timeout):
    try:
        return d.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def test_sigint_safe_shutdown_with_idle_clients(tidepool):
    d = tidepool({"pool_mode": "transaction"})
    c = d.connect()
    with c.cursor() as cur:
        cur.execute("SELECT 1")  # the server is released at once in transaction mode
    d.send_signal(signal.SIGINT)
    rc = wait_exit(d, 15)
    c.close()
    assert rc is not None, "SIGINT with no active transaction should exit promptly"
    assert rc == 0, (rc, d.log()[-2000:])
    assert "got SIGINT" in d.log()


def test_sighup_reload_applies_new_setting(tidepool):
    d = tidepool({"pool_mode": "transaction", "default_pool_size": "1"})
    a, b = d.connect(), d.connect()
    try:
        pids = set()
        for conn in (a, b):
            with conn.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                pids.add(cur.fetchone()[0])
        assert len(pids) == 1
    finally:
        a.close()
        b.close()
    # switch to session mode with a bigger pool; a RELOAD applies pool_mode to new clients
    d.rewrite_ini({"pool_mode": "session", "default_pool_size": "2"})
    d.reload()
    d.wait_log(r"got SIGHUP, re-reading config")
    time.sleep(0.5)
    a, b = d.connect(), d.connect()
    try:
        pids = set()
        for conn in (a, b):
            with conn.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                pids.add(cur.fetchone()[0])
        assert len(pids) == 2, "session mode: each client keeps its own server"
    finally:
        a.close()
        b.close()


@pytest.mark.tidepool_only(reason="SIGTERM = wait for clients then exit since PgBouncer 1.23; 1.18 exits at once")
def test_sigterm_waits_for_clients(tidepool):
    d = tidepool({"pool_mode": "transaction"})
    conn = psycopg.connect(d.dsn(), autocommit=True)
    try:
        conn.execute("SELECT 1")
        d.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert d.alive(), "SIGTERM must wait for connected clients"
        # TCP listener closed: new clients are refused, the existing one keeps working
        harness.wait_until(lambda: not harness.port_open("127.0.0.1", d.port), 5, what="listener closed")
        assert conn.execute("SELECT 2").fetchone() == (2,)
    finally:
        conn.close()
    rc = wait_exit(d, 10)
    assert rc is not None, "daemon must exit after the last client leaves"


def test_daemonize_writes_pidfile(tidepool):
    d = tidepool(start=False)
    pidfile = os.path.join(d.dir, "daemon.pid")
    d.rewrite_ini({"pidfile": pidfile, "logfile": os.path.join(d.dir, "daemon.log")})
    d.extra_args = ["-d"]
    rc, _, log = d.run_expect_exit(timeout=10)  # the foreground process exits after forking
    assert rc == 0, log
    pid = int(harness.wait_until(lambda: open(pidfile).read().strip(), 10, what="pidfile"))
    try:
        harness.wait_until(lambda: harness.port_open("127.0.0.1", d.port), 10, what="daemon listening")
        with d.connect() as c, c.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
        c.close()
    finally:
        os.kill(pid, signal.SIGQUIT)  # the daemon we started, by the PID it wrote
        harness.wait_until(lambda: not os.path.exists(f"/proc/{pid}") or
                           open(f"/proc/{pid}/stat").read().split()[2] == "Z", 10, what="daemon exit")


@pytest.mark.skipif(not harness.IS_ROOT, reason="only meaningful when the tests run as root")
def test_refuses_root_without_user_flag(tidepool):
    d = tidepool(start=False)
    os.chown(d.ini_path, 0, 0)
    os.chown(d.userlist_path, 0, 0)
    d.command = lambda: [d.binary, d.ini_path]  # no -u
    rc, elapsed, log = d.run_expect_exit(timeout=10)
    assert rc != 0
    assert "should not run as root" in log, log
