#!/usr/bin/python3
"""The user's scenario, measured: Django (gunicorn) + Locust at 50 and 100 users, directly against
PostgreSQL and through tidepool in transaction mode.

    scenario.py full  [--duration 300] [--keep]   the four runs, then REPORT.md and chart.png
    scenario.py smoke [--duration 30]             one short pooled run plus check/migrate; CI

Everything binds 127.0.0.1 (or a Unix socket in a temp dir), every wait is bounded, and every
process this script starts is stopped by its own PID. PostgreSQL runs as the `postgres` user.
"""
import argparse
import csv
import json
import os
import platform
import pwd
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
APP_DIR = os.path.join(HERE, "ahsp")
LOCUSTFILE = os.path.join(HERE, "locustfile.py")
RESULTS = os.path.join(HERE, "results")
PYTHON = "/usr/bin/python3"

IS_ROOT = os.geteuid() == 0
PG_OS_USER = "postgres"

DB_NAME, DB_USER, DB_PASSWORD = "ahsp", "app", "app-secret-pw"
APP_PASSWORD = "ahsp-pass"  # the Django accounts' password (user001..)

# Scaling (see REPORT.md, "Scaling choices"). The seed: max_connections 200, default_pool_size 25,
# reserve_pool_size 5, max_client_conn 1000. Ours keeps the pooler settings and scales PostgreSQL.
CFG = {
    "max_connections": int(os.getenv("SCENARIO_MAX_CONNECTIONS", "50")),
    "superuser_reserved_connections": 3,
    "default_pool_size": int(os.getenv("SCENARIO_POOL_SIZE", "25")),
    "reserve_pool_size": int(os.getenv("SCENARIO_RESERVE_POOL", "5")),
    "max_client_conn": 1000,
    "gunicorn_workers": int(os.getenv("SCENARIO_WORKERS", "2")),
    "gunicorn_threads": int(os.getenv("SCENARIO_THREADS", "50")),
    "spawn_rate": 2,
    "wait_min": float(os.getenv("SCENARIO_WAIT_MIN", "1")),
    "wait_max": float(os.getenv("SCENARIO_WAIT_MAX", "3")),
    "dashboard_sleep": float(os.getenv("SCENARIO_DASHBOARD_SLEEP", "0.1")),
    "sample_interval": 0.5,
}


def log(msg):
    print(f"[scenario {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- small utilities


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port, timeout=0.3):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(pred, timeout, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - keep polling, remember the error
            last = e
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}; last error: {last!r}")
        time.sleep(interval)


def as_pg_user(cmd):
    return (["runuser", "-u", PG_OS_USER, "--"] + cmd) if IS_ROOT else cmd


def chown_pg(path):
    if not IS_ROOT:
        return
    pw = pwd.getpwnam(PG_OS_USER)
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for n in files:
            os.chown(os.path.join(root, n), pw.pw_uid, pw.pw_gid)


