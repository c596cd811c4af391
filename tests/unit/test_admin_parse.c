/* test_admin_parse.c: the admin console's command parser (docs/compatibility.md grammar), including
 * bad inputs and random bytes. */
#include "admin.h"
#include "unit.h"

#include <stdlib.h>

static AdminCommand cmd;

static AdminParseKind parse(const char *q)
{
	return admin_parse_command(q, &cmd);
}

static void check_cmd(const char *q, const char *name, const char *arg)
{
	CHECK(parse(q) == ADMIN_PARSE_CMD);
	CHECK_STR(cmd.cmd, name);
	CHECK_STR(cmd.arg, arg);
}

static void check_set(const char *q, const char *key, const char *value)
{
	CHECK(parse(q) == ADMIN_PARSE_SET);
	CHECK_STR(cmd.arg, key);
	CHECK_STR(cmd.value, value);
}

static void test_commands(void)
{
	check_cmd("SHOW POOLS", "SHOW", "POOLS");
	check_cmd("show pools;", "show", "pools");
	check_cmd("  show\tpools ; ", "show", "pools");
	check_cmd("\r\nSHOW\n\nSTATS_AVERAGES\n;\n", "SHOW", "STATS_AVERAGES");
	check_cmd("RELOAD", "RELOAD", "");
	check_cmd("reload;", "reload", "");
	check_cmd("PAUSE appdb", "PAUSE", "appdb");
	check_cmd("PAUSE AppDb", "PAUSE", "AppDb"); /* the argument keeps its case */
	check_cmd("KILL_CLIENT 42", "KILL_CLIENT", "42");
	check_cmd("SHOW ;", "SHOW", "");
	check_cmd("SELECT version", "SELECT", "version");
	check_cmd("SHOW pool_mode;", "SHOW", "pool_mode");
	check_cmd("SHOW 1", "SHOW", "1");
	/* quoted identifiers, with "" for a quote */
	check_cmd("\"SHOW\" \"POOLS\"", "SHOW", "POOLS");
	check_cmd("PAUSE \"my db\"", "PAUSE", "my db");
	check_cmd("PAUSE \"a\"\"b\"", "PAUSE", "a\"b");
	check_cmd("PAUSE \"\"", "PAUSE", "");
	check_cmd("RESUME \"x;y\";", "RESUME", "x;y");
	/* "SET x" is an ordinary (unknown) command word */
	check_cmd("SET x", "SET", "x");
}

static void test_set(void)
{
	check_set("SET default_pool_size = 30", "default_pool_size", "30");
	check_set("set default_pool_size=30;", "default_pool_size", "30");
	check_set("SET default_pool_size TO 25", "default_pool_size", "25");
	check_set("SET default_pool_size to '25'", "default_pool_size", "25");
	check_set("SET \"default_pool_size\" = 26", "default_pool_size", "26");
	check_set("SET server_reset_query = 'DISCARD  ALL'", "server_reset_query", "DISCARD  ALL");
	check_set("SET server_reset_query = 'it''s'", "server_reset_query", "it's");
	check_set("SET server_reset_query = ''", "server_reset_query", "");
	check_set("SET x = \"quoted word\"", "x", "quoted word");
	check_set("SET query_timeout = '1.5' ; ", "query_timeout", "1.5");
	check_set("SET x toy", "x", "y");     /* "to" directly followed by the value */
	check_set("SET keyto 5", "key", "5"); /* the regex backtracks into the key */
	check_set("SET xto = 5", "xto", "5"); /* but takes the longest key when it can */
	check_set("\n SET\tk\t=\tv\n;\n", "k", "v");
}

static void test_invalid(void)
{
	static const char *const bad[] = {
	    "",
	    ";",
	    ";;",
	    "   ",
	    "SHOW POOLS;;",
	    "SHOW POOLS extra",
	    "SHOW DATABASES x y",
	    "SELECT 1 + 1",
	    "BEGIN; SHOW POOLS",
	    "SHOW POOLS; SHOW STATS",
	    "SHOW 'pools'",
	    "SHOW \"pools",
	    "SHOW pool-mode",
	    "SET server_reset_query = DISCARD ALL",
	    "SET x = 1.5",
	    "SET x =",
	    "SET = 5",
	    "SET x 5",
	    "SETx = 5",
	    "SET x = 'unterminated",
	    "\xc3\xa9",
	    "SHOW \xff",
	    "-- comment",
	    "SHOW POOLS -- comment",
	    "SHOW\x01POOLS",
	    "SET x = 'a' 'b'",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		AdminParseKind k = parse(bad[i]);
		if (k != ADMIN_PARSE_INVALID)
			fprintf(stderr, "expected invalid: \"%s\" (got %d)\n", bad[i], (int)k);
		CHECK(k == ADMIN_PARSE_INVALID);
		CHECK_STR(cmd.cmd, "");
	}
	CHECK(admin_parse_command(NULL, &cmd) == ADMIN_PARSE_INVALID);
}

