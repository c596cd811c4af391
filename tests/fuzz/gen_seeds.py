#!/usr/bin/env python3
"""Write the deterministic seed corpora (tests/fuzz/corpus/<harness>/) and dictionaries
(tests/fuzz/dict/<harness>.dict). Run from anywhere; rewrites both directories.

    /usr/bin/python3 tests/fuzz/gen_seeds.py

Seeds are small, hand-made inputs that reach each harness's interesting states: a login and a
query, a transaction, COPY, the extended protocol, a slow reader, a cancel request, bad packet
lengths (0, 3, 2^31), unknown types, a truncated startup packet, a hostile server's login
replies, SCRAM messages (RFC 7677's example), ini files (the seed pgbouncer.ini), connection
strings, userlist lines, console commands and entrypoint environments. The op encoding of the
protocol harnesses is documented in netsim.c.
"""

import hashlib
import os
import re
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")
DICT = os.path.join(HERE, "dict")


def out(harness, name, data):
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ------------------------------------------------------------------ protocol building blocks

def regression(harness, name, data):
    """A known crash input: replayed by run.sh, must run clean once the bug is fixed. Kept out
    of the seed corpus, where it would stop every fuzzing run at start-up."""
    d = os.path.join(HERE, "regressions", harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def be32(n):
    return struct.pack("!I", n & 0xFFFFFFFF)


def msg(t, body=b""):
    return t + be32(len(body) + 4) + body


def cstr(s):
    return (s.encode() if isinstance(s, str) else s) + b"\0"


def startup(params, version=196608):
    body = be32(version) + b"".join(cstr(k) + cstr(v) for k, v in params) + b"\0"
    return be32(len(body) + 4) + body


SSL_REQUEST = be32(8) + be32(80877103)
GSS_REQUEST = be32(8) + be32(80877104)


def cancel_request(pid, key):
    return be32(16) + be32(80877102) + be32(pid) + be32(key)


def query(sql):
    return msg(b"Q", cstr(sql))


def auth(code, extra=b""):
    return msg(b"R", be32(code) + extra)


def param(k, v):
    return msg(b"S", cstr(k) + cstr(v))


def error(sev, code, text, extra=b""):
    return msg(b"E", b"S" + cstr(sev) + b"V" + cstr(sev) + b"C" + cstr(code) + b"M" + cstr(text) + extra + b"\0")


def ready(st=b"I"):
    return msg(b"Z", st)


def login_ok():
    return (auth(0) + param("server_version", "15.4") + param("client_encoding", "UTF8")
            + param("DateStyle", "ISO, MDY") + param("TimeZone", "UTC")
            + param("standard_conforming_strings", "on") + param("application_name", "")
            + param("IntervalStyle", "postgres") + msg(b"K", be32(1234) + be32(5678)) + ready())


def row_desc(name="c"):
    return msg(b"T", struct.pack("!H", 1) + cstr(name) + be32(0) + struct.pack("!H", 0) + be32(25)
               + struct.pack("!h", -1) + be32(0xFFFFFFFF) + struct.pack("!H", 0))


def data_row(val):
    v = val.encode() if isinstance(val, str) else val
    return msg(b"D", struct.pack("!H", 1) + be32(len(v)) + v)


def complete(tag):
    return msg(b"C", cstr(tag))


def result(val="1", tag="SELECT 1", st=b"I"):
    return row_desc() + data_row(val) + complete(tag) + ready(st)


# ------------------------------------------------------------------ netsim op encoding

def u16(n):
    return struct.pack("!H", n)


def CDATA(b):
    return bytes([0]) + u16(len(b)) + b


def SDATA(b):
    return bytes([1]) + u16(len(b)) + b


def NEWCLI(tcp=False):
    return bytes([2, 1 if tcp else 0])


USERS = {"app": 0, "md5user": 1, "pgbouncer": 2, "statsuser": 3, "nosuch": 4, "scramuser": 5}
DBS = {"appdb": 0, "forcedb": 1, "pgbouncer": 2, "nosuchdb": 3, "downdb": 4, "otherdb": 5,
       "tcpdown": 6, "tcpdb": 7}


def LOGIN(user="app", db="appdb", tracked=False, bad=False, repl=False):
    # repl: a replication connection (logical when the database index is odd, else physical)
    b = USERS[user] | (DBS[db] << 3) | (0x40 if tracked else 0) | (0x80 if bad else 0) | (0xc0 if repl else 0)
    return bytes([3, b])


def AUTH(ok=True):
    return bytes([4, 1 if ok else 0])


Q = {"select": 0, "begin": 1, "commit": 2, "rollback": 3, "big": 4, "copyin": 5, "copyout": 6,
     "error": 7, "setapp": 8, "empty": 9, "notify": 10, "discard": 11, "fatal": 12, "multi": 13,
     "settz": 14, "select2": 15}


def QUERY(name):
    return bytes([5, Q[name]])


def EXT(i):
    return bytes([6, i])


def CLOSEC(terminate=True, half=False):
    return bytes([7, (1 if terminate else 0) | (2 if half else 0)])


def CLOSES(fatal=False):
    return bytes([8, 1 if fatal else 0])


def SELECT(cli=0, srv=0):
    return bytes([9, cli | (srv << 3)])


PG_AUTH = {"trust": 0, "cleartext": 1, "md5": 2, "scram": 3}


def AUTO(on=True, pg_auth=0):
    return bytes([10, (1 if on else 0) | (pg_auth << 1)])


def DRAIN(on=True):
    return bytes([11, 0 if on else 1])


def PUMP(janitor=False, extra=0):
    return bytes([12, (0x80 if janitor else 0) | extra])


def RELOAD(xor=0, drop_appdb=False):
    return bytes([13, (xor & 0x7F) | (0x80 if drop_appdb else 0)])


def CANCEL(wrong=False):
    return bytes([14, 1 if wrong else 0])


def COPY(data, end=1):
    return bytes([15]) + u16(len(data)) + data + bytes([end])


AUTH_TYPES = {"trust": 0, "any": 1, "md5": 2, "plain": 3}
MODES = {"session": 0, "transaction": 1, "statement": 2}


def V(auth="md5", mode="transaction", small_buf=False, reset_always=False, check=False, autodb=False,
      size=1, maxconn3=False, retry0=False, appname_host=False, maxpkt=False, minpool=False,
      users=False, timeouts=0, no_prepared=False, hba=False, scram=False, tls=False, auth_user=False,
      server_tls_off=False, quiet_logs=False, verbose0=False):
    b0 = AUTH_TYPES[auth] | (MODES[mode] << 2) | (0x10 if small_buf else 0) | (0x20 if reset_always else 0) \
        | (0x40 if check else 0) | (0x80 if autodb else 0)
    sizes = {1: 0, 2: 1, 5: 2, 20: 3}
    b1 = sizes[size] | (4 if maxconn3 else 0) | (8 if retry0 else 0) | (0x10 if appname_host else 0) \
        | (0x20 if maxpkt else 0) | (0x40 if minpool else 0) | (0x80 if users else 0)
    b3 = (1 if no_prepared else 0) | (2 if hba else 0) | (4 if scram else 0) | (8 if tls else 0) \
        | (0x10 if auth_user else 0) | (0x20 if server_tls_off else 0) | (0x40 if quiet_logs else 0) \
        | (0x80 if verbose0 else 0)
    return bytes([b0, b1, timeouts, b3])


def login_app(user="app", db="appdb", **kw):
    return NEWCLI() + LOGIN(user, db, **kw) + AUTH(True)


# ------------------------------------------------------------------ fuzz_client

def seeds_client():
    h = "fuzz_client"
    out(h, "login_select_terminate", V() + login_app() + QUERY("select") + CLOSEC(True))
    out(h, "trust_login", V("trust") + NEWCLI() + LOGIN() + QUERY("select"))
    out(h, "replication_physical", V() + login_app(repl=True) + QUERY("select") + CLOSEC(True))
    out(h, "replication_logical", V("trust") + NEWCLI() + LOGIN("app", "forcedb", repl=True)
        + QUERY("select") + QUERY("begin") + CLOSEC(False))
    out(h, "plain_login", V("plain") + login_app() + QUERY("select"))
    out(h, "wrong_password", V() + NEWCLI() + LOGIN() + AUTH(False))
    out(h, "unknown_user", V() + NEWCLI() + LOGIN("nosuch") + AUTH(True))
    out(h, "unknown_db", V() + login_app("app", "nosuchdb"))
    out(h, "transaction", V() + login_app() + QUERY("begin") + QUERY("select") + QUERY("commit"))
    out(h, "transaction_error", V() + login_app() + QUERY("begin") + QUERY("error") + QUERY("rollback"))
    out(h, "session_mode", V(mode="session") + login_app() + QUERY("setapp") + QUERY("select") + CLOSEC(True)
        + login_app() + QUERY("select"))
    out(h, "statement_mode_begin", V(mode="statement") + login_app() + QUERY("begin"))
    out(h, "copy_in", V() + login_app() + QUERY("copyin") + COPY(b"1\tone\n2\ttwo\n", 1) + QUERY("select"))
    out(h, "copy_in_fail", V() + login_app() + QUERY("copyin") + COPY(b"1\n", 2) + QUERY("select"))
    out(h, "copy_out", V() + login_app() + QUERY("copyout") + QUERY("select"))
    out(h, "extended", V() + login_app() + EXT(0) + EXT(1) + EXT(2) + EXT(6))
    out(h, "extended_pipeline_flush", V() + login_app() + EXT(5) + EXT(3) + EXT(4) + EXT(7))
    out(h, "lone_sync", V() + login_app() + EXT(4) + EXT(3))
    out(h, "two_clients_one_server", V(size=1) + login_app() + QUERY("begin") + login_app() + QUERY("select")
        + SELECT(0) + QUERY("commit") + PUMP() + SELECT(1) + QUERY("select2"))
    out(h, "slow_reader_big_result", V() + login_app() + DRAIN(False) + QUERY("big") + PUMP(extra=60)
        + DRAIN(True) + PUMP())
    out(h, "slow_reader_closes", V() + login_app() + DRAIN(False) + QUERY("big") + CLOSEC(False))
    out(h, "cancel", V() + login_app() + QUERY("begin") + CANCEL() + CANCEL(True))
    out(h, "console_unix_admin", V() + NEWCLI() + LOGIN("pgbouncer", "pgbouncer") + CDATA(query("SHOW POOLS"))
        + CDATA(query("SHOW CLIENTS")))
    out(h, "console_stats_user", V() + login_app("statsuser", "pgbouncer") + CDATA(query("SHOW STATS"))
        + CDATA(query("PAUSE")))
    out(h, "console_not_allowed", V() + login_app("app", "pgbouncer"))
    out(h, "ssl_request_then_login", V() + NEWCLI() + CDATA(SSL_REQUEST) + LOGIN() + AUTH(True) + QUERY("select"))
    out(h, "gss_request", V() + NEWCLI() + CDATA(GSS_REQUEST) + LOGIN())
    out(h, "startup_len_0", V() + NEWCLI() + CDATA(be32(0)))
    out(h, "startup_len_3", V() + NEWCLI() + CDATA(be32(3) + b"\0\0\0\0"))
    out(h, "startup_len_2_31", V() + NEWCLI() + CDATA(be32(0x80000000) + be32(196608)))
    out(h, "startup_truncated", V() + NEWCLI() + CDATA(startup([("user", "app")])[:9]) + CLOSEC(False))
    out(h, "startup_no_user", V() + NEWCLI() + CDATA(startup([("database", "appdb")])))
    out(h, "startup_bad_version", V() + NEWCLI() + CDATA(startup([("user", "app")], version=0x00020000)))
    out(h, "startup_unsupported_param", V() + NEWCLI() + LOGIN(bad=True))
    out(h, "startup_tracked_params", V() + NEWCLI() + LOGIN(tracked=True) + AUTH(True) + QUERY("select"))
    out(h, "bad_len_after_login", V() + login_app() + CDATA(b"Q" + be32(0)))
    out(h, "len3_after_login", V() + login_app() + CDATA(b"Q" + be32(3)))
    out(h, "len3_then_query", V() + login_app() + CDATA(b"Q" + be32(3) + query("SELECT 1")))
    out(h, "len4_then_query", V() + login_app() + CDATA(b"Q" + be32(4) + query("SELECT 1")))
    out(h, "huge_len_after_login", V() + login_app() + CDATA(b"Q" + be32(0x80000000)))
    # prepared.c client_put(): re-Parse of a name with the same text when only the client's map
    # holds the statement (the server's copy was reset away): freed, then referenced
    regression(h, "prepared_reparse_use_after_free", V(reset_always=True) + login_app() + EXT(1) + EXT(1) + EXT(1)
               + EXT(6))
    # client.c forwards message types PostgreSQL does not know (PgBouncer: "unknown pkt")
    regression(h, "unknown_type_forwarded", V() + login_app() + CDATA(msg(b"?", b"hello")) + QUERY("select"))
    out(h, "password_before_request", V("trust") + NEWCLI() + CDATA(msg(b"p", b"x\0")))
    out(h, "query_during_login", V() + NEWCLI() + LOGIN() + CDATA(query("SELECT 1")))
    out(h, "max_client_conn", V(maxconn3=True) + login_app() + login_app() + login_app() + login_app())
    out(h, "big_packet_small_buf", V(small_buf=True) + login_app() + CDATA(query("SELECT " + "x" * 900)))
    out(h, "max_packet_size", V(maxpkt=True) + login_app() + CDATA(query("SELECT " + "y" * 2100)))
    out(h, "timeouts_fire", V(timeouts=0x7F) + login_app() + QUERY("begin") + PUMP(True) + QUERY("select")
        + PUMP(True))
    out(h, "login_timeout", V(timeouts=0x20) + NEWCLI() + LOGIN() + PUMP(True))
    out(h, "reload_live", V() + login_app() + QUERY("begin") + RELOAD(0x04) + QUERY("commit") + QUERY("select"))
    out(h, "reload_drop_db", V() + login_app() + QUERY("select") + RELOAD(0, True) + QUERY("select"))
    out(h, "server_dies_mid_txn", V() + login_app() + QUERY("begin") + CLOSES(True) + QUERY("select"))
    out(h, "server_fatal_query", V() + login_app() + QUERY("fatal") + QUERY("select"))
    out(h, "down_db", V() + login_app("app", "downdb") + PUMP(True))
    # server_login_retry=0 and a Unix socket that is not there: server.c recursion (see README)
    regression(h, "down_db_retry0_recursion", V(retry0=True) + login_app("app", "downdb") + PUMP(True) + login_app("app", "downdb"))
    out(h, "tcp_down", V() + login_app("app", "tcpdown") + PUMP(extra=20))
    out(h, "pg_md5_auth", V() + AUTO(True, 2) + login_app() + QUERY("select"))
    out(h, "pg_scram_auth", V() + AUTO(True, 3) + login_app() + QUERY("select"))
    out(h, "client_scram", V(scram=True) + login_app() + QUERY("select") + login_app("md5user") + QUERY("select"))
    out(h, "client_scram_wrong", V(scram=True) + NEWCLI() + LOGIN() + AUTH(False))
    out(h, "client_scram_raw", V(scram=True) + NEWCLI() + LOGIN()
        + CDATA(msg(b"p", b"SCRAM-SHA-256\0" + be32(20) + b"n,,n=,r=abcdefghijkl"))
        + CDATA(msg(b"p", b"c=biws,r=abcdefghijklXXXX,p=AAAA")))
    out(h, "hba_unix_and_tcp", V(hba=True) + login_app() + QUERY("select") + NEWCLI(tcp=True) + LOGIN()
        + AUTH(True) + QUERY("select") + login_app("md5user") + login_app("pgbouncer", "pgbouncer"))
    out(h, "client_tls_allow_plain", V(tls=True) + login_app() + QUERY("select"))
    out(h, "client_tls_garbage_handshake", V(tls=True) + NEWCLI() + CDATA(SSL_REQUEST)
        + CDATA(bytes.fromhex("16030100c8010000c40303") + b"\x00" * 40) + CLOSEC(False))
    out(h, "auth_query_lookup", V(auth_user=True) + login_app("nosuch") + QUERY("select"))
    out(h, "prepared_named", V() + login_app() + EXT(1) + EXT(2) + login_app() + EXT(2) + EXT(6) + EXT(1))
    out(h, "prepared_off", V(no_prepared=True) + login_app() + EXT(1) + EXT(2))
    out(h, "server_tls_off_quiet", V(server_tls_off=True, quiet_logs=True, verbose0=True) + login_app()
        + QUERY("select") + CLOSEC(True))
    out(h, "pg_cleartext_auth", V() + AUTO(True, 1) + login_app() + QUERY("select"))
    out(h, "forced_user_db", V() + login_app("md5user", "forcedb") + QUERY("select"))
    out(h, "autodb", V(autodb=True) + login_app("app", "otherdb") + QUERY("select"))
    out(h, "reset_and_check", V(reset_always=True, check=True) + login_app() + QUERY("select") + QUERY("select2"))
    out(h, "connect_query_reserve", V(timeouts=0x80, minpool=True) + login_app() + QUERY("select") + PUMP(True))
    out(h, "users_section", V(users=True) + login_app("md5user") + QUERY("select") + login_app() + QUERY("select"))
    out(h, "appname_add_host", V(appname_host=True) + NEWCLI(tcp=True) + LOGIN(tracked=True) + AUTH(True)
        + QUERY("select"))
    out(h, "param_sync", V(size=1) + NEWCLI() + LOGIN(tracked=True) + AUTH(True) + QUERY("select") + login_app()
        + QUERY("settz") + QUERY("select") + SELECT(0) + QUERY("select2"))
    out(h, "half_close", V() + login_app() + QUERY("begin") + CLOSEC(False, True))
    out(h, "notify_and_empty", V() + login_app() + QUERY("notify") + QUERY("empty") + QUERY("discard")
        + QUERY("multi"))
    # raw bytes (op >= 0xf0): the whole rest is one client stream
    out(h, "raw_stream", V("trust") + b"\xf0" + startup([("user", "app"), ("database", "appdb")])
        + query("SELECT 1") + msg(b"X"))


# ------------------------------------------------------------------ fuzz_server

def seeds_server():
    h = "fuzz_server"
    base = V()
    tcp = V(autodb=True)  # fuzz_server logs in to tcpdb: SSLRequest first
    out(h, "login_ok_result", base + SDATA(login_ok()) + SDATA(result()))
    out(h, "tcp_ssl_refused_then_login", tcp + SDATA(b"N") + SDATA(login_ok()) + SDATA(result()))
    out(h, "tcp_ssl_refused_one_write", tcp + SDATA(b"N" + login_ok() + result()))
    out(h, "tcp_ssl_accepted_garbage", tcp + SDATA(b"S" + b"\x16\x03\x03\x00\x02\x02\x28"))
    out(h, "tcp_ssl_answer_error", tcp + SDATA(error("FATAL", "08P01", "no SSL")))
    out(h, "tcp_no_tls", V(autodb=True, server_tls_off=True) + SDATA(login_ok()) + SDATA(result()))
    out(h, "pg_tcp_with_tls_prefer", V() + login_app("app", "tcpdb") + QUERY("select"))
    out(h, "auth_query_rows", V(auth_user=True) + SDATA(login_ok()) + SDATA(result()) + NEWCLI()
        + LOGIN("nosuch") + SDATA(login_ok()) + SDATA(row_desc() + msg(b"D", struct.pack("!H", 2)
        + be32(6) + b"nosuch" + be32(35) + b"md5" + b"0" * 32) + complete("SELECT 1") + ready()) + AUTH(True))
    out(h, "auth_query_null_secret", V(auth_user=True) + SDATA(login_ok()) + NEWCLI() + LOGIN("nosuch")
        + SDATA(login_ok()) + SDATA(row_desc() + msg(b"D", struct.pack("!H", 2) + be32(6) + b"nosuch"
        + be32(0xFFFFFFFF)) + complete("SELECT 1") + ready()))
    out(h, "login_ok_one_stream", base + b"\xf0" + login_ok() + result())
    out(h, "md5_request", base + SDATA(auth(5, b"abcd")) + SDATA(login_ok()) + SDATA(result()))
    out(h, "cleartext_request", base + SDATA(auth(3)) + SDATA(login_ok()))
    out(h, "sasl_request", base + SDATA(auth(10, cstr("SCRAM-SHA-256") + b"\0")))
    out(h, "sasl_no_mechanism", base + SDATA(auth(10, cstr("SCRAM-SHA-256-PLUS") + b"\0")))
    out(h, "sasl_continue_unsolicited", base + SDATA(auth(11, b"r=abc,s=QSXCR+Q6sek8bf92,i=4096")))
    out(h, "sasl_final_unsolicited", base + SDATA(auth(12, b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")))
    out(h, "sasl_server_error", base + SDATA(auth(10, cstr("SCRAM-SHA-256") + b"\0")) + SDATA(auth(11, b"e=other-error")))
    out(h, "unknown_auth", base + SDATA(auth(7)))
    out(h, "auth_short", base + SDATA(msg(b"R", b"\0\0")))
    out(h, "auth_md5_short_salt", base + SDATA(msg(b"R", be32(5) + b"ab")))
    out(h, "login_error_3D000", base + SDATA(error("FATAL", "3D000", 'database "appdb" does not exist')))
    out(h, "login_error_57P03", base + SDATA(error("FATAL", "57P03", "the database system is starting up")))
    out(h, "login_error_no_fields", base + SDATA(msg(b"E", b"\0")))
    out(h, "login_error_unterminated", base + SDATA(msg(b"E", b"SFATAL")))
    out(h, "login_error_no_sqlstate", base + SDATA(msg(b"E", b"SFATAL\0Mno code\0\0")))
    out(h, "login_notice", base + SDATA(msg(b"N", b"SNOTICE\0Mhi\0\0") + login_ok()))
    out(h, "login_unexpected", base + SDATA(data_row("x")))
    out(h, "login_huge_param", base + SDATA(auth(0) + param("x" * 3000, "y" * 3000) + ready()))
    out(h, "login_many_params", base + SDATA(auth(0) + b"".join(param("p%d" % i, "v") for i in range(80))
                                             + ready()))
    out(h, "param_unterminated", base + SDATA(auth(0) + msg(b"S", b"name") + ready()))
    out(h, "key_short", base + SDATA(auth(0) + msg(b"K", b"\0\0") + ready()))
    out(h, "ready_empty", base + SDATA(auth(0) + msg(b"Z")) + SDATA(msg(b"Z")))
    out(h, "ready_in_txn_status", base + SDATA(login_ok()) + SDATA(result(st=b"T")) + SDATA(result(st=b"E")))
    out(h, "ready_bad_status", base + SDATA(login_ok()) + SDATA(result(st=b"?")))
    out(h, "len0", base + SDATA(b"Z" + be32(0)))
    out(h, "len3", base + SDATA(login_ok()) + SDATA(b"D" + be32(3)))
    out(h, "len2_31", base + SDATA(login_ok()) + SDATA(b"D" + be32(0x80000000)))
    out(h, "server_closes_login", base + CLOSES())
    out(h, "server_closes_after", base + SDATA(login_ok()) + SDATA(row_desc()) + CLOSES(True))
    out(h, "terminate_mid_txn", base + SDATA(login_ok()) + SDATA(result(st=b"T"))
        + SDATA(error("FATAL", "57P01", "terminating connection due to administrator command")) + CLOSES())
    out(h, "async_when_idle", base + SDATA(login_ok()) + SDATA(result()) + SDATA(msg(b"N", b"SNOTICE\0Mx\0\0")
                                                                             + msg(b"A", be32(1) + b"c\0p\0")
                                                                             + param("TimeZone", "UTC")))
    out(h, "error_when_idle", base + SDATA(login_ok()) + SDATA(result()) + SDATA(error("FATAL", "57P01", "bye")))
    out(h, "garbage_when_idle", base + SDATA(login_ok()) + SDATA(result()) + SDATA(data_row("stray")))
    out(h, "big_row_split", V(small_buf=True) + SDATA(login_ok()) + SDATA(row_desc() + b"D" + be32(5006))
        + SDATA(struct.pack("!H", 1) + be32(5000) + b"z" * 5000) + SDATA(complete("SELECT 1") + ready()))
    out(h, "extra_ready", base + SDATA(login_ok()) + SDATA(result() + ready() + ready()))
    out(h, "copy_out", base + SDATA(login_ok()) + SDATA(result()) + QUERY("copyout")
        + SDATA(msg(b"H", b"\0\0\0") + msg(b"d", b"row\n") + msg(b"c") + complete("COPY 1") + ready()))
    out(h, "copy_in", base + SDATA(login_ok()) + SDATA(result()) + QUERY("copyin") + SDATA(msg(b"G", b"\0\0\0"))
        + COPY(b"a\n", 1) + SDATA(complete("COPY 1") + ready()))
    out(h, "param_sync", V(size=1) + SDATA(login_ok()) + SDATA(result()) + NEWCLI() + LOGIN(tracked=True)
        + AUTH(True) + QUERY("select") + SDATA(param("application_name", "fuzz") + complete("SET") + ready())
        + SDATA(result()))
    out(h, "param_sync_error", V(size=1) + SDATA(login_ok()) + SDATA(result()) + NEWCLI() + LOGIN(tracked=True)
        + AUTH(True) + QUERY("select") + SDATA(error("ERROR", "22023", "invalid value") + ready()))
    out(h, "reset_query", V(reset_always=True) + SDATA(login_ok()) + SDATA(result())
        + SDATA(complete("DISCARD ALL") + ready()))
    out(h, "reset_query_fails", V(reset_always=True) + SDATA(login_ok()) + SDATA(result())
        + SDATA(error("ERROR", "25P02", "aborted") + ready(b"E")))
    out(h, "check_query", V(check=True) + SDATA(login_ok()) + SDATA(result()) + QUERY("select2")
        + SDATA(result()) + SDATA(result()))
    out(h, "connect_query", V(timeouts=0x80) + SDATA(login_ok()) + SDATA(result()) + SDATA(result()))
    out(h, "statement_mode_txn", V(mode="statement") + SDATA(login_ok()) + SDATA(result(st=b"T")))
    out(h, "session_mode", V(mode="session") + SDATA(login_ok()) + SDATA(result()) + CLOSEC(True)
        + SDATA(result()))
    out(h, "unix_no_ssl_request", V(server_tls_off=True) + SDATA(login_ok()) + SDATA(result()))
    out(h, "cancel_to_server", base + SDATA(login_ok()) + QUERY("begin") + CANCEL() + SDATA(result(st=b"T")))
    out(h, "client_gone_mid_result", base + SDATA(login_ok()) + SDATA(row_desc()) + CLOSEC(False)
        + SDATA(data_row("x") + complete("SELECT 1") + ready()))
    out(h, "slow_client_big", base + SDATA(login_ok()) + DRAIN(False) + SDATA(row_desc() + data_row("q" * 60000))
        + SDATA(complete("SELECT 1") + ready()) + DRAIN(True))


# ------------------------------------------------------------------ fuzz_console

def seeds_console():
    h = "fuzz_console"
    groups = {
        "show_all": ["SHOW HELP", "SHOW POOLS", "SHOW CLIENTS", "SHOW SERVERS", "SHOW DATABASES", "SHOW USERS",
                     "SHOW STATS", "SHOW STATS_TOTALS", "SHOW STATS_AVERAGES", "SHOW TOTALS", "SHOW CONFIG",
                     "SHOW LISTS", "SHOW MEM", "SHOW FDS", "SHOW SOCKETS", "SHOW ACTIVE_SOCKETS",
                     "SHOW DNS_HOSTS", "SHOW DNS_ZONES", "SHOW VERSION", "SHOW STATE", "SHOW PEERS",
                     "SHOW PEER_POOLS", "SHOW default_pool_size", "SHOW client_encoding", "SHOW"],
        "pause_resume": ["PAUSE", "SHOW STATE", "RESUME", "PAUSE appdb", "RESUME appdb", "PAUSE nosuchdb"],
        "kill": ["KILL appdb", "SHOW POOLS", "RESUME appdb", "KILL_CLIENT 1", "KILL_CLIENT 999999",
                 "KILL_CLIENT x", "KILL"],
        "suspend": ["SUSPEND", "SHOW STATE", "RESUME"],
        "enable_disable": ["DISABLE appdb", "SHOW DATABASES", "ENABLE appdb", "DISABLE", "ENABLE nosuch"],
        "reconnect_wait": ["RECONNECT", "RECONNECT appdb", "WAIT_CLOSE", "WAIT_CLOSE appdb", "RECONNECT nosuch"],
        "set": ["SET default_pool_size = 3", "SET pool_mode TO 'session'", "SET max_client_conn=0",
                "SET server_reset_query = 'DISCARD ALL'", "SET nosuch = 1", "SET pkt_buf = 1024",
                "SET query_timeout = '0.5'", "SET \"verbose\" = 2", "SET client_encoding = 'UTF8'", "SHOW CONFIG"],
        "reload_shutdown": ["RELOAD", "SHOW DATABASES", "RELOAD now", "SHUTDOWN WAIT_FOR_CLIENTS", "SHOW STATE",
                            "SHUTDOWN WAIT_FOR_SERVERS"],
        "syntax": ["", ";", "SELECT 1", "show pools;", "  SHOW   \"POOLS\"  ; ", "SHOW pools extra words",
                   "SET", "SET x", "SET x =", "SET 'x' = 1", "SHOW " + "x" * 100, "\"\"", "SHOW \"unterminated"],
        "shutdown_now": ["SHUTDOWN"],
    }
    for users, flag in (("admin", 0), ("stats", 1), ("app", 2)):
        for name, lines in groups.items():
            if users != "admin" and name not in ("show_all", "pause_resume", "set", "syntax"):
                continue
            out(h, f"{users}_{name}", V() + bytes([flag]) + "\n".join(lines).encode())
    out(h, "admin_txn_kill", V() + bytes([2 | 0]) + b"KILL appdb\nSHOW CLIENTS\nRESUME")
    out(h, "admin_txn_pause", V() + bytes([2 | 4]) + b"PAUSE\nSHOW POOLS\nRESUME")
    out(h, "admin_slow_reader", V() + bytes([8]) + b"SHOW CONFIG\nSHOW CONFIG\nSHOW HELP")
    out(h, "admin_session_reconnect", V(mode="session") + bytes([4]) + b"RECONNECT\nSHOW SERVERS")


# ------------------------------------------------------------------ pure harnesses

def seeds_proto():
    h = "fuzz_proto"
    fe = (query("SELECT 1") + msg(b"P", b"\0SELECT $1\0\0\0") + msg(b"B", b"\0\0\0\0\0\0\0\0")
          + msg(b"E", b"\0\0\0\0\0") + msg(b"S") + msg(b"d", b"row\n") + msg(b"c") + msg(b"X"))
    out(h, "startup_then_frontend", bytes([1]) + startup([("user", "app"), ("database", "appdb")]) + fe)
    out(h, "ssl_request", bytes([1]) + SSL_REQUEST)
    out(h, "cancel_request", bytes([1]) + cancel_request(1, 2))
    out(h, "backend_login", bytes([0]) + login_ok() + result())
    out(h, "backend_md5", bytes([0]) + auth(5, b"salt"))
    out(h, "backend_sasl", bytes([0]) + auth(10, b"SCRAM-SHA-256\0\0") + auth(11, b"r=x,s=QQ==,i=1")
        + auth(12, b"v=abc"))
    out(h, "backend_errors", bytes([0]) + error("FATAL", "57P01", "bye", b"Ddetail\0Hhint\0")
        + msg(b"E", b"\0") + msg(b"E", b"SFATAL") + msg(b"N", b"Mx\0\0"))
    out(h, "len0", bytes([0]) + b"Q" + be32(0))
    out(h, "len3", bytes([0]) + b"Q" + be32(3))
    out(h, "len2_31", bytes([0]) + b"Q" + be32(0x80000000))
    out(h, "startup_len0", bytes([1]) + be32(0))
    out(h, "startup_too_big", bytes([1]) + be32(10001) + be32(196608))
    out(h, "truncated", bytes([0]) + query("SELECT 1")[:7])
    out(h, "small_max", bytes([4 | 0x18]) + query("SELECT 123456789"))


def seeds_config():
    h = "fuzz_config"
    seed_ini = os.path.join(REPO, "tests", "integration", "seed", "pgbouncer.ini")
    if os.path.exists(seed_ini):
        with open(seed_ini, "rb") as f:
            out(h, "seed_pgbouncer_ini", f.read())
    out(h, "minimal", "[databases]\nappdb = host=127.0.0.1 port=5432\n[pgbouncer]\nlisten_port = 6432\n")
    out(h, "all_sections",
        "[databases]\n* = host=db\nappdb = host=/tmp dbname=real user=u password='p w' pool_size=3 "
        "pool_mode=session connect_query='SELECT 1'\n\"quoted name\" = host=h port=1\n"
        "[users]\nbob = pool_mode=statement max_user_connections=3 query_timeout=1.5\n"
        "[pgbouncer]\npool_mode = transaction\nauth_type = scram-sha-256\nadmin_users = a, b\n"
        "query_timeout = 0.25\nmax_packet_size = 2147483647\nverbose = 2\n"
        "server_reset_query = DISCARD ALL   ; comment\ntrack_extra_parameters = IntervalStyle, search_path\n"
        "[peers]\n1 = host=x\n")
    # unix_socket_mode: SHOW CONFIG's decimal does not parse back as the octal RELOAD expects
    regression(h, "unix_socket_mode_0700_roundtrip", "[pgbouncer]\nunix_socket_mode = 0700\n")
    out(h, "include_plain", "%include /tmp/tidepool-fuzz-inc/plain.ini\n[pgbouncer]\nlisten_port = 1\n")
    out(h, "include_loop", "%include /tmp/tidepool-fuzz-inc/loop.ini\n")
    out(h, "include_nested", "[pgbouncer]\n%include /tmp/tidepool-fuzz-inc/nested.ini\n"
                             "%include /tmp/tidepool-fuzz-inc/dbs.ini\n")
    out(h, "include_missing", "%include /tmp/tidepool-fuzz-inc/nope.ini\n")
    out(h, "bom_crlf", b"\xef\xbb\xbf[pgbouncer]\r\nlisten_port = 7000\r\n")
    out(h, "errors", "[pgbouncer]\nnosuch = 1\n")
    out(h, "bad_values", "[pgbouncer]\nmax_client_conn = -1\nquery_timeout = nan\npool_mode = nope\n")
    out(h, "unsupported", "[pgbouncer]\nauth_type = hba\nclient_tls_sslmode = require\nso_reuseport = 1\n")
    out(h, "peers", "[pgbouncer]\npeer_id = 2\nso_reuseport = 1\nlisten_port = 7000\n[peers]\n"
                    "1 = host=/tmp/p1 port=7000 pool_size=4\n2 = host=/tmp/p2\n3 = host=peer3 ; note\n"
                    "1 = host=10.0.0.1\n16383 = host=/tmp\n")
    out(h, "peers_bad", "[peers]\n0 = host=/tmp\n")
    out(h, "outside_section", "listen_port = 1\n")
    out(h, "usec_forms", "[pgbouncer]\nserver_lifetime = 1e3\nserver_idle_timeout = 0.000001\n"
                         "query_wait_timeout = 123456789\nstats_period = 1.5\n")


def seeds_connstr():
    h = "fuzz_connstr"
    for i, cs in enumerate([
        "host=127.0.0.1 port=5432 dbname=appdb",
        "host=/var/run/postgresql dbname=x user=u password=p",
        "host='a b' password='it''s' application_name='x y'",
        "host=h1,h2,h3 load_balance_hosts=disable port=6543",
        "pool_size=5 min_pool_size=1 reserve_pool_size=2 max_db_connections=9 max_db_client_connections=4 "
        "pool_mode=session server_lifetime=60",
        "client_encoding=UTF8 datestyle=ISO timezone=UTC connect_query='SELECT 1'",
        "auth_user=a auth_query='SELECT usename, passwd FROM pg_shadow WHERE usename=$1' auth_dbname=postgres",
        "port=0", "port=65536", "port=x", "host=", "dbname", "=x", "host='unterminated", "nosuch=1",
        "pool_mode=transcation",
    ]):
        out(h, "db_%02d" % i, bytes([0]) + cs.encode())
        out(h, "star_%02d" % i, bytes([2]) + cs.encode()) if i < 3 else None
    for i, us in enumerate(["pool_mode=session", "pool_size=3 max_user_connections=2",
                            "query_timeout=1 idle_transaction_timeout=2 transaction_timeout=3 client_idle_timeout=4",
                            "reserve_pool_size=1 max_user_client_connections=5", "nosuch=1"]):
        out(h, "user_%02d" % i, bytes([1]) + us.encode())
    for i, ps in enumerate(["host=/tmp/p1 port=6432 pool_size=2", "host=peer.example", "",
                            "host=10.0.0.1 port=0", "pool_size=-1", "dbname=x", "host='unterminated"]):
        out(h, "peer_%02d" % i, bytes([8 | (2 if i == 1 else 0)]) + ps.encode())
    out(h, "peer_bad_id", bytes([8 | 4]) + b"host=/tmp")


def scram_secret(password, salt, iters):
    import base64
    import hmac
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iters)
    ck = hmac.new(salted, b"Client Key", "sha256").digest()
    sk = hmac.new(salted, b"Server Key", "sha256").digest()
    b = lambda x: base64.b64encode(x).decode()
    return f"SCRAM-SHA-256${iters}:{b(salt)}${b(hashlib.sha256(ck).digest())}:{b(sk)}"


def seeds_userlist():
    h = "fuzz_userlist"
    md5 = "md5" + hashlib.md5(b"passwordbob").hexdigest()
    out(h, "plain", '"app" "apppass"\n')
    out(h, "md5", f'"bob" "{md5}"\n')
    out(h, "scram", f'"carol" "{scram_secret("password", b"0123456789abcdef", 16)}"\n')
    out(h, "scram_4096", f'"dave" "{scram_secret("pencil", b"saltsaltsaltsalt", 4096)}"\n')
    out(h, "quotes_comments", '; comment\n# another\n\n"we""ird" "pa""ss" trailing\n  "x"   "y"  \n')
    out(h, "errors", '"unterminated\n"a" b\n"" "x"\nnoquote\n"' + "n" * 70 + '" "x"\n')
    out(h, "duplicates", '"a" "1"\n"b" "2"\n"a" "3"\n')
    out(h, "almost_hashes", '"a" "md5xyz"\n"b" "SCRAM-SHA-256$0:AA==$AA==:AA=="\n"c" "SCRAM-SHA-256$1:$:"\n')


def seeds_scram():
    h = "fuzz_scram"
    first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    final = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    out(h, "rfc7677", bytes([1]) + first + b"\0" + final)
    out(h, "rfc7677_extension", bytes([1]) + first + b",x=ext\0" + final)
    out(h, "rfc7677_good_sig_suffix", bytes([3]) + first + b"\0,x=more")
    out(h, "rfc7677_bad_sig", bytes([1]) + first + b"\0v=AAAArriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    out(h, "server_error_first", bytes([1]) + b"e=invalid-proof\0")
    out(h, "server_error_final", bytes([1]) + first + b"\0e=other-error")
    out(h, "extension_m", bytes([1]) + b"m=ext,r=x\0")
    out(h, "pg_style", bytes([0]) + b"r=" + bytes(ord("A") + i % 26 for i in range(128))
        + b"srv,s=QSXCR+Q6sek8bf92,i=16\0v=x")
    out(h, "bad_nonce", bytes([1]) + b"r=other,s=QQ==,i=1\0")
    out(h, "zero_iter", bytes([1]) + b"r=rOprNGfwEbeRWgbNEkqOx,s=QQ==,i=0\0")
    out(h, "bad_salt", bytes([1]) + b"r=rOprNGfwEbeRWgbNEkqOx,s=Q,i=1\0")
    out(h, "out_of_order", bytes([4]) + b"\0" + final)
    out(h, "b64_secret", bytes([1]) + scram_secret("x", b"salt", 1).encode())


def seeds_admin():
    h = "fuzz_admin"
    for i, q in enumerate(["SHOW POOLS", "show pools;", "SHOW \"POOLS\"", "  KILL appdb ; ", "SET a = b",
                           "SET a TO 'x''y'", "SET \"k\"\"q\" = \"v\"", "SET keyTO value", "SET a =",
                           "SHOW " + "x" * 80, "SET x = '" + "v" * 300 + "'", "PAUSE", "\"\"", "SET = 1",
                           "SELECT 1", "SHOW\tCLIENTS\r\n;"]):
        out(h, "q%02d" % i, q)


def seeds_envconf():
    h = "fuzz_envconf"
    seed = ["DATABASES_HOST=host.docker.internal", "DATABASES_PORT=5432", "DATABASES_USER=postgres",
            "DATABASES_PASSWORD=secret", "DATABASES_DBNAME=postgres", "POOL_MODE=transaction",
            "MAX_CLIENT_CONN=1000", "DEFAULT_POOL_SIZE=25", "RESERVE_POOL_SIZE=5", "SERVER_IDLE_TIMEOUT=600",
            "AUTH_TYPE=md5"]
    env = lambda lines: "\n".join(lines).encode()
    out(h, "seed_env", bytes([0]) + env(seed))
    out(h, "prefixed", bytes([0]) + env(seed + ["PGBOUNCER_POOL_MODE=session", "PGBOUNCER_VERBOSE=1"]))
    out(h, "bad_values", bytes([0]) + env(seed + ["POOL_MODE=transcation", "LISTEN_PORT=70000"]))
    out(h, "db_form", bytes([0]) + env(["DB_HOST=pg", "DB_USER=app", "DB_PASSWORD=pw", "DB_NAME=appdb"]))
    out(h, "url", bytes([0]) + env(["DATABASE_URL=postgres://us%40er:p%3Ass%2Fw@db.example:6543/my%20db"
                                    "?pool_size=7&pool_mode=session"]))
    out(h, "url_ipv6", bytes([0]) + env(["DATABASE_URL=postgresql://app:pw@[::1]/appdb?client_side_dbname=front"]))
    out(h, "urls", bytes([0]) + env(["DATABASE_URLS=postgres://a:pa@h1/db1, postgres://b:pb@h2:5433/db2"]))
    out(h, "raw", bytes([0]) + env(["DATABASES=appdb = host=pg dbname=app; other = host=pg2 user=u password='p;w'"]))
    out(h, "raw_newline_escape", bytes([2]) + env(["DATABASES=a = host=x\\nb = host=y"]))
    out(h, "secret_file", bytes([0]) + env(["DATABASES_HOST=db", "DATABASES_USER=postgres",
                                            "DATABASES_PASSWORD_FILE=/run/secrets/pg"]))
    out(h, "scram", bytes([0]) + env(seed[:5] + ["AUTH_TYPE=scram-sha-256", "SCRAM_ITERATIONS=16"]))
    out(h, "mounted", bytes([1]) + env(seed) + b"\0[databases]\nx = host=y\n[pgbouncer]\nlisten_port = 1\n")
    out(h, "mounted_path", bytes([5]) + env(["DATABASES_HOST=db"]) + b"\0[pgbouncer]\nauth_file = /x\n")
    out(h, "nothing", bytes([0]))


def seeds_hba():
    h = "fuzz_hba"
    out(h, "typical", "# TYPE DATABASE USER ADDRESS METHOD\n"
                      "local all all peer\n"
                      "local pgbouncer pgbouncer trust\n"
                      "host all all 127.0.0.1/32 scram-sha-256\n"
                      "host all all ::1/128 md5\n"
                      "hostssl appdb app 10.0.0.0/8 cert\n"
                      "hostnossl all all 0.0.0.0/0 reject\n")
    out(h, "lists_quotes_files", 'host "appdb","postgres" app,@users 192.168.0.0 255.255.0.0 password\n'
                                 'host sameuser all all md5\nhost @dbs @nested ::/0 trust\n'
                                 'host replication all samehost md5\nlocal "all" "quoted user" trust\n')
    out(h, "errors", "host all all\nhost all all 1.2.3.4/33 md5\nhost all all 1.2.3.4 md5\n"
                     "local all all ldap\nfoo all all trust\nhost all @missing 0.0.0.0/0 md5\n")
    out(h, "options_continuation", 'host all all 0.0.0.0/0 md5 clientcert=verify-full\nlocal all all \\\n  trust\n')
    out(h, "ipv6_forms", "host all all fe80::/10 md5\nhost all all ::ffff:127.0.0.1/128 trust\n"
                         "host all all 2001:db8::1 ffff:ffff:: md5\n")


# ------------------------------------------------------------------ dictionaries

def dicts():
    os.makedirs(DICT, exist_ok=True)
    with open(os.path.join(REPO, "src", "config.c")) as f:
        names = sorted(set(re.findall(r"^\s*S\((\w+),", f.read(), re.M)))

    def write(name, words):
        with open(os.path.join(DICT, name + ".dict"), "w") as f:
            for w in words:
                esc = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "\\x%02x" % ord(c) for c in w)
                f.write(f'"{esc}"\n')

    ini_words = ["[databases]", "[pgbouncer]", "[users]", "[peers]", "%include ", " = ", "\n", "'", ";", "#",
                 "/tmp/tidepool-fuzz-inc/plain.ini", "/tmp/tidepool-fuzz-inc/loop.ini",
                 "/tmp/tidepool-fuzz-inc/dbs.ini", "/tmp/tidepool-fuzz-inc/nested.ini", "host=", "port=",
                 "dbname=", "user=", "password=", "pool_size=", "pool_mode=", "connect_query=", "session",
                 "transaction", "statement", "md5", "scram-sha-256", "trust", "plain", "any", "hba", "0777",
                 "1e9", "0.5", "yes", "off", "16383", "16384"] + names
    write("fuzz_config", ini_words)
    write("fuzz_connstr", ["host=", "port=", "dbname=", "user=", "password=", "auth_user=", "auth_query=",
                           "auth_dbname=", "pool_size=", "min_pool_size=", "reserve_pool_size=", "connect_query=",
                           "pool_mode=", "load_balance_hosts=", "max_db_connections=",
                           "max_db_client_connections=", "server_lifetime=", "client_encoding=", "datestyle=",
                           "timezone=", "application_name=", "max_user_connections=",
                           "max_user_client_connections=", "query_timeout=", "idle_transaction_timeout=",
                           "transaction_timeout=", "client_idle_timeout=", "'", "''", ",", "session", "16383"])
    write("fuzz_admin", ["SHOW", "SET", "PAUSE", "RESUME", "KILL", "KILL_CLIENT", "SUSPEND", "DISABLE", "ENABLE",
                         "RECONNECT", "WAIT_CLOSE", "RELOAD", "SHUTDOWN", "TO", "=", ";", "\"", "'", "''", "\"\""])
    write("fuzz_console", ["SHOW ", "SET ", "PAUSE", "RESUME", "KILL ", "KILL_CLIENT ", "SUSPEND", "DISABLE ",
                           "ENABLE ", "RECONNECT", "WAIT_CLOSE", "RELOAD", "SHUTDOWN", "WAIT_FOR_CLIENTS",
                           "WAIT_FOR_SERVERS", "POOLS", "CLIENTS", "SERVERS", "DATABASES", "USERS", "STATS",
                           "CONFIG", "LISTS", "MEM", "FDS", "SOCKETS", "STATE", "VERSION", "TOTALS", "appdb",
                           "forcedb", "pgbouncer", "\n", " = ", " TO "] + names)
    write("fuzz_envconf", ["DATABASES_HOST=", "DATABASES_PORT=", "DATABASES_USER=", "DATABASES_PASSWORD=",
                           "DATABASES_DBNAME=", "DATABASES_PASSWORD_FILE=/run/secrets/x", "DB_HOST=", "DB_USER=",
                           "DB_PASSWORD=", "DB_NAME=", "DATABASE_URL=postgres://", "DATABASE_URLS=",
                           "DATABASES=", "DATABASES_RAW=", "PGBOUNCER_", "AUTH_TYPE=", "_FILE=", "?pool_mode=",
                           "&", "%", "@", ":", "/", "[::1]", "\n", "\\n", "'"]
          + [n.upper() + "=" for n in names])
    write("fuzz_scram", ["r=", ",s=", ",i=", "v=", "e=", "m=", ",", "=", "rOprNGfwEbeRWgbNEkqO", "==", "4096"])
    def raw(name, chunks):
        with open(os.path.join(DICT, name + ".dict"), "w") as f:
            for c in chunks:
                f.write('"' + "".join("\\x%02x" % b for b in c) + '"\n')

    proto_bits = [be32(0), be32(3), be32(4), be32(0x80000000), be32(0x7FFFFFFF), be32(196608),
                  be32(80877103), be32(80877102), b"\x00\x00\x00\x00", ready(), msg(b"X"), msg(b"S"), msg(b"H")]
    raw("fuzz_client", proto_bits + [
        NEWCLI() + LOGIN() + AUTH(True), LOGIN("pgbouncer", "pgbouncer"), QUERY("begin"), QUERY("commit"),
        QUERY("copyin"), QUERY("big"), EXT(0), EXT(1), EXT(2), CLOSEC(True), CLOSES(True), DRAIN(False),
        PUMP(True), PUMP(False, 0x40 | 12), RELOAD(4), CANCEL(), COPY(b"x\n", 1), AUTO(True, 3),
        query("SELECT 1"), msg(b"P", b"s1\0SELECT $1\0\0\0"), msg(b"B", b"\0s1\0\0\0\0\0\0\0"),
        msg(b"E", b"\0\0\0\0\0"), msg(b"d", b"row\n"), msg(b"c"), msg(b"f", b"x\0"), msg(b"p", b"pw\0"),
        SSL_REQUEST, cancel_request(4242, 0x5eed), b"\xf0"])
    raw("fuzz_server", proto_bits + [
        login_ok(), auth(0), auth(3), auth(5, b"salt"), auth(10, b"SCRAM-SHA-256\0\0"), auth(11, b"r="),
        auth(12, b"v="), param("client_encoding", "UTF8"), param("application_name", "x"),
        msg(b"K", be32(1) + be32(2)), ready(b"T"), ready(b"E"), row_desc(), data_row("x"), complete("SELECT 1"),
        error("ERROR", "42601", "x"), error("FATAL", "57P01", "bye"), msg(b"N", b"SNOTICE\0Mx\0\0"),
        msg(b"A", be32(1) + b"c\0p\0"), msg(b"G", b"\0\0\0"), msg(b"H", b"\0\0\0"), msg(b"I"), b"N", b"S",
        QUERY("select"), QUERY("copyin"), QUERY("copyout"), CLOSES(True), NEWCLI() + LOGIN() + AUTH(True),
        b"\xf0"])
    raw("fuzz_proto", proto_bits + [auth(5, b"salt"), error("FATAL", "08P01", "x"), login_ok()])
    write("fuzz_hba", ["local", "host", "hostssl", "hostnossl", "hostgssenc", "all", "sameuser", "samerole",
                       "samehost", "samenet", "replication", "trust", "reject", "md5", "password", "scram-sha-256",
                       "cert", "peer", "ident", "ldap", "@users", "@dbs", "@nested", "0.0.0.0/0", "::/0",
                       "127.0.0.1/32", "255.255.255.0", "\"", ",", "#", "\n", "\\\n", "="])
    write("fuzz_userlist", ['"', '""', "md5", "SCRAM-SHA-256$", "$", ":", "==", "\n", ";", "#"])


def main():
    shutil.rmtree(CORPUS, ignore_errors=True)
    shutil.rmtree(DICT, ignore_errors=True)
    seeds_proto()
    seeds_config()
    seeds_connstr()
    seeds_userlist()
    seeds_scram()
    seeds_admin()
    seeds_envconf()
    seeds_hba()
    seeds_client()
    seeds_server()
    seeds_console()
    dicts()
    n = sum(len(fs) for _, _, fs in os.walk(CORPUS))
    print(f"wrote {n} seed files under {os.path.relpath(CORPUS, REPO)} and dictionaries under "
          f"{os.path.relpath(DICT, REPO)}")


if __name__ == "__main__":
    main()