def stop_proc(proc, sig=signal.SIGTERM, timeout=20, name="process"):
    """Stop one process we started, by its PID: sig, bounded wait, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log(f"{name} (pid {proc.pid}) did not stop in {timeout}s: SIGKILL")
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def tcp_established(port):
    """ESTABLISHED TCP sockets whose local port is `port` (the server side of connections)."""
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    p = line.split()
                    if p[3] == "01" and int(p[1].rsplit(":", 1)[1], 16) == port:
                        n += 1
        except OSError:
            pass
    return n


CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_table():
    """{pid: (ppid, cpu seconds incl. reaped children)} for every process, from /proc/PID/stat."""
    t = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rfind(")") + 2:].split()
        # fields after the name: state ppid ... utime(14) stime(15) cutime(16) cstime(17), 1-based from pid
        t[int(d)] = (int(rest[1]), sum(int(x) for x in rest[11:15]) / CLK_TCK)
    return t


def tree_cpu(table, root):
    """CPU seconds of a process tree we started (root and its live descendants, plus reaped ones)."""
    if root is None or root not in table:
        return 0.0
    kids = {}
    for pid, (ppid, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    total, stack, seen = 0.0, [root], set()
    while stack and len(seen) < 100000:
        p = stack.pop()
        if p in seen or p not in table:
            continue
        seen.add(p)
        total += table[p][1]
        stack.extend(kids.get(p, []))
    return total


def machine_cpu():
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / CLK_TCK, sum(v[:8]) / CLK_TCK


def wait_for_quiet(max_wait, busy_below=25.0, window=5.0):
    """Before a run: wait (bounded by max_wait seconds) until the machine's CPU is mostly idle, since
    other jobs on a shared machine skew the timings. Returns the busy % of the last window."""
    deadline = time.monotonic() + max_wait
    for i in range(100000):
        b0, t0 = machine_cpu()
        time.sleep(window)
        b1, t1 = machine_cpu()
        busy = 100.0 * (b1 - b0) / max(t1 - t0, 1e-9)
        if busy < busy_below or time.monotonic() >= deadline:
            if i:
                log(f"machine {busy:.0f}% busy; starting the run")
            return round(busy, 1)
        if i % 6 == 0:
            log(f"machine {busy:.0f}% busy with other work; waiting for a quieter moment "
                f"(at most {deadline - time.monotonic():.0f}s more)")
    return None


class CpuMeter:
    """CPU used by each component we started, and by the machine as a whole, over one run."""

    def __init__(self):
        self.roots = {}

    def start(self, roots):
        self.roots = roots
        self.t = time.monotonic()
        tab = proc_table()
        self.before = {k: tree_cpu(tab, pid) for k, pid in roots.items()}
        self.m0 = machine_cpu()
        self.load0 = os.getloadavg()[0]
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.children0 = ru.ru_utime + ru.ru_stime
        ru = resource.getrusage(resource.RUSAGE_SELF)
        self.self0 = ru.ru_utime + ru.ru_stime

    def stop(self):
        tab = proc_table()
        wall = time.monotonic() - self.t
        m1 = machine_cpu()
        out = {k: round(tree_cpu(tab, pid) - self.before[k], 1) for k, pid in self.roots.items()}
        # Locust has exited and been reaped by now: its CPU is in our RUSAGE_CHILDREN
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        out["locust"] = round(ru.ru_utime + ru.ru_stime - self.children0, 1)
        ru = resource.getrusage(resource.RUSAGE_SELF)
        out["sampler"] = round(ru.ru_utime + ru.ru_stime - self.self0, 1)
        busy = m1[0] - self.m0[0]
        out["machine_busy"] = round(busy, 1)
        out["others"] = round(busy - sum(v for k, v in out.items() if k != "machine_busy"), 1)
        out["wall"] = round(wall, 1)
        out["machine_busy_pct"] = round(100 * busy / (wall * (os.cpu_count() or 1)), 1)
        out["loadavg_start"] = round(self.load0, 2)
        out["loadavg_end"] = round(os.getloadavg()[0], 2)
        return out


def raise_nofile(n=8192):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < n:
        if hard != resource.RLIM_INFINITY and hard < n:
            hard = n if IS_ROOT else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard) if hard != resource.RLIM_INFINITY else n, hard))


def read_from(path, offset):
    try:
        with open(path, errors="replace") as f:
            f.seek(offset)
            return f.read()
    except OSError:
        return ""


def file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


# --------------------------------------------------------------------------- PostgreSQL


class Postgres:
    def __init__(self, base):
        self.bindir = "/usr/lib/postgresql/15/bin"
        self.base = os.path.join(base, "pg")
        os.makedirs(self.base)
        self.datadir = os.path.join(self.base, "data")
        self.logfile = os.path.join(self.base, "postgres.log")
        self.port = free_port()
        self._conn = None

    def _run(self, cmd, timeout=120):
        r = subprocess.run(as_pg_user(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=timeout, cwd=self.base)
        if r.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed ({r.returncode}):\n{r.stdout}\n{read_from(self.logfile, 0)[-3000:]}")
        return r.stdout

    def setup(self):
        chown_pg(self.base)
        self._run([os.path.join(self.bindir, "initdb"), "-D", self.datadir, "-U", "postgres", "-E", "UTF8",
                   "--locale=C", "-A", "trust", "--no-sync"], timeout=180)
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": self.port,
            "unix_socket_directories": f"'{self.base}'",
            "max_connections": CFG["max_connections"],
            "superuser_reserved_connections": CFG["superuser_reserved_connections"],
            "password_encryption": "'scram-sha-256'",
            "synchronous_commit": "off",
            "shared_buffers": "'128MB'",
            "log_min_messages": "warning",
            "log_line_prefix": "'%m [%p] %u@%d '",
            "logging_collector": "off",
        }
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write("\n# tidepool scenario\n" + "".join(f"{k} = {v}\n" for k, v in conf.items()))
        with open(os.path.join(self.datadir, "pg_hba.conf"), "w") as f:
            f.write("local all postgres trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
        chown_pg(self.base)
        self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, "-l", self.logfile, "-w", "-t", "60",
                   "start"], timeout=90)
        self.sql(f"CREATE ROLE {DB_USER} LOGIN PASSWORD '{DB_PASSWORD}'")
        # The seed passes statement_timeout and idle_in_transaction_session_timeout as a startup
        # `options` parameter, which a pooler drops (ignore_startup_parameters); set them on the role
        # so they hold both ways.
        self.sql(f"ALTER ROLE {DB_USER} SET statement_timeout = '60s'")
        self.sql(f"ALTER ROLE {DB_USER} SET idle_in_transaction_session_timeout = '120s'")
        self.sql(f"CREATE DATABASE {DB_NAME} OWNER {DB_USER}")
        stored = self.sql("SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname = %s", (DB_USER,))[0][0]
        assert stored.startswith("SCRAM-SHA-256$"), stored
        return self

    def stop(self):
        self.close()
        if os.path.exists(os.path.join(self.datadir, "postmaster.pid")):
            subprocess.run(as_pg_user([os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, "-m", "fast", "-w",
                                       "-t", "60", "stop"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=90, cwd=self.base)

    def connect(self, dbname="postgres"):
        import psycopg2

        c = psycopg2.connect(host=self.base, port=self.port, user="postgres", dbname=dbname, connect_timeout=10)
        c.autocommit = True
        return c

    def close(self):
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001
                pass
            self._conn = None

    def sql(self, q, params=None, dbname="postgres"):
        if dbname != "postgres":
            c = self.connect(dbname)
            try:
                with c.cursor() as cur:
                    cur.execute(q, params)
                    return cur.fetchall() if cur.description else []
            finally:
                c.close()
        if self._conn is None or self._conn.closed:
            self._conn = self.connect()
        with self._conn.cursor() as cur:
            cur.execute(q, params)
            return cur.fetchall() if cur.description else []

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.datadir, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def app_backends(self):
        return self.sql("SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND datname = %s "
                        "AND backend_type = 'client backend'", (DB_USER, DB_NAME))[0][0]

    def version(self):
        return self.sql("SHOW server_version")[0][0]


# --------------------------------------------------------------------------- the pooler


def tidepool_binary():
    return os.environ.get("TIDEPOOL_BIN") or os.path.join(REPO, "build", "tidepool")


class Pooler:
    """tidepool with a pgbouncer.ini shaped like the seed's."""

    def __init__(self, base, pg, name="pooler"):
        self.pg = pg
        self.dir = os.path.join(base, name)
        os.makedirs(self.dir)
        self.ini = os.path.join(self.dir, "pgbouncer.ini")
        self.userlist = os.path.join(self.dir, "userlist.txt")
        self.logfile = os.path.join(self.dir, "tidepool.log")
        self.stderr = os.path.join(self.dir, "stderr.log")
        self.port = free_port()
        self.proc = None
        self.ignore_startup_parameters = ""

    def write_config(self):
        settings = [
            ("pool_mode", "transaction"),
            ("listen_addr", "127.0.0.1"),
            ("listen_port", self.port),
            ("unix_socket_dir", self.dir),
            ("auth_type", "md5"),
            ("auth_file", self.userlist),
            ("admin_users", DB_USER),
            ("max_client_conn", CFG["max_client_conn"]),
            ("default_pool_size", CFG["default_pool_size"]),
            ("reserve_pool_size", CFG["reserve_pool_size"]),
            ("reserve_pool_timeout", 5),
            ("server_connect_timeout", 15),
            ("server_idle_timeout", 600),
            ("server_lifetime", 3600),
            ("client_idle_timeout", 600),
            ("logfile", self.logfile),
            ("pidfile", os.path.join(self.dir, "tidepool.pid")),
            ("log_connections", 1),
            ("log_disconnections", 1),
            ("log_pooler_errors", 1),
            ("max_prepared_statements", 100),
        ]
        if self.ignore_startup_parameters:
            settings.append(("ignore_startup_parameters", self.ignore_startup_parameters))
        text = (f"[databases]\n{DB_NAME} = host=127.0.0.1 port={self.pg.port} dbname={DB_NAME}\n\n[pgbouncer]\n"
                + "".join(f"{k} = {v}\n" for k, v in settings))
        with open(self.ini, "w") as f:
            f.write(text)
        # auth_type md5 with the plain password in the auth_file: the pooler checks clients with md5
        # and logs in to PostgreSQL (SCRAM) with the same password.
        with open(self.userlist, "w") as f:
            f.write(f'"{DB_USER}" "{DB_PASSWORD}"\n')
        for p in (self.ini, self.userlist):
            os.chmod(p, 0o600)
        chown_pg(self.dir)
        return text

    def start(self, timeout=15):
        binary = tidepool_binary()
        if not os.access(binary, os.X_OK):
            raise RuntimeError(f"no pooler binary at {binary} (run make)")
        self.write_config()
        cmd = [binary] + (["-u", PG_OS_USER] if IS_ROOT else []) + [self.ini]

        def pre():
            os.setsid()
            resource.setrlimit(resource.RLIMIT_NOFILE, (4096, max(4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1])))

        with open(self.stderr, "ab") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err, cwd=self.dir,
                                         preexec_fn=pre)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tidepool exited ({self.proc.returncode}):\n{self.log()[-3000:]}")
            if port_open(self.port):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"tidepool did not listen within {timeout}s:\n{self.log()[-3000:]}")

    def reload(self, **changes):
        for k, v in changes.items():
            setattr(self, k, v)
        self.write_config()
        os.kill(self.proc.pid, signal.SIGHUP)
        time.sleep(1.0)

    def stop(self):
        stop_proc(self.proc, signal.SIGINT, timeout=15, name="tidepool")

    def log(self):
        return read_from(self.logfile, 0) + read_from(self.stderr, 0)

    def version(self):
        try:
            r = subprocess.run([tidepool_binary(), "-V"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=10)
            return r.stdout.strip().splitlines()[0] if r.stdout.strip() else "?"
        except Exception as e:  # noqa: BLE001
            return f"? ({e})"

    def show(self, what="POOLS", timeout=5):
        """SHOW <what> on the admin console; list of dicts. Raises if the console does not answer."""
        import psycopg2

        c = psycopg2.connect(host="127.0.0.1", port=self.port, user=DB_USER, password=DB_PASSWORD,
                             dbname="pgbouncer", connect_timeout=timeout)
        try:
            c.autocommit = True
            with c.cursor() as cur:
                cur.execute(f"SHOW {what}")
                cols = [d[0] for d in cur.description]
                return [dict(zip(cols, row)) for row in cur.fetchall()]
        finally:
            c.close()


# --------------------------------------------------------------------------- Django / gunicorn


def django_env(pg, pooler=None, extra=None):
    env = dict(os.environ)
    for k in ("PGBOUNCER_PORT", "POSTGRES_PORT", "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"):
        env.pop(k, None)
    env.update({
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "POSTGRES_DB": DB_NAME,
        "POSTGRES_USER": DB_USER,
        "POSTGRES_PASSWORD": DB_PASSWORD,
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": str(pg.port),
        "SCENARIO_DASHBOARD_SLEEP": str(CFG["dashboard_sleep"]),
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    if pooler is not None:
        env["PGBOUNCER_PORT"] = str(pooler.port)  # exactly the seed's switch
    env.update(extra or {})
    return env


def manage(args, env, timeout=300):
    """Run manage.py; returns (returncode, output)."""
    r = subprocess.run([PYTHON, "manage.py"] + args, cwd=APP_DIR, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return r.returncode, r.stdout


class Gunicorn:
    def __init__(self, base, env, name):
        self.dir = os.path.join(base, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.env = env
        self.errlog = os.path.join(self.dir, "gunicorn.log")
        self.proc = None

    def start(self, timeout=60):
        cmd = ["/usr/bin/gunicorn", "--chdir", APP_DIR, "--bind", f"127.0.0.1:{self.port}",
               "--workers", str(CFG["gunicorn_workers"]), "--worker-class", "gthread",
               "--threads", str(CFG["gunicorn_threads"]), "--timeout", "120", "--graceful-timeout", "10",
               "--keep-alive", "30", "--log-level", "warning", "--error-logfile", self.errlog,
               "config.wsgi:application"]
        self.cmd = cmd
        with open(self.errlog, "ab") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err, cwd=APP_DIR,
                                         env=self.env, preexec_fn=os.setsid)

        def healthy():
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({self.proc.returncode}):\n{read_from(self.errlog, 0)[-3000:]}")
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health/", timeout=5) as r:
                return r.status == 200

        try:
            wait_until(healthy, timeout, interval=0.3, what="gunicorn /health/")
        except TimeoutError as e:
            raise RuntimeError(f"{e}\n{read_from(self.errlog, 0)[-3000:]}") from None
        return self

    def stop(self):
        stop_proc(self.proc, signal.SIGTERM, timeout=20, name="gunicorn")


# --------------------------------------------------------------------------- sampling


POOL_COLS = ("cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_used", "sv_login", "maxwait")


class Sampler(threading.Thread):
    """Every 0.5 s: the app's backends in pg_stat_activity, and SHOW POOLS when there is a console."""

    def __init__(self, pg, pooler, path, t0):
        super().__init__(daemon=True)
        self.pg, self.pooler, self.path, self.t0 = pg, pooler, path, t0
        self.stop_event = threading.Event()
        self.console_error = None
        self.rows = []

    def _pools(self, conn_holder):
        import psycopg2

        if conn_holder.get("c") is None:
            c = psycopg2.connect(host="127.0.0.1", port=self.pooler.port, user=DB_USER, password=DB_PASSWORD,
                                 dbname="pgbouncer", connect_timeout=5)
            c.autocommit = True
            conn_holder["c"] = c
        with conn_holder["c"].cursor() as cur:
            cur.execute("SHOW POOLS")
            cols = [d[0] for d in cur.description]
            for row in cur.fetchall():
                d = dict(zip(cols, row))
                if d.get("database") == DB_NAME:
                    return d
        return {}

    def run(self):
        pgc = self.pg.connect()
        holder = {"c": None}
        console_failures = 0
        q = ("SELECT count(*), count(*) FILTER (WHERE state = 'active'), "
             "count(*) FILTER (WHERE state LIKE 'idle in transaction%%') "
             "FROM pg_stat_activity WHERE usename = %s AND datname = %s AND backend_type = 'client backend'")
        limit = time.monotonic() + 3600  # a hard bound on the loop, whatever happens
        try:
            while not self.stop_event.is_set() and time.monotonic() < limit:
                t = time.time()
                row = {"t": round(t - self.t0, 2)}
                try:
                    with pgc.cursor() as cur:
                        cur.execute(q, (DB_USER, DB_NAME))
                        row["pg_total"], row["pg_active"], row["pg_idle_in_tx"] = cur.fetchone()
                except Exception as e:  # noqa: BLE001
                    row["pg_error"] = str(e)[:100]
                    try:
                        pgc.close()
                    except Exception:  # noqa: BLE001
                        pass
                    pgc = self.pg.connect()
                if self.pooler is not None:
                    # /proc/net/tcp is long with one TIME_WAIT socket per request: read it only
                    # when the console does not answer (the fallback count of pooler clients)
                    if console_failures:
                        row["tcp_clients"] = tcp_established(self.pooler.port)
                    if console_failures < 3:
                        try:
                            d = self._pools(holder)
                            for k in POOL_COLS:
                                if k in d:
                                    row[k] = d[k]
                            console_failures = 0
                        except Exception as e:  # noqa: BLE001
                            console_failures += 1
                            self.console_error = " ".join(str(e).split())[:200]
                            try:
                                if holder["c"] is not None:
                                    holder["c"].close()
                            except Exception:  # noqa: BLE001
                                pass
                            holder["c"] = None
                self.rows.append(row)
                self.stop_event.wait(max(0.0, CFG["sample_interval"] - (time.time() - t)))
        finally:
            pgc.close()
            if holder["c"] is not None:
                try:
                    holder["c"].close()
                except Exception:  # noqa: BLE001
                    pass
            self.write()

    def write(self):
        cols = ["t", "pg_total", "pg_active", "pg_idle_in_tx", "tcp_clients", *POOL_COLS, "pg_error"]
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            for r in self.rows:
                w.writerow(r)

    def stop(self):
        self.stop_event.set()
        self.join(timeout=20)


# --------------------------------------------------------------------------- one run


def locust_version():
    try:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "python3-locust"], stdout=subprocess.PIPE,
                           text=True, timeout=10)
        return r.stdout.strip() or "?"
    except Exception:  # noqa: BLE001
        return "?"


def run_load(base, pg, mode, users, duration, outdir, spawn_rate=None, accounts=100, wait=None, quiet_wait=0):
    """One Locust run against a fresh gunicorn (and a fresh pooler when pooled)."""
    name = f"{mode}-{users}u"
    os.makedirs(outdir, exist_ok=True)
    log(f"run {name}: {users} users, -r {spawn_rate or CFG['spawn_rate']}, {duration}s")
    pooler = gun = sampler = None
    wait_until(lambda: pg.app_backends() == 0, 60, interval=0.5, what="no app backends left before the run")
    pg.sql("VACUUM ANALYZE", dbname=DB_NAME)
    busy_before = wait_for_quiet(quiet_wait) if quiet_wait else None
    pg_log_off = file_size(pg.logfile)
    try:
        if mode == "pooled":
            pooler = Pooler(base, pg, name=f"pooler-{name}")
            pooler.ignore_startup_parameters = "options"
            pooler.start()
        gun = Gunicorn(base, django_env(pg, pooler), name=f"gunicorn-{name}").start()
        url = f"http://127.0.0.1:{gun.port}"
        prefix = os.path.join(base, f"locust-{name}", "run")
        os.makedirs(os.path.dirname(prefix))
        env = dict(os.environ)
        wmin, wmax = wait or (CFG["wait_min"], CFG["wait_max"])
        env.update({"SCENARIO_USERS": str(accounts), "SCENARIO_PASSWORD": APP_PASSWORD,
                    "SCENARIO_WAIT_MIN": str(wmin), "SCENARIO_WAIT_MAX": str(wmax)})
        cmd = ["/usr/bin/locust", "-f", LOCUSTFILE, "--headless", "-u", str(users), "-r",
               str(spawn_rate or CFG["spawn_rate"]), "-t", f"{duration}s", "--host", url, "--csv", prefix,
               "--csv-full-history", "--only-summary", "--stop-timeout", "10", "--exit-code-on-error", "0",
               "--loglevel", "WARNING"]
        t0 = time.time()
        sampler = Sampler(pg, pooler, os.path.join(outdir, "samples.csv"), t0)
        sampler.start()
        meter = CpuMeter()
        with open(os.path.join(base, f"locust-{name}.log"), "wb") as lf:
            lp = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=lf, stderr=lf, env=env, cwd=HERE,
                                  preexec_fn=os.setsid)
            meter.start({"postgres": pg.postmaster_pid(), "tidepool": pooler.proc.pid if pooler else None,
                         "gunicorn": gun.proc.pid})
            try:
                rc = lp.wait(timeout=duration + 120)
            except subprocess.TimeoutExpired:
                stop_proc(lp, signal.SIGINT, timeout=20, name="locust")
                rc = "timeout"
        t1 = time.time()
        cpu = meter.stop()
        sampler.stop()
        if rc not in (0, "0"):
            raise RuntimeError(f"locust exited with {rc}:\n{read_from(os.path.join(base, f'locust-{name}.log'), 0)[-3000:]}")
        # keep the Locust CSVs that the report needs (history: the Aggregated rows only)
        shutil.copy(prefix + "_stats.csv", os.path.join(outdir, "stats.csv"))
        shutil.copy(prefix + "_failures.csv", os.path.join(outdir, "failures.csv"))
        with open(prefix + "_stats_history.csv", newline="") as fi, \
                open(os.path.join(outdir, "history.csv"), "w", newline="") as fo:
            r = csv.reader(fi)
            w = csv.writer(fo)
            hdr = next(r)
            w.writerow(hdr)
            ni = hdr.index("Name")
            for row in r:
                if row[ni] == "Aggregated":
                    w.writerow(row)
        pg_log = read_from(pg.logfile, pg_log_off)
        meta = {
            "name": name, "mode": mode, "users": users, "spawn_rate": spawn_rate or CFG["spawn_rate"],
            "duration_s": duration, "t0": t0, "wall_s": round(t1 - t0, 1), "locust_cmd": cmd_for_report(cmd),
            "gunicorn_cmd": cmd_for_report(gun.cmd), "wait": [wmin, wmax],
            "pg_fatal_too_many_clients": len(re.findall(r"too many clients already|remaining connection slots",
                                                        pg_log)),
            "pg_log_tail": [ln for ln in pg_log.splitlines() if "FATAL" in ln or "ERROR" in ln][:5],
            "console_error": sampler.console_error if pooler else None,
            "cpu_s": cpu,
            "machine_busy_pct_before": busy_before,
        }
        if pooler is not None:
            plog = pooler.log()
            meta["pooler_log_lines"] = len(plog.splitlines())
            meta["pooler_log_errors"] = [ln for ln in plog.splitlines()
                                         if re.search(r"\b(ERROR|FATAL|WARNING|PANIC)\b", ln)][:10]
            meta["pooler_log_error_count"] = sum(1 for ln in plog.splitlines()
                                                 if re.search(r"\b(ERROR|FATAL|PANIC)\b", ln))
            meta["pooler_alive_after"] = pooler.proc.poll() is None
        gerr = read_from(gun.errlog, 0)
        meta["gunicorn_errors"] = [ln for ln in gerr.splitlines() if "[ERROR]" in ln or "CRITICAL" in ln][:5]
        with open(os.path.join(outdir, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1)
        return meta
    finally:
        if sampler is not None and sampler.is_alive():
            sampler.stop()
        if gun is not None:
            gun.stop()
        if pooler is not None:
            pooler.stop()


def cmd_for_report(cmd):
    """A command line with temp paths and ports replaced by placeholders."""
    out = []
    for a in cmd:
        a = re.sub(r"http://127\.0\.0\.1:\d+", "http://127.0.0.1:$GUNICORN_PORT", a)
        a = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:$GUNICORN_PORT", a)
        a = re.sub(r"^/tmp/[^ ]*/locust-([^/]+)/run$", r"$WORK/locust-\1/run", a)
        a = a.replace(HERE + "/", "tests/scenario/")
        a = re.sub(r"/tmp/tp-scenario-[^/ ]+", "$WORK", a)
        out.append(a)
    return " ".join(out)


# --------------------------------------------------------------------------- preflight (the seed's checklist)


def preflight(base, pg, accounts):
    """The seed's checklist through the pooler: check --database, migrate, a query, SHOW POOLS."""
    res = {"steps": []}

    def step(name, ok, out, required=True):
        res["steps"].append({"name": name, "ok": bool(ok), "required": required,
                             "output": "\n".join(out.strip().splitlines()[-8:])})
        log(f"preflight: {name}: {'ok' if ok else 'FAILED'}")

    pooler = Pooler(base, pg, name="pooler-preflight")
    try:
        pooler.start()
        res["pooler_ini"] = pooler.write_config().replace(base, "$WORK")
        env = django_env(pg, pooler)
        # 1. the seed's settings as they are (with the `options` startup parameter), seed's ini as is
        rc, out = manage(["check", "--database", "default"], env)
        step("check --database default, seed's OPTIONS (startup parameter `options`), "
             "ini without ignore_startup_parameters", rc == 0, out, required=False)
        res["options_rejected"] = rc != 0 and "unsupported startup parameter" in out
        # 2. ignore_startup_parameters = options (reload), then everything through the pooler
        pooler.reload(ignore_startup_parameters="options")
        rc, out = manage(["check", "--database", "default"], env)
        step("check --database default, after `ignore_startup_parameters = options` + reload", rc == 0, out)
        rc, out = manage(["migrate", "--noinput"], env)
        step("migrate (transaction pooling)", rc == 0, out)
        rc, out = manage(["seed_scenario", "--users", str(accounts), "--password", APP_PASSWORD], env)
        step(f"seed_scenario ({accounts} accounts)", rc == 0, out)
        rc, out = manage(["shell", "-c", "from django.db import connection as c; cur = c.cursor(); "
                          "cur.execute('SELECT version()'); print(cur.fetchone()[0].split(',')[0]); "
                          "cur.execute('SHOW statement_timeout'); print('statement_timeout', cur.fetchone()[0]); "
                          "print('port', c.settings_dict['PORT'], 'CONN_MAX_AGE', c.settings_dict['CONN_MAX_AGE'])"],
                         env)
        step("manage.py shell: SELECT version(), statement_timeout, port", rc == 0 and str(pooler.port) in out, out)
        rc, out = manage(["showmigrations", "core"], env)
        step("showmigrations core", rc == 0 and "[X] 0001_initial" in out, out)
        # 3. the admin console, as the seed's monitoring step (psql -d pgbouncer, SHOW POOLS)
        try:
            r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(pooler.port), "-U", DB_USER, "-d", "pgbouncer",
                                "-c", "SHOW POOLS", "-c", "SHOW pool_mode", "-c", "SHOW max_client_conn"],
                               env={**os.environ, "PGPASSWORD": DB_PASSWORD, "PGCONNECT_TIMEOUT": "5"},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=20)
            out = r.stdout
            ok = r.returncode == 0
        except Exception as e:  # noqa: BLE001
            out, ok = str(e), False
        res["console"] = ok
        res["console_output"] = out.strip()
        step("psql -d pgbouncer: SHOW POOLS; SHOW pool_mode; SHOW max_client_conn", ok, out, required=False)
        res["pooler_version"] = pooler.version()
    finally:
        pooler.stop()
        res["pooler_log_tail"] = [ln.replace(base, "$WORK") for ln in pooler.log().splitlines()
                                  if re.search(r"\b(ERROR|FATAL|WARNING|PANIC)\b", ln)][:10]
    res["ok"] = all(s["ok"] for s in res["steps"] if s["required"])
    return res


