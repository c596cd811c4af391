/* config.c: the settings table and the pgbouncer.ini loader ([databases], [users], [peers], %include). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_INCLUDE_DEPTH 10

static const char *const pool_mode_names[] = {"session", "transaction", "statement", NULL};
static const char *const auth_type_names[] = {"cert", "md5", "scram-sha-256", "plain", "trust",
                                              "any",  "hba", "ldap",          "pam",   NULL};
static const char *const sslmode_names[] = {"disable",   "allow",       "prefer", "require",
                                            "verify-ca", "verify-full", NULL};
static const char *const load_balance_names[] = {"round-robin", "disable", NULL};

#define NR   SETTING_NO_RELOAD
#define TLS  SETTING_TLS
#define YES  SUPPORT_YES
#define ERR  SUPPORT_NO_ERROR
#define WARN SUPPORT_NO_WARN
#define S(n, t, def, fl, sup, en, help)                                                                      \
	{                                                                                                    \
#n, SETTING_##t, offsetof(Config, n), def, fl, sup, en, help                                 \
	}

/*
 * Every [pgbouncer] setting, sorted by name. Defaults are PgBouncer 1.25's, as an ini would
 * spell them (NULL = unset). The sslmode strings list their allowed values in enum_names (they
 * stay strings because SHOW CONFIG prints them as written). The support column is where a later release flips
 * a setting to YES once it is implemented; value_rules below lists single values of otherwise supported
 * settings that are not implemented yet. Both only bite when the value differs from the default.
 */
