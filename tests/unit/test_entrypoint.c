/* test_entrypoint.c: the container entrypoint's env -> (ini, userlist, errors) mapping, case by
 * case: every form, quoting, percent-decoding, conflicts, *_FILE, mounted files and errors. */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "envconf.h"
#include "unit.h"

/* ---- fakes for the I/O the core asks for ---- */

typedef struct Fake {
	const char *files[8][2]; /* path, content */
	const char *mounted[4];  /* paths that "exist" as user files */
} Fake;

static char *fake_read(void *arg, const char *path, char *err, size_t errlen)
{
	Fake *f = arg;
	for (int i = 0; i < 8 && f->files[i][0]; i++)
		if (strcmp(f->files[i][0], path) == 0)
			return strdup(f->files[i][1]);
	snprintf(err, errlen, "No such file or directory");
	return NULL;
}

static int fake_random(void *arg, unsigned char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (unsigned char)i;
	return 0;
}

static int fake_mounted(void *arg, const char *path)
{
	Fake *f = arg;
	for (int i = 0; i < 4 && f->mounted[i]; i++)
		if (strcmp(f->mounted[i], path) == 0)
			return 1;
	return 0;
}

static Fake fake;
static EpIo io = {fake_read, fake_random, fake_mounted, &fake};

#define CONF "/etc/pgbouncer/pgbouncer.ini"

static int gen_mounted(EpResult *r, const char *mounted, char **env)
{
	EpInput in = {env, CONF, mounted};
	return ep_generate(&in, &io, r);
}

static int gen(EpResult *r, char **env)
{
	return gen_mounted(r, NULL, env);
}

static int has(const char *hay, const char *needle)
{
	return hay && needle && strstr(hay, needle) != NULL;
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; s && *s; s++)
		n += *s == '\n';
	return n;
}

/* The seed's exact environment (docker.md). */
#define SEED                                                                                                 \
	"DATABASES_HOST=host.docker.internal", "DATABASES_PORT=5432", "DATABASES_USER=postgres",             \
	    "DATABASES_PASSWORD=secret", "DATABASES_DBNAME=postgres", "POOL_MODE=transaction",               \
	    "MAX_CLIENT_CONN=1000", "DEFAULT_POOL_SIZE=25", "RESERVE_POOL_SIZE=5",                           \
	    "SERVER_IDLE_TIMEOUT=600", "AUTH_TYPE=md5"

static void test_seed(void)
{
	char *env[] = {SEED, "PATH=/bin", "HOME=/var/lib/tidepool", NULL};
	EpResult r;
	Config *cf;
	char err[256];
	CHECK(gen(&r, env) == 0);
	CHECK_STR(r.errors, "");
	CHECK_STR(r.warnings, "");
	CHECK(
	    has(r.ini,
	        "\n* = host=host.docker.internal port=5432 dbname=postgres user=postgres password=secret\n"));
	CHECK(has(r.ini, "\npool_mode = transaction\n"));
	CHECK(has(r.ini, "\nmax_client_conn = 1000\n"));
	CHECK(has(r.ini, "\ndefault_pool_size = 25\n"));
	CHECK(has(r.ini, "\nreserve_pool_size = 5\n"));
	CHECK(has(r.ini, "\nserver_idle_timeout = 600\n"));
	CHECK(has(r.ini, "\nauth_type = md5\n"));
	CHECK(has(r.ini, "\nlisten_addr = 0.0.0.0\n"));
	CHECK(has(r.ini, "\nauth_file = /etc/pgbouncer/userlist.txt\n"));
	CHECK(has(r.ini, "\nadmin_users = postgres\n"));
	CHECK(strncmp(r.ini, EP_MARKER, strlen(EP_MARKER)) == 0);
	/* md5(password || user) */
	CHECK(has(r.userlist, "\n\"postgres\" \"md553f48b7c4b76a86ce72276c5755f217d\"\n"));
	CHECK(strncmp(r.userlist, EP_MARKER, strlen(EP_MARKER)) == 0);
	/* masked forms carry no secret */
	CHECK(!has(r.ini_masked, "secret"));
	CHECK(has(r.ini_masked, "password=" EP_MASK));
	CHECK(!has(r.userlist_masked, "md5"));
	CHECK_STR(r.auth_file, "/etc/pgbouncer/userlist.txt");
	CHECK_STR(r.listen_addr, "0.0.0.0");
	CHECK(r.listen_port == 6432);
	CHECK(r.n_users == 1 && strcmp(r.users[0].name, "postgres") == 0 &&
	      strcmp(r.users[0].password, "secret") == 0);
	/* the daemon's own loader accepts the result */
	cf = config_load_string(r.ini, CONF, NULL, NULL, err, sizeof(err));
	CHECK(cf != NULL);
	if (cf) {
		CHECK(cf->pool_mode == POOL_MODE_TRANSACTION);
		CHECK(cf->max_client_conn == 1000);
		CHECK(cf->n_databases == 1 && strcmp(cf->databases[0].name, "*") == 0);
		config_free(cf);
	}
	ep_result_free(&r);
}

