#!/usr/bin/python3
"""tidepool benchmark: tidepool vs PgBouncer vs a direct connection, one PostgreSQL, one table.

Run through `make bench` (or scripts/bench.sh); `BENCH_QUICK=1 make bench` is the CI smoke mode.
See scripts/bench/README.md for the cases, the durations and every knob. Only the standard
library and Debian's binaries (postgresql 15, pgbench, pgbouncer, openssl) are used.

Everything binds 127.0.0.1 (client source addresses for the idle case are taken from 127.0.0.0/8),
every wait is bounded, and every process this script starts is stopped by its own PID.

Exit status: 0 when the run completed (whatever the numbers say: a benchmark is not a test);
1 when something is broken: a setup step failed or a pooler crashed (died during a case).
"""

import asyncio
import datetime
import glob
import hashlib
import json
import os
import platform
import pwd
import re
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

IS_ROOT = os.geteuid() == 0
RUN_AS = os.environ.get("BENCH_RUN_AS", "postgres") if IS_ROOT else None


def env_int(name, default):
    v = os.environ.get(name, "").strip()
    return int(v) if v else default


QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
RUNS = env_int("BENCH_RUNS", 1 if QUICK else 3)
DURATION = env_int("BENCH_DURATION", 3 if QUICK else 10)  # seconds per pgbench run
SCALE = env_int("BENCH_SCALE", 10)
IDLE_N = env_int("BENCH_IDLE_CLIENTS", 2000 if QUICK else 10000)
THREADS = env_int("BENCH_THREADS", 2)  # pgbench -j
POOL_SIZE = env_int("BENCH_POOL_SIZE", 20)
CASE_FILTER = [c.strip() for c in os.environ.get("BENCH_CASES", "").split(",") if c.strip()]
TIDEPOOL_BIN = os.environ.get("TIDEPOOL_BIN") or os.path.join(REPO, "build", "tidepool")
PGBOUNCER_BIN = os.environ.get("PGBOUNCER_BIN", "/usr/sbin/pgbouncer")
OUT_DIR = os.environ.get("BENCH_OUT") or os.path.join(REPO, "bench-results")
KEEP = os.environ.get("BENCH_KEEP", "") not in ("", "0")
PG_MAX_CONNECTIONS = 200
# extra ini settings for every tidepool instance, e.g. BENCH_TIDEPOOL_SETTINGS="workers=2"
TIDEPOOL_SETTINGS = dict(kv.split("=", 1) for kv in
                         (x.strip() for x in os.environ.get("BENCH_TIDEPOOL_SETTINGS", "").split(";"))
                         if "=" in kv)
TIDEPOOL_SETTINGS = {k.strip(): v.strip() for k, v in TIDEPOOL_SETTINGS.items()}

USER, PASSWORD = "bench", "benchpass"  # md5 everywhere (PostgreSQL and both poolers)
SCRAM_USER, SCRAM_PASSWORD = "benchscram", "benchscrampass"  # SCRAM + TLS login storm
DBNAME = "bench"

CLK_TCK = os.sysconf("SC_CLK_TCK")
BASE_DIR = None  # the run's temp dir, removed at exit unless BENCH_KEEP=1
SPAWNED = []  # every server process started (Popen), stopped by PID at exit if still running


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class SetupError(Exception):
    pass


# --------------------------------------------------------------------------- processes


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


def as_daemon_user():
    """Popen keyword arguments that run a child as the unprivileged user (only when root)."""
    if not IS_ROOT:
        return {}
    pw = pwd.getpwnam(RUN_AS)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def daemon_env():
    env = dict(os.environ)
    if IS_ROOT:
        pw = pwd.getpwnam(RUN_AS)
        env.update(HOME=pw.pw_dir, USER=RUN_AS, LOGNAME=RUN_AS)
    return env


def chown_daemon(path):
    if not IS_ROOT:
        return
    pw = pwd.getpwnam(RUN_AS)
    os.chown(path, pw.pw_uid, pw.pw_gid)


def run(cmd, as_daemon=False, timeout=300, env=None, check=True, cwd=None):
    kw = as_daemon_user() if as_daemon else {}
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout, env=env or (daemon_env() if as_daemon else None),
                       cwd=cwd, stdin=subprocess.DEVNULL, **kw)
    if check and r.returncode != 0:
        raise SetupError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-3000:]}")
    return r


def stop_proc(proc, sig=signal.SIGTERM, timeout=15):
    """Stop one process we started, by its PID: sig, a bounded wait, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def children_of(pid):
    """Live descendants of pid (for a pooler that would fork worker processes)."""
    kids, frontier = [], [pid]
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return kids
    parent = {}
    for e in entries:
        try:
            with open(f"/proc/{e}/stat") as f:
                s = f.read()
            parent[int(e)] = int(s[s.rindex(")") + 2:].split()[1])
        except (OSError, ValueError):
            pass
    while frontier:
        p = frontier.pop()
        for c, pp in parent.items():
            if pp == p:
                kids.append(c)
                frontier.append(c)
    return kids


def cpu_ticks(pid, kids=None):
    """utime+stime (+ reaped children's) of pid and its live descendants, in clock ticks."""
    total = 0
    for p in [pid] + (children_of(pid) if kids is None else kids):
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rindex(")") + 2:].split()
        # fields[0] is field 3 (state): utime=14, stime=15, cutime=16, cstime=17
        total += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return total


def rss_kib(pid, kids=None):
    total = 0
    for p in [pid] + (children_of(pid) if kids is None else kids):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


# --------------------------------------------------------------------------- PostgreSQL


def pg_bindir():
    env = os.environ.get("PG_BINDIR")
    if env:
        return env
    if os.path.exists("/usr/lib/postgresql/15/bin/postgres"):
        return "/usr/lib/postgresql/15/bin"
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        raise SetupError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    return os.path.dirname(found[-1])