const Setting config_settings[] = {
    S(admin_users, STR, "", 0, YES, NULL, "users allowed to run every admin console command"),
    S(application_name_add_host, BOOL, "0", 0, YES, NULL,
      "append the client's host:port to application_name"),
    S(auth_dbname, STR, NULL, 0, YES, NULL, "[databases] entry in which auth_query runs"),
    S(auth_file, STR, NULL, 0, YES, NULL, "file with user names and passwords (userlist.txt)"),
    S(auth_hba_file, STR, NULL, 0, YES, NULL, "pg_hba.conf-style file used with auth_type = hba"),
    S(auth_ident_file, STR, NULL, 0, YES, NULL, "ident map file for cert/peer user name mapping"),
    S(auth_ldap_options, STR, NULL, 0, WARN, NULL, "LDAP options for auth_type = ldap"),
    S(auth_query, STR,
      "SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END FROM pg_authid "
      "WHERE rolname=$1 AND rolcanlogin",
      0, YES, NULL, "query that looks up the password of a user missing from auth_file"),
    S(auth_type, ENUM, "md5", 0, YES, auth_type_names, "how clients authenticate"),
    S(auth_user, STR, NULL, 0, YES, NULL, "user that runs auth_query"),
    S(autodb_idle_timeout, USEC, "3600.0", 0, WARN, NULL,
      "free idle auto-created (*) databases after this long"),
    S(cancel_wait_timeout, USEC, "10.0", 0, YES, NULL, "longest wait to forward a cancel request"),
    S(client_idle_timeout, USEC, "0.0", 0, YES, NULL, "close clients idle longer than this (0 = never)"),
    S(client_login_timeout, USEC, "60.0", 0, YES, NULL, "a client must finish logging in within this"),
    S(client_tls13_ciphers, STR, "", TLS, YES, NULL, "TLS 1.3 cipher suites for client connections"),
    S(client_tls_ca_file, STR, NULL, TLS, YES, NULL, "CA file to verify client certificates"),
    S(client_tls_cert_file, STR, NULL, TLS, YES, NULL, "certificate presented to clients"),
    S(client_tls_ciphers, STR, "default", TLS, YES, NULL, "OpenSSL cipher list for client connections"),
    S(client_tls_dheparams, STR, "auto", TLS, YES, NULL, "DHE key exchange for client connections"),
    S(client_tls_ecdhcurve, STR, "auto", TLS, YES, NULL, "ECDH curve for client connections"),
    S(client_tls_key_file, STR, NULL, TLS, YES, NULL, "private key for client_tls_cert_file"),
    S(client_tls_protocols, STR, "secure", TLS, YES, NULL, "TLS versions allowed for client connections"),
    S(client_tls_sslmode, STR, "disable", TLS, YES, sslmode_names, "TLS mode for client connections"),
    S(conffile, STR, NULL, 0, YES, NULL, "configuration file read again by RELOAD"),
    S(default_pool_size, INT, "20", 0, YES, NULL, "server connections per (database, user) pool"),
    S(disable_pqexec, BOOL, "0", NR, WARN, NULL, "reject the simple query protocol"),
    S(dns_max_ttl, USEC, "15.0", 0, WARN, NULL, "how long DNS answers are cached"),
    S(dns_nxdomain_ttl, USEC, "15.0", 0, WARN, NULL, "how long DNS failures are cached"),
    S(dns_zone_check_period, USEC, "0.0", 0, WARN, NULL, "DNS zone serial polling period (0 = off)"),
    S(idle_transaction_timeout, USEC, "0.0", 0, YES, NULL, "close clients idle in a transaction this long"),
    S(ignore_startup_parameters, STR, "", 0, YES, NULL, "startup parameters to ignore instead of rejecting"),
    S(job_name, STR, "pgbouncer", NR, YES, NULL, "service name (alias of service_name)"),
    S(listen_addr, STR, NULL, NR, YES, NULL,
      "TCP addresses to listen on (* = all; unset = Unix socket only)"),
    S(listen_backlog, INT, "128", NR, YES, NULL, "listen(2) backlog"),
    S(listen_port, INT, "6432", NR, YES, NULL, "TCP port, also the Unix socket name .s.PGSQL.<port>"),
    S(log_connections, BOOL, "1", 0, YES, NULL, "log successful logins"),
    S(log_disconnections, BOOL, "1", 0, YES, NULL, "log disconnections with their reason"),
    S(log_pooler_errors, BOOL, "1", 0, YES, NULL, "log errors sent to clients"),
    S(log_stats, BOOL, "1", 0, YES, NULL, "log aggregated statistics every stats_period"),
    S(logfile, STR, NULL, 0, YES, NULL, "log file path"),
    S(max_client_conn, INT, "100", 0, YES, NULL, "most client connections accepted"),
    S(max_db_client_connections, INT, "0", 0, YES, NULL,
      "most client connections per database (0 = no limit)"),
    S(max_db_connections, INT, "0", 0, YES, NULL, "most server connections per database (0 = no limit)"),
    S(max_packet_size, INT, "2147483647", 0, YES, NULL, "largest protocol packet allowed through"),
    S(max_prepared_statements, INT, "200", 0, YES, NULL, "prepared statements tracked per server connection"),
    S(max_user_client_connections, INT, "0", 0, YES, NULL, "most client connections per user (0 = no limit)"),
    S(max_user_connections, INT, "0", 0, YES, NULL, "most server connections per user (0 = no limit)"),
    S(min_pool_size, INT, "0", 0, YES, NULL, "keep at least this many server connections per pool"),
    S(peer_id, INT, "0", 0, YES, NULL, "this process's id among peers (0 = peering off)"),
    S(pidfile, STR, NULL, NR, YES, NULL, "PID file path"),
    S(pkt_buf, INT, "4096", NR, YES, NULL, "internal packet buffer size"),
    S(pool_mode, ENUM, "session", 0, YES, pool_mode_names, "when a server connection goes back to the pool"),
    S(query_timeout, USEC, "0.0", 0, YES, NULL, "cancel queries running longer than this (0 = never)"),
    S(query_wait_notify, INT, "5", 0, YES, NULL,
      "seconds queued before the client gets a NOTICE (0 = never)"),
    S(query_wait_timeout, USEC, "120.0", 0, YES, NULL, "longest a client waits for a server connection"),
    S(reserve_pool_size, INT, "0", 0, YES, NULL, "extra connections per pool once clients wait too long"),
    S(reserve_pool_timeout, USEC, "5.0", 0, YES, NULL, "wait before the reserve pool is used"),
    S(resolv_conf, STR, "", NR, YES, NULL, "custom resolv.conf"),
    S(sbuf_loopcnt, INT, "5", 0, WARN, NULL, "rounds per connection before serving others (0 = no limit)"),
    S(scram_iterations, INT, "4096", 0, YES, NULL, "iterations when hashing a password for SCRAM"),
    S(server_check_delay, USEC, "30.0", 0, YES, NULL,
      "idle time after which a server is checked before reuse"),
    S(server_check_query, STR, "<empty>", 0, YES, NULL,
      "health check query (<empty> = empty query, empty = none)"),
    S(server_connect_timeout, USEC, "15.0", 0, YES, NULL, "deadline to connect to and log in to a server"),
    S(server_fast_close, BOOL, "0", 0, YES, NULL,
      "session pooling: close servers marked for closing between transactions"),
    S(server_idle_timeout, USEC, "600.0", 0, YES, NULL, "close servers idle longer than this"),
    S(server_lifetime, USEC, "3600.0", 0, YES, NULL,
      "close unused servers older than this (0 = use each server once)"),
    S(server_login_retry, USEC, "15.0", 0, YES, NULL,
      "after a failed server login, fail clients fast this long"),
    S(server_reset_query, STR, "DISCARD ALL", 0, YES, NULL, "query run when a server is released"),
    S(server_reset_query_always, BOOL, "0", 0, YES, NULL, "run server_reset_query in every pool mode"),
    S(server_round_robin, BOOL, "0", 0, YES, NULL, "reuse servers round-robin instead of most recent first"),
    S(server_tls13_ciphers, STR, "", TLS, YES, NULL, "TLS 1.3 cipher suites towards PostgreSQL"),
    S(server_tls_ca_file, STR, NULL, TLS, YES, NULL, "CA file to verify the PostgreSQL server"),
    S(server_tls_cert_file, STR, NULL, TLS, YES, NULL, "client certificate presented to PostgreSQL"),
    S(server_tls_ciphers, STR, "default", TLS, YES, NULL, "OpenSSL cipher list towards PostgreSQL"),
    S(server_tls_key_file, STR, NULL, TLS, YES, NULL, "private key for server_tls_cert_file"),
    S(server_tls_protocols, STR, "secure", TLS, YES, NULL, "TLS versions allowed towards PostgreSQL"),
    S(server_tls_sslmode, STR, "prefer", TLS, YES, sslmode_names, "TLS mode towards PostgreSQL"),
    S(service_name, STR, "pgbouncer", NR, YES, NULL, "service name (Windows)"),
    S(so_reuseport, BOOL, "0", NR, YES, NULL, "set SO_REUSEPORT on listening sockets"),
    S(stats_period, USEC, "60", 0, YES, NULL, "statistics averaging and logging period"),
    S(stats_users, STR, "", 0, YES, NULL, "users allowed read-only admin console commands"),
    S(suspend_timeout, USEC, "10", 0, WARN, NULL, "buffer flush wait during SUSPEND"),
    S(syslog, BOOL, "0", 0, WARN, NULL, "log to syslog"),
    S(syslog_facility, STR, "daemon", 0, WARN, NULL, "syslog facility"),
    S(syslog_ident, STR, "pgbouncer", 0, WARN, NULL, "syslog ident"),
    S(tcp_defer_accept, BOOL, "1", 0, WARN, NULL, "set TCP_DEFER_ACCEPT on listening sockets"),
    S(tcp_keepalive, BOOL, "1", 0, YES, NULL, "enable TCP keepalive"),
    S(tcp_keepcnt, INT, "0", 0, YES, NULL, "TCP keepalive probe count (0 = OS default)"),
    S(tcp_keepidle, INT, "0", 0, YES, NULL, "TCP keepalive idle seconds (0 = OS default)"),
    S(tcp_keepintvl, INT, "0", 0, YES, NULL, "TCP keepalive probe interval seconds (0 = OS default)"),
    S(tcp_socket_buffer, INT, "0", 0, WARN, NULL, "socket buffer size (0 = OS default)"),
    S(tcp_user_timeout, INT, "0", 0, YES, NULL, "TCP_USER_TIMEOUT in milliseconds (0 = OS default)"),
    S(track_extra_parameters, STR, "IntervalStyle", NR, YES, NULL,
      "extra reported parameters tracked per client"),
    S(transaction_timeout, USEC, "0.0", 0, YES, NULL, "close clients whose transaction is open this long"),
    S(unix_socket_dir, STR, "/tmp", NR, YES, NULL, "Unix socket directory (empty = no Unix socket)"),
    S(unix_socket_group, STR, NULL, NR, YES, NULL, "group of the Unix socket"),
    S(unix_socket_mode, MODE, "0777", NR, YES, NULL, "file mode of the Unix socket (octal)"),
    S(user, STR, NULL, NR, YES, NULL, "switch to this user after start"),
    S(verbose, INT, "0", 0, YES, NULL, "log verbosity"),
    S(workers, INT, "1", NR, YES, NULL,
      "event-loop threads (1 = single-threaded like PgBouncer; 0 = half the CPU cores)"),
};
const int config_n_settings = (int)(sizeof(config_settings) / sizeof(config_settings[0]));