static void test_prefixed_wins(void)
{
	char *env[] = {SEED, "PGBOUNCER_POOL_MODE=session", "PGBOUNCER_MAX_CLIENT_CONN=1000", NULL};
	EpResult r;
	CHECK(gen(&r, env) == 0);
	CHECK(has(r.ini, "\npool_mode = session\n"));
	CHECK(!has(r.ini, "pool_mode = transaction"));
	CHECK(has(r.warnings, "PGBOUNCER_POOL_MODE overrides POOL_MODE"));
	CHECK(!has(r.warnings, "MAX_CLIENT_CONN")); /* same value: no warning */
	ep_result_free(&r);
}

static void test_every_setting_from_table(void)
{
	/* every setting of the table is read, by its UPPER name, from the table itself */
	for (int i = 0; i < config_n_settings; i++) {
		const Setting *s = &config_settings[i];
		char var[512], line[600];
		char *env[] = {"DATABASES_HOST=h", "DATABASES_USER=u", "DATABASES_PASSWORD=p", var, NULL};
		EpResult r;
		const char *v = s->default_value && *s->default_value ? s->default_value : NULL;
		if (!v || strcmp(s->name, "user") == 0)
			continue;
		snprintf(var, sizeof(var), "PGBOUNCER_");
		for (const char *p = s->name; *p; p++)
			snprintf(var + strlen(var), sizeof(var) - strlen(var), "%c",
			         *p >= 'a' && *p <= 'z' ? *p - 32 : *p);
		snprintf(var + strlen(var), sizeof(var) - strlen(var), "=%s", v);
		snprintf(line, sizeof(line), "\n%s = %s\n", s->name, v);
		if (gen(&r, env) != 0 || !has(r.ini, line))
			fprintf(stderr, "setting %s: %s", s->name, r.errors);
		CHECK(has(r.ini, line));
		ep_result_free(&r);
	}
}

static void test_bad_pool_mode(void)
{
	char *env[] = {SEED, "POOL_MODE=transcation", NULL};
	EpResult r;
	CHECK(gen(&r, env) == -1);
	CHECK(r.n_errors == 1);
	CHECK(count_lines(r.errors) == 1);
	CHECK(has(r.errors, "POOL_MODE"));
	CHECK(has(r.errors, "transcation"));
	CHECK(has(r.errors, "session, transaction or statement"));
	CHECK(r.ini == NULL && r.userlist == NULL);
	CHECK(!has(r.errors, "secret"));
	ep_result_free(&r);
}

static void test_bad_number(void)
{
	char *env[] = {SEED, "PGBOUNCER_DEFAULT_POOL_SIZE=lots", NULL};
	EpResult r;
	CHECK(gen(&r, env) == -1);
	CHECK(has(r.errors, "PGBOUNCER_DEFAULT_POOL_SIZE: "));
	CHECK(has(r.errors, "an integer"));
	ep_result_free(&r);
	{
		char *env2[] = {SEED, "SERVER_IDLE_TIMEOUT=10m", NULL};
		CHECK(gen(&r, env2) == -1);
		CHECK(has(r.errors, "SERVER_IDLE_TIMEOUT: "));
		ep_result_free(&r);
	}
	{
		char *env3[] = {SEED, "LISTEN_PORT=70000", NULL};
		CHECK(gen(&r, env3) == -1);
		CHECK(has(r.errors, "LISTEN_PORT: ") && has(r.errors, "65535"));
		ep_result_free(&r);
	}
	{
		char *env4[] = {SEED, "DATABASES_PORT=54x32", NULL};
		CHECK(gen(&r, env4) == -1);
		CHECK(has(r.errors, "DATABASES_PORT: "));
		ep_result_free(&r);
	}
}

/* A valid value of s other than its default, as an ini would spell it. */
static void other_value(const Setting *s, char *buf, size_t len)
{
	const char *def = s->default_value ? s->default_value : "";
	switch (s->type) {
	case SETTING_BOOL:
		snprintf(buf, len, "%s", strcmp(def, "1") == 0 ? "0" : "1");
		return;
	case SETTING_INT:
	case SETTING_USEC:
		snprintf(buf, len, "%d", atoi(def) + 1);
		return;
	case SETTING_MODE:
		snprintf(buf, len, "0700");
		return;
	default:
		if (s->enum_names) {
			for (int i = 0; s->enum_names[i]; i++)
				if (strcmp(s->enum_names[i], def) != 0) {
					snprintf(buf, len, "%s", s->enum_names[i]);
					return;
				}
		}
		snprintf(buf, len, "%s", strcmp(def, "x") == 0 ? "y" : "x");
	}
}