class Postgres:
    def __init__(self, base, tls_cert, tls_key):
        self.bindir = pg_bindir()
        self.base = base
        self.data = os.path.join(base, "pgdata")
        self.port = free_port()
        self.logfile = os.path.join(base, "postgres.log")
        self.tls_cert, self.tls_key = tls_cert, tls_key
        self.proc = None

    def start(self):
        run([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", "postgres", "-E", "UTF8",
             "--locale=C", "-A", "trust", "--no-sync"], as_daemon=True, timeout=180, cwd=self.base)
        conf = f"""
listen_addresses = '127.0.0.1'
port = {self.port}
unix_socket_directories = '{self.base}'
max_connections = {PG_MAX_CONNECTIONS}
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = 4GB
checkpoint_timeout = 30min
password_encryption = 'scram-sha-256'
ssl = on
ssl_cert_file = '{self.tls_cert}'
ssl_key_file = '{self.tls_key}'
log_min_messages = warning
log_connections = off
log_disconnections = off
"""
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(conf)
        with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
            f.write(
                "local all all trust\n"
                "host all postgres 127.0.0.1/32 trust\n"
                f"host all {USER} 127.0.0.1/32 md5\n"
                f"host all {SCRAM_USER} 127.0.0.1/32 scram-sha-256\n"
            )
        logf = open(self.logfile, "ab")
        self.proc = subprocess.Popen([os.path.join(self.bindir, "postgres"), "-D", self.data],
                                     stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=daemon_env(), cwd=self.base, **as_daemon_user())
        SPAWNED.append((self.proc, signal.SIGINT))
        logf.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SetupError(f"postgres exited ({self.proc.returncode}):\n{tail(self.logfile)}")
            r = subprocess.run([os.path.join(self.bindir, "pg_isready"), "-h", "127.0.0.1",
                                "-p", str(self.port), "-U", "postgres"], capture_output=True)
            if r.returncode == 0:
                return
            time.sleep(0.2)
        raise SetupError(f"postgres did not become ready in 60 s:\n{tail(self.logfile)}")

    def psql(self, sql, db="postgres", timeout=300):
        r = run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-h", "127.0.0.1", "-p",
                 str(self.port), "-U", "postgres", "-d", db, "-c", sql], timeout=timeout,
                env=client_env(sslmode="disable"))
        return r.stdout.strip()

    def stop(self):
        stop_proc(self.proc, signal.SIGINT, timeout=30)  # fast shutdown


def tail(path, n=3000):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:]
    except OSError:
        return ""


def client_env(sslmode="disable", password=PASSWORD):
    env = dict(os.environ)
    env.update(PGPASSWORD=password, PGSSLMODE=sslmode, PGCONNECT_TIMEOUT="15",
               PGAPPNAME="bench")
    for k in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE", "PGOPTIONS"):
        env.pop(k, None)
    return env


# --------------------------------------------------------------------------- poolers


class Pooler:
    """One hand-started pooler process (tidepool or PgBouncer) with its own ini and port."""

    def __init__(self, kind, binary, base, name, pg, max_client_conn=1000, tls=None, extra=None):
        self.kind, self.binary, self.name, self.label = kind, binary, name, kind
        self.dir = os.path.join(base, name)
        os.makedirs(self.dir, exist_ok=True)
        chown_daemon(self.dir)
        self.port = free_port()
        self.ini = os.path.join(self.dir, "pooler.ini")
        self.logfile = os.path.join(self.dir, "pooler.log")
        self.stderr_file = os.path.join(self.dir, "stderr.log")
        self.proc = None
        userlist = os.path.join(self.dir, "userlist.txt")
        settings = {
            "listen_addr": "127.0.0.1",
            "listen_port": self.port,
            "unix_socket_dir": self.dir,
            "auth_type": "md5",
            "auth_file": userlist,
            "pool_mode": "transaction",
            "default_pool_size": POOL_SIZE,
            "max_client_conn": max_client_conn,
            "logfile": self.logfile,
            "log_connections": 0,
            "log_disconnections": 0,
            "ignore_startup_parameters": "extra_float_digits",
            # The server leg alike for both: PostgreSQL here has ssl on (for the client-TLS
            # storm), and the defaults differ (PgBouncer 1.18: disable; tidepool, like
            # PgBouncer >= 1.21: prefer), which put TLS on tidepool's server leg only.
            "server_tls_sslmode": "disable",
        }
        users = f'"{USER}" "{PASSWORD}"\n'
        db = f"host=127.0.0.1 port={pg.port} dbname={DBNAME}"
        if tls:
            settings.update(auth_type="scram-sha-256", client_tls_sslmode="require",
                            client_tls_cert_file=tls["cert"], client_tls_key_file=tls["key"])
            # clients prove the SCRAM secret (as stored in pg_authid); the pooler logs in to
            # PostgreSQL with the password given here (pools are filled once, not per client)
            users = f'"{SCRAM_USER}" "{tls["secret"]}"\n'
            db += f" user={SCRAM_USER} password={SCRAM_PASSWORD}"
        if kind == "tidepool":
            settings.update(TIDEPOOL_SETTINGS)
        settings.update(extra or {})
        with open(userlist, "w") as f:
            f.write(users)
        with open(self.ini, "w") as f:
            f.write(f"[databases]\n{DBNAME} = {db}\n\n[pgbouncer]\n")
            for k, v in settings.items():
                f.write(f"{k} = {v}\n")
        for p in (userlist, self.ini):
            chown_daemon(p)

    def start(self, timeout=20):
        """Start; returns None when it listens, else the reason it did not."""
        errf = open(self.stderr_file, "ab")
        self.proc = subprocess.Popen([self.binary, self.ini], stdout=errf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=daemon_env(), cwd=self.dir,
                                     **as_daemon_user())
        SPAWNED.append((self.proc, signal.SIGTERM))
        errf.close()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return f"exited with status {self.proc.returncode}: {self.first_error()}"
                if port_open(self.port):
                    return None
                time.sleep(0.05)
        except BaseException:
            stop_proc(self.proc)
            raise
        stop_proc(self.proc)
        return f"did not listen on port {self.port} within {timeout} s"

    def first_error(self):
        text = tail(self.stderr_file, 20000) + "\n" + tail(self.logfile, 20000)
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        for ln in lines:
            if re.search(r"\b(FATAL|ERROR|error|fatal)\b", ln):
                return strip_log_prefix(ln)
        return strip_log_prefix(lines[-1]) if lines else "(no output)"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        stop_proc(self.proc, signal.SIGTERM)


def exit_status(rc):
    if rc is None:
        return "still running"
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit status {rc}"


