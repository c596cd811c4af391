/* test_config.c: the settings table, the pgbouncer.ini loader, config_set and SHOW CONFIG formatting. */
#include "config.h"
#include "unit.h"

#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

/* The user's pgbouncer.ini from the setup guide, [databases] and [pgbouncer] verbatim with the
 * guide's Linux paths: inline "; comment" included. */
static const char seed_ini[] =
    "[databases]\n"
    "; Database connection string\n"
    "; Format: dbname = host=... port=... dbname=... user=...\n"
    "ahsp_db = host=127.0.0.1 port=5432 dbname=postgres user=postgres\n"
    "\n"
    "[pgbouncer]\n"
    "; Connection pooling mode\n"
    "; - session: one server connection per client connection (default)\n"
    "; - transaction: server connection returned after each transaction (RECOMMENDED)\n"
    "; - statement: server connection returned after each statement (least safe)\n"
    "pool_mode = transaction\n"
    "\n"
    "; Listen on localhost only (change to 0.0.0.0 for external access)\n"
    "listen_addr = 127.0.0.1\n"
    "listen_port = 6432\n"
    "\n"
    "; Authentication\n"
    "auth_type = md5\n"
    "auth_file = /etc/pgbouncer/userlist.txt\n"
    "\n"
    "; Connection limits\n"
    "max_client_conn = 1000          ; Max client connections PgBouncer accepts\n"
    "default_pool_size = 25          ; Max server connections per database\n"
    "reserve_pool_size = 5           ; Emergency reserve connections\n"
    "reserve_pool_timeout = 5        ; Seconds to wait for reserve pool\n"
    "\n"
    "; Connection timeouts (in seconds)\n"
    "server_connect_timeout = 15     ; Max time to connect to PostgreSQL\n"
    "server_idle_timeout = 600       ; Close idle server connections after 10 min\n"
    "server_lifetime = 3600          ; Close server connection after 1 hour (prevents memory leaks)\n"
    "\n"
    "; Client timeouts\n"
    "client_idle_timeout = 600       ; Disconnect idle clients after 10 min\n"
    "\n"
    "; Logging\n"
    "logfile = /var/log/pgbouncer/pgbouncer.log\n"
    "pidfile = /var/run/pgbouncer/pgbouncer.pid\n"
    "\n"
    "; Log level: DEBUG, INFO, WARNING, ERROR\n"
    "log_connections = 1\n"
    "log_disconnections = 1\n"
    "log_pooler_errors = 1\n"
    "\n"
    "; Performance\n"
    "max_prepared_statements = 100\n";

typedef struct {
	char text[4096];
	int n;
} Warnings;

static void collect(void *arg, const char *msg)
{
	Warnings *w = arg;
	size_t len = strlen(w->text);
	snprintf(w->text + len, sizeof(w->text) - len, "%s\n", msg);
	w->n++;
}

static char err[1024];
static Warnings warns;

static Config *load(const char *text)
{
	memset(&warns, 0, sizeof(warns));
	err[0] = 0;
	return config_load_string(text, "t.ini", collect, &warns, err, sizeof(err));
}

/* The load must fail with exactly this message. */
static void expect_error(const char *text, const char *msg)
{
	Config *cf = load(text);
	CHECK(cf == NULL);
	CHECK_STR(err, msg);
	config_free(cf);
}

static const char *fmt(const Config *cf, const char *name)
{
	static char buf[256];
	const Setting *s = config_find_setting(name);
	if (!s)
		return "(no such setting)";
	return config_format_value(cf, s, buf, sizeof(buf));
}