static void test_unsupported_setting(void)
{
	/* the table says which settings the daemon refuses (or ignores with a warning) when not at
	 * their default: the entrypoint says the same, naming the variable */
	int seen_err = 0, seen_warn = 0;
	for (int i = 0; i < config_n_settings && (!seen_err || !seen_warn); i++) {
		const Setting *s = &config_settings[i];
		char var[160], value[64], *up = NULL;
		EpResult r;
		if (s->support == SUPPORT_YES || (s->support == SUPPORT_NO_ERROR ? seen_err : seen_warn))
			continue;
		other_value(s, value, sizeof(value));
		snprintf(var, sizeof(var), "PGBOUNCER_");
		for (const char *p = s->name; *p; p++)
			snprintf(var + strlen(var), sizeof(var) - strlen(var), "%c",
			         *p >= 'a' && *p <= 'z' ? *p - 32 : *p);
		up = strdup(var);
		snprintf(var + strlen(var), sizeof(var) - strlen(var), "=%s", value);
		{
			char *env[] = {SEED, var, NULL};
			int rc = gen(&r, env);
			if (s->support == SUPPORT_NO_ERROR) {
				CHECK(rc == -1);
				CHECK(has(r.errors, up) && has(r.errors, "not supported"));
				seen_err = 1;
			} else {
				CHECK(rc == 0);
				CHECK(has(r.warnings, up) && has(r.warnings, "not supported"));
				seen_warn = 1;
			}
			ep_result_free(&r);
		}
		free(up);
	}
}

static void test_missing_host(void)
{
	char *env[] = {"DATABASES_PORT=5432", "DATABASES_USER=postgres", "DATABASES_PASSWORD=x", NULL};
	EpResult r;
	CHECK(gen(&r, env) == -1);
	CHECK(r.n_errors == 1);
	CHECK(has(
	    r.errors,
	    "DATABASES_HOST is required when DATABASES_PORT, DATABASES_USER, DATABASES_PASSWORD are set"));
	ep_result_free(&r);
}

static void test_no_database(void)
{
	char *env[] = {"POOL_MODE=transaction", NULL};
	EpResult r;
	CHECK(gen(&r, env) == -1);
	CHECK(has(r.errors, "no database configured"));
	ep_result_free(&r);
	{
		char *env2[] = {NULL};
		CHECK(gen(&r, env2) == -1);
		CHECK(r.n_errors == 1);
		ep_result_free(&r);
	}
}

static void test_user_without_password(void)
{
	char *env[] = {"DATABASES_HOST=db", "DATABASES_USER=app", NULL};
	EpResult r;
	CHECK(gen(&r, env) == -1);
	CHECK(has(r.errors, "user \"app\" has no password") && has(r.errors, "DATABASES_PASSWORD"));
	ep_result_free(&r);
	{ /* admin_users lists each user once, "app" and "app2" both */
		char *env4[] = {"DATABASE_URLS=postgres://app2:x@h/a,postgres://app@h/b", "AUTH_TYPE=trust",
		                NULL};
		CHECK(gen(&r, env4) == 0);
		CHECK(has(r.ini, "\nadmin_users = app2,app\n"));
		ep_result_free(&r);
	}
	{ /* with trust that is fine: the user must only exist in the userlist */
		char *env2[] = {"DATABASES_HOST=db", "DATABASES_USER=app", "AUTH_TYPE=trust", NULL};
		CHECK(gen(&r, env2) == 0);
		CHECK(has(r.userlist, "\n\"app\" \"\"\n"));
		ep_result_free(&r);
	}
	{ /* no forced user at all: nobody could log in */
		char *env3[] = {"DATABASES_HOST=db", NULL};
		CHECK(gen(&r, env3) == -1);
		CHECK(has(r.errors, "no user to log in with"));
		ep_result_free(&r);
	}
}

static void test_databases_parts_all_keys(void)
{
	char *env[] = {"DATABASES_HOST=10.0.0.5",
	               "DATABASES_PORT=6543",
	               "DATABASES_USER=app",
	               "DATABASES_PASSWORD=pw",
	               "DATABASES_DBNAME=appdb",
	               "DATABASES_CLIENT_SIDE_DBNAME=app",
	               "DATABASES_POOL_SIZE=7",
	               "DATABASES_MIN_POOL_SIZE=2",
	               "DATABASES_RESERVE_POOL=3",
	               "DATABASES_CONNECT_QUERY=SELECT 1",
	               "DATABASES_POOL_MODE=statement",
	               "DATABASES_MAX_DB_CONNECTIONS=40",
	               "DATABASES_CLIENT_ENCODING=UTF8",
	               "DATABASES_DATESTYLE=ISO, MDY",
	               "DATABASES_TIMEZONE=Europe/Paris",
	               NULL};
	EpResult r;
	Config *cf;
	char err[256];
	CHECK(gen(&r, env) == 0);
	CHECK(has(
	    r.ini,
	    "\napp = host=10.0.0.5 port=6543 dbname=appdb user=app password=pw pool_size=7 min_pool_size=2 "
	    "reserve_pool_size=3 connect_query='SELECT 1' pool_mode=statement max_db_connections=40 "
	    "client_encoding=UTF8 datestyle='ISO, MDY' timezone=Europe/Paris\n"));
	cf = config_load_string(r.ini, CONF, NULL, NULL, err, sizeof(err));
	CHECK(cf != NULL);
	if (cf) {
		const DatabaseDef *d = config_find_database(cf, "app", 0);
		CHECK(d != NULL);
		if (d) {
			CHECK(d->port == 6543 && d->pool_size == 7 && d->reserve_pool_size == 3);
			CHECK(d->pool_mode == POOL_MODE_STATEMENT);
			CHECK_STR(d->datestyle, "ISO, MDY");
			CHECK_STR(d->connect_query, "SELECT 1");
		}
		config_free(cf);
	}
	ep_result_free(&r);
}

