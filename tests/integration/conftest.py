"""Fixtures for the integration suite.

- `pg`: one real PostgreSQL for the whole session (max_connections=30).
- `tidepool`: a factory that starts the daemon ($TIDEPOOL_BIN) with a generated
  pgbouncer.ini/userlist.txt; every instance is stopped (SIGQUIT by PID) at teardown.
- `pgbench_db`: pgbench tables (scale 1) in appdb, owned by `app`.

Run against real PgBouncer to validate the tests themselves:
    TIDEPOOL_BIN=/usr/sbin/pgbouncer /usr/bin/python3 -m pytest -q tests/integration
Tests marked `tidepool_only` are skipped when the binary's basename is `pgbouncer`.
"""

import os
import subprocess
import sys

import pytest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if not harness.binary_is_pgbouncer():
        return
    for item in items:
        m = item.get_closest_marker("tidepool_only")
        if m is not None:
            why = m.kwargs.get("reason") or (m.args[0] if m.args else "tidepool-specific behaviour")
            item.add_marker(pytest.mark.skip(reason=f"tidepool_only (binary is pgbouncer): {why}"))


def pytest_report_header(config):
    return [f"daemon under test: {harness.daemon_binary()} (root={harness.IS_ROOT})",
            f"postgresql bindir: {harness.pg_bindir()}"]


@pytest.fixture(scope="session")
def daemon_bin():
    b = harness.daemon_binary()
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        pytest.fail(f"daemon binary {b!r} is missing or not executable (set TIDEPOOL_BIN or run `make`)",
                    pytrace=False)
    return b


@pytest.fixture(scope="session")
def pg():
    server = harness.PostgresServer(max_connections=30)
    try:
        server.init()
    except BaseException:
        print(server.server_log()[-4000:], file=sys.stderr)
        server.cleanup()
        raise
    yield server
    server.cleanup()


@pytest.fixture
def tidepool(pg, daemon_bin):
    """Factory: tidepool(ini_overrides=None, databases=None, users=None, userlist=None,
    start=True, skip_unsupported=False, extra_args=None, nofile=4096) -> harness.Daemon."""
    started = []

    def factory(ini_overrides=None, databases=None, users=None, userlist=None, start=True,
                skip_unsupported=False, **kw):
        d = harness.Daemon(pg, ini_overrides, databases=databases, users=users, userlist=userlist,
                           binary=daemon_bin, **kw)
        started.append(d)
        if start:
            try:
                d.start()
            except RuntimeError:
                # docs/compatibility.md: a known setting the daemon does not support yet is refused at load
                # time. Tests of such a setting opt in to being skipped (with the daemon's words).
                lines = [ln for ln in d.log().splitlines() if "not supported yet" in ln]
                if skip_unsupported and lines and not d.alive():
                    pytest.skip(f"daemon refuses a setting it does not support yet: {lines[0]}")
                raise
        return d

    yield factory
    reports = []
    for d in started:
        reports += d.cleanup() or []
    if reports:
        # A sanitizer build reported a bug in the daemon: the test fails even if the client
        # side looked fine.
        pytest.fail("sanitizer report from the daemon:\n" + "\n----\n".join(reports), pytrace=False)


@pytest.fixture(scope="session")
def pgbench_db(pg):
    """pgbench -i -s 1 directly against PostgreSQL, as `app` over TCP (SCRAM)."""
    r = subprocess.run([os.path.join(pg.bindir, "pgbench"), "-i", "-s", "1", "-q"],
                       env=pg.env_for(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout
    return pg


def pytest_runtest_makereport(item, call):
    """On failure, attach the daemon logs of the test to the report."""
    if call.when != "call" or call.excinfo is None:
        return
    fx = getattr(item, "funcargs", {})
    if "tidepool" in fx:
        # the factory closure holds `started`; find the Daemon objects through it
        cells = getattr(fx["tidepool"], "__closure__", None) or ()
        for cell in cells:
            v = cell.cell_contents
            if isinstance(v, list):
                for d in v:
                    if isinstance(d, harness.Daemon):
                        item.add_report_section("call", f"daemon log {d.port}", d.log()[-6000:])