static char *write_temp(const char *text)
{
	char *path = strdup("/tmp/tidepool-test-XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		abort();
	close(fd);
	return path;
}

static void test_table(void)
{
	int sorted = 1, found = 1;
	CHECK(config_n_settings == 100);
	for (int i = 0; i < config_n_settings; i++) {
		const Setting *s = &config_settings[i];
		char upper[64];
		size_t j;
		if (i > 0 && strcmp(config_settings[i - 1].name, s->name) >= 0)
			sorted = 0;
		if (config_find_setting(s->name) != s)
			found = 0;
		for (j = 0; s->name[j] && j < sizeof(upper) - 1; j++)
			upper[j] =
			    (char)(s->name[j] >= 'a' && s->name[j] <= 'z' ? s->name[j] - 32 : s->name[j]);
		upper[j] = 0;
		if (config_find_setting(upper) != s)
			found = 0;
		if (!s->help || !*s->help)
			found = 0;
	}
	CHECK(sorted);
	CHECK(found);
	CHECK(config_find_setting("foo_bar") == NULL);
	CHECK(config_find_setting("listen_port")->flags & SETTING_NO_RELOAD);
	CHECK(config_find_setting("pkt_buf")->flags & SETTING_NO_RELOAD);
	CHECK(!(config_find_setting("pool_mode")->flags & SETTING_NO_RELOAD));
	CHECK(config_find_setting("client_tls_sslmode")->support == SUPPORT_YES);
	CHECK(config_find_setting("auth_user")->support == SUPPORT_YES);
	CHECK(config_find_setting("auth_query")->support == SUPPORT_YES);
	CHECK(config_find_setting("auth_hba_file")->support == SUPPORT_YES);
	CHECK(config_find_setting("auth_ident_file")->support == SUPPORT_YES);
	CHECK(config_find_setting("max_prepared_statements")->support == SUPPORT_YES);
	CHECK(config_find_setting("syslog")->support == SUPPORT_NO_WARN);
	CHECK(config_find_setting("pool_mode")->support == SUPPORT_YES);
	CHECK(config_find_setting("listen_port")->offset == offsetof(Config, listen_port));
	CHECK_STR(config_pool_mode_name(POOL_MODE_TRANSACTION), "transaction");
	CHECK(config_pool_mode_name(POOL_MODE_INHERIT) == NULL);
	CHECK_STR(config_auth_type_name(AUTH_TYPE_SCRAM_SHA_256), "scram-sha-256");
	CHECK_STR(config_auth_type_name(AUTH_TYPE_MD5), "md5");
}

static void test_defaults(void)
{
	Config *cf = config_new_defaults();
	CHECK(cf->pool_mode == POOL_MODE_SESSION);
	CHECK(cf->max_client_conn == 100);
	CHECK(cf->default_pool_size == 20);
	CHECK(cf->server_idle_timeout == 600 * USEC_PER_SEC);
	CHECK(cf->server_lifetime == 3600 * USEC_PER_SEC);
	CHECK(cf->query_wait_timeout == 120 * USEC_PER_SEC);
	CHECK(cf->reserve_pool_timeout == 5 * USEC_PER_SEC);
	CHECK(cf->listen_port == 6432);
	CHECK_STR(cf->unix_socket_dir, "/tmp");
	CHECK(cf->unix_socket_mode == 0777);
	CHECK(cf->auth_type == AUTH_TYPE_MD5);
	CHECK(cf->pkt_buf == 4096);
	CHECK_STR(cf->server_reset_query, "DISCARD ALL");
	CHECK(cf->max_prepared_statements == 200);
	CHECK(cf->max_packet_size == 2147483647);
	CHECK(cf->listen_backlog == 128);
	CHECK(cf->scram_iterations == 4096);
	CHECK(cf->log_connections == 1 && cf->tcp_keepalive == 1 && cf->syslog == 0);
	CHECK_STR(cf->server_tls_sslmode, "prefer");
	CHECK_STR(cf->client_tls_sslmode, "disable");
	CHECK_STR(cf->track_extra_parameters, "IntervalStyle");
	CHECK_STR(cf->server_check_query, "<empty>");
	CHECK(cf->server_check_delay == 30 * USEC_PER_SEC);
	CHECK(cf->cancel_wait_timeout == 10 * USEC_PER_SEC);
	CHECK(cf->query_wait_notify == 5);
	CHECK(cf->logfile == NULL && cf->listen_addr == NULL && cf->auth_file == NULL);
	CHECK(cf->n_databases == 0 && cf->n_users == 0);
	CHECK_STR(config_find_setting("reserve_pool_timeout")->default_value, "5.0");
	CHECK(config_find_setting("logfile")->default_value == NULL);
	config_free(cf);
}

static void test_seed(void)
{
	Config *cf = load(seed_ini);
	const DatabaseDef *db;
	CHECK(cf != NULL);
	if (!cf) {
		fprintf(stderr, "seed ini: %s\n", err);
		return;
	}
	CHECK(cf->pool_mode == POOL_MODE_TRANSACTION);
	CHECK(cf->max_client_conn == 1000);
	CHECK(cf->default_pool_size == 25);
	CHECK(cf->reserve_pool_size == 5);
	CHECK(cf->reserve_pool_timeout == 5 * USEC_PER_SEC);
	CHECK(cf->server_idle_timeout == 600 * USEC_PER_SEC);
	CHECK(cf->server_lifetime == 3600 * USEC_PER_SEC);
	CHECK(cf->client_idle_timeout == 600 * USEC_PER_SEC);
	CHECK(cf->auth_type == AUTH_TYPE_MD5);
	CHECK_STR(cf->listen_addr, "127.0.0.1");
	CHECK_STR(cf->auth_file, "/etc/pgbouncer/userlist.txt");
	CHECK_STR(cf->pidfile, "/var/run/pgbouncer/pgbouncer.pid");
	CHECK_STR(cf->conffile, "t.ini");
	CHECK(cf->max_prepared_statements == 100);
	CHECK(warns.n == 0); /* every setting of the user's file is supported */
	CHECK(cf->n_databases == 1);
	db = config_find_database(cf, "ahsp_db", 0);
	CHECK(db != NULL);
	if (db) {
		CHECK_STR(db->host, "127.0.0.1");
		CHECK(db->port == 5432);
		CHECK_STR(db->dbname, "postgres");
		CHECK_STR(db->user, "postgres");
		CHECK(db->password == NULL && db->pool_size == -1 && db->pool_mode == POOL_MODE_INHERIT);
		CHECK_STR(db->source_file, "t.ini");
		CHECK(db->source_line == 4);
	}
	config_free(cf);
}

static void test_errors(void)
{
	expect_error("[pgbouncer]\nfoo_bar = 1\n", "t.ini:2: unknown parameter: pgbouncer/foo_bar");
	expect_error("[pgbouncer]\npool_mode = transcation\n",
	             "t.ini:2: invalid value \"transcation\" for parameter pool_mode (expected session, "
	             "transaction or "
	             "statement)");
	expect_error("[pgbouncer]\nmax_client_conn = lots\n",
	             "t.ini:2: invalid value \"lots\" for parameter max_client_conn (expected an integer)");
	expect_error("[pgbouncer]\nmax_client_conn = 12x\n",
	             "t.ini:2: invalid value \"12x\" for parameter max_client_conn (expected an integer)");
	expect_error("[pgbouncer]\nmax_client_conn = 99999999999\n",
	             "t.ini:2: invalid value \"99999999999\" for parameter max_client_conn (expected an "
	             "integer >= 0)");
	expect_error("[pgbouncer]\n\nlog_connections = maybe\n",
	             "t.ini:3: invalid value \"maybe\" for parameter log_connections (expected a boolean)");
	expect_error(
	    "[pgbouncer]\ndefault_pool_size = -1\n",
	    "t.ini:2: invalid value \"-1\" for parameter default_pool_size (expected an integer >= 0)");
	expect_error("[pgbouncer]\nserver_idle_timeout = 10s\n",
	             "t.ini:2: invalid value \"10s\" for parameter server_idle_timeout (expected a number of "
	             "seconds)");
	expect_error(
	    "[pgbouncer]\nquery_timeout = -1\n",
	    "t.ini:2: invalid value \"-1\" for parameter query_timeout (expected a number of seconds)");
	expect_error("[pgbouncer]\nlisten_port = 70000\n",
	             "t.ini:2: invalid value \"70000\" for parameter listen_port (expected an integer from 1 "
	             "to 65535)");
	expect_error(
	    "[pgbouncer]\nunix_socket_mode = 0799\n",
	    "t.ini:2: invalid value \"0799\" for parameter unix_socket_mode (expected an octal file mode "
	    "such as 0777)");
	expect_error(
	    "[pgbouncer]\nauth_type = kerberos\n",
	    "t.ini:2: invalid value \"kerberos\" for parameter auth_type (expected cert, md5, scram-sha-256, "
	    "plain, trust, any, hba, ldap or pam)");
	expect_error("[databases]\nx = host=h bogus=1\n",
	             "t.ini:2: unrecognized connection parameter: bogus");
	expect_error("[databases]\nx = host=h port=abc\n",
	             "t.ini:2: invalid value \"abc\" for connection parameter port (expected an integer)");
	expect_error(
	    "[databases]\nx = host=h pool_mode=sometimes\n",
	    "t.ini:2: invalid value \"sometimes\" for connection parameter pool_mode (expected session, "
	    "transaction or statement)");
	expect_error("[databases]\nx = host=h password='abc\n",
	             "t.ini:2: unterminated quoted value for password in connection string");
	expect_error("[databases]\nx = host\n",
	             "t.ini:2: syntax error in connection string at \"host\" (expected key=value)");
	expect_error("[users]\nbob = pool_size=3 colour=red\n",
	             "t.ini:2: unrecognized user parameter: colour");
	expect_error("[users]\nbob = query_timeout=soon\n",
	             "t.ini:2: invalid value \"soon\" for user parameter query_timeout (expected a number of "
	             "seconds)");
	expect_error("[databases]\npgbouncer = host=h\n", "t.ini:2: database name \"pgbouncer\" is reserved");
	{ /* auth_user/auth_query/auth_dbname are supported (issue 5), globally and per database */
		Config *cf =
		    load("[databases]\nx = host=h auth_user=admin auth_dbname=y "
		         "auth_query='SELECT u, p FROM f($1)'\n[pgbouncer]\nauth_user = pgbouncer\n");
		CHECK(cf != NULL);
		if (cf) {
			CHECK_STR(cf->databases[0].auth_user, "admin");
			CHECK_STR(cf->databases[0].auth_query, "SELECT u, p FROM f($1)");
			CHECK_STR(cf->auth_user, "pgbouncer");
		}
		config_free(cf);
	}
	expect_error("[pgbouncer]\nauth_type = ldap\n",
	             "t.ini:2: setting auth_type = ldap is not supported yet");
	{
		Config *cf = load("[pgbouncer]\nauth_type = scram-sha-256\n"); /* supported now */
		CHECK(cf != NULL && cf->auth_type == AUTH_TYPE_SCRAM_SHA_256);
		config_free(cf);
	}
	expect_error("[pgbouncer]\nlisten_port = 6000\nauth_type = pam\n",
	             "t.ini:3: setting auth_type = pam is not supported yet");
	{
		Config *cf = load("[pgbouncer]\nserver_tls_sslmode = verify-full\n"); /* supported now */
		CHECK(cf != NULL);
		config_free(cf);
	}
	expect_error(
	    "[pgbouncer]\nclient_tls_sslmode = sometimes\n",
	    "t.ini:2: invalid value \"sometimes\" for parameter client_tls_sslmode (expected disable, allow, "
	    "prefer, require, verify-ca or verify-full)");
	expect_error("[pgbouncer]\nlisten_port 6432\n", "t.ini:2: syntax error: expected \"key = value\"");
	expect_error("[pgbouncer]\n = 5\n", "t.ini:2: syntax error: expected \"key = value\"");
	expect_error("; top\n[pgbouncer\n", "t.ini:2: unterminated section header: [pgbouncer");
	expect_error("[bouncer]\n", "t.ini:1: invalid section \"bouncer\"");
	expect_error("pool_mode = session\n", "t.ini:1: key \"pool_mode\" outside of any section");
	expect_error("[pgbouncer]\n%include\n", "t.ini:2: %include needs a file name");
	expect_error(
	    "[pgbouncer]\n%include /nonexistent/tidepool.ini\n",
	    "t.ini:2: cannot read include file /nonexistent/tidepool.ini: No such file or directory");

	/* config_load on a missing file */
	CHECK(config_load("/nonexistent/p.ini", NULL, NULL, err, sizeof(err)) == NULL);
	CHECK_STR(err, "cannot open config file /nonexistent/p.ini: No such file or directory");
}

/* Values that load: rules applied only to non-defaults, last duplicate wins, comments, CRLF. */
static void test_accepted(void)
{
	Config *cf;

	cf = load(
	    "[pgbouncer]\nclient_tls_sslmode = require\nclient_tls_sslmode = disable\n"
	    "server_tls_sslmode = disable\nauth_type = trust\nmax_prepared_statements = 200\n"
	    "suspend_timeout = 10.0\nauth_query = SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL "
	    "ELSE rolpassword END FROM pg_authid WHERE rolname=$1 AND rolcanlogin\n");
	CHECK(cf != NULL);
	CHECK(warns.n == 0);
	if (cf) {
		CHECK_STR(cf->server_tls_sslmode, "disable");
		CHECK(cf->auth_type == AUTH_TYPE_TRUST);
	}
	config_free(cf);

	/* PgBouncer keeps booleans in ints, so any integer works there and here */
	cf = load("[pgbouncer]\ntcp_defer_accept = 45\nlog_stats = 0\nserver_round_robin = 2\n");
	CHECK(cf && cf->tcp_defer_accept == 1 && cf->log_stats == 0 && cf->server_round_robin == 1);
	config_free(cf);

	/* Windows editors often save a UTF-8 byte order mark */
	cf = load("\xef\xbb\xbf[pgbouncer]\r\npool_mode = transaction\r\n");
	CHECK(cf && cf->pool_mode == POOL_MODE_TRANSACTION);
	config_free(cf);

	cf = load("; whitespace lines are fine\r\n[PGBOUNCER]\r\n"
	          "  Pool_Mode = Statement  \r\n  # indented comment\r\nlog_stats = off\nlog_connections=no\n"
	          "server_round_robin = TRUE\nsyslog = on\npeer_id = 3\nmax_client_conn = "
	          "10\nmax_client_conn = 20\n"
	          "admin_users = alice, bob # the admins\nserver_reset_query = DISCARD ALL;\n"
	          "server_check_query = select ';#' ; check\nlogfile =\nunix_socket_mode = 0700\n"
	          "[peers]\n1 = host=/tmp\n[pgbouncer]\nverbose = 2\n");
	CHECK(cf != NULL);
	if (!cf) {
		fprintf(stderr, "accepted: %s\n", err);
		return;
	}
	CHECK(cf->pool_mode == POOL_MODE_STATEMENT);
	CHECK(cf->log_stats == 0 && cf->log_connections == 0 && cf->server_round_robin == 1);
	CHECK(cf->max_client_conn == 20);
	CHECK_STR(cf->admin_users, "alice, bob");
	CHECK_STR(cf->server_reset_query, "DISCARD ALL;");
	CHECK_STR(cf->server_check_query, "select ';#'");
	CHECK(cf->logfile == NULL);
	CHECK(cf->unix_socket_mode == 0700);
	CHECK(cf->verbose == 2);
	CHECK(cf->syslog == 1);
	CHECK(cf->peer_id == 3 && cf->n_peers == 1);
	CHECK(warns.n == 1);
	CHECK_STR(warns.text, "t.ini: setting syslog = 1 is not supported yet and is ignored\n");
	config_free(cf);
}

static void test_connstr(void)
{
	DatabaseDef def;
	Config *cf;
	const DatabaseDef *db;

	memset(&def, 0, sizeof(def));
	def.name = "d";
	CHECK(config_parse_connstr(
	          &def,
	          "host=db.example port=6000 user=bob password='a b\\'c' dbname = 'x''y' "
	          "pool_mode=transaction reserve_pool=3 load_balance_hosts=disable server_lifetime=30 "
	          "application_name=app connect_query='SELECT 1' max_db_client_connections=9",
	          err, sizeof(err)) == 0);
	CHECK_STR(def.host, "db.example");
	CHECK(def.port == 6000);
	CHECK_STR(def.user, "bob");
	CHECK_STR(def.password, "a b'c");
	CHECK_STR(def.dbname, "x'y");
	CHECK(def.pool_mode == POOL_MODE_TRANSACTION);
	CHECK(def.reserve_pool_size == 3);
	CHECK(def.load_balance_hosts == LOAD_BALANCE_DISABLE);
	CHECK(def.server_lifetime == 30);
	CHECK_STR(def.application_name, "app");
	CHECK_STR(def.connect_query, "SELECT 1");
	CHECK(def.max_db_client_connections == 9);
	CHECK(def.pool_size == -1 && def.min_pool_size == -1 && def.max_db_connections == -1);
	CHECK_STR(def.name, "d");
	free(def.host);
	free(def.user);
	free(def.password);
	free(def.dbname);
	free(def.application_name);
	free(def.connect_query);

	memset(&def, 0, sizeof(def));
	CHECK(config_parse_connstr(&def, "host=h colour=red", err, sizeof(err)) < 0);
	CHECK_STR(err, "unrecognized connection parameter: colour");
	CHECK(def.host == NULL); /* freed on error */
	CHECK(config_parse_connstr(&def, "port=0", err, sizeof(err)) < 0);
	CHECK_STR(err, "invalid value \"0\" for connection parameter port (expected a port from 1 to 65535)");
	CHECK(config_parse_connstr(&def, "pool_size=-2", err, sizeof(err)) < 0);
	CHECK_STR(err, "invalid value \"-2\" for connection parameter pool_size (expected an integer >= 0)");
	CHECK(config_parse_connstr(&def, "", err, sizeof(err)) == 0);
	CHECK(def.port == 5432 && def.host == NULL);

	cf = load("[databases]\n"
	          "ahsp_db = host=127.0.0.1 port=5432 ; the main one\n"
	          "secret = host=h user=u password='p ;#x' # inline comment\n"
	          "\"my db\" = host=other dbname=real\n"
	          "* = host=fallback\n"
	          "ahsp_db = host=10.0.0.1 port=5433\n"
	          "bare =\n");
	CHECK(cf != NULL);
	if (!cf) {
		fprintf(stderr, "connstr: %s\n", err);
		return;
	}
	CHECK(cf->n_databases == 5);
	db = config_find_database(cf, "ahsp_db", 1);
	CHECK(db && strcmp(db->host, "10.0.0.1") == 0 && db->port == 5433 && db->source_line == 6);
	db = config_find_database(cf, "secret", 0);
	CHECK(db && strcmp(db->password, "p ;#x") == 0);
	db = config_find_database(cf, "my db", 0);
	CHECK(db && strcmp(db->dbname, "real") == 0);
	db = config_find_database(cf, "bare", 0);
	CHECK(db && db->host == NULL && db->port == 5432);
	db = config_find_database(cf, "nosuch", 1);
	CHECK(db && strcmp(db->name, "*") == 0 && strcmp(db->host, "fallback") == 0);
	CHECK(config_find_database(cf, "nosuch", 0) == NULL);
	CHECK(config_find_database(cf, "AHSP_DB", 0) == NULL); /* database names are case-sensitive */
	config_free(cf);
}

static void test_users(void)
{
	Config *cf =
	    load("[users]\n"
	         "bob = pool_size=5 pool_mode=statement query_timeout=1.5 max_user_connections=7 ; note\n"
	         "alice = idle_transaction_timeout=30 client_idle_timeout=0 transaction_timeout=2 "
	         "reserve_pool_size=1 max_user_client_connections=50\n"
	         "carol =\n"
	         "bob = pool_size=6\n");
	const UserDef *u;
	CHECK(cf != NULL);
	if (!cf) {
		fprintf(stderr, "users: %s\n", err);
		return;
	}
	CHECK(cf->n_users == 3);
	u = config_find_user(cf, "bob");
	CHECK(u && u->pool_size == 6 && u->pool_mode == POOL_MODE_INHERIT && u->query_timeout == -1);
	u = config_find_user(cf, "alice");
	CHECK(u && u->idle_transaction_timeout == 30 * USEC_PER_SEC && u->client_idle_timeout == 0 &&
	      u->transaction_timeout == 2 * USEC_PER_SEC && u->reserve_pool_size == 1 &&
	      u->max_user_client_connections == 50 && u->pool_size == -1);
	u = config_find_user(cf, "carol");
	CHECK(u && u->pool_size == -1 && u->max_user_connections == -1 && u->client_idle_timeout == -1);
	CHECK(config_find_user(cf, "dave") == NULL);
	config_free(cf);

	cf =
	    load("[users]\nbob = pool_size=5 pool_mode=statement query_timeout=1.5 max_user_connections=7\n");
	u = cf ? config_find_user(cf, "bob") : NULL;
	CHECK(u && u->pool_size == 5 && u->pool_mode == POOL_MODE_STATEMENT && u->query_timeout == 1500000 &&
	      u->max_user_connections == 7);
	config_free(cf);
}

/* [peers]: "<peer_id> = host=... port=... pool_size=..."; a later line for an id replaces it;
 * a bad id or key is an error naming file:line; a [peers] section survives %include and reload. */
static void test_peers(void)
{
	Config *cf = load("[pgbouncer]\npeer_id = 2\nlisten_port = 7000\n[peers]\n"
	                  "1 = host=/tmp/p1 port=7001 pool_size=4 ; first\n"
	                  "3 = host=peer3.example\n"
	                  "16383 = host=/tmp\n"
	                  "1 = host=10.0.0.1\n");
	const PeerDef *pd;
	CHECK(cf != NULL);
	if (!cf) {
		fprintf(stderr, "peers: %s\n", err);
		return;
	}
	CHECK(cf->peer_id == 2 && cf->n_peers == 3);
	CHECK(warns.n == 0);
	pd = config_find_peer(cf, 1);
	CHECK(pd && pd->host && strcmp(pd->host, "10.0.0.1") == 0 && pd->port == -1 && pd->pool_size == -1);
	pd = config_find_peer(cf, 3);
	CHECK(pd && pd->host && strcmp(pd->host, "peer3.example") == 0);
	pd = config_find_peer(cf, 16383);
	CHECK(pd && pd->host && strcmp(pd->host, "/tmp") == 0 && pd->port == -1);
	CHECK(config_find_peer(cf, 2) == NULL);
	config_free(cf);

	cf = load("[peers]\n5 = host=/run/pg port=6000 pool_size=2\n");
	pd = cf ? config_find_peer(cf, 5) : NULL;
	CHECK(pd && strcmp(pd->host, "/run/pg") == 0 && pd->port == 6000 && pd->pool_size == 2);
	config_free(cf);

	expect_error("[peers]\n0 = host=/tmp\n", "t.ini:2: invalid peer id \"0\": expected 1 to 16383");
	expect_error("[peers]\n\n16384 = host=/tmp\n",
	             "t.ini:3: invalid peer id \"16384\": expected 1 to 16383");
	expect_error("[peers]\nfirst = host=/tmp\n",
	             "t.ini:2: invalid peer id \"first\": expected 1 to 16383");
	expect_error("[peers]\n1 = host=/tmp dbname=x\n", "t.ini:2: unrecognized peer parameter: dbname");
	expect_error(
	    "[peers]\n1 = port=0\n",
	    "t.ini:2: invalid value \"0\" for peer parameter port (expected a port from 1 to 65535)");
	expect_error("[peers]\n1 = host=/tmp pool_size=-1\n",
	             "t.ini:2: invalid value \"-1\" for peer parameter pool_size (expected an integer >= 0)");
	expect_error("[peers]\n1 = host='/tmp\n",
	             "t.ini:2: unterminated quoted value for host in peer settings");
	expect_error("[peers]\n4 =\n", "t.ini:2: host was not provided for peer 4");
	expect_error("[peers]\n4 = port=7000 host=''\n", "t.ini:2: host was not provided for peer 4");
	expect_error("[peers]\njust words\n", "t.ini:2: syntax error: expected \"key = value\"");
}

/* A chain of files, each including the next: 10 levels of %include load, 11 do not. */
static void test_include_depth(void)
{
	char *chain[12];
	char expect[512];
	Config *cf;
	for (int i = 11; i >= 0; i--) {
		char text[256];
		if (i == 11)
			snprintf(text, sizeof(text), "[pgbouncer]\nmax_client_conn = 11\n");
		else
			snprintf(text, sizeof(text), "%%include %s\n", chain[i + 1]);
		chain[i] = write_temp(text);
	}
	cf = config_load(chain[1], NULL, NULL, err, sizeof(err));
	CHECK(cf && cf->max_client_conn == 11);
	config_free(cf);
	CHECK(config_load(chain[0], NULL, NULL, err, sizeof(err)) == NULL);
	snprintf(expect, sizeof(expect), "%s:1: %%include nested more than 10 deep", chain[10]);
	CHECK_STR(err, expect);
	for (int i = 0; i < 12; i++) {
		unlink(chain[i]);
		free(chain[i]);
	}
}

static void test_include(void)
{
	/* the section carries into an included file and back out of it, as in PgBouncer */
	char *inc = write_temp("max_client_conn = 77\n[databases]\nincdb = host=inc\n");
	char *bad = write_temp("[pgbouncer]\n\nbad_key = 1\n");
	char *self = write_temp("");
	char *a = write_temp(""), *b = write_temp("");
	char text[512], expect[512];
	FILE *f;
	Config *cf;

	snprintf(text, sizeof(text),
	         "[pgbouncer]\n%%include %s\nfromdb = host=x\n[pgbouncer]\ndefault_pool_size = 9\n", inc);
	cf = load(text);
	CHECK(cf != NULL);
	if (cf) {
		CHECK(cf->max_client_conn == 77);
		CHECK(cf->default_pool_size == 9);
		CHECK(config_find_database(cf, "incdb", 0) != NULL);
		CHECK(config_find_database(cf, "fromdb", 0) != NULL);
		CHECK_STR(config_find_database(cf, "incdb", 0)->source_file, inc);
	}
	config_free(cf);

	snprintf(text, sizeof(text), "[pgbouncer]\n%%include %s\n", bad);
	snprintf(expect, sizeof(expect), "%s:3: unknown parameter: pgbouncer/bad_key", bad);
	expect_error(text, expect);

	/* a file including itself, and a two-file loop */
	f = fopen(self, "w");
	fprintf(f, "[pgbouncer]\n%%include %s\n", self);
	fclose(f);
	cf = config_load(self, NULL, NULL, err, sizeof(err));
	CHECK(cf == NULL);
	snprintf(expect, sizeof(expect), "%s:2: include loop: %s is already being read", self, self);
	CHECK_STR(err, expect);
	f = fopen(a, "w");
	fprintf(f, "%%include %s\n", b);
	fclose(f);
	f = fopen(b, "w");
	fprintf(f, "\n%%include %s\n", a);
	fclose(f);
	CHECK(config_load(a, NULL, NULL, err, sizeof(err)) == NULL);
	snprintf(expect, sizeof(expect), "%s:2: include loop: %s is already being read", b, a);
	CHECK_STR(err, expect);

	/* config_load of a real file: conffile defaults to its path, warnings name it */
	f = fopen(a, "w");
	fprintf(f, "[pgbouncer]\n%%include %s\n[pgbouncer]\nsuspend_timeout = 20\n", inc);
	fclose(f);
	memset(&warns, 0, sizeof(warns));
	cf = config_load(a, collect, &warns, err, sizeof(err));
	CHECK(cf != NULL);
	if (cf) {
		CHECK_STR(cf->conffile, a);
		CHECK(cf->max_client_conn == 77);
		snprintf(expect, sizeof(expect),
		         "%s: setting suspend_timeout = 20 is not supported yet and is ignored\n", a);
		CHECK_STR(warns.text, expect);
	}
	config_free(cf);

	test_include_depth();
	unlink(inc);
	unlink(bad);
	unlink(self);
	unlink(a);
	unlink(b);
	free(inc);
	free(bad);
	free(self);
	free(a);
	free(b);
}

static void test_set_and_format(void)
{
	Config *cf = config_new_defaults();

	/* SHOW CONFIG forms, as PgBouncer 1.18 printed them */
	CHECK_STR(fmt(cf, "log_connections"), "1");
	CHECK_STR(fmt(cf, "server_idle_timeout"), "600");
	CHECK_STR(fmt(cf, "reserve_pool_timeout"), "5");
	CHECK_STR(fmt(cf, "unix_socket_mode"), "511");
	CHECK_STR(fmt(cf, "logfile"), "");
	CHECK_STR(fmt(cf, "admin_users"), "");
	CHECK_STR(fmt(cf, "pool_mode"), "session");
	CHECK_STR(fmt(cf, "auth_type"), "md5");
	CHECK_STR(fmt(cf, "max_packet_size"), "2147483647");

	CHECK(config_set(cf, "pool_mode", "transaction", err, sizeof(err)) == 0);
	CHECK_STR(err, "");
	CHECK(cf->pool_mode == POOL_MODE_TRANSACTION);
	CHECK(config_set(cf, "LOG_CONNECTIONS", "off", err, sizeof(err)) == 0);
	CHECK_STR(fmt(cf, "log_connections"), "0");
	CHECK(config_set(cf, "server_check_delay", "2.5", err, sizeof(err)) == 0);
	CHECK(cf->server_check_delay == 2500000);
	CHECK_STR(fmt(cf, "server_check_delay"), "2.5");
	CHECK(config_set(cf, "client_login_timeout", "0.25", err, sizeof(err)) == 0);
	CHECK_STR(fmt(cf, "client_login_timeout"), "0.25");
	CHECK(config_set(cf, "server_idle_timeout", "1234567.5", err, sizeof(err)) == 0);
	CHECK_STR(fmt(cf, "server_idle_timeout"), "1.23457e+06");
	CHECK(config_set(cf, "query_timeout", "0.000001", err, sizeof(err)) == 0);
	CHECK(cf->query_timeout == 1);
	CHECK_STR(fmt(cf, "query_timeout"), "1e-06");
	CHECK(config_set(cf, "unix_socket_mode", "0700", err, sizeof(err)) == 0);
	CHECK_STR(fmt(cf, "unix_socket_mode"), "448");
	CHECK(config_set(cf, "admin_users", "root,admin", err, sizeof(err)) == 0);
	CHECK_STR(fmt(cf, "admin_users"), "root,admin");
	CHECK(config_set(cf, "admin_users", "", err, sizeof(err)) == 0);
	CHECK_STR(fmt(cf, "admin_users"), "");

	CHECK(config_set(cf, "max_client_conn", "x", err, sizeof(err)) == -1);
	CHECK_STR(err, "invalid value \"x\" for parameter max_client_conn (expected an integer)");
	CHECK(cf->max_client_conn == 100);
	CHECK(config_set(cf, "pool_mode", "transcation", err, sizeof(err)) == -1);
	CHECK(cf->pool_mode == POOL_MODE_TRANSACTION);
	CHECK(config_set(cf, "auth_type", "pam", err, sizeof(err)) == -1);
	CHECK_STR(err, "setting auth_type = pam is not supported yet");
	CHECK(cf->auth_type == AUTH_TYPE_MD5);
	CHECK(config_set(cf, "auth_type", "ldap", err, sizeof(err)) == -1);
	CHECK(cf->auth_type == AUTH_TYPE_MD5);
	CHECK(config_set(cf, "auth_type", "hba", err, sizeof(err)) == 0); /* issue 5 */
	CHECK(config_set(cf, "auth_type", "md5", err, sizeof(err)) == 0);
	CHECK(config_set(cf, "client_tls_sslmode", "require", err, sizeof(err)) == 0); /* issue 5 */
	CHECK_STR(cf->client_tls_sslmode, "require");
	CHECK(config_set(cf, "client_tls_sslmode", "disable", err, sizeof(err)) == 0);
	CHECK(config_set(cf, "foo_bar", "1", err, sizeof(err)) == -1);
	CHECK_STR(err, "unknown parameter: pgbouncer/foo_bar");
	CHECK(config_set(cf, "max_prepared_statements", "50", err, sizeof(err)) == 0);
	CHECK(cf->max_prepared_statements == 50);
	CHECK(config_set(cf, "syslog", "1", err, sizeof(err)) == 0);
	CHECK_STR(err, "setting syslog = 1 is not supported yet and is ignored");
	CHECK(cf->syslog == 1);
	config_free(cf);
}

int main(void)
{
	test_table();
	test_defaults();
	test_seed();
	test_errors();
	test_accepted();
	test_connstr();
	test_users();
	test_peers();
	test_include();
	test_set_and_format();
	UNIT_DONE();
}