def crashed_on_stop(rc):
    """After our SIGTERM: a signal other than SIGTERM (SIGSEGV, SIGABRT...) is a crash; any exit
    status is not (PgBouncer 1.18 exits with 1 after 'got SIGTERM, fast exit')."""
    return rc is not None and rc < 0 and rc != -signal.SIGTERM


def strip_log_prefix(line):
    # "2024-01-01 00:00:00.000 UTC [123] FATAL x" -> "FATAL x"
    m = re.search(r"\b(FATAL|ERROR|WARNING|LOG|NOTICE)\b.*", line)
    return (m.group(0) if m else line)[:300]


def tidepool_supports(setting):
    try:
        r = subprocess.run([TIDEPOOL_BIN, "--list-settings"], capture_output=True, text=True, timeout=10)
    except OSError:
        return False
    return re.search(rf"^\|\s*{re.escape(setting)}\s*\|", r.stdout, re.M) is not None


def binary_version(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


# --------------------------------------------------------------------------- pgbench


def percentile(sorted_vals, q):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[i]


def read_latencies(prefix):
    """Per-transaction latencies (µs) from pgbench -l files: 'client tx latency script epoch us'."""
    lats, failed = [], 0
    for path in glob.glob(prefix + ".*"):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                if parts[2].isdigit():
                    lats.append(int(parts[2]))
                else:
                    failed += 1  # "failed" / "skipped"
        os.unlink(path)
    lats.sort()
    return lats, failed


def run_pgbench(case, target, logdir, tag, duration=None):
    """One pgbench run against target; returns a result dict."""
    duration = duration or DURATION
    if target.connect_ms and "-C" not in case.args:
        # pgbench's -T clock starts before its clients connect (one after another per thread);
        # where connecting is slow (a PostgreSQL backend per client) add that time, so the
        # measured part ("tps ... without initial connection time") lasts about `duration`
        per_thread = -(-case.clients // min(THREADS, case.clients))
        duration += int(per_thread * target.connect_ms * 1.5 / 1000 + 0.999)
    prefix = os.path.join(logdir, tag)
    user, pw, sslmode = (SCRAM_USER, SCRAM_PASSWORD, "require") if case.tls else (USER, PASSWORD, "disable")
    cmd = ["pgbench", "-n", "-h", "127.0.0.1", "-p", str(target.port), "-U", user,
           "-c", str(case.clients), "-j", str(min(THREADS, case.clients)), "-T", str(duration),
           "-l", f"--log-prefix={prefix}"] + case.args + [DBNAME]
    res = {"case": case.name, "target": target.label, "ok": False, "error": None}
    pid = target.pid()
    kids = children_of(pid) if pid else []  # worker processes, if a pooler ever forks any
    cpu0 = cpu_ticks(pid, kids) if pid else None
    rss_max = rss_kib(pid, kids) if pid else None
    t0 = time.monotonic()
    outf = tempfile.TemporaryFile(mode="w+")
    p = subprocess.Popen(cmd, stdout=outf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         env=client_env(sslmode, pw), cwd=logdir)
    limit = duration + 120 + case.clients * 0.2
    timed_out = False
    try:
        while True:
            try:
                p.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if pid:
                    rss_max = max(rss_max, rss_kib(pid, kids))
                if time.monotonic() - t0 > limit:
                    timed_out = True
                    stop_proc(p, signal.SIGINT, timeout=10)
                    break
    finally:
        stop_proc(p, signal.SIGINT, timeout=10)  # only if still running (we are being stopped)
    elapsed = time.monotonic() - t0
    if pid:
        cpu1 = cpu_ticks(pid, kids)
        rss_max = max(rss_max, rss_kib(pid, kids))
    outf.seek(0)
    out = outf.read()
    outf.close()
    res["rc"] = p.returncode
    res["elapsed_s"] = round(elapsed, 2)
    m = re.search(r"number of transactions actually processed: (\d+)", out)
    processed = int(m.group(1)) if m else 0
    m = re.search(r"^tps = ([\d.]+)", out, re.M)
    tps = float(m.group(1)) if m else None
    lats, log_failed = read_latencies(prefix)
    aborted = sorted(set(re.findall(r"client (\d+) aborted", out)))
    errors = [ln for ln in out.splitlines() if re.search(r"pgbench: (error|fatal):", ln)]
    res.update(processed=processed, tps=tps, aborted_clients=len(aborted), failed_tx=log_failed)
    if timed_out:
        res["error"] = f"pgbench did not finish within {int(limit)} s"
    elif p.returncode != 0 or aborted or processed == 0:
        msg = errors[0] if errors else (out.strip().splitlines() or ["no output"])[-1]
        msg = re.sub(r"^pgbench: (error|fatal): ", "", msg)
        msg = re.sub(r"^client \d+ aborted in command \d+ \([^)]*\) of script \d+; ", "", msg)
        if aborted:
            msg = f"{len(aborted)}/{case.clients} clients aborted, {processed} tx done: {msg}"
        res["error"] = msg[:240]
    else:
        res["ok"] = True
    if lats:
        res["p50_ms"] = percentile(lats, 0.50) / 1000.0
        res["p99_ms"] = percentile(lats, 0.99) / 1000.0
    if pid and processed:
        res["cpu_us_per_tx"] = (cpu1 - cpu0) * 1e6 / CLK_TCK / processed
    if pid:
        res["rss_kib"] = rss_max
    res["output_tail"] = out[-1500:]
    return res


# --------------------------------------------------------------------------- idle clients


def md5_password(user, password, salt):
    inner = hashlib.md5((password + user).encode()).hexdigest()
    return "md5" + hashlib.md5(inner.encode() + salt).hexdigest()


def error_message(body):
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode(errors="replace")
    return fields.get("M", "?")


async def pg_login(port, local_ip, user, password, timeout=30):
    """Startup + md5/cleartext auth until ReadyForQuery. Returns (writer, None) or (None, error)."""
    writer = None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, local_addr=(local_ip, 0)), timeout)
        body = struct.pack("!I", 196608) + f"user\0{user}\0database\0{DBNAME}\0\0".encode()
        writer.write(struct.pack("!I", len(body) + 4) + body)
        await writer.drain()
        while True:
            hdr = await asyncio.wait_for(reader.readexactly(5), timeout)
            typ, ln = hdr[:1], struct.unpack("!I", hdr[1:])[0]
            payload = await asyncio.wait_for(reader.readexactly(ln - 4), timeout)
            if typ == b"R":
                code = struct.unpack("!I", payload[:4])[0]
                if code == 5:
                    pw = md5_password(user, password, payload[4:8]).encode() + b"\0"
                elif code == 3:
                    pw = password.encode() + b"\0"
                elif code == 0:
                    continue
                else:
                    raise RuntimeError(f"unsupported auth request {code}")
                writer.write(b"p" + struct.pack("!I", len(pw) + 4) + pw)
                await writer.drain()
            elif typ == b"E":
                writer.close()
                return None, error_message(payload)
            elif typ == b"Z":
                return writer, None
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, RuntimeError) as e:
        if writer:
            writer.close()
        return None, f"{type(e).__name__}: {e}"