/* Values of supported settings that are not implemented yet: a load error. */
static const struct {
	const char *name;
	const char *value;
} value_rules[] = {
    {"auth_type", "ldap"},
    {"auth_type", "pam"},
};

/* One line saying how a setting is supported, for the README table and --list-settings. */
const char *config_describe_support(const Setting *s, char *buf, size_t buflen)
{
	if (s->support == SUPPORT_NO_ERROR) {
		snprintf(buf, buflen, "not yet: refuses to start if set");
		return buf;
	}
	if (s->support == SUPPORT_NO_WARN) {
		snprintf(buf, buflen, "not yet: ignored with a warning if set");
		return buf;
	}
	size_t pos = 0;
	int n = 0;
	buf[0] = 0;
	for (size_t i = 0; i < sizeof(value_rules) / sizeof(value_rules[0]); i++) {
		if (strcmp(value_rules[i].name, s->name) != 0)
			continue;
		int w = snprintf(buf + pos, buflen - pos, "%s%s",
		                 n ? ", " : "yes, except (refuses to start): ", value_rules[i].value);
		if (w < 0 || (size_t)w >= buflen - pos)
			break;
		pos += (size_t)w;
		n++;
	}
	if (!n)
		snprintf(buf, buflen, "yes");
	return buf;
}

/* Connection-string keys of [databases] (§2.9) and [users] (§2.10); kind says how to parse. */
typedef struct {
	const char *key;
	char kind; /* s: string, i: int >= 0, p: port, m: pool mode, l: load_balance_hosts, u: seconds */
	size_t off;
	SettingSupport support;
} FieldKey;

#define DK(k, kind, f, sup)                                                                                  \
	{                                                                                                    \
		k, kind, offsetof(DatabaseDef, f), sup                                                       \
	}
static const FieldKey db_keys[] = {
    DK("dbname", 's', dbname, YES),
    DK("host", 's', host, YES),
    DK("port", 'p', port, YES),
    DK("user", 's', user, YES),
    DK("password", 's', password, YES),
    DK("auth_user", 's', auth_user, YES),
    DK("auth_query", 's', auth_query, YES),
    DK("auth_dbname", 's', auth_dbname, YES),
    DK("pool_size", 'i', pool_size, YES),
    DK("min_pool_size", 'i', min_pool_size, YES),
    DK("reserve_pool_size", 'i', reserve_pool_size, YES),
    DK("reserve_pool", 'i', reserve_pool_size, YES),
    DK("connect_query", 's', connect_query, YES),
    DK("pool_mode", 'm', pool_mode, YES),
    DK("load_balance_hosts", 'l', load_balance_hosts, YES),
    DK("max_db_connections", 'i', max_db_connections, YES),
    DK("max_db_client_connections", 'i', max_db_client_connections, YES),
    DK("server_lifetime", 'i', server_lifetime, YES),
    DK("client_encoding", 's', client_encoding, YES),
    DK("datestyle", 's', datestyle, YES),
    DK("timezone", 's', timezone, YES),
    DK("application_name", 's', application_name, YES),
    {NULL, 0, 0, YES},
};

#define PK(k, kind)                                                                                          \
	{                                                                                                    \
#k, kind, offsetof(PeerDef, k), YES                                                          \
	}
static const FieldKey peer_keys[] = {
    PK(host, 's'),
    PK(port, 'p'),
    PK(pool_size, 'i'),
    {NULL, 0, 0, YES},
};

#define UK(k, kind)                                                                                          \
	{                                                                                                    \
#k, kind, offsetof(UserDef, k), YES                                                          \
	}
static const FieldKey user_keys[] = {
    UK(pool_size, 'i'),
    UK(reserve_pool_size, 'i'),
    UK(pool_mode, 'm'),
    UK(max_user_connections, 'i'),
    UK(max_user_client_connections, 'i'),
    UK(query_timeout, 'u'),
    UK(idle_transaction_timeout, 'u'),
    UK(transaction_timeout, 'u'),
    UK(client_idle_timeout, 'u'),
    {NULL, 0, 0, YES},
};

enum { SECT_NONE, SECT_DATABASES, SECT_USERS, SECT_PGBOUNCER, SECT_PEERS };

/* State of one config_load: the Config being filled plus where each setting was last set. */
typedef struct Loader {
	Config *cf;
	ConfigWarnFn warn_cb;
	void *warn_arg;
	char *err;
	size_t errlen;
	int section;
	int depth;                               /* files being read, outermost first */
	char *open_files[MAX_INCLUDE_DEPTH + 1]; /* their canonical paths, to catch loops */
	char **names;                            /* every file name read; owned */
	int n_names;
	const char **set_file; /* per setting: file of the line that set it, NULL = default */
	int *set_line;
} Loader;

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		abort();
	return p;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		abort();
	return p;
}

static void *xcalloc(size_t n, size_t size)
{
	return memset(xmalloc(n * size), 0, n * size);
}

static char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(xmalloc(n), s, n);
}

static int seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || !errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* Put "file:line: " in front of the message already in err. */
static int prefix_err(char *err, size_t errlen, const char *file, int line)
{
	char *msg;
	if (!err || !errlen)
		return -1;
	msg = xstrdup(err);
	seterr(err, errlen, "%s:%d: %s", file, line, msg);
	free(msg);
	return -1;
}