static void test_databases_per_db_errors(void)
{
	char *env[] = {SEED, "DATABASES_POOL_MODE=transcation", NULL};
	EpResult r;
	CHECK(gen(&r, env) == -1);
	CHECK(has(r.errors, "DATABASES_POOL_MODE: ") && has(r.errors, "session, transaction or statement"));
	ep_result_free(&r);
	{ /* per-database auth_user follows the daemon's support for it */
		char *env2[] = {SEED, "DATABASES_AUTH_USER=lookup", NULL};
		char err[256];
		Config *probe = config_load_string("[databases]\nx = host=h auth_user=lookup\n", "t", NULL,
		                                   NULL, err, sizeof(err));
		int rc = gen(&r, env2);
		if (probe) {
			CHECK(rc == 0 && has(r.ini, " auth_user=lookup"));
			config_free(probe);
		} else {
			CHECK(rc == -1);
			CHECK(has(r.errors, "DATABASES_AUTH_USER: ") && has(r.errors, "not supported"));
		}
		ep_result_free(&r);
	}
	{
		char *env3[] = {SEED, "DATABASES_CLIENT_SIDE_DBNAME=pgbouncer", NULL};
		CHECK(gen(&r, env3) == -1);
		CHECK(has(r.errors, "reserved"));
		ep_result_free(&r);
	}
}

static void test_db_form(void)
{
	char *env[] = {"DB_HOST=pg", "DB_PORT=5433", "DB_USER=app", "DB_PASSWORD=pw", "DB_NAME=shop", NULL};
	EpResult r;
	CHECK(gen(&r, env) == 0);
	CHECK(has(r.ini, "\nshop = host=pg port=5433 dbname=shop user=app password=pw\n"));
	CHECK(has(r.ini, "admin_users = app"));
	ep_result_free(&r);
	{ /* without DB_NAME: the * fallback */
		char *env2[] = {"DB_HOST=pg", "DB_USER=app", "DB_PASSWORD=pw", NULL};
		CHECK(gen(&r, env2) == 0);
		CHECK(has(r.ini, "\n* = host=pg user=app password=pw\n"));
		ep_result_free(&r);
	}
	{ /* both parts forms for the same name conflict */
		char *env3[] = {SEED, "DB_HOST=pg", "DB_USER=postgres", "DB_PASSWORD=secret", NULL};
		CHECK(gen(&r, env3) == -1);
		CHECK(has(r.errors, "database \"*\" is defined twice: by DATABASES_* and by DB_*"));
		ep_result_free(&r);
	}
}

static void test_url(void)
{
	char *env[] = {"DATABASE_URL=postgres://us%40er:p%3Ass%2Fw@db.example:6543/"
	               "my%20db?pool_size=7&pool_mode=session",
	               NULL};
	EpResult r;
	Config *cf;
	char err[256];
	CHECK(gen(&r, env) == 0);
	CHECK_STR(r.errors, "");
	CHECK(has(
	    r.ini,
	    "\n\"my db\" = host=db.example port=6543 dbname='my db' user=us@er password=p:ss/w pool_size=7 "
	    "pool_mode=session\n"));
	CHECK(has(r.userlist, "\"us@er\" \"md55b48d0c08ad8432662f2daf5a246024a\""));
	CHECK(!has(r.ini_masked, "p:ss/w"));
	cf = config_load_string(r.ini, CONF, NULL, NULL, err, sizeof(err));
	CHECK(cf && config_find_database(cf, "my db", 0) != NULL);
	if (cf) {
		CHECK_STR(config_find_database(cf, "my db", 0)->password, "p:ss/w");
		config_free(cf);
	}
	ep_result_free(&r);
	{ /* postgresql://, IPv6, no port, alias via client_side_dbname */
		char *env2[] = {"DATABASE_URL=postgresql://app:pw@[::1]/appdb?client_side_dbname=front",
		                NULL};
		CHECK(gen(&r, env2) == 0);
		CHECK(has(r.ini, "\nfront = host=::1 dbname=appdb user=app password=pw\n"));
		ep_result_free(&r);
	}
	{ /* no database in the path: the fallback */
		char *env3[] = {"DATABASE_URL=postgres://app:pw@pg:5432", NULL};
		CHECK(gen(&r, env3) == 0);
		CHECK(has(r.ini, "\n* = host=pg port=5432 user=app password=pw\n"));
		ep_result_free(&r);
	}
}