async def idle_clients(port, n, local_ip, pid):
    sem = asyncio.Semaphore(64)
    held, errors = [], {}
    t0 = time.monotonic()

    async def one():
        async with sem:
            w, err = await pg_login(port, local_ip, USER, PASSWORD)
        if w:
            held.append(w)
        else:
            errors[err] = errors.get(err, 0) + 1

    await asyncio.gather(*(one() for _ in range(n)))
    login_s = time.monotonic() - t0
    await asyncio.sleep(1.0)
    rss = rss_kib(pid)
    w, extra_err = await pg_login(port, local_ip, USER, PASSWORD, timeout=15)
    if w:
        extra_err = None
        w.close()
    await asyncio.sleep(0.3)
    alive_after = os.path.exists(f"/proc/{pid}")
    for h in held:
        h.close()
    await asyncio.sleep(0.5)
    return {"held": len(held), "login_errors": errors, "login_s": round(login_s, 2), "rss_kib": rss,
            "extra_error": extra_err, "extra_accepted": w is not None, "alive": alive_after}


def run_idle(pooler, n, local_ip):
    res = {"case": f"idle-{n}", "target": pooler.label, "ok": False, "error": None}
    try:
        err = pooler.start()
        if err:
            res["error"] = f"{pooler.kind} did not start: {err}"
            return res
        time.sleep(0.3)
        base = rss_kib(pooler.proc.pid)
        r = asyncio.run(idle_clients(pooler.port, n, local_ip, pooler.proc.pid))
        res.update(r, rss_base_kib=base)
        res["rss_per_client_kib"] = (r["rss_kib"] - base) / max(1, r["held"])
        if not pooler.alive() or not r["alive"]:
            res["error"] = f"pooler died: {pooler.first_error()}"
            res["crash"] = True
        elif r["held"] < n:
            top = max(r["login_errors"].items(), key=lambda kv: kv[1])
            res["error"] = f"only {r['held']}/{n} clients logged in; {top[1]}x {top[0]}"[:240]
        else:
            res["ok"] = True
    finally:
        pooler.stop()
        res["stop_status"] = pooler.proc.returncode if pooler.proc else None
    return res


# --------------------------------------------------------------------------- cases and targets


class Case:
    def __init__(self, name, title, args=(), clients=0, kind="pgbench", tls=False, quick=False):
        self.name, self.title, self.args, self.clients = name, title, list(args), clients
        self.kind, self.tls, self.quick = kind, tls, quick


CASES = [
    Case("select-c50", "select-only, 50 clients", ["-S"], 50),
    Case("select-c100", "select-only, 100 clients", ["-S"], 100, quick=True),
    Case("select-c500", "select-only, 500 clients", ["-S"], 500, quick=True),
    Case("tpcb-c50", "TPC-B, 50 clients", [], 50),
    Case("tpcb-c100", "TPC-B, 100 clients", [], 100, quick=True),
    Case("tpcb-c500", "TPC-B, 500 clients", [], 500),
    Case("select-c100-extended", "select-only, 100 clients, --protocol=extended",
         ["-S", "--protocol=extended"], 100),
    Case("select-c100-prepared", "select-only, 100 clients, --protocol=prepared",
         ["-S", "--protocol=prepared"], 100, quick=True),
    Case("storm-c50", "connection storm: -C -S, 50 clients, md5", ["-S", "-C"], 50, quick=True),
    Case("tls-scram-storm-c50", "TLS+SCRAM login storm: -C -S, 50 clients, sslmode=require",
         ["-S", "-C"], 50, tls=True, quick=True),
    Case("idle", f"{IDLE_N} idle clients (max_client_conn = {IDLE_N}), then one more",
         kind="idle", quick=True),
]


class Target:
    def __init__(self, label, port=None, pooler=None, na=None):
        self.label, self._port, self.pooler, self.na = label, port, pooler, na
        self.connect_ms = 0.0  # measured cost of one connection, for direct targets

    @property
    def port(self):
        return self.pooler.port if self.pooler else self._port

    def pid(self):
        return self.pooler.proc.pid if self.pooler and self.pooler.proc else None


# --------------------------------------------------------------------------- table


def fmt(v, digits=1):
    if v is None:
        return "—"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.{digits}f}"


def agg(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals)


def spread(a, digits=1):
    if a is None:
        return "—"
    med, lo, hi = a
    if lo == hi:
        return fmt(med, digits)
    return f"{fmt(med, digits)} [{fmt(lo, digits)}–{fmt(hi, digits)}]"


def summarize(results, case, label):
    rs = [r for r in results if r["case"] == case.name and r["target"] == label]
    if not rs:
        return None
    ok = [r for r in rs if r["ok"]]
    bad = [r for r in rs if not r["ok"]]
    s = {"runs": len(rs), "ok_runs": len(ok), "errors": [r["error"] for r in bad if r.get("error")],
         "na": next((r.get("na") for r in rs if r.get("na")), None)}
    s["crash"] = any(r.get("crash") for r in rs)
    if case.kind == "idle":
        s["rss"] = agg([r.get("rss_kib") for r in ok])
        s["rss_base"] = agg([r.get("rss_base_kib") for r in ok])
        s["per_client"] = agg([r.get("rss_per_client_kib") for r in ok])
        s["extra"] = [r.get("extra_error") if not r.get("extra_accepted") else "ACCEPTED (no error)"
                      for r in rs if "extra_accepted" in r]
        s["login_s"] = agg([r.get("login_s") for r in ok])
        return s
    s["tps"] = agg([r.get("tps") for r in ok])
    s["p50"] = agg([r.get("p50_ms") for r in ok])
    s["p99"] = agg([r.get("p99_ms") for r in ok])
    s["cpu"] = agg([r.get("cpu_us_per_tx") for r in ok])
    s["rss"] = agg([r.get("rss_kib") for r in ok])
    return s