static void warn(const Loader *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(const Loader *ld, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	int n;
	if (!ld->warn_cb)
		return;
	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	ld->warn_cb(ld->warn_arg, msg);
	free(msg);
}

/* Trim whitespace at both ends in place; returns the new start. */
static char *trim(char *s)
{
	size_t n;
	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = 0;
	return s;
}

static int find_name(const char *const *names, const char *text)
{
	for (int i = 0; names[i]; i++)
		if (strcasecmp(names[i], text) == 0)
			return i;
	return -1;
}

/* "a, b or c", for error messages. */
static void join_names(const char *const *names, char *buf, size_t buflen)
{
	size_t used = 0;
	buf[0] = 0;
	for (int i = 0; names[i] && used < buflen; i++) {
		const char *sep = i == 0 ? "" : names[i + 1] ? ", " : " or ";
		used += (size_t)snprintf(buf + used, buflen - used, "%s%s", sep, names[i]);
	}
}

/* Strict decimal integer: no trailing garbage, within [lo, hi]. -1: not a number, -2: range. */
static int parse_int(const char *text, long lo, long hi, int *out)
{
	char *end;
	long v;
	if (!*text || isspace((unsigned char)*text))
		return -1;
	errno = 0;
	v = strtol(text, &end, 10);
	if (*end)
		return -1;
	if (errno == ERANGE || v < lo || v > hi)
		return -2;
	*out = (int)v;
	return 0;
}

/* Seconds (integer or decimal fraction, optional exponent) to microseconds; >= 0 only. */
static int parse_usec(const char *text, usec_t *out)
{
	char *end;
	double d;
	if (!*text || strspn(text, "0123456789.eE+-") != strlen(text))
		return -1; /* keeps out strtod's "inf", "nan" and hex forms */
	d = strtod(text, &end);
	if (*end || !(d >= 0 && d <= 9e12))
		return -1;
	*out = (usec_t)(d * USEC_PER_SEC + 0.5);
	return 0;
}

/* on/off/yes/no/true/false, or any integer: PgBouncer keeps its booleans in ints and takes
 * e.g. tcp_defer_accept = 45, so an ini that worked there must work here (non-zero = 1). */
static int parse_bool(const char *text)
{
	static const char *const yes[] = {"on", "yes", "true", NULL};
	static const char *const no[] = {"off", "no", "false", NULL};
	int v;
	if (parse_int(text, INT_MIN, INT_MAX, &v) == 0)
		return v != 0;
	if (find_name(yes, text) >= 0)
		return 1;
	return find_name(no, text) >= 0 ? 0 : -1;
}

static int bad_value(char *err, size_t errlen, const char *what, const char *name, const char *text,
                     const char *expected)
{
	return seterr(err, errlen, "invalid value \"%s\" for %s %s (expected %s)", text, what, name,
	              expected);
}

static int bad_enum(char *err, size_t errlen, const char *what, const char *name, const char *text,
                    const char *const *names)
{
	char buf[256];
	join_names(names, buf, sizeof(buf));
	return bad_value(err, errlen, what, name, text, buf);
}

/* Range of an INT setting; everything is a size, count or timeout unless listed. */
static void int_bounds(const Setting *s, long *lo, long *hi)
{
	*lo = 0;
	*hi = INT_MAX;
	if (strcmp(s->name, "listen_port") == 0) {
		*lo = 1;
		*hi = 65535;
	} else if (strcmp(s->name, "peer_id") == 0) {
		*hi = 16383;
	} else if (strcmp(s->name, "workers") == 0) {
		*hi = WORKERS_MAX;
	}
}

static size_t field_size(const Setting *s)
{
	if (s->type == SETTING_STR)
		return sizeof(char *);
	return s->type == SETTING_USEC ? sizeof(usec_t) : sizeof(int);
}

/* Parse text for setting s and store it in cf; cf is untouched on error. */
static int set_value(Config *cf, const Setting *s, const char *text, char *err, size_t errlen)
{
	void *p = (char *)cf + s->offset;
	const char *what = "parameter";
	long lo, hi;
	int i;
	usec_t u;

	switch (s->type) {
	case SETTING_STR: {
		char *old = *(char **)p;
		if (s->enum_names) { /* the sslmode strings: validate, store the canonical name */
			if ((i = find_name(s->enum_names, text)) < 0)
				return bad_enum(err, errlen, what, s->name, text, s->enum_names);
			text = s->enum_names[i];
		}
		/* an empty value of a setting whose default is unset means unset */
		*(char **)p = (!*text && !s->default_value) ? NULL : xstrdup(text);
		free(old);
		return 0;
	}
	case SETTING_INT:
		int_bounds(s, &lo, &hi);
		switch (parse_int(text, lo, hi, &i)) {
		case -1:
			return bad_value(err, errlen, what, s->name, text, "an integer");
		case -2:
			if (hi == INT_MAX)
				return bad_value(err, errlen, what, s->name, text, "an integer >= 0");
			return seterr(
			    err, errlen,
			    "invalid value \"%s\" for parameter %s (expected an integer from %ld to %ld)",
			    text, s->name, lo, hi);
		}
		*(int *)p = i;
		return 0;
	case SETTING_BOOL:
		if ((i = parse_bool(text)) < 0)
			return bad_value(err, errlen, what, s->name, text, "a boolean");
		*(int *)p = i;
		return 0;
	case SETTING_USEC:
		if (parse_usec(text, &u) < 0)
			return bad_value(err, errlen, what, s->name, text, "a number of seconds");
		*(usec_t *)p = u;
		return 0;
	case SETTING_ENUM:
		if ((i = find_name(s->enum_names, text)) < 0)
			return bad_enum(err, errlen, what, s->name, text, s->enum_names);
		*(int *)p = i;
		return 0;
	case SETTING_MODE: {
		char *end;
		long v;
		errno = 0;
		v = *text >= '0' && *text <= '7' ? strtol(text, &end, 8) : -1;
		if (v < 0 || *end || errno || v > 07777)
			return bad_value(err, errlen, what, s->name, text, "an octal file mode such as 0777");
		*(int *)p = (int)v;
		return 0;
	}
	}
	return seterr(err, errlen, "internal error: bad type of parameter %s", s->name);
}

static void free_field(Config *cf, const Setting *s)
{
	if (s->type == SETTING_STR) {
		free(*(char **)((char *)cf + s->offset));
		*(char **)((char *)cf + s->offset) = NULL;
	}
}

const Setting *config_find_setting(const char *name)
{
	int lo = 0, hi = config_n_settings - 1;
	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		int c = strcasecmp(name, config_settings[mid].name);
		if (c == 0)
			return &config_settings[mid];
		if (c < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return NULL;
}

Config *config_new_defaults(void)
{
	Config *cf = xcalloc(1, sizeof(*cf));
	for (int i = 0; i < config_n_settings; i++) {
		const Setting *s = &config_settings[i];
		if (s->default_value && set_value(cf, s, s->default_value, NULL, 0) < 0)
			abort(); /* a bad default is a bug in the table */
	}
	return cf;
}

const char *config_format_value(const Config *cf, const Setting *s, char *buf, size_t buflen)
{
	const void *p = (const char *)cf + s->offset;
	int v, n = 0;
	switch (s->type) {
	case SETTING_STR:
		snprintf(buf, buflen, "%s", *(char *const *)p ? *(char *const *)p : "");
		break;
	case SETTING_USEC: /* PgBouncer prints seconds with %g: 600, 0.25, 1.23457e+06 */
		snprintf(buf, buflen, "%g", (double)*(const usec_t *)p / USEC_PER_SEC);
		break;
	case SETTING_ENUM:
		v = *(const int *)p;
		while (s->enum_names[n])
			n++;
		if (v >= 0 && v < n) {
			snprintf(buf, buflen, "%s", s->enum_names[v]);
			break;
		}
		/* fall through */
	default: /* ints, bools (0/1) and the socket mode (decimal: 0777 shows as 511) */
		snprintf(buf, buflen, "%d", *(const int *)p);
		break;
	}
	return buf;
}

/* Does setting s hold its default value in cf? Unset and empty strings count as equal. */
static int value_is_default(const Config *cf, const Setting *s)
{
	Config def;
	const void *a = (const char *)cf + s->offset, *b = (const char *)&def + s->offset;
	int same;
	memset(&def, 0, sizeof(def));
	if (s->default_value)
		set_value(&def, s, s->default_value, NULL, 0);
	if (s->type == SETTING_STR) {
		const char *x = *(char *const *)a, *y = *(char *const *)b;
		same = strcmp(x ? x : "", y ? y : "") == 0;
	} else {
		same = memcmp(a, b, field_size(s)) == 0;
	}
	free_field(&def, s);
	return same;
}

/* How the value setting s has in cf is supported: the table's rule, applied to non-defaults. */
static SettingSupport support_of(const Config *cf, const Setting *s)
{
	char buf[64];
	if (s->support != SUPPORT_YES)
		return value_is_default(cf, s) ? SUPPORT_YES : s->support;
	config_format_value(cf, s, buf, sizeof(buf));
	for (size_t i = 0; i < sizeof(value_rules) / sizeof(value_rules[0]); i++)
		if (strcmp(value_rules[i].name, s->name) == 0 && strcasecmp(value_rules[i].value, buf) == 0)
			return SUPPORT_NO_ERROR;
	return SUPPORT_YES;
}

/* Text of a setting's value for messages; caller frees. */
static char *value_text(const Config *cf, const Setting *s)
{
	if (s->type == SETTING_STR) {
		const char *v = *(char *const *)((const char *)cf + s->offset);
		return xstrdup(v ? v : "");
	}
	char buf[64];
	return xstrdup(config_format_value(cf, s, buf, sizeof(buf)));
}

/* For the admin console's SET. It does not look at SETTING_NO_RELOAD (the caller decides);
 * on success err is empty, or holds a warning when the value is accepted but ignored. */
int config_set(Config *cf, const char *key, const char *value, char *err, size_t errlen)
{
	const Setting *s = config_find_setting(key);
	Config tmp;
	SettingSupport sup;
	char *text;
	void *dst;

	if (err && errlen)
		err[0] = 0;
	if (!s)
		return seterr(err, errlen, "unknown parameter: pgbouncer/%s", key);
	memset(&tmp, 0, sizeof(tmp));
	if (set_value(&tmp, s, value, err, errlen) < 0)
		return -1;
	sup = support_of(&tmp, s);
	text = value_text(&tmp, s);
	if (sup == SUPPORT_NO_ERROR) {
		seterr(err, errlen, "setting %s = %s is not supported yet", s->name, text);
		free(text);
		free_field(&tmp, s);
		return -1;
	}
	if (sup == SUPPORT_NO_WARN)
		seterr(err, errlen, "setting %s = %s is not supported yet and is ignored", s->name, text);
	free(text);
	dst = (char *)cf + s->offset;
	free_field(cf, s);
	memcpy(dst, (char *)&tmp + s->offset, field_size(s));
	return 0;
}

/* ---- [databases] and [users] ---- */

/*
 * Next key=value pair of a connection string. Values may be single-quoted; inside quotes ''
 * is a quote (PgBouncer's rule) and a backslash escapes the next character (libpq's rule), so
 * both password='it''s' and password='it\'s' work. Returns 1 with malloc'd key and value,
 * 0 at the end, -1 on a syntax error.
 */
static int next_pair(const char **pp, char **key, char **val, const char *what, char *err, size_t errlen)
{
	const char *p = *pp, *k;
	size_t klen;
	char *o;
	int quoted = 0;

	while (isspace((unsigned char)*p))
		p++;
	if (!*p)
		return 0;
	k = p;
	while (*p && *p != '=' && !isspace((unsigned char)*p))
		p++;
	klen = (size_t)(p - k);
	while (isspace((unsigned char)*p))
		p++;
	if (*p != '=' || klen == 0)
		return seterr(err, errlen, "syntax error in %s at \"%s\" (expected key=value)", what, k);
	p++;
	while (isspace((unsigned char)*p))
		p++;
	*val = o = xmalloc(strlen(p) + 1);
	if (*p == '\'') {
		for (p++, quoted = 1;; p++) {
			if (!*p) {
				free(*val);
				return seterr(err, errlen, "unterminated quoted value for %.*s in %s",
				              (int)klen, k, what);
			}
			if (*p == '\\' && p[1]) {
				*o++ = *++p;
			} else if (*p == '\'') {
				if (p[1] != '\'')
					break;
				*o++ = *++p;
			} else {
				*o++ = *p;
			}
		}
		p++;
		if (*p && !isspace((unsigned char)*p)) {
			free(*val);
			return seterr(err, errlen, "syntax error in %s: text after the quoted value of %.*s",
			              what, (int)klen, k);
		}
	} else {
		while (*p && !isspace((unsigned char)*p))
			*o++ = *p++;
	}
	*o = 0;
	if (!quoted && !**val) {
		free(*val);
		return seterr(err, errlen, "missing value for %.*s in %s", (int)klen, k, what);
	}
	*key = xmalloc(klen + 1);
	memcpy(*key, k, klen);
	(*key)[klen] = 0;
	*pp = p;
	return 1;
}

/* Set one field of a DatabaseDef, UserDef or PeerDef from its key table; takes val. 0 = unknown key. */
static int set_field(void *base, const FieldKey *keys, const char *key, char *val, const char *what,
                     char *err, size_t errlen)
{
	const FieldKey *f;
	const char *const *names;
	void *p;
	int i = 0, rc = 0;
	for (f = keys; f->key && strcmp(f->key, key) != 0; f++)
		;
	if (!f->key) {
		free(val);
		return 0;
	}
	p = (char *)base + f->off;
	switch (f->kind) {
	case 's':
		free(*(char **)p);
		*(char **)p = val;
		return 1;
	case 'i':
	case 'p':
		if ((rc = parse_int(val, f->kind == 'p', f->kind == 'p' ? 65535 : INT_MAX, &i)) < 0)
			bad_value(err, errlen, what, key, val,
			          rc == -1         ? "an integer"
			          : f->kind == 'p' ? "a port from 1 to 65535"
			                           : "an integer >= 0");
		break;
	case 'm':
	case 'l':
		names = f->kind == 'm' ? pool_mode_names : load_balance_names;
		if ((i = find_name(names, val)) < 0)
			rc = bad_enum(err, errlen, what, key, val, names);
		break;
	case 'u': /* parse_usec stores only on success */
		if ((rc = parse_usec(val, (usec_t *)p)) < 0)
			bad_value(err, errlen, what, key, val, "a number of seconds");
		break;
	}
	if (rc == 0 && f->kind != 'u')
		*(int *)p = i;
	free(val);
	return rc < 0 ? -1 : 1;
}

/* Free the strings of a DatabaseDef except its name and source_file. */
static void db_clear(DatabaseDef *def)
{
	for (const FieldKey *f = db_keys; f->key; f++)
		if (f->kind == 's') {
			free(*(char **)((char *)def + f->off));
			*(char **)((char *)def + f->off) = NULL;
		}
}

static void db_free(DatabaseDef *def)
{
	db_clear(def);
	free(def->name);
	free(def->source_file);
}

/* Parse a key=value list into base via keys; what and param name them in messages. */
static int parse_pairs(void *base, const FieldKey *keys, const char *text, const char *what,
                       const char *param, char *err, size_t errlen)
{
	const char *p = text;
	char *key = NULL, *val = NULL;
	int rc;
	while ((rc = next_pair(&p, &key, &val, what, err, errlen)) > 0) {
		rc = set_field(base, keys, key, val, param, err, errlen);
		if (rc == 0)
			seterr(err, errlen, "unrecognized %s: %s", param, key);
		free(key);
		if (rc <= 0)
			return -1;
	}
	return rc;
}

int config_parse_connstr(DatabaseDef *def, const char *connstr, char *err, size_t errlen)
{
	/* everything but the name and the source location starts unset */
	char *name = def->name, *file = def->source_file;
	int line = def->source_line;
	memset(def, 0, sizeof(*def));
	def->name = name;
	def->source_file = file;
	def->source_line = line;
	def->port = 5432;
	def->pool_size = def->min_pool_size = def->reserve_pool_size = -1;
	def->max_db_connections = def->max_db_client_connections = def->server_lifetime = -1;
	def->pool_mode = POOL_MODE_INHERIT;
	def->load_balance_hosts = -1;
	if (parse_pairs(def, db_keys, connstr, "connection string", "connection parameter", err, errlen) <
	    0) {
		db_clear(def);
		return -1;
	}
	return 0;
}

static void user_init(UserDef *u)
{
	memset(u, 0, sizeof(*u));
	u->pool_size = u->reserve_pool_size = u->max_user_connections = u->max_user_client_connections = -1;
	u->pool_mode = POOL_MODE_INHERIT;
	u->query_timeout = u->idle_transaction_timeout = u->transaction_timeout = u->client_idle_timeout = -1;
}

const DatabaseDef *config_find_database(const Config *cf, const char *name, int fallback)
{
	const DatabaseDef *star = NULL;
	for (int i = 0; i < cf->n_databases; i++) {
		if (strcmp(cf->databases[i].name, name) == 0)
			return &cf->databases[i];
		if (strcmp(cf->databases[i].name, "*") == 0)
			star = &cf->databases[i];
	}
	return fallback ? star : NULL;
}

const PeerDef *config_find_peer(const Config *cf, int peer_id)
{
	for (int i = 0; i < cf->n_peers; i++)
		if (cf->peers[i].peer_id == peer_id)
			return &cf->peers[i];
	return NULL;
}

const UserDef *config_find_user(const Config *cf, const char *name)
{
	for (int i = 0; i < cf->n_users; i++)
		if (strcmp(cf->users[i].name, name) == 0)
			return &cf->users[i];
	return NULL;
}

/* NULL for POOL_MODE_INHERIT or anything out of range (SHOW DATABASES prints NULL then). */
const char *config_pool_mode_name(int mode)
{
	return mode >= POOL_MODE_SESSION && mode <= POOL_MODE_STATEMENT ? pool_mode_names[mode] : NULL;
}

const char *config_auth_type_name(int auth_type)
{
	return auth_type >= AUTH_TYPE_CERT && auth_type <= AUTH_TYPE_PAM ? auth_type_names[auth_type] : NULL;
}

void config_free(Config *cf)
{
	if (!cf)
		return;
	for (int i = 0; i < config_n_settings; i++)
		free_field(cf, &config_settings[i]);
	for (int i = 0; i < cf->n_databases; i++)
		db_free(&cf->databases[i]);
	free(cf->databases);
	for (int i = 0; i < cf->n_users; i++)
		free(cf->users[i].name);
	free(cf->users);
	for (int i = 0; i < cf->n_peers; i++)
		free(cf->peers[i].host);
	free(cf->peers);
	free(cf);
}

/* ---- the ini reader ---- */

/* Read a whole file into a NUL-terminated buffer; NULL with errno set on failure. */
static char *read_whole(const char *path)
{
	FILE *f = fopen(path, "r");
	size_t len = 0, cap = 8192, n;
	char *buf;
	if (!f)
		return NULL;
	buf = xmalloc(cap);
	while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (cap - len - 1 == 0)
			buf = xrealloc(buf, cap *= 2);
	}
	if (ferror(f)) {
		int e = errno;
		fclose(f);
		free(buf);
		errno = e ? e : EIO;
		return NULL;
	}
	fclose(f);
	buf[len] = 0;
	return buf;
}

/*
 * Cut an inline comment off a value: ';' or '#' preceded by whitespace and outside single
 * quotes. PgBouncer (1.18 observed; its docs say the same for 1.25) only knows comments at
 * the start of a line: "max_client_conn = 1000   ; note" fails with invalid value
 * "1000   ; note" for parameter max_client_conn, a [databases] line with one fails with
 * "syntax error in connection string", and a string setting silently keeps the comment as
 * part of its value (server_reset_query = "DISCARD ALL   ; reset"). Our decision, unlike
 * PgBouncer: such trailing comments are comments, so the user's pgbouncer.ini loads unchanged;
 * a value that really contains " ;" or " #" must put it inside single quotes.
 */
static void strip_comment(char *v)
{
	int quoted = 0;
	for (char *p = v; *p; p++) {
		if (quoted) {
			if (*p == '\\' && p[1])
				p++;
			else if (*p == '\'')
				quoted = 0;
		} else if (*p == '\'') {
			quoted = 1;
		} else if ((*p == ';' || *p == '#') && p > v && isspace((unsigned char)p[-1])) {
			*p = 0;
			return;
		}
	}
}

/* Split "key = value" (key may be "double ""quoted"""); NULL key on a syntax error. */
static void split_line(char *s, char **key, char **val)
{
	char *eq;
	*key = NULL;
	if (*s == '"') {
		char *o = s, *p = s + 1;
		for (;; p++) {
			if (!*p)
				return;
			if (*p == '"' && *++p != '"')
				break;
			*o++ = *p;
		}
		*o = 0;
		while (isspace((unsigned char)*p))
			p++;
		if (*p != '=')
			return;
		eq = p;
	} else {
		if (!(eq = strchr(s, '=')))
			return;
		*eq = 0;
		s = trim(s);
	}
	*key = s;
	*val = eq + 1;
}

static int load_file(Loader *ld, const char *path, const char *from, int from_line);

static int db_line(Loader *ld, const char *name, const char *val, const char *file, int line)
{
	DatabaseDef def;
	int i;
	if (strcmp(name, "pgbouncer") == 0) {
		seterr(ld->err, ld->errlen, "database name \"pgbouncer\" is reserved");
		return prefix_err(ld->err, ld->errlen, file, line);
	}
	memset(&def, 0, sizeof(def));
	def.name = xstrdup(name);
	if (config_parse_connstr(&def, val, ld->err, ld->errlen) < 0) {
		free(def.name);
		return prefix_err(ld->err, ld->errlen, file, line);
	}
	for (const FieldKey *f = db_keys; f->key; f++) {
		const char *v = f->kind == 's' ? *(char **)((char *)&def + f->off) : NULL;
		if (f->support == SUPPORT_NO_ERROR && v) {
			seterr(ld->err, ld->errlen,
			       "%s:%d: connection parameter %s = %s is not supported yet", file, line, f->key,
			       v);
			db_free(&def);
			return -1;
		}
	}
	def.source_file = xstrdup(file);
	def.source_line = line;
	for (i = 0; i < ld->cf->n_databases && strcmp(ld->cf->databases[i].name, name) != 0; i++)
		;
	if (i < ld->cf->n_databases) { /* a later definition replaces an earlier one */
		db_free(&ld->cf->databases[i]);
	} else {
		ld->cf->databases = xrealloc(ld->cf->databases, (size_t)(i + 1) * sizeof(DatabaseDef));
		ld->cf->n_databases++;
	}
	ld->cf->databases[i] = def;
	return 0;
}

static int user_line(Loader *ld, const char *name, const char *val, const char *file, int line)
{
	UserDef u;
	int i;
	user_init(&u);
	if (parse_pairs(&u, user_keys, val, "user settings", "user parameter", ld->err, ld->errlen) < 0)
		return prefix_err(ld->err, ld->errlen, file, line);
	u.name = xstrdup(name);
	for (i = 0; i < ld->cf->n_users && strcmp(ld->cf->users[i].name, name) != 0; i++)
		;
	if (i < ld->cf->n_users) {
		free(ld->cf->users[i].name);
	} else {
		ld->cf->users = xrealloc(ld->cf->users, (size_t)(i + 1) * sizeof(UserDef));
		ld->cf->n_users++;
	}
	ld->cf->users[i] = u;
	return 0;
}

/* "<peer_id> = host=... port=... pool_size=..."; a later line for the same id replaces it. */
static int peer_line(Loader *ld, const char *name, const char *val, const char *file, int line)
{
	PeerDef pd = {0, NULL, -1, -1};
	int i;
	if (parse_int(name, 1, 16383, &pd.peer_id) < 0)
		return seterr(ld->err, ld->errlen, "%s:%d: invalid peer id \"%s\": expected 1 to 16383", file,
		              line, name);
	if (parse_pairs(&pd, peer_keys, val, "peer settings", "peer parameter", ld->err, ld->errlen) < 0) {
		free(pd.host);
		return prefix_err(ld->err, ld->errlen, file, line);
	}
	if (!pd.host || !*pd.host) {
		free(pd.host);
		return seterr(ld->err, ld->errlen, "%s:%d: host was not provided for peer %d", file, line,
		              pd.peer_id);
	}
	for (i = 0; i < ld->cf->n_peers && ld->cf->peers[i].peer_id != pd.peer_id; i++)
		;
	if (i < ld->cf->n_peers) {
		free(ld->cf->peers[i].host);
	} else {
		ld->cf->peers = xrealloc(ld->cf->peers, (size_t)(i + 1) * sizeof(PeerDef));
		ld->cf->n_peers++;
	}
	ld->cf->peers[i] = pd;
	return 0;
}

static int section_line(Loader *ld, char *s, const char *file, int line)
{
	static const char *const names[] = {"databases", "users", "pgbouncer", "peers", NULL};
	size_t n = strlen(s);
	int i;
	if (s[n - 1] != ']')
		return seterr(ld->err, ld->errlen, "%s:%d: unterminated section header: %s", file, line, s);
	s[n - 1] = 0;
	s = trim(s + 1);
	if ((i = find_name(names, s)) < 0)
		return seterr(ld->err, ld->errlen, "%s:%d: invalid section \"%s\"", file, line, s);
	ld->section = SECT_DATABASES + i;
	return 0;
}

static int handle_line(Loader *ld, char *line, const char *file, int lineno)
{
	char *s = trim(line), *key, *val;
	const Setting *st;

	if (!*s || *s == ';' || *s == '#')
		return 0;
	if (*s == '[')
		return section_line(ld, s, file, lineno);
	if (strncmp(s, "%include", 8) == 0 && (isspace((unsigned char)s[8]) || !s[8])) {
		char *inc = trim(s + 8);
		if (!*inc)
			return seterr(ld->err, ld->errlen, "%s:%d: %%include needs a file name", file,
			              lineno);
		return load_file(ld, inc, file, lineno);
	}
	if (*s == '%')
		return seterr(ld->err, ld->errlen, "%s:%d: unknown directive: %s", file, lineno, s);
	split_line(s, &key, &val);
	if (!key || !*key)
		return seterr(ld->err, ld->errlen, "%s:%d: syntax error: expected \"key = value\"", file,
		              lineno);
	if (ld->section == SECT_NONE)
		return seterr(ld->err, ld->errlen, "%s:%d: key \"%s\" outside of any section", file, lineno,
		              key);
	strip_comment(val);
	val = trim(val);
	switch (ld->section) {
	case SECT_DATABASES:
		return db_line(ld, key, val, file, lineno);
	case SECT_USERS:
		return user_line(ld, key, val, file, lineno);
	case SECT_PEERS:
		return peer_line(ld, key, val, file, lineno);
	}
	if (!(st = config_find_setting(key)))
		return seterr(ld->err, ld->errlen, "%s:%d: unknown parameter: pgbouncer/%s", file, lineno,
		              key);
	if (set_value(ld->cf, st, val, ld->err, ld->errlen) < 0)
		return prefix_err(ld->err, ld->errlen, file, lineno);
	ld->set_file[st - config_settings] = file;
	ld->set_line[st - config_settings] = lineno;
	return 0;
}

/* Parse text (modified in place) that was read from file. */
static int load_text(Loader *ld, char *text, const char *file)
{
	char *line = text, *next;
	if (strncmp(line, "\xef\xbb\xbf", 3) == 0) /* UTF-8 byte order mark, as Windows editors write */
		line += 3;
	for (int lineno = 1; line; line = next, lineno++) {
		if ((next = strchr(line, '\n')))
			*next++ = 0;
		if (handle_line(ld, line, file, lineno) < 0)
			return -1;
	}
	return 0;
}

/* Keep a file name for the Loader's lifetime; settings' locations point at it. */
static const char *remember(Loader *ld, const char *name)
{
	ld->names = xrealloc(ld->names, (size_t)(ld->n_names + 1) * sizeof(char *));
	return ld->names[ld->n_names++] = xstrdup(name);
}

/* Read text as the file path (top level) or as an %include of it, with loop checks. */
static int load_nested(Loader *ld, char *text, const char *path)
{
	char *canon = realpath(path, NULL);
	int rc;
	if (!canon)
		canon = xstrdup(path); /* config_load_string with a path that does not exist */
	ld->open_files[ld->depth++] = canon;
	rc = load_text(ld, text, remember(ld, path));
	free(ld->open_files[--ld->depth]);
	return rc;
}

static int load_file(Loader *ld, const char *path, const char *from, int from_line)
{
	char *canon, *text;
	int rc;
	if (ld->depth > MAX_INCLUDE_DEPTH)
		return seterr(ld->err, ld->errlen, "%s:%d: %%include nested more than %d deep", from,
		              from_line, MAX_INCLUDE_DEPTH);
	if ((canon = realpath(path, NULL))) {
		for (int i = 0; i < ld->depth; i++)
			if (strcmp(ld->open_files[i], canon) == 0) {
				free(canon);
				return seterr(ld->err, ld->errlen,
				              "%s:%d: include loop: %s is already being read", from,
				              from_line, path);
			}
		free(canon);
	}
	if (!(text = read_whole(path)))
		return seterr(ld->err, ld->errlen, "%s:%d: cannot read include file %s: %s", from, from_line,
		              path, strerror(errno));
	rc = load_nested(ld, text, path);
	free(text);
	return rc;
}

/* The settings that are set but not supported: errors first (the load fails), then warnings. */
static int check_support(Loader *ld, const char *path)
{
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < config_n_settings; i++) {
			const Setting *s = &config_settings[i];
			SettingSupport sup = support_of(ld->cf, s);
			const char *file = ld->set_file[i] ? ld->set_file[i] : path;
			char *text;
			if (sup != (pass == 0 ? SUPPORT_NO_ERROR : SUPPORT_NO_WARN))
				continue;
			text = value_text(ld->cf, s);
			if (pass == 0)
				seterr(ld->err, ld->errlen, "%s:%d: setting %s = %s is not supported yet",
				       file, ld->set_line[i], s->name, text);
			else
				warn(ld, "%s: setting %s = %s is not supported yet and is ignored", file,
				     s->name, text);
			free(text);
			if (pass == 0)
				return -1;
		}
	}
	return 0;
}

