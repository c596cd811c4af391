"""Integration-test harness: a throw-away PostgreSQL, the pooler daemon, a raw wire client.

Everything here binds 127.0.0.1 or a Unix socket in a temp dir, every wait is bounded,
and every process is stopped by its own PID.
"""

import base64
import glob
import hashlib
import hmac
import os
import pwd
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

IS_ROOT = os.geteuid() == 0
RUN_AS = "postgres" if IS_ROOT else None

APP_USER, APP_PASSWORD = "app", "apppass"
MD5_USER, MD5_PASSWORD = "md5user", "md5pass"

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


# --------------------------------------------------------------------------- utilities


def is_sanitized(binary):
    """An ASan build: its RSS grows by design (freed memory sits in quarantine, every block
    is padded), so memory bounds do not apply to it."""
    try:
        with open(binary, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def daemon_binary():
    return os.environ.get("TIDEPOOL_BIN") or os.path.join(REPO, "build", "tidepool")


def binary_is_pgbouncer(path=None):
    return os.path.basename(path or daemon_binary()) == "pgbouncer"


def pg_bindir():
    env = os.environ.get("PG_BINDIR")
    if env:
        return env
    if os.path.exists("/usr/lib/postgresql/15/bin/postgres"):
        return "/usr/lib/postgresql/15/bin"
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if not found:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    return os.path.dirname(found[-1])


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_as_cmd(cmd):
    """Prefix a command so it runs as the unprivileged `postgres` user when we are root."""
    if IS_ROOT:
        return ["runuser", "-u", RUN_AS, "--"] + list(cmd)
    return list(cmd)


def give_to_daemon_user(path):
    """chown a path (recursively) to the user the servers run as (only when root)."""
    if not IS_ROOT:
        return
    pw = pwd.getpwnam(RUN_AS)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            for n in dirs + files:
                os.chown(os.path.join(root, n), pw.pw_uid, pw.pw_gid)


def make_tempdir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    give_to_daemon_user(d)
    return d


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Poll pred() until it returns a truthy value; bounded by timeout. Returns the value."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - keep polling, remember the last error
            last_exc = e
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}; last error: {last_exc!r}")
        time.sleep(interval)


