"""The options startup parameter (libpq's PGOPTIONS, Django's OPTIONS["options"]), read as
PostgreSQL reads it: tracked parameters set with -c follow the client, parameters listed in
ignore_startup_parameters are dropped, anything else is refused with PgBouncer's message. Also:
startup packets larger than pkt_buf, and a client value the server spells differently."""

import re

import psycopg
import psycopg2
import pytest

import harness


def show(d, what, options, **kw):
    # psycopg 3: psycopg2 sets DateStyle to ISO itself after connecting
    conn = psycopg.connect(d.dsn(options=options, **kw), autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SHOW {what}")
            return cur.fetchone()[0]
    finally:
        conn.close()


def q(options):
    """Quote an options value for a libpq conninfo string."""
    return "'" + options.replace("\\", "\\\\").replace("'", "\\'") + "'"


@pytest.mark.tidepool_only(reason="PgBouncer 1.18 refuses options")
def test_tracked_parameters_in_options_follow_the_client(tidepool):
    d = tidepool({"ignore_startup_parameters": "extra_float_digits"})
    assert show(d, "DateStyle", q("  -c    datestyle=German,\\ YMD")) == "German, YMD"
    assert show(d, "TimeZone", q("-ctimezone=Europe/Lisbon  -cdatestyle=German,\\ YMD")) == "Europe/Lisbon"
    assert show(d, "TimeZone", q("--timezone=Asia/Tokyo")) == "Asia/Tokyo"
    assert show(d, "TimeZone", q("-c t\\imezone=\\E\\u\\r\\o\\pe/Rome")) == "Europe/Rome"
    assert show(d, "application_name", q("-c application_name=from-options")) == "from-options"
    # listed in ignore_startup_parameters: accepted and dropped
    assert show(d, "extra_float_digits", q("-c extra_float_digits=2")) == "1"
    # transaction pooling: the value holds on whichever server the client gets next
    conn = d.connect(options=q("-c timezone=America/Lima"))
    other = d.connect(options=q("-c timezone=Africa/Cairo"))
    with conn.cursor() as a, other.cursor() as b:
        for _ in range(3):
            a.execute("SHOW TimeZone")
            b.execute("SHOW TimeZone")
            assert (a.fetchone()[0], b.fetchone()[0]) == ("America/Lima", "Africa/Cairo")
    conn.close()
    other.close()


@pytest.mark.tidepool_only(reason="PgBouncer 1.18 refuses options")
@pytest.mark.parametrize("options,message", [
    ("-d", "unsupported options startup parameter: only '-c config=val' and '--config=val' are allowed"),
    ("-c timezone", "unsupported options startup parameter: only '-c config=val' and '--config=val' are allowed"),
    ("-c enable_seqscan=false", "unsupported startup parameter in options: enable_seqscan"),
    ("-c statement_timeout=60000 -c idle_in_transaction_session_timeout=120000",
     "unsupported startup parameter in options: statement_timeout"),
])
def test_options_refused(tidepool, options, message):
    d = tidepool()
    with pytest.raises(psycopg2.OperationalError, match=re.escape(message)):
        d.connect(options=q(options))
    assert harness.port_open("127.0.0.1", d.port)  # and everyone else is still served
    show(d, "TimeZone", q("-c timezone=UTC"))


@pytest.mark.tidepool_only(reason="PgBouncer 1.18 refuses options")
def test_ignoring_options_still_applies_what_is_tracked(tidepool):
    d = tidepool({"ignore_startup_parameters": "options"})
    assert show(d, "enable_seqscan", q("-c enable_seqscan=false")) == "on"
    assert show(d, "TimeZone", q("-ctimezone=Europe/Lisbon -c enable_seqscan=off")) == "Europe/Lisbon"
    assert show(d, "TimeZone", q("-d -x")) != ""  # malformed, but ignored as asked


def test_startup_packet_larger_than_pkt_buf(tidepool):
    d = tidepool({"ignore_startup_parameters": "extra_float_digits", "pkt_buf": "4096"})
    long_value = "1" * 5000
    assert show(d, "TimeZone", q(f"-c extra_float_digits={long_value} -c timezone=UTC")) == "UTC"
    # a long application_name travels in the packet too
    assert show(d, "TimeZone", q("-c timezone=UTC"), application_name="a" * 4500) == "UTC"


def test_server_spelling_of_a_client_value_is_adopted(tidepool):
    """DateStyle=ISO is "ISO, MDY" on the server: the pooler sends SET once, not per query."""
    d = tidepool({"verbose": "2"})
    conn = d.connect(options=q("-c DateStyle=ISO"))
    with conn.cursor() as cur:
        for _ in range(3):
            cur.execute("SELECT 1")
    conn.close()
    log = d.log()
    assert len(re.findall(r"varcache_apply: .*SET DateStyle='ISO'", log)) == 1, log
    assert len(re.findall(r"varcache_set_canonical: setting DateStyle to its canonical version "
                          r"ISO -> ISO, MDY", log)) == 1, log


@pytest.mark.tidepool_only(reason="console SET")
def test_set_verbose_at_run_time(tidepool):
    from test_admin import console, start
    d = start(tidepool)
    c = console(d)
    c.ok("SET verbose = 2")
    d.connect(options=q("-c DateStyle=ISO")).cursor().execute("SELECT 1")
    harness.wait_until(lambda: "varcache_apply" in d.log(), 5, what="NOISE lines after SET verbose")
    c.close()