/* Shared by config_load and config_load_string: text is modified. */
static Config *load_top(char *text, const char *path, ConfigWarnFn warn_cb, void *warn_arg, char *err,
                        size_t errlen)
{
	Loader ld;
	int rc;
	memset(&ld, 0, sizeof(ld));
	ld.cf = config_new_defaults();
	ld.warn_cb = warn_cb;
	ld.warn_arg = warn_arg;
	ld.err = err;
	ld.errlen = errlen;
	ld.set_file = xcalloc((size_t)config_n_settings, sizeof(char *));
	ld.set_line = xcalloc((size_t)config_n_settings, sizeof(int));
	rc = load_nested(&ld, text, path);
	if (rc == 0)
		rc = check_support(&ld, path);
	if (rc == 0 && ld.cf->auth_dbname && strcmp(ld.cf->auth_dbname, "pgbouncer") == 0)
		/* the console cannot run a query; per database this is refused at login instead */
		rc = seterr(err, errlen, "cannot use the reserved \"pgbouncer\" database as an auth_dbname");
	if (rc == 0 && !ld.cf->conffile)
		ld.cf->conffile = xstrdup(path);
	for (int i = 0; i < ld.n_names; i++)
		free(ld.names[i]);
	free(ld.names);
	free(ld.set_file);
	free(ld.set_line);
	if (rc < 0) {
		config_free(ld.cf);
		return NULL;
	}
	return ld.cf;
}