static void test_url_errors(void)
{
	EpResult r;
	{
		char *env[] = {"DATABASE_URL=mysql://app:topsecret@pg/db", NULL};
		CHECK(gen(&r, env) == -1);
		CHECK(has(r.errors, "DATABASE_URL: ") && has(r.errors, "postgres://"));
		CHECK(!has(r.errors, "topsecret"));
		ep_result_free(&r);
	}
	{
		char *env[] = {"DATABASE_URL=postgres://app:top%zzsecret@pg/db", NULL};
		CHECK(gen(&r, env) == -1);
		CHECK(has(r.errors, "percent-encoding in the password"));
		CHECK(!has(r.errors, "top%zzsecret"));
		ep_result_free(&r);
	}
	{
		char *env[] = {"DATABASE_URL=postgres://app:pw@pg:port/db", NULL};
		CHECK(gen(&r, env) == -1);
		CHECK(has(r.errors, "DATABASE_URL (port): "));
		ep_result_free(&r);
	}
	{
		char *env[] = {"DATABASE_URL=postgres://app:pw@pg/db?sslmode=require", NULL};
		CHECK(gen(&r, env) == -1);
		CHECK(has(r.errors, "DATABASE_URL (parameter sslmode): ") && has(r.errors, "sslmode"));
		ep_result_free(&r);
	}
	{
		char *env[] = {"DATABASE_URL=postgres://app:pw@/db", NULL};
		CHECK(gen(&r, env) == -1);
		CHECK(has(r.errors, "no host"));
		ep_result_free(&r);
	}
}

static void test_urls(void)
{
	char *env[] = {"DATABASE_URLS=postgres://a:pa@h1/db1, postgres://b:pb@h2:5433/db2", NULL};
	EpResult r;
	CHECK(gen(&r, env) == 0);
	CHECK(has(r.ini, "\ndb1 = host=h1 dbname=db1 user=a password=pa\n"));
	CHECK(has(r.ini, "\ndb2 = host=h2 port=5433 dbname=db2 user=b password=pb\n"));
	CHECK(has(r.ini, "admin_users = a,b"));
	CHECK(r.n_users == 2);
	ep_result_free(&r);
	{
		char *env2[] = {"DATABASE_URLS=postgres://a:pa@h1/db1,postgres://a:pa@h2/db1", NULL};
		CHECK(gen(&r, env2) == -1);
		CHECK(has(r.errors, "database \"db1\" is defined twice"));
		ep_result_free(&r);
	}
	{ /* the same user with two passwords */
		char *env3[] = {"DATABASE_URLS=postgres://a:one@h1/db1,postgres://a:two@h2/db2", NULL};
		CHECK(gen(&r, env3) == -1);
		CHECK(has(r.errors, "user \"a\" is given two different passwords"));
		CHECK(!has(r.errors, "one") && !has(r.errors, "two@"));
		ep_result_free(&r);
	}
}

static void test_raw(void)
{
	char *env[] = {"DATABASES=main = host=pg dbname=app user=app password='se;c''ret' ; "
	               "\"odd name\" = host=pg2\nstats=host=pg3 pool_size=2",
	               NULL};
	EpResult r;
	CHECK(gen(&r, env) == 0);
	CHECK_STR(r.errors, "");
	CHECK(has(r.ini, "\nmain = host=pg dbname=app user=app password='se;c''ret'\n"));
	CHECK(has(r.ini, "\n\"odd name\" = host=pg2\n"));
	CHECK(has(r.ini, "\nstats = host=pg3 pool_size=2\n"));
	CHECK(r.n_users == 1 && strcmp(r.users[0].password, "se;c'ret") == 0);
	CHECK(has(r.ini_masked, "main = host=pg dbname=app user=app password=" EP_MASK "\n"));
	CHECK(!has(r.ini_masked, "ret"));
	ep_result_free(&r);
	{
		char *env2[] = {"DATABASES_RAW=x = host=a", "DATABASES=y = host=b", NULL};
		CHECK(gen(&r, env2) == -1);
		CHECK(has(r.errors, "DATABASES and DATABASES_RAW are both set"));
		ep_result_free(&r);
	}
	{
		char *env3[] = {"DATABASES_RAW=x = host=a bogus=1", NULL};
		CHECK(gen(&r, env3) == -1);
		CHECK(has(r.errors, "DATABASES_RAW (entry 1): ") && has(r.errors, "bogus"));
		ep_result_free(&r);
	}
	{
		char *env4[] = {"DATABASES=just-a-name", NULL};
		CHECK(gen(&r, env4) == -1);
		CHECK(has(r.errors, "expected \"name = connection string\""));
		ep_result_free(&r);
	}
}