def port_open(host, port, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def stop_pid(proc, sig=signal.SIGQUIT, timeout=10):
    """Stop a process we started (subprocess.Popen) by PID: sig, wait, SIGKILL."""
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


def established_to_port(port):
    """Number of ESTABLISHED TCP sockets on 127.0.0.1 whose local port is `port` (server side)."""
    # A socket can appear twice when the table changes while it is read in chunks: count each
    # (local, remote) pair once.
    seen = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "01" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                        seen.add((parts[1], parts[2]))
        except OSError:
            pass
    return len(seen)


def raise_nofile(limit=4096):
    """Raise RLIMIT_NOFILE of this process to at least `limit` (bounded by the hard limit, unless root)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= limit:
        return soft
    if hard != resource.RLIM_INFINITY and hard < limit:
        if IS_ROOT:
            hard = limit
        else:
            limit = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    return limit


# --------------------------------------------------------------------------- PostgreSQL


class PostgresServer:
    """A private PostgreSQL cluster in a temp dir, listening on 127.0.0.1:<free port>."""

    def __init__(self, max_connections=30, port=None, extra_conf=None, hba_extra=None):
        self.bindir = pg_bindir()
        self.base = make_tempdir("tp-pg-")
        self.datadir = os.path.join(self.base, "data")
        self.sockdir = self.base
        self.logfile = os.path.join(self.base, "postgres.log")
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.max_connections = max_connections
        self.extra_conf = extra_conf or {}
        # pg_hba.conf lines put before the default ones (e.g. "host replication ...")
        self.hba_extra = list(hba_extra or [])
        self._conn = None

    # -- lifecycle

    def _run(self, cmd, timeout=120, check=True):
        r = subprocess.run(
            run_as_cmd(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=timeout, cwd=self.base,
        )
        if check and r.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed ({r.returncode}):\n{r.stdout}\n{self.server_log()[-3000:]}")
        return r

    def init(self):
        self._run([os.path.join(self.bindir, "initdb"), "-D", self.datadir, "-U", "postgres",
                   "-E", "UTF8", "--locale=C", "-A", "trust", "--no-sync"], timeout=180)
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.sockdir}'",
            "max_connections": str(self.max_connections),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "password_encryption": "'scram-sha-256'",
            "shared_buffers": "'128MB'",
            "log_min_messages": "warning",
            "logging_collector": "off",
        }
        conf.update(self.extra_conf)
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write("\n# tidepool integration tests\n")
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")
        with open(os.path.join(self.datadir, "pg_hba.conf"), "w") as f:
            f.write("# TYPE  DATABASE USER     ADDRESS        METHOD\n")
            for line in self.hba_extra:
                f.write(line + "\n")
            f.write(
                "local   all      postgres                trust\n"
                f"host    all      {MD5_USER}  127.0.0.1/32   md5\n"
                "host    all      all      127.0.0.1/32   scram-sha-256\n"
            )
        give_to_daemon_user(self.base)
        self.start()
        self.sql(f"CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}'")
        self.sql(f"SET password_encryption = 'md5'; CREATE ROLE {MD5_USER} LOGIN PASSWORD '{MD5_PASSWORD}'")
        self.sql(f"CREATE DATABASE appdb OWNER {APP_USER}")
        self.sql(f"GRANT ALL ON SCHEMA public TO {MD5_USER}", dbname="appdb")
        # sanity: the passwords really are stored the way the tests rely on
        rows = dict(self.sql("SELECT rolname, left(rolpassword, 14) FROM pg_authid WHERE rolname IN (%s, %s)",
                             (APP_USER, MD5_USER)))
        assert rows[APP_USER].startswith("SCRAM-SHA-256$"), rows
        assert rows[MD5_USER].startswith("md5"), rows
        return self

    def start(self):
        self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, "-l", self.logfile,
                   "-w", "-t", "60", "start"], timeout=90)

    def stop(self, mode="fast"):
        self.close_admin()
        if os.path.exists(os.path.join(self.datadir, "postmaster.pid")):
            self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, "-m", mode,
                       "-w", "-t", "60", "stop"], timeout=90, check=False)

    def restart(self):
        """Stop (-m fast) and start again on the same port and socket dir."""
        self.stop("fast")
        self.start()

    def cleanup(self):
        try:
            self.stop("fast")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def server_log(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # -- SQL as superuser over the Unix socket

    def connect(self, dbname="postgres", user="postgres"):
        import psycopg2

        c = psycopg2.connect(host=self.sockdir, port=self.port, user=user, dbname=dbname,
                             connect_timeout=10)
        c.autocommit = True
        return c

    def close_admin(self):
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001
                pass
            self._conn = None

    def sql(self, query, params=None, dbname="postgres"):
        """Run SQL as superuser; returns the rows (or [] for commands without result)."""
        if dbname != "postgres":
            c = self.connect(dbname)
            try:
                return self._exec(c, query, params)
            finally:
                c.close()
        for attempt in range(2):
            if self._conn is None or self._conn.closed:
                self._conn = self.connect()
            try:
                return self._exec(self._conn, query, params)
            except Exception:
                # the cached connection may have died (e.g. across a restart): retry once
                self.close_admin()
                if attempt:
                    raise
        return []

    @staticmethod
    def _exec(conn, query, params):
        with conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []

    def count_backends(self, user=APP_USER, dbname="appdb"):
        return self.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND datname = %s "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()", (user, dbname))[0][0]

    def wait_backends_at_most(self, n, user=APP_USER, dbname="appdb", timeout=15):
        return wait_until(lambda: self.count_backends(user, dbname) <= n, timeout,
                          interval=0.1, what=f"<= {n} backends of {user}/{dbname}")

    def direct_dsn(self, user=APP_USER, password=APP_PASSWORD, dbname="appdb"):
        return f"host=127.0.0.1 port={self.port} user={user} password={password} dbname={dbname}"

    def env_for(self, user=APP_USER, password=APP_PASSWORD):
        env = dict(os.environ)
        env.update(PGHOST="127.0.0.1", PGPORT=str(self.port), PGUSER=user, PGPASSWORD=password,
                   PGDATABASE="appdb", PGSSLMODE="disable", PGCONNECT_TIMEOUT="10")
        return env


# --------------------------------------------------------------------------- the daemon


def format_ini(databases, pgbouncer, users=None):
    out = ["[databases]"]
    for k, v in databases.items():
        out.append(f"{k} = {v}")
    out += ["", "[pgbouncer]"]
    for k, v in pgbouncer.items():
        if v is None:
            continue
        out.append(f"{k} = {v}")
    if users:
        out += ["", "[users]"]
        for k, v in users.items():
            out.append(f"{k} = {v}")
    return "\n".join(out) + "\n"


def format_userlist(users):
    lines = []
    for u, p in users.items():
        u = u.replace('"', '""')
        p = p.replace('"', '""')
        lines.append(f'"{u}" "{p}"')
    return "\n".join(lines) + "\n"


class Daemon:
    """One pooler process (tidepool or pgbouncer) with its own ini, userlist and port."""

    def __init__(self, pg, ini_overrides=None, databases=None, users=None, userlist=None,
                 binary=None, extra_args=None, nofile=4096, port=None):
        self.pg = pg
        self.binary = binary or daemon_binary()
        self.dir = make_tempdir("tp-pool-")
        self.ini_path = os.path.join(self.dir, "pgbouncer.ini")
        self.userlist_path = os.path.join(self.dir, "userlist.txt")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.port = port or free_port()
        self.extra_args = list(extra_args or [])
        self.nofile = nofile
        self.proc = None
        self.rewrite_ini(ini_overrides, databases=databases, users=users, userlist=userlist)

    # -- files

    def default_databases(self):
        pg = self.pg
        return {
            "appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb",
            "postgres": f"host=127.0.0.1 port={pg.port} dbname=postgres",
        }

    def default_settings(self):
        return {
            "listen_addr": "127.0.0.1",
            "listen_port": str(self.port),
            "unix_socket_dir": self.dir,
            "logfile": "",
            "auth_type": "md5",
            "auth_file": self.userlist_path,
            "admin_users": "postgres",
            "pool_mode": "transaction",
            "default_pool_size": "20",
            "max_client_conn": "200",
            # the default (1 worker) unless TIDEPOOL_TEST_WORKERS=N: test_workers.py pins its own
            # counts; TIDEPOOL_TEST_WORKERS=2 runs every test across two workers (see the README
            # of this folder for why that is not the CI default yet). PgBouncer has no such key.
            "workers": None if binary_is_pgbouncer(self.binary) else os.environ.get("TIDEPOOL_TEST_WORKERS"),
        }

    def rewrite_ini(self, ini_overrides=None, databases=None, users=None, userlist=None, raw_ini=None):
        """(Re)write pgbouncer.ini and userlist.txt. Values None in ini_overrides drop a key."""
        if raw_ini is not None:
            text = raw_ini
        else:
            dbs = self.default_databases() if databases is None else dict(databases)
            settings = self.default_settings()
            settings.update(ini_overrides or {})
            text = format_ini(dbs, settings, users)
        if userlist is None:
            userlist = {APP_USER: APP_PASSWORD, MD5_USER: MD5_PASSWORD}
        self.ini_text = text
        with open(self.ini_path, "w") as f:
            f.write(text)
        with open(self.userlist_path, "w") as f:
            f.write(userlist if isinstance(userlist, str) else format_userlist(userlist))
        for p in (self.ini_path, self.userlist_path):
            os.chmod(p, 0o600)
            give_to_daemon_user(p)

    # -- process

    def command(self):
        cmd = [self.binary] + self.extra_args
        if IS_ROOT:
            cmd += ["-u", RUN_AS]
        return cmd + [self.ini_path]

    def _preexec(self):
        if not self.nofile:
            return
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = self.nofile
        if hard != resource.RLIM_INFINITY and hard < want:
            if IS_ROOT:
                hard = want
            else:
                want = hard
        if soft == resource.RLIM_INFINITY or soft >= want:
            return
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    def spawn(self):
        errf = open(self.stderr_path, "ab")
        try:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=errf, stderr=errf,
                                         cwd=self.dir, preexec_fn=self._preexec)
        finally:
            errf.close()
        return self.proc

    def start(self, timeout=15):
        self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with status {self.proc.returncode} before listening:\n"
                                   f"{self.log()[-4000:]}\n--- ini ---\n{self.ini_text}")
            if port_open("127.0.0.1", self.port, timeout=0.2):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"daemon did not listen on 127.0.0.1:{self.port} within {timeout}s:\n{self.log()[-4000:]}")

    def run_expect_exit(self, timeout=10):
        """Start and wait for the process to exit by itself; returns (status, elapsed, log)."""
        t0 = time.monotonic()
        self.spawn()
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"daemon still running after {timeout}s:\n{self.log()[-3000:]}")
        return rc, time.monotonic() - t0, self.log()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def send_signal(self, sig):
        assert self.alive(), "daemon is not running"
        os.kill(self.proc.pid, sig)

    def reload(self):
        self.send_signal(signal.SIGHUP)

    def stop(self, sig=signal.SIGQUIT, timeout=10):
        stop_pid(self.proc, sig, timeout)

    def cleanup(self):
        """Stop the daemon and remove its files. Returns the sanitizer reports found in its
        stderr (an ASan/UBSan build prints them there, LeakSanitizer at exit)."""
        self.stop()
        reports = []
        try:
            text = self.log()
        except OSError:
            text = ""
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "WARNING: ThreadSanitizer"):
            if marker in text:
                at = text.index(marker)
                reports.append(text[max(0, at - 200):at + 3000])
        shutil.rmtree(self.dir, ignore_errors=True)
        return reports

    def log(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=10):
        rx = re.compile(pattern, re.M)
        return wait_until(lambda: rx.search(self.log()), timeout, what=f"log line /{pattern}/")

    # -- client side

    def dsn(self, user=APP_USER, password=APP_PASSWORD, dbname="appdb", **extra):
        parts = {"host": "127.0.0.1", "port": str(self.port), "user": user, "dbname": dbname,
                 "connect_timeout": "10"}
        if password is not None:
            parts["password"] = password
        parts.update({k: str(v) for k, v in extra.items()})
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def env_for(self, user=APP_USER, password=APP_PASSWORD, dbname="appdb"):
        env = dict(os.environ)
        env.update(PGHOST="127.0.0.1", PGPORT=str(self.port), PGUSER=user, PGPASSWORD=password,
                   PGDATABASE=dbname, PGCONNECT_TIMEOUT="10")
        return env

    def connect(self, user=APP_USER, password=APP_PASSWORD, dbname="appdb", autocommit=True, **extra):
        import psycopg2

        c = psycopg2.connect(self.dsn(user, password, dbname, **extra))
        c.autocommit = autocommit
        return c


# --------------------------------------------------------------------------- raw wire protocol


class WireError(Exception):
    def __init__(self, fields):
        self.fields = fields
        super().__init__(f"{fields.get('S')} {fields.get('C')} {fields.get('M')}")

    severity = property(lambda self: self.fields.get("V") or self.fields.get("S"))
    sqlstate = property(lambda self: self.fields.get("C"))
    message = property(lambda self: self.fields.get("M"))


def _parse_fields(body):
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return fields


class RawConn:
    """Minimal frontend for checking exact protocol-level behaviour (startup params, errors)."""

    def __init__(self, host, port, timeout=15):
        if host.startswith("/"):  # a Unix socket directory, as libpq takes it
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(f"{host}/.s.PGSQL.{port}")
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.notices = []
        self.params = {}
        self.backend_key = None  # (pid, key) of BackendKeyData, as the pooler sent them

    def close(self):
        try:
            self.sock.sendall(b"X\0\0\0\4")
        except OSError:
            pass
        self.sock.close()

    def _recv_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_msg(self):
        hdr = self._recv_exact(5)
        typ, ln = hdr[:1], struct.unpack("!I", hdr[1:])[0]
        return typ, self._recv_exact(ln - 4)

    def send(self, typ, body):
        self.sock.sendall(typ + struct.pack("!I", len(body) + 4) + body)

    def startup(self, user, database, password=None, params=None):
        """Log in. Raises WireError on an ErrorResponse; returns self on ReadyForQuery."""
        kv = {"user": user, "database": database}
        kv.update(params or {})
        body = struct.pack("!I", 196608) + b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in kv.items()) + b"\0"
        self.sock.sendall(struct.pack("!I", len(body) + 4) + body)
        scram = None
        while True:
            typ, body = self.read_msg()
            if typ == b"E":
                raise WireError(_parse_fields(body))
            if typ == b"N":
                self.notices.append(_parse_fields(body))
            elif typ == b"S":
                k, v = body.rstrip(b"\0").split(b"\0", 1) if b"\0" in body.rstrip(b"\0") else (body, b"")
                self.params[k.decode()] = v.decode()
            elif typ == b"K":
                self.backend_key = struct.unpack("!II", body[:8])
            elif typ == b"Z":
                return self
            elif typ == b"R":
                code = struct.unpack("!I", body[:4])[0]
                if code == 0:
                    continue
                if code == 3:
                    self.send(b"p", (password or "").encode() + b"\0")
                elif code == 5:
                    salt = body[4:8]
                    inner = hashlib.md5((password or "").encode() + user.encode()).hexdigest()
                    outer = hashlib.md5(inner.encode() + salt).hexdigest()
                    self.send(b"p", b"md5" + outer.encode() + b"\0")
                elif code == 10:
                    scram = _Scram(password or "")
                    first = scram.client_first()
                    self.send(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first)
                elif code == 11:
                    self.send(b"p", scram.client_final(body[4:]))
                elif code == 12:
                    scram.verify(body[4:])
                else:
                    raise RuntimeError(f"unsupported auth request {code}")
            # anything else: ignore

    def query(self, sql):
        """Simple query; returns (rows, tags); raises WireError on ErrorResponse (after ReadyForQuery)."""
        self.send(b"Q", sql.encode() + b"\0")
        rows, tags, err = [], [], None
        while True:
            try:
                typ, body = self.read_msg()
            except ConnectionError:
                if err:  # e.g. a FATAL error followed by the pooler closing the connection
                    raise err
                raise
            if typ == b"D":
                n = struct.unpack("!H", body[:2])[0]
                pos, row = 2, []
                for _ in range(n):
                    ln = struct.unpack("!i", body[pos:pos + 4])[0]
                    pos += 4
                    if ln < 0:
                        row.append(None)
                    else:
                        row.append(body[pos:pos + ln].decode())
                        pos += ln
                rows.append(row)
            elif typ == b"C":
                tags.append(body.rstrip(b"\0").decode())
            elif typ == b"E":
                err = WireError(_parse_fields(body))
            elif typ == b"N":
                self.notices.append(_parse_fields(body))
            elif typ == b"Z":
                if err:
                    raise err
                return rows, tags


class _Scram:
    def __init__(self, password):
        self.password = password.encode()
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = f"n=,r={self.nonce}"

    def client_first(self):
        return ("n,," + self.first_bare).encode()

    def client_final(self, server_first):
        sf = server_first.decode()
        attrs = dict(kv.split("=", 1) for kv in sf.split(","))
        salt, iters, rnonce = base64.b64decode(attrs["s"]), int(attrs["i"]), attrs["r"]
        salted = hashlib.pbkdf2_hmac("sha256", self.password, salt, iters)
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        stored = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={rnonce}"
        auth_msg = f"{self.first_bare},{sf},{without_proof}".encode()
        sig = hmac.new(stored, auth_msg, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        self.server_sig = base64.b64encode(hmac.new(server_key, auth_msg, "sha256").digest()).decode()
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final):
        v = server_final.decode().split("v=", 1)[-1]
        if v != self.server_sig:
            raise RuntimeError("SCRAM server signature mismatch")


def raw_login(port, user, database, password=None, params=None, host="127.0.0.1"):
    """Log in with a raw startup packet; returns the open RawConn or raises WireError."""
    c = RawConn(host, port)
    try:
        return c.startup(user, database, password, params)
    except BaseException:
        c.sock.close()
        raise


def md5_secret(user, password):
    return "md5" + hashlib.md5((password + user).encode()).hexdigest()
