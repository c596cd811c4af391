"""The user's own pgbouncer.ini (from their setup guide, with its Linux paths; kept in seed/) used
unchanged.

It listens on 127.0.0.1:6432, points at 127.0.0.1:5432 and writes /etc/pgbouncer,
/var/log/pgbouncer and /var/run/pgbouncer paths, so it runs inside private mount and network
namespaces (seed_netns.sh) with a PostgreSQL of its own on 127.0.0.1:5432.
"""

import os
import re
import shutil
import subprocess
import tempfile

import pytest

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
SEED_INI = os.path.join(HERE, "seed", "pgbouncer.ini")
SCRIPT = os.path.join(HERE, "seed_netns.sh")


def _namespaces_usable():
    if not harness.IS_ROOT:
        return "needs root (mount and network namespaces, bind mounts over /etc and /var)"
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "unshare (util-linux) or ip (iproute2) not installed"
    r = subprocess.run(["unshare", "--mount", "--net", "--", "true"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, timeout=10)
    if r.returncode != 0:
        return f"unshare --mount --net not permitted here: {r.stderr.strip()}"
    return None


def run_seed(daemon_bin, ini_text):
    why = _namespaces_usable()
    if why:
        pytest.skip(why)
    w = tempfile.mkdtemp(prefix="tp-seed-", dir="/var/tmp")  # not /tmp: the script hides /tmp
    os.chmod(w, 0o755)
    try:
        ini = os.path.join(w, "seed.ini")
        with open(ini, "w") as f:
            f.write(ini_text)
        r = subprocess.run(["unshare", "--mount", "--net", "--", "bash", SCRIPT, daemon_bin, ini, w,
                            harness.pg_bindir()],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=150)

        def out(name):
            try:
                with open(os.path.join(w, "out", name), errors="replace") as f:
                    return f.read()
            except OSError:
                return ""

        return r, out
    finally:
        # read everything the test needs before this point: out() is only used by callers
        # while the dir exists, so defer removal to the caller via a finalizer
        run_seed.cleanup.append(w)


run_seed.cleanup = []


@pytest.fixture(autouse=True)
def _cleanup_seed_dirs():
    yield
    while run_seed.cleanup:
        shutil.rmtree(run_seed.cleanup.pop(), ignore_errors=True)


def check_seed_run(r, out):
    assert r.returncode == 0, f"{r.stdout}\n--- daemon stderr ---\n{out('daemon.stderr')}\n{out('psql.err')}"
    assert out("psql.out").strip() == "postgres|postgres|42|5432", out("psql.out") + out("psql.err")
    log = out("pgbouncer.log")
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \w+ \[\d+\] LOG C-0x[0-9a-f]+: "
                     r"ahsp_db/postgres@127\.0\.0\.1:\d+ login attempt: db=ahsp_db user=postgres tls=no",
                     log, re.M), log
    assert "closing because: client close request" in log, log
    pid = out("daemon.pid").strip()
    assert pid and f"[{pid}]" in log, (pid, log[:500])
    assert out("pidfile").strip() == pid, (out("pidfile"), pid)


@pytest.mark.timeout(180)
@pytest.mark.tidepool_only(reason="PgBouncer 1.18 rejects the seed's inline '; comment' values "
                                  "(invalid value \"1000          ; Max client connections ...\") and "
                                  "does not know max_prepared_statements (1.21+)")
def test_seed_ini_verbatim(daemon_bin):
    with open(SEED_INI) as f:
        r, out = run_seed(daemon_bin, f.read())
    check_seed_run(r, out)


@pytest.mark.timeout(180)
def test_seed_ini_without_inline_comments(daemon_bin):
    """Same run with the inline comments stripped: proves the namespace harness on PgBouncer 1.18 too."""
    with open(SEED_INI) as f:
        text = f.read()
    text = re.sub(r"^([^;#\n][^;\n]*?)\s+;.*$", r"\1", text, flags=re.M)
    if harness.binary_is_pgbouncer(daemon_bin):
        text = re.sub(r"^max_prepared_statements.*\n", "", text, flags=re.M)  # unknown before 1.21
    r, out = run_seed(daemon_bin, text)
    check_seed_run(r, out)