Config *config_load(const char *path, ConfigWarnFn warn_cb, void *warn_arg, char *err, size_t errlen)
{
	char *text = read_whole(path);
	Config *cf;
	if (!text) {
		seterr(err, errlen, "cannot open config file %s: %s", path, strerror(errno));
		return NULL;
	}
	cf = load_top(text, path, warn_cb, warn_arg, err, errlen);
	free(text);
	return cf;
}

Config *config_load_string(const char *text, const char *path, ConfigWarnFn warn_cb, void *warn_arg,
                           char *err, size_t errlen)
{
	char *copy = xstrdup(text);
	Config *cf = load_top(copy, path, warn_cb, warn_arg, err, errlen);
	free(copy);
	return cf;
}

int config_copy_value(Config *dst, const Config *src, const Setting *s)
{
	char *d = (char *)dst + s->offset;
	const char *from = (const char *)src + s->offset;
	switch (s->type) {
	case SETTING_STR: {
		char *const *sv = (char *const *)(const void *)from;
		char *copy = NULL;
		if (*sv && !(copy = strdup(*sv)))
			return -1;
		free(*(char **)(void *)d);
		*(char **)(void *)d = copy;
		return 0;
	}
	case SETTING_USEC:
		memcpy(d, from, sizeof(usec_t));
		return 0;
	default:
		memcpy(d, from, sizeof(int));
		return 0;
	}
}