static void test_file_secrets(void)
{
	EpResult r;
	memset(&fake, 0, sizeof(fake));
	fake.files[0][0] = "/run/secrets/pg";
	fake.files[0][1] = "fromfile\n";
	fake.files[1][0] = "/run/secrets/mode";
	fake.files[1][1] = "transaction";
	{
		char *env[] = {"DATABASES_HOST=db", "DATABASES_USER=postgres",
		               "DATABASES_PASSWORD_FILE=/run/secrets/pg", "POOL_MODE_FILE=/run/secrets/mode",
		               NULL};
		CHECK(gen(&r, env) == 0);
		CHECK(has(r.ini, "password=fromfile\n")); /* the trailing newline is not part of it */
		CHECK(has(r.ini, "pool_mode = transaction"));
		ep_result_free(&r);
	}
	{ /* both forms set */
		char *env[] = {"DATABASES_HOST=db", "DATABASES_USER=postgres", "DATABASES_PASSWORD=x",
		               "DATABASES_PASSWORD_FILE=/run/secrets/pg", NULL};
		CHECK(gen(&r, env) == -1);
		CHECK(has(r.errors, "DATABASES_PASSWORD and DATABASES_PASSWORD_FILE are both set"));
		ep_result_free(&r);
	}
	{ /* an empty NAME (compose's "${X:-}") does not conflict */
		char *env[] = {"DATABASES_HOST=db", "DATABASES_USER=postgres",
		               "DATABASES_PASSWORD=", "DATABASES_PASSWORD_FILE=/run/secrets/pg", NULL};
		CHECK(gen(&r, env) == 0);
		ep_result_free(&r);
	}
	{ /* a missing file */
		char *env[] = {"DATABASES_HOST=db", "DATABASES_USER=postgres",
		               "DATABASES_PASSWORD_FILE=/nope", NULL};
		CHECK(gen(&r, env) == -1);
		CHECK(has(r.errors, "DATABASES_PASSWORD_FILE: cannot read /nope"));
		ep_result_free(&r);
	}
	{ /* DATABASE_URL_FILE, the prefixed setting's _FILE */
		fake.files[2][0] = "/run/secrets/url";
		fake.files[2][1] = "postgres://u:p@h/d\r\n";
		char *env[] = {"DATABASE_URL_FILE=/run/secrets/url",
		               "PGBOUNCER_POOL_MODE_FILE=/run/secrets/mode", NULL};
		CHECK(gen(&r, env) == 0);
		CHECK(has(r.ini, "\nd = host=h dbname=d user=u password=p\n"));
		CHECK(has(r.ini, "pool_mode = transaction"));
		ep_result_free(&r);
	}
	memset(&fake, 0, sizeof(fake));
}

static void test_auth_types(void)
{
	EpResult r;
	Config *probe = config_new_defaults();
	char err[256];
	int scram_ok;
	{
		char *env[] = {"DATABASES_HOST=db", "DATABASES_USER=postgres", "DATABASES_PASSWORD=pencil",
		               "AUTH_TYPE=plain", NULL};
		CHECK(gen(&r, env) == 0);
		CHECK(has(r.userlist, "\n\"postgres\" \"pencil\"\n"));
		CHECK(!has(r.userlist_masked, "pencil"));
		ep_result_free(&r);
	}
	{
		char *env[] = {"DATABASES_HOST=db", "DATABASES_USER=postgres", "DATABASES_PASSWORD=pencil",
		               "AUTH_TYPE=trust", NULL};
		CHECK(gen(&r, env) == 0);
		CHECK(has(r.userlist, "\n\"postgres\" \"\"\n"));
		CHECK(has(r.ini, "password=pencil")); /* the server still needs it */
		ep_result_free(&r);
	}
	{
		char *env[] = {"DATABASES_HOST=db", "DATABASES_USER=postgres", "DATABASES_PASSWORD=pencil",
		               "AUTH_TYPE=bogus", NULL};
		CHECK(gen(&r, env) == -1);
		CHECK(has(r.errors, "AUTH_TYPE: ") && has(r.errors, "md5"));
		ep_result_free(&r);
	}
	/* scram-sha-256 as auth_type follows the daemon's support: a SCRAM secret when it accepts
	 * the setting, else the daemon's refusal naming the variable */
	scram_ok = config_set(probe, "auth_type", "scram-sha-256", err, sizeof(err)) == 0;
	config_free(probe);
	{
		char *env[] = {"DATABASES_HOST=db", "DATABASES_USER=postgres", "DATABASES_PASSWORD=pencil",
		               "AUTH_TYPE=scram-sha-256", NULL};
		int rc = gen(&r, env);
		if (scram_ok) {
			CHECK(rc == 0);
			CHECK(has(r.userlist, "\"postgres\" \"SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$"));
		} else {
			CHECK(rc == -1);
			CHECK(has(r.errors, "AUTH_TYPE: ") && has(r.errors, "scram-sha-256"));
		}
		ep_result_free(&r);
	}
}