static void test_bad_args(void)
{
	char q[600];
	/* PgBouncer's limits: command 15, argument or key 63, value 255 bytes (raw, with quotes) */
	CHECK(parse("ABCDEFGHIJKLMNO") == ADMIN_PARSE_CMD);
	CHECK(parse("ABCDEFGHIJKLMNOP") == ADMIN_PARSE_BAD_ARGS);
	snprintf(q, sizeof(q), "PAUSE %s", "a123456789b123456789c123456789d123456789e123456789f123456789abc");
	CHECK(parse(q) == ADMIN_PARSE_CMD);
	snprintf(q, sizeof(q), "PAUSE %s",
	         "a123456789b123456789c123456789d123456789e123456789f123456789abcd");
	CHECK(parse(q) == ADMIN_PARSE_BAD_ARGS);
	/* quotes count: 62 + 2 bytes do not fit, 61 + 2 do */
	CHECK(parse("PAUSE \"a123456789b123456789c123456789d123456789e123456789f123456789ab\"") ==
	      ADMIN_PARSE_BAD_ARGS);
	CHECK(parse("PAUSE \"a123456789b123456789c123456789d123456789e123456789f123456789a\"") ==
	      ADMIN_PARSE_CMD);
	CHECK(parse("SET \"\" = 5") == ADMIN_PARSE_BAD_ARGS);
	char val[300];
	memset(val, 'v', 256);
	val[256] = 0;
	snprintf(q, sizeof(q), "SET x = %s", val);
	CHECK(parse(q) == ADMIN_PARSE_BAD_ARGS);
	val[255] = 0;
	snprintf(q, sizeof(q), "SET x = %s", val);
	CHECK(parse(q) == ADMIN_PARSE_SET);
	CHECK(strlen(cmd.value) == 255);
	/* an empty quoted command word parses; the dispatcher finds no such command */
	CHECK(parse("\"\" x") == ADMIN_PARSE_CMD);
	CHECK_STR(cmd.cmd, "");
}

/* Random and mutated inputs: never crash, outputs always NUL-terminated and in bounds. */
static void test_random(void)
{
	static const char *const seeds[] = {"SHOW POOLS;", "SET a = 'b''c'", "PAUSE \"x\"\"y\"",
	                                    "SET k TO v"};
	const char alphabet[] = " \t\r\n;'\"=_aAsSeEtTtoO09\x80\xff";
	char buf[80];
	unsigned seed = 12345;
	int ok = 1;
	for (int iter = 0; iter < 200000; iter++) {
		seed = seed * 1103515245u + 12345u;
		size_t n = (seed >> 16) % (sizeof(buf) - 1);
		if (iter % 2) {
			for (size_t i = 0; i < n; i++) {
				seed = seed * 1103515245u + 12345u;
				buf[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
			}
			buf[n] = 0;
		} else {
			snprintf(buf, sizeof(buf), "%s", seeds[(seed >> 8) % 4]);
			size_t len = strlen(buf);
			seed = seed * 1103515245u + 12345u;
			buf[(seed >> 16) % (len + 1)] = (char)(seed >> 24);
			buf[len] = 0;
		}
		AdminParseKind k = parse(buf);
		if (k < ADMIN_PARSE_INVALID || k > ADMIN_PARSE_SET ||
		    strnlen(cmd.cmd, sizeof(cmd.cmd)) >= sizeof(cmd.cmd) ||
		    strnlen(cmd.arg, sizeof(cmd.arg)) >= sizeof(cmd.arg) ||
		    strnlen(cmd.value, sizeof(cmd.value)) >= sizeof(cmd.value))
			ok = 0;
		if (k == ADMIN_PARSE_SET && !cmd.arg[0])
			ok = 0;
	}
	CHECK(ok);
	/* a long run of one byte, and a huge query */
	size_t big = 1 << 20;
	char *q = malloc(big + 1);
	memset(q, 'a', big);
	q[big] = 0;
	CHECK(parse(q) == ADMIN_PARSE_BAD_ARGS);
	memset(q, '"', big); /* an even run of quotes is one long quoted word */
	CHECK(parse(q) == ADMIN_PARSE_BAD_ARGS);
	q[big - 1] = 0; /* odd: unterminated */
	CHECK(parse(q) == ADMIN_PARSE_INVALID);
	memset(q, ' ', big);
	CHECK(parse(q) == ADMIN_PARSE_INVALID);
	free(q);
}

int main(void)
{
	test_commands();
	test_set();
	test_invalid();
	test_bad_args();
	test_random();
	UNIT_DONE();
}