def environment(pg):
    try:
        cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    except OSError:
        cpu = "?"
    import django

    try:
        gv = subprocess.run(["/usr/bin/gunicorn", "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001
        gv = "?"
    try:
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001
        rev = "?"
    return {"cpus": os.cpu_count(), "cpu": cpu, "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
            "os": platform.platform(), "python": platform.python_version(), "django": django.get_version(),
            "gunicorn": gv, "locust": locust_version(), "postgres": pg.version(), "git": rev,
            "date": time.strftime("%Y-%m-%d %H:%M %Z")}


# --------------------------------------------------------------------------- entry points


def check_tools():
    missing = []
    for p in ("/usr/bin/gunicorn", "/usr/bin/locust", "/usr/lib/postgresql/15/bin/postgres", "/usr/bin/psql"):
        if not os.access(p, os.X_OK):
            missing.append(p)
    for mod in ("django", "psycopg2", "locust"):
        r = subprocess.run([PYTHON, "-c", f"import {mod}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if r.returncode != 0:
            missing.append(f"python module {mod}")
    if not os.access(tidepool_binary(), os.X_OK):
        missing.append(tidepool_binary())
    if missing:
        sys.exit("missing: " + ", ".join(missing) + "\n(apt-get install -y python3-django gunicorn python3-locust "
                 "python3-psycopg2 python3-matplotlib postgresql; make)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["full", "smoke"])
    ap.add_argument("--duration", type=int, help="seconds per run (full: 300 as in the seed, smoke: 30)")
    ap.add_argument("--runs", help="full: comma list of runs, e.g. direct-50,pooled-100 (default: all four)")
    ap.add_argument("--out", help="results dir (full: tests/scenario/results; smoke: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the temp work dir (logs, raw CSVs)")
    ap.add_argument("--quiet-wait", type=int, default=int(os.getenv("SCENARIO_QUIET_WAIT", "300")),
                    help="full: before each run wait at most this many seconds for other CPU load to drop")
    a = ap.parse_args()
    check_tools()
    raise_nofile()
    base = tempfile.mkdtemp(prefix="tp-scenario-")
    os.chmod(base, 0o755)
    pg = None
    status = 1
    try:
        pg = Postgres(base).setup()
        if a.what == "smoke":
            status = smoke(base, pg, a)
        else:
            status = full(base, pg, a)
    finally:
        if pg is not None:
            pg.stop()
        if a.keep:
            log(f"work dir kept: {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    sys.exit(status)


def full(base, pg, a):
    out = a.out or RESULTS
    duration = a.duration or 300
    runs = [("direct", 50), ("pooled", 50), ("direct", 100), ("pooled", 100)]
    if a.runs:
        want = set(a.runs.split(","))
        runs = [r for r in runs if f"{r[0]}-{r[1]}" in want]
    # keep the last complete run as previous/, so the report can show the spread between two runs
    if not a.runs and os.path.exists(os.path.join(out, "scenario.json")) and \
            all(os.path.isdir(os.path.join(out, "runs", f"{m}-{u}u")) for m, u in runs):
        prev = os.path.join(out, "previous")
        shutil.rmtree(prev, ignore_errors=True)
        os.makedirs(prev)
        for n in ("scenario.json", "runs"):
            shutil.move(os.path.join(out, n), os.path.join(prev, n))
    os.makedirs(os.path.join(out, "runs"), exist_ok=True)
    pre = preflight(base, pg, accounts=100)
    if not pre["ok"]:
        log("preflight failed: " + json.dumps(pre["steps"], indent=1))
        return 1
    cfg = dict(CFG, duration_s=duration, env=environment(pg), preflight=pre)
    with open(os.path.join(out, "scenario.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    for mode, users in runs:
        run_load(base, pg, mode, users, duration, os.path.join(out, "runs", f"{mode}-{users}u"),
                 quiet_wait=a.quiet_wait)
    sys.path.insert(0, HERE)
    import report

    return report.main([out])


def smoke(base, pg, a):
    out = a.out or os.path.join(base, "results")
    duration = a.duration or 30
    users = 10
    os.makedirs(os.path.join(out, "runs"), exist_ok=True)
    t_start = time.monotonic()
    pre = preflight(base, pg, accounts=users)
    problems = [f"preflight: {s['name']}\n{s['output']}" for s in pre["steps"] if s["required"] and not s["ok"]]
    meta = None
    if not problems:
        meta = run_load(base, pg, "pooled", users, duration, os.path.join(out, "runs", f"pooled-{users}u"),
                        spawn_rate=5, accounts=users, wait=(0.5, 1.5))
    cfg = dict(CFG, duration_s=duration, env=environment(pg), preflight=pre)
    with open(os.path.join(out, "scenario.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    checks = []
    checks.append(("Django check --database / migrate / seed through the pooler", pre["ok"]))
    if meta is not None:
        sys.path.insert(0, HERE)
        import report

        s = report.summarize(os.path.join(out, "runs", f"pooled-{users}u"), CFG)
        checks.append((f"requests made ({s['requests']})", s["requests"] >= 20))
        checks.append((f"no connection errors ({s['conn_errors']})", s["conn_errors"] == 0))
        checks.append((f"no failures of any kind ({s['failures']}: {s['by_kind']})", s["failures"] == 0))
        limit = CFG["default_pool_size"] + CFG["reserve_pool_size"]
        checks.append((f"peak server connections {s['peak_pg']} <= pool + reserve {limit}",
                       s["peak_pg"] is not None and s["peak_pg"] <= limit))
        checks.append(("pooler still running after the run, no ERROR/FATAL in its log "
                       f"({meta.get('pooler_log_error_count')})",
                       meta.get("pooler_alive_after") and meta.get("pooler_log_error_count", 1) == 0))
        log(f"smoke run: {s['requests']} requests, {s['failures']} failures, median {report.fmt(s['median'])} ms, "
            f"p95 {report.fmt(s['p95'])} ms, {report.fmt(s['rps'], '', 1)} req/s, peak server conns {s['peak_pg']}, "
            f"peak cl_active {s['peak_cl_active']}, console: {'yes' if s['console'] else 'no'}")
        if meta.get("pooler_log_errors"):
            log("pooler log errors: " + " | ".join(meta["pooler_log_errors"][:5]))
    else:
        for p in problems:
            log(p)
    n_ok = sum(1 for _, ok in checks if ok)
    for name, ok in checks:
        log(f"{'PASS' if ok else 'FAIL'}  {name}")
    log(f"scenario-smoke: {n_ok} of {len(checks)} checks ok, {time.monotonic() - t_start:.0f}s")
    return 0 if n_ok == len(checks) else 1


if __name__ == "__main__":
    main()