def ratio(a, b):
    if not a or not b or b[0] == 0:
        return None
    return a[0] / b[0]


def fmt_ratio(x):
    return "—" if x is None else f"{x:.2f}×"


def first_err(s):
    if s.get("na"):
        return s["na"]
    errs = s["errors"]
    if not errs:
        return ""
    head = f"fails ({len(errs)}/{s['runs']} runs): {errs[0]}"
    return head.replace("|", "\\|")


def build_table(results, cases, labels_for):
    lines = [
        "| case | target | TPS median [min–max] | p50 ms | p99 ms | pooler CPU µs/tx median [min–max] "
        "| pooler RSS MiB | TPS tp/pgb | CPU tp/pgb | notes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        labels = labels_for(case)
        sums = {lb: summarize(results, case, lb) for lb in labels}
        pgb = sums.get("pgbouncer")
        for lb in labels:
            s = sums[lb]
            if s is None:
                continue
            note = first_err(s)
            if case.kind == "idle":
                rss = spread(tuple(v / 1024 for v in s["rss"]), 1) if s["rss"] else "—"
                if s["rss"]:
                    extra = s["extra"][0] if s["extra"] else "?"
                    note = (f"{IDLE_N} held; base {s['rss_base'][0] / 1024:.1f} MiB, "
                            f"+{s['per_client'][0]:.2f} KiB/client; login {s['login_s'][0]:.1f} s; "
                            f"client {IDLE_N + 1}: {extra!r}") + (f"; {note}" if note else "")
                    if lb.startswith("tidepool") and pgb and pgb.get("rss"):
                        note += f"; RSS tp/pgb {ratio(s['rss'], pgb['rss']):.2f}×"
                cells = [case.name, lb, "—", "—", "—", "—", rss, "—", "—", note]
            elif s["tps"] is None:
                cells = [case.name, lb, "—", "—", "—", "—", "—", "—", "—", note or "no data"]
            else:
                is_tp = lb.startswith("tidepool")
                tr = fmt_ratio(ratio(s["tps"], pgb["tps"])) if is_tp and pgb and pgb.get("tps") else "—"
                cr = fmt_ratio(ratio(s["cpu"], pgb["cpu"])) if is_tp and pgb and pgb.get("cpu") else "—"
                rss = f"{s['rss'][0] / 1024:.1f}" if s["rss"] else "—"
                cells = [case.name, lb, spread(s["tps"], 0), fmt(s["p50"][0] if s["p50"] else None, 2),
                         fmt(s["p99"][0] if s["p99"] else None, 2), spread(s["cpu"], 1), rss, tr, cr,
                         note]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def acceptance(results, cases_by_name, labels_for):
    """The checks of issue 7, computed from this run (informational: never changes the exit code)."""
    out = []

    def s(case, lb):
        c = cases_by_name.get(case)
        return summarize(results, c, lb) if c else None

    def verdict(ok):
        return "PASS" if ok else "FAIL"

    tp, pgb = s("select-c100", "tidepool"), s("select-c100", "pgbouncer")
    if tp and pgb and tp.get("cpu") and pgb.get("cpu"):
        r = ratio(tp["cpu"], pgb["cpu"])
        out.append(f"- CPU/tx, select-only c100, transaction mode: tidepool/PgBouncer = {r:.2f}× "
                   f"(want ≤ 0.60) → {verdict(r <= 0.6)}")
    else:
        out.append("- CPU/tx, select-only c100: not measured in this run")
    for cn in ("select-c100", "tpcb-c100", "tpcb-c500"):
        tp, pgb = s(cn, "tidepool"), s(cn, "pgbouncer")
        if tp and pgb and tp.get("tps") and pgb.get("tps"):
            r = ratio(tp["tps"], pgb["tps"])
            out.append(f"- TPS, {cn}: tidepool/PgBouncer = {r:.2f}× (want ≥ 1.10) → {verdict(r >= 1.1)}")
        else:
            out.append(f"- TPS, {cn}: not measured in this run (or failed)")
    below = []
    for cn, c in cases_by_name.items():
        if c.kind != "pgbench":
            continue
        tp, pgb = s(cn, "tidepool"), s(cn, "pgbouncer")
        if tp and pgb and pgb.get("tps"):
            if not tp.get("tps"):
                below.append(f"{cn} (tidepool failed)")
            elif tp["tps"][0] < pgb["tps"][0]:
                below.append(f"{cn} ({ratio(tp['tps'], pgb['tps']):.2f}×)")
    out.append("- TPS never below PgBouncer: " + ("PASS" if not below else "FAIL in " + ", ".join(below)))
    tp = s("select-c100-prepared", "tidepool")
    if tp:
        ok = tp["ok_runs"] == tp["runs"]
        out.append("- --protocol=prepared, transaction mode, tidepool 0 errors: "
                   + ("PASS" if ok else f"FAIL ({first_err(tp)})"))
        pgb = s("select-c100-prepared", "pgbouncer")
        if pgb:
            out.append("  (PgBouncer: " + ("completed" if pgb["ok_runs"] == pgb["runs"] else first_err(pgb)) + ")")
    w2, pgb = s("tls-scram-storm-c50", "tidepool workers=2"), s("tls-scram-storm-c50", "pgbouncer")
    if w2 is not None and pgb is not None:
        if w2.get("tps") and pgb.get("tps"):
            r = ratio(w2["tps"], pgb["tps"])
            out.append(f"- TLS+SCRAM login storm: tidepool workers=2 / PgBouncer = {r:.2f}× connections/s "
                       f"(want ≥ 1.60) → {verdict(r >= 1.6)}")
        else:
            out.append(f"- TLS+SCRAM login storm: not comparable: tidepool workers=2: {first_err(w2) or 'no data'}; "
                       f"PgBouncer: {first_err(pgb) or 'ok'}")
        w1 = s("tls-scram-storm-c50", "tidepool")
        if w1 and w1.get("tps") and pgb.get("tps"):
            out.append(f"  (tidepool with the default workers: {ratio(w1['tps'], pgb['tps']):.2f}× "
                       f"PgBouncer's connections/s)")
    idle = cases_by_name.get("idle")
    if idle:
        tp, pgb = s("idle", "tidepool"), s("idle", "pgbouncer")
        if tp and pgb and tp.get("rss") and pgb.get("rss"):
            r = ratio(tp["rss"], pgb["rss"])
            out.append(f"- {IDLE_N} idle clients: tidepool RSS / PgBouncer RSS = {r:.2f}× (want ≤ 1.00) "
                       f"→ {verdict(r <= 1.0)}")
        else:
            out.append(f"- {IDLE_N} idle clients: not comparable ({(tp and first_err(tp)) or ''} "
                       f"{(pgb and first_err(pgb)) or ''})")
        if tp:
            want = "no more connections allowed (max_client_conn)"
            got = tp.get("extra") or []
            ok = bool(got) and all(g and want in g for g in got)
            out.append(f"- client {IDLE_N + 1} over max_client_conn gets '{want}': "
                       f"{verdict(ok)} (tidepool said {got[0] if got else 'nothing'!r})")
    return "\n".join(out)


def machine_info():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1048576:.0f} GiB"
    except (OSError, ValueError):
        pass
    rev = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"], capture_output=True,
                         text=True).stdout.strip() or "?"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(), "cpu": model, "mem": mem,
        "kernel": f"{platform.system()} {platform.release()}",
        "tidepool": f"{binary_version([TIDEPOOL_BIN, '--version'])} (git {rev})",
        "pgbouncer": binary_version([PGBOUNCER_BIN, "--version"]),
        "postgres": binary_version([os.path.join(pg_bindir(), "postgres"), "--version"]),
        "pgbench": binary_version(["pgbench", "--version"]),
    }