static void test_secrets(void)
{
	char md5[36], *s;
	const unsigned char salt[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
	ep_md5_secret("postgres", "secret", md5);
	CHECK_STR(md5, "md553f48b7c4b76a86ce72276c5755f217d");
	s = ep_scram_secret("pencil", salt, sizeof(salt), 4096);
	CHECK_STR(s,
	          "SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$zHCdol2044/ZyWzPLi7oxApCkamKw9Z+E4U/QApd/5Y=:"
	          "dd5peBOitVnLNFu7VmwP+HiDaaw4OUCv396eVCWhYiE=");
	free(s);
}

static void test_quoting(void)
{
	char *env[] = {"DATABASES_HOST=db", "DATABASES_USER=we\"ird", "DATABASES_PASSWORD=a'b\\c d;#e", NULL};
	EpResult r;
	Config *cf;
	char err[256], *q;
	CHECK(gen(&r, env) == 0);
	CHECK(has(r.ini, "user='we\"ird' password='a''b\\\\c d;#e'"));
	CHECK(has(r.userlist, "\n\"we\"\"ird\" \"md5"));
	cf = config_load_string(r.ini, CONF, NULL, NULL, err, sizeof(err));
	CHECK(cf != NULL);
	if (cf) { /* round trip through the daemon's parser */
		CHECK_STR(cf->databases[0].password, "a'b\\c d;#e");
		CHECK_STR(cf->databases[0].user, "we\"ird");
		config_free(cf);
	}
	ep_result_free(&r);
	q = ep_quote_connstr_value("plain.host-1");
	CHECK_STR(q, "plain.host-1");
	free(q);
	q = ep_quote_connstr_value("");
	CHECK_STR(q, "''");
	free(q);
	q = ep_quote_connstr_value("it's");
	CHECK_STR(q, "'it''s'");
	free(q);
}

static void test_line_values(void)
{
	EpResult r;
	{
		char *env[] = {SEED, "SERVER_RESET_QUERY=DISCARD ALL\nDROP", NULL};
		CHECK(gen(&r, env) == -1);
		CHECK(has(r.errors, "SERVER_RESET_QUERY: the value must be on one line"));
		ep_result_free(&r);
	}
	{
		char *env[] = {SEED, "SERVER_RESET_QUERY=DISCARD ALL ; x", NULL};
		CHECK(gen(&r, env) == -1);
		CHECK(has(r.errors, "SERVER_RESET_QUERY: ") && has(r.errors, "comment"));
		ep_result_free(&r);
	}
	{ /* surrounding blanks are not part of a value; an empty value is a value */
		char *env[] = {SEED, "MAX_CLIENT_CONN= 500 ", "SERVER_CHECK_QUERY=", NULL};
		CHECK(gen(&r, env) == 0);
		CHECK(has(r.ini, "\nmax_client_conn = 500\n"));
		CHECK(has(r.ini, "\nserver_check_query = \n"));
		ep_result_free(&r);
	}
}

static void test_admin_and_user(void)
{
	EpResult r;
	{
		char *env[] = {SEED, "ADMIN_USERS=ops", NULL};
		CHECK(gen(&r, env) == 0);
		CHECK(has(r.ini, "\nadmin_users = ops\n"));
		ep_result_free(&r);
	}
	{ /* USER is the shell's: only PGBOUNCER_USER sets the setting */
		char *env[] = {SEED, "USER=root", NULL};
		CHECK(gen(&r, env) == 0);
		CHECK(!has(r.ini, "\nuser ="));
		ep_result_free(&r);
	}
	{
		char *env[] = {SEED, "PGBOUNCER_USER=tidepool", NULL};
		CHECK(gen(&r, env) == 0);
		CHECK(has(r.ini, "\nuser = tidepool\n"));
		ep_result_free(&r);
	}
	{ /* listen address and auth file can be changed */
		char *env[] = {SEED, "LISTEN_ADDR=127.0.0.1", "LISTEN_PORT=7000", "AUTH_FILE=/tmp/u.txt",
		               NULL};
		CHECK(gen(&r, env) == 0);
		CHECK(has(r.ini, "\nlisten_addr = 127.0.0.1\n") && has(r.ini, "\nlisten_port = 7000\n"));
		CHECK_STR(r.auth_file, "/tmp/u.txt");
		CHECK(r.listen_port == 7000);
		ep_result_free(&r);
	}
}

static void test_secret_setting_masked(void)
{
	char *env[] = {SEED, "AUTH_LDAP_OPTIONS=ldapbindpasswd=topsecret", NULL};
	EpResult r;
	int rc = gen(&r, env);
	CHECK(!has(r.warnings, "topsecret") && !has(r.errors, "topsecret"));
	if (rc == 0) {
		CHECK(has(r.ini, "topsecret"));
		CHECK(!has(r.ini_masked, "topsecret"));
	}
	ep_result_free(&r);
}

static void test_unknown_vars(void)
{
	char *env[] = {SEED, "DATABASES_PASS=oops", "DB_ENGINE=django.db.backends.postgresql", NULL};
	EpResult r;
	CHECK(gen(&r, env) == 0);
	CHECK(has(r.warnings, "unknown variable DATABASES_PASS ignored"));
	CHECK(has(r.warnings, "unknown variable DB_ENGINE ignored"));
	CHECK(!has(r.warnings, "oops"));
	ep_result_free(&r);
}

static void test_mounted(void)
{
	const char *ini = "[databases]\n"
	                  "app = host=pg user=app password=hunter2\n"
	                  "[pgbouncer]\n"
	                  "listen_addr = *\n"
	                  "listen_port = 6000\n"
	                  "auth_file = /etc/pgbouncer/users.txt\n";
	EpResult r;
	memset(&fake, 0, sizeof(fake));
	{ /* ini mounted: used as-is; env settings ignored with a warning; userlist from env */
		char *env[] = {SEED, NULL};
		CHECK(gen_mounted(&r, ini, env) == 0);
		CHECK(r.ini == NULL);
		CHECK(has(r.warnings, "is mounted and used as-is: ignoring POOL_MODE, ") ||
		      has(r.warnings, "is mounted and used as-is: ignoring AUTH_TYPE"));
		CHECK_STR(r.auth_file, "/etc/pgbouncer/users.txt");
		CHECK(r.listen_port == 6000);
		CHECK(has(r.userlist, "\"postgres\" \"md5"));
		ep_result_free(&r);
	}
	{ /* and the auth file mounted too: nothing is generated, no password needed */
		char *env[] = {"DATABASES_HOST=db", "DATABASES_USER=app", NULL};
		fake.mounted[0] = "/etc/pgbouncer/users.txt";
		CHECK(gen_mounted(&r, ini, env) == 0);
		CHECK(r.ini == NULL && r.userlist == NULL);
		ep_result_free(&r);
	}
	{ /* a broken mounted file is reported before the daemon starts */
		char *env[] = {NULL};
		CHECK(gen_mounted(&r, "[pgbouncer]\nbogus_key = 1\n", env) == -1);
		CHECK(has(r.errors, "mounted " CONF ": ") && has(r.errors, "bogus_key"));
		ep_result_free(&r);
	}
	{ /* only the userlist mounted, ini generated */
		char *env[] = {SEED, NULL};
		fake.mounted[0] = "/etc/pgbouncer/userlist.txt";
		CHECK(gen(&r, env) == 0);
		CHECK(r.ini != NULL && r.userlist == NULL);
		ep_result_free(&r);
	}
	memset(&fake, 0, sizeof(fake));
}

static void test_masking(void)
{
	char *m =
	    ep_mask_ini("[pgbouncer]\npassword = keep\n[databases]\n"
	                "a = host=x password=one user=u\n\"b=c\" = password='t w''o' host=y\n; password=z\n");
	CHECK_STR(m, "[pgbouncer]\npassword = keep\n[databases]\n"
	             "a = host=x password=" EP_MASK " user=u\n\"b=c\" = password=" EP_MASK
	             " host=y\n; password=z\n");
	free(m);
	m = ep_mask_userlist("; comment\n\"a\" \"md5abc\"\n\"b\"\"c\" \"SCRAM-SHA-256$x\" trailing\n");
	CHECK_STR(m, "; comment\n\"a\" \"" EP_MASK "\"\n\"b\"\"c\" \"" EP_MASK "\"\n");
	free(m);
	CHECK(ep_is_secret_var("DATABASES_PASSWORD"));
	CHECK(ep_is_secret_var("DB_PASSWORD"));
	CHECK(ep_is_secret_var("DATABASE_URL"));
	CHECK(ep_is_secret_var("DATABASES"));
	CHECK(!ep_is_secret_var("DATABASES_HOST"));
	CHECK(!ep_is_secret_var("POOL_MODE"));
}

static void test_percent_decode(void)
{
	char *o = NULL;
	CHECK(ep_percent_decode("%41b%2f%2F+", 11, &o) == 0);
	CHECK_STR(o, "Ab//+");
	free(o);
	CHECK(ep_percent_decode("%4", 2, &o) == -1);
	CHECK(ep_percent_decode("%g1", 3, &o) == -1);
	CHECK(ep_percent_decode("a%00b", 5, &o) == -1);
	CHECK(ep_percent_decode("", 0, &o) == 0);
	CHECK_STR(o, "");
	free(o);
}

static void test_help(void)
{
	char *h = ep_help_text(0), *md = ep_help_text(1);
	for (int i = 0; i < config_n_settings; i++) {
		char up[128];
		size_t n = strlen(config_settings[i].name);
		for (size_t j = 0; j <= n; j++) {
			char ch = config_settings[i].name[j];
			up[j] = (char)(ch >= 'a' && ch <= 'z' ? ch - 32 : ch);
		}
		CHECK(has(h, up));
		CHECK(has(md, up));
	}
	CHECK(has(h, "DATABASES_CLIENT_SIDE_DBNAME") && has(h, "DATABASE_URLS") && has(h, "DATABASES_RAW"));
	CHECK(has(h, "_FILE"));
	free(h);
	free(md);
}

int main(void)
{
	test_seed();
	test_prefixed_wins();
	test_every_setting_from_table();
	test_bad_pool_mode();
	test_bad_number();
	test_unsupported_setting();
	test_missing_host();
	test_no_database();
	test_user_without_password();
	test_databases_parts_all_keys();
	test_databases_per_db_errors();
	test_db_form();
	test_url();
	test_url_errors();
	test_urls();
	test_raw();
	test_file_secrets();
	test_auth_types();
	test_secrets();
	test_quoting();
	test_line_values();
	test_admin_and_user();
	test_secret_setting_masked();
	test_unknown_vars();
	test_mounted();
	test_masking();
	test_percent_decode();
	test_help();
	UNIT_DONE();
}