# --------------------------------------------------------------------------- main


def make_tls(base):
    key, cert = os.path.join(base, "server.key"), os.path.join(base, "server.crt")
    run(["openssl", "req", "-new", "-x509", "-days", "7", "-nodes", "-newkey", "rsa:2048",
         "-subj", "/CN=localhost", "-keyout", key, "-out", cert], timeout=60)
    os.chmod(key, 0o600)
    for p in (key, cert):
        chown_daemon(p)
    return cert, key


def main():
    global TIDEPOOL_BIN
    t_start = time.monotonic()
    load_start = os.getloadavg()
    # 10,000 idle clients: the client side and the poolers need > 10,000 descriptors each
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = IDLE_N + 2000
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY or hard >= want else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]

    for b, what in ((TIDEPOOL_BIN, "tidepool (run make)"), (PGBOUNCER_BIN, "pgbouncer (apt-get install pgbouncer)")):
        if not os.access(b, os.X_OK):
            raise SetupError(f"missing {what}: {b}")
    if not shutil.which("pgbench"):
        raise SetupError("missing pgbench (apt-get install postgresql-contrib)")

    cases = [c for c in CASES if (not QUICK or c.quick) and (not CASE_FILTER or c.name in CASE_FILTER)]

    global BASE_DIR
    base = BASE_DIR = tempfile.mkdtemp(prefix="tidepool-bench-")
    os.chmod(base, 0o755)
    chown_daemon(base)
    # run a private copy: other people rebuilding build/tidepool mid-run must not mix binaries
    with open(TIDEPOOL_BIN, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    src_bin = TIDEPOOL_BIN
    os.makedirs(os.path.join(base, "bin"))
    TIDEPOOL_BIN = os.path.join(base, "bin", "tidepool")
    shutil.copy2(src_bin, TIDEPOOL_BIN)
    os.chmod(TIDEPOOL_BIN, 0o755)
    info = machine_info()
    info["tidepool"] += f", {src_bin} sha256 {digest}"
    has_workers = tidepool_supports("workers")
    log(f"mode {'quick' if QUICK else 'full'}: {RUNS} run(s) per case, {DURATION} s per pgbench run, "
        f"scale {SCALE}, {IDLE_N} idle clients, pgbench -j {THREADS}, pool size {POOL_SIZE}, "
        f"RLIMIT_NOFILE {nofile}; cases: {', '.join(c.name for c in cases)}")
    log(f"tidepool: {info['tidepool']}; workers setting: {'yes' if has_workers else 'no'}")
    logdir = os.path.join(base, "pgbench-logs")
    os.makedirs(logdir)
    results, poolers, broken = [], [], []
    pg = None
    direct_connect_ms = None
    dead = set()

    def revive(p, where, restart=True):
        """A pooler that died is a broken run: note it (once per death), restart it."""
        if p.alive() or p.proc is None or id(p.proc) in dead:
            return
        dead.add(id(p.proc))
        msg = (f"{p.label} DIED ({exit_status(p.proc.returncode)}) {where}; "
               f"its last log line: {p.first_error()}")
        broken.append(msg)
        log(msg)
        if restart:
            err = p.start()
            log(f"restarted {p.label}" if not err else f"{p.label} did not restart: {err}")
            if err:
                broken.append(f"{p.label} did not restart: {err}")

    try:
        cert, key = make_tls(base)
        pg = Postgres(base, cert, key)
        log(f"starting PostgreSQL on 127.0.0.1:{pg.port} (max_connections {PG_MAX_CONNECTIONS})")
        pg.start()
        pg.psql(f"SET password_encryption = 'md5'; CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'; "
                f"SET password_encryption = 'scram-sha-256'; "
                f"CREATE ROLE {SCRAM_USER} LOGIN PASSWORD '{SCRAM_PASSWORD}'; ")
        pg.psql(f"CREATE DATABASE {DBNAME} OWNER {USER}")
        secret = pg.psql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{SCRAM_USER}'")
        t0 = time.monotonic()
        run(["pgbench", "-i", "-q", "-s", str(SCALE), "-h", "127.0.0.1", "-p", str(pg.port), "-U", USER,
             DBNAME], env=client_env(), timeout=900)
        pg.psql(f"GRANT SELECT, UPDATE, INSERT ON ALL TABLES IN SCHEMA public TO {SCRAM_USER}", db=DBNAME)
        pg.psql("VACUUM ANALYZE", db=DBNAME)
        pg.psql("CHECKPOINT", db=DBNAME)
        log(f"pgbench -i -s {SCALE} took {time.monotonic() - t0:.1f} s")

        tp = Pooler("tidepool", TIDEPOOL_BIN, base, "tidepool", pg)
        pb = Pooler("pgbouncer", PGBOUNCER_BIN, base, "pgbouncer", pg)
        tp.label, pb.label = "tidepool", "pgbouncer"
        for p in (tp, pb):
            err = p.start()
            if err:
                raise SetupError(f"{p.kind} did not start: {err}\n{tail(p.stderr_file)}")
            poolers.append(p)
        main_targets = [Target("direct", port=pg.port), Target("tidepool", pooler=tp),
                        Target("pgbouncer", pooler=pb)]

        # warm-up: fill both pools and PostgreSQL's caches before the first measured run
        for t in main_targets:
            warm = Case("warmup", "warmup", ["-S"], POOL_SIZE)
            r = run_pgbench(warm, t, logdir, "warmup", duration=2)
            if not r["ok"]:
                log(f"warm-up against {t.label} failed: {r['error']}")
        # how long one direct connection takes here (a backend fork + md5): see run_pgbench
        r = run_pgbench(Case("connect", "connect", ["-S", "-C"], 1), main_targets[0], logdir,
                        "connect", duration=2)
        m = re.search(r"latency average = ([\d.]+) ms", r.get("output_tail", ""))
        direct_connect_ms = float(m.group(1)) if m else 50.0
        log(f"one direct connection (+1 select) takes {direct_connect_ms:.1f} ms here")

        labels = {}
        tls_secret = {"secret": secret, "cert": cert, "key": key}
        for case in cases:
            ct0 = time.monotonic()
            for p in poolers:
                revive(p, f"between runs (noticed before {case.name})")
            if case.kind == "idle":
                labels[case.name] = ["direct", "tidepool", "pgbouncer"]
                results.append({"case": case.name, "target": "direct", "ok": False, "error": None,
                                "na": f"n/a (PostgreSQL max_connections {PG_MAX_CONNECTIONS})"})
                for rep in range(RUNS):
                    order = [("tidepool", TIDEPOOL_BIN), ("pgbouncer", PGBOUNCER_BIN)]
                    if rep % 2:
                        order.reverse()
                    for i, (kind, binary) in enumerate(order):
                        p = Pooler(kind, binary, base, f"idle-{kind}-{rep}", pg, max_client_conn=IDLE_N)
                        p.label = kind
                        local_ip = f"127.0.{10 + rep}.{10 + i}"
                        r = run_idle(p, IDLE_N, local_ip)
                        r["case"], r["rep"] = case.name, rep
                        results.append(r)
                        if r.get("crash"):
                            broken.append(f"{kind} crashed in {case.name} #{rep + 1}: {r['error']}")
                        elif crashed_on_stop(r.get("stop_status")):
                            broken.append(f"{kind} ({case.name} #{rep + 1}) exited with "
                                          f"{exit_status(r['stop_status'])} on SIGTERM: {p.first_error()}")
                        log(f"{case.name} #{rep + 1} {kind}: " + (
                            f"{r['held']} held, RSS {r['rss_kib'] / 1024:.1f} MiB (base "
                            f"{r['rss_base_kib'] / 1024:.1f}), login {r['login_s']} s, "
                            f"client {IDLE_N + 1}: {r['extra_error']!r}" if "held" in r else r["error"]))
                continue

            targets = main_targets
            main_targets[0].connect_ms = direct_connect_ms
            extra_poolers = []
            if case.tls:
                targets = [Target("direct", port=pg.port)]
                targets[0].connect_ms = direct_connect_ms
                variants = [("tidepool", TIDEPOOL_BIN, "tidepool", None),
                            ("tidepool workers=2", TIDEPOOL_BIN, "tidepool", {"workers": 2}),
                            ("pgbouncer", PGBOUNCER_BIN, "pgbouncer", None)]
                for label, binary, kind, extra in variants:
                    if extra and "workers" in extra and not has_workers:
                        targets.append(Target(label, na="n/a (needs the workers setting: not in "
                                                        "tidepool --list-settings)"))
                        continue
                    p = Pooler(kind, binary, base, f"tls-{label.replace(' ', '-').replace('=', '')}", pg,
                               tls=tls_secret, extra=extra)
                    p.label = label
                    err = p.start()
                    if err:
                        err = err.replace(p.ini, "pooler.ini")
                        if "not supported" in err:
                            na = f"n/a (needs client TLS + SCRAM; {kind} refused the ini: {err})"
                        else:
                            na = f"fails: {kind} did not start with the TLS+SCRAM ini: {err}"
                        targets.append(Target(label, na=na))
                        continue
                    extra_poolers.append(p)
                    targets.append(Target(label, pooler=p))
            if QUICK and case.name != "select-c100":  # quick mode: direct only once, to save time
                targets = [t for t in targets if t.label != "direct"]
            labels[case.name] = [t.label for t in targets]
            for t in targets:
                if t.na:
                    results.append({"case": case.name, "target": t.label, "ok": False, "error": None,
                                    "na": t.na})
            runnable = [t for t in targets if not t.na]
            if case.clients > PG_MAX_CONNECTIONS - 50:
                for t in [t for t in runnable if t.label == "direct"]:
                    results.append({"case": case.name, "target": "direct", "ok": False, "error": None,
                                    "na": f"n/a (PostgreSQL max_connections {PG_MAX_CONNECTIONS})"})
                runnable = [t for t in runnable if t.label != "direct"]
            try:
                for rep in range(RUNS if runnable else 0):
                    k = rep % len(runnable)
                    for t in runnable[k:] + runnable[:k]:  # rotate the order between repetitions
                        for p in poolers:  # died while not measured (idle, between runs)?
                            revive(p, f"between runs (noticed before {case.name} #{rep + 1})")
                        if t.pooler and not t.pooler.alive():
                            continue
                        if case.name.startswith("tpcb"):
                            pg.psql("VACUUM pgbench_branches, pgbench_tellers", db=DBNAME)
                            pg.psql("TRUNCATE pgbench_history", db=DBNAME)
                        r = run_pgbench(case, t, logdir, f"{case.name}-{t.label.replace(' ', '_')}-{rep}")
                        r["rep"] = rep
                        if t.pooler and not t.pooler.alive():
                            r["ok"], r["crash"] = False, True
                            r["error"] = f"{t.label} CRASHED ({exit_status(t.pooler.proc.returncode)})"
                            revive(t.pooler, f"during {case.name} #{rep + 1}",
                                   restart=t.pooler in poolers)
                        results.append(r)
                        msg = (f"TPS {r['tps']:.0f}, p50 {r.get('p50_ms', 0):.2f} ms, p99 "
                               f"{r.get('p99_ms', 0):.2f} ms" if r["ok"] else f"FAILED: {r['error']}")
                        if r["ok"] and r.get("cpu_us_per_tx") is not None:
                            msg += f", CPU {r['cpu_us_per_tx']:.1f} µs/tx, RSS {r['rss_kib'] / 1024:.1f} MiB"
                        log(f"{case.name} #{rep + 1} {t.label}: {msg}")
            finally:
                for p in extra_poolers:
                    revive(p, f"during {case.name}", restart=False)
                    p.stop()
            log(f"{case.name} done in {time.monotonic() - ct0:.0f} s")
    except SetupError as e:
        broken.append(f"setup failed: {e}")
        log(f"SETUP FAILED: {e}")
    except Exception as e:  # noqa: BLE001 - a bug here: report it, still clean up and print
        import traceback
        traceback.print_exc()
        broken.append(f"bench.py failed: {type(e).__name__}: {e}")
    finally:
        for p in poolers:
            try:
                revive(p, "after the last case", restart=False)
            finally:
                p.stop()
            if p.proc and crashed_on_stop(p.proc.returncode):
                broken.append(f"{p.label} exited with {exit_status(p.proc.returncode)} on SIGTERM: "
                              f"{p.first_error()}")
        if pg:
            pg.stop()

    elapsed = time.monotonic() - t_start
    load_end = os.getloadavg()
    cases_run = [c for c in cases if any(r["case"] == c.name for r in results)]
    labels_for = lambda c: labels.get(c.name, ["direct", "tidepool", "pgbouncer"])  # noqa: E731
    table = build_table(results, cases_run, labels_for) if cases_run else "(no case ran)"
    acc = acceptance(results, {c.name: c for c in cases_run}, labels_for) if cases_run else ""
    header = (
        f"Benchmark ({'quick: BENCH_QUICK=1' if QUICK else 'full'} `make bench`), {info['date']}: "
        f"{info['nproc']} × {info['cpu']}, {info['mem']}, {info['kernel']}.  \n"
        f"{info['tidepool']}; {info['pgbouncer'].split(chr(10))[0]}; {info['postgres']}; {info['pgbench']}.  \n"
        f"{RUNS} run(s) per case of {DURATION} s (`pgbench -n -j {THREADS} -T {DURATION}`), scale {SCALE}, "
        f"transaction pooling, default_pool_size {POOL_SIZE}, md5 client auth (SCRAM+TLS for the storm), "
        f"PostgreSQL max_connections {PG_MAX_CONNECTIONS} with fsync off, all on one machine over "
        f"127.0.0.1. TPS: median [min–max] over runs; p50/p99: median over runs of per-run percentiles "
        f"from pgbench -l; CPU: pooler utime+stime (/proc/PID/stat) ÷ transactions; RSS: pooler VmRSS "
        f"(peak sampled during the run; idle case: with all clients connected). Total time "
        f"{elapsed / 60:.1f} min; load average (1/5/15 min) at start "
        f"{'/'.join(f'{x:.1f}' for x in load_start)}, at end {'/'.join(f'{x:.1f}' for x in load_end)}."
        + (f" Direct runs (not -C) get -T extended by 1.5 × their clients' sequential connection time "
           f"({direct_connect_ms:.0f} ms per PostgreSQL connection here), as pgbench's -T clock starts "
           f"before clients connect." if direct_connect_ms else "")
        + (f" tidepool extra settings: {TIDEPOOL_SETTINGS}." if TIDEPOOL_SETTINGS else "")
    )
    md = f"{header}\n\n{table}\n\nAcceptance checks of issue 7 (this run only):\n\n{acc}\n"
    if broken:
        md += "\nBROKEN:\n\n" + "\n".join(f"- {b}" for b in broken) + "\n"
    print("\n" + md, flush=True)
    os.makedirs(OUT_DIR, exist_ok=True)
    gi = os.path.join(OUT_DIR, ".gitignore")
    if not os.path.exists(gi):
        with open(gi, "w") as f:
            f.write("# written by scripts/bench/bench.py: results stay out of git\n*\n")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in ("latest.md", f"{stamp}{'-quick' if QUICK else ''}.md"):
        with open(os.path.join(OUT_DIR, name), "w") as f:
            f.write(md)
    with open(os.path.join(OUT_DIR, "latest.json"), "w") as f:
        json.dump({"info": info, "quick": QUICK, "runs": RUNS, "duration": DURATION, "scale": SCALE,
                   "idle_clients": IDLE_N, "results": results, "broken": broken}, f, indent=1, default=str)
    log(f"table written to {os.path.join(OUT_DIR, 'latest.md')} (raw runs: latest.json)")
    return 1 if broken else 0


def on_signal(signum, frame):
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)  # one unwinding is enough; let the cleanup finish
    raise SystemExit(f"stopped by {signal.Signals(signum).name}")


if __name__ == "__main__":
    # SIGTERM/SIGHUP/SIGINT unwind through the finally blocks: every child is stopped by PID
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_signal)
    try:
        sys.exit(main())
    except SetupError as e:
        log(f"SETUP FAILED: {e}")
        sys.exit(1)
    finally:
        for proc, sig in reversed(SPAWNED):  # poolers first, PostgreSQL last
            stop_proc(proc, sig)
        if BASE_DIR and KEEP:
            log(f"kept {BASE_DIR}")
        elif BASE_DIR:
            shutil.rmtree(BASE_DIR, ignore_errors=True)
