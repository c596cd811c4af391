/* test_hba.c: the HBA parser and rule matching (auth_type = hba). */
#include "hba.h"
#include "unit.h"

#include <stdlib.h>

static char err[512];

static char *fake_read(void *arg, const char *path, char *e, size_t elen)
{
	if (strcmp(path, "/etc/tp/dbs.txt") == 0)
		return strdup("# databases\nsales, \"Mixed Case\"\n  hr\n");
	if (strcmp(path, "/abs/users") == 0)
		return strdup("alice bob\n");
	if (strcmp(path, "/etc/tp/nested") == 0)
		return strdup("@other\n");
	snprintf(e, elen, "No such file or directory");
	return NULL;
}

static Hba *parse(const char *text)
{
	err[0] = 0;
	return hba_parse(text, "/etc/tp/hba.conf", fake_read, NULL, err, sizeof(err));
}

static HbaMethod m(const Hba *h, bool is_unix, bool tls, const char *addr, const char *db, const char *user)
{
	HbaRequest r = {is_unix, tls, addr, db, user, false};
	return hba_match(h, &r, NULL);
}

static void test_matrix(void)
{
	Hba *h = parse("# comment line\n"
	               "\n"
	               "local   all        postgres                   peer\n"
	               "local   all        all                        md5   # trailing comment\n"
	               "hostssl appdb      certuser  0.0.0.0/0         cert\n"
	               "hostnossl all      plainuser 127.0.0.1/32      password\n"
	               "host    appdb,\"Other DB\" app,  bob 127.0.0.0/8 scram-sha-256\n"
	               "host    sameuser   all       10.0.0.0 255.0.0.0 trust\n"
	               "host    all        evil      ::1/128           reject\n"
	               "host    all        all       ::1/128           md5\n"
	               "host    @dbs.txt   all       192.168.1.0/24    md5\n"
	               "host    all        all       all               reject\n");
	CHECK(h != NULL);
	if (!h) {
		fprintf(stderr, "%s\n", err);
		return;
	}
	CHECK(h->n == 10);
	/* local lines only for Unix sockets, in order */
	CHECK(m(h, true, false, "", "appdb", "postgres") == HBA_PEER);
	CHECK(m(h, true, false, "", "appdb", "app") == HBA_MD5);
	/* hostssl only with TLS */
	CHECK(m(h, false, true, "10.9.9.9", "appdb", "certuser") == HBA_CERT);
	CHECK(m(h, false, false, "10.9.9.9", "appdb", "certuser") == HBA_REJECT);
	/* hostnossl only without */
	CHECK(m(h, false, false, "127.0.0.1", "x", "plainuser") == HBA_PASSWORD);
	CHECK(m(h, false, true, "127.0.0.1", "x", "plainuser") == HBA_REJECT);
	/* lists, quoted names, the address range */
	CHECK(m(h, false, false, "127.1.2.3", "appdb", "app") == HBA_SCRAM);
	CHECK(m(h, false, true, "127.1.2.3", "Other DB", "bob") == HBA_SCRAM);
	CHECK(m(h, false, false, "127.1.2.3", "other db", "bob") == HBA_REJECT);
	CHECK(m(h, false, false, "127.1.2.3", "appdb", "carol") == HBA_REJECT);
	CHECK(m(h, false, false, "128.0.0.1", "appdb", "app") == HBA_REJECT);
	/* sameuser and address + netmask */
	CHECK(m(h, false, false, "10.200.0.1", "carol", "carol") == HBA_TRUST);
	CHECK(m(h, false, false, "10.200.0.1", "appdb", "carol") == HBA_REJECT);
	CHECK(m(h, false, false, "11.0.0.1", "carol", "carol") == HBA_REJECT);
	/* IPv6; first match wins */
	CHECK(m(h, false, false, "::1", "appdb", "evil") == HBA_REJECT);
	CHECK(m(h, false, false, "::1", "appdb", "alice") == HBA_MD5);
	CHECK(m(h, false, false, "::2", "appdb", "alice") == HBA_REJECT);
	/* an IPv4 client through an IPv6 socket */
	CHECK(m(h, false, false, "::ffff:127.0.0.1", "appdb", "app") == HBA_SCRAM);
	CHECK(m(h, false, false, "192.168.1.7", "hr", "zed") == HBA_MD5); /* @dbs.txt */
	CHECK(m(h, false, false, "192.168.1.7", "appdb", "zed") == HBA_REJECT);
	int line = -1;
	HbaRequest r = {false, false, "127.0.0.1", "appdb", "app", false};
	CHECK(hba_match(h, &r, &line) == HBA_SCRAM && line == 7);
	CHECK(hba_match(NULL, &r, &line) == HBA_REJECT && line == 0);
	/* garbage addresses never match an address rule */
	CHECK(m(h, false, false, "not-an-ip", "appdb", "app") == HBA_REJECT);
	hba_free(h);
}

static void test_includes(void)
{
	Hba *h = hba_parse("host @dbs.txt @/abs/users 0.0.0.0/0 md5\n"
	                   "host all all 0.0.0.0/0 reject\n",
	                   "/etc/tp/hba.conf", fake_read, NULL, err, sizeof(err));
	CHECK(h != NULL);
	if (h) {
		CHECK(m(h, false, false, "1.2.3.4", "sales", "alice") == HBA_MD5);
		CHECK(m(h, false, false, "1.2.3.4", "Mixed Case", "bob") == HBA_MD5);
		CHECK(m(h, false, false, "1.2.3.4", "hr", "bob") == HBA_MD5);
		CHECK(m(h, false, false, "1.2.3.4", "hr", "carol") == HBA_REJECT);
		CHECK(m(h, false, false, "1.2.3.4", "# databases", "bob") == HBA_REJECT);
	}
	hba_free(h);
	h = hba_parse("host @missing all all md5\n", "/etc/tp/hba.conf", fake_read, NULL, err, sizeof(err));
	CHECK(h == NULL);
	CHECK_STR(err, "/etc/tp/hba.conf:1: cannot read included file /etc/tp/missing: No such file or "
	               "directory");
	h = hba_parse("host @nested all all md5\n", "/etc/tp/hba.conf", fake_read, NULL, err, sizeof(err));
	CHECK(h == NULL && strstr(err, "nested @file") != NULL);
	h = hba_parse("host @x all all md5\n", "hba.conf", NULL, NULL, err, sizeof(err));
	CHECK(h == NULL && strstr(err, "cannot read included file x") != NULL);
}

static void expect_error(const char *text, const char *want)
{
	Hba *h = parse(text);
	CHECK(h == NULL);
	if (h) {
		fprintf(stderr, "parsed unexpectedly: %s", text);
		hba_free(h);
		return;
	}
	if (!strstr(err, want)) {
		fprintf(stderr, "error for [%s]: [%s], wanted [%s]\n", text, err, want);
		CHECK(0);
	}
}

static void test_errors(void)
{
	expect_error("hostx all all all md5\n", "/etc/tp/hba.conf:1: invalid connection type \"hostx\"");
	expect_error("\n\nhost all all all\n", "/etc/tp/hba.conf:3: end of line before the authentication");
	expect_error("local all all\n", "end of line before the authentication method");
	expect_error("host all all all ident\n", "unsupported authentication method \"ident\"");
	expect_error("host all all all ldap\n", "unsupported authentication method");
	expect_error("host all all all peer\n", "peer authentication is only supported on local sockets");
	expect_error("host all all db.example.com md5\n", "host names are not supported");
	expect_error("host all all samenet md5\n", "\"samenet\" is not supported");
	expect_error("host all all 10.0.0.0/33 md5\n", "invalid CIDR mask");
	expect_error("host all all 10.0.0.0/ md5\n", "invalid CIDR mask");
	expect_error("host all all ::1/129 md5\n", "invalid CIDR mask");
	expect_error("host all all 10.0.0.0 md5\n", "needs a CIDR mask or a netmask");
	expect_error("host all all 10.0.0.0 ffff:: md5\n", "needs a CIDR mask or a netmask");
	expect_error("host \"all all all md5\n", "unterminated quoted string");
	expect_error("host all +admins all md5\n", "group membership (+admins) is not supported");
	expect_error("host samerole all all md5\n", "\"samerole\" is not supported");
	expect_error("host all a,,b all md5\n", "empty name in a user list");
	expect_error("host all all all md5 clientcert=1\n", "invalid authentication option");
	expect_error("host all all all md5 map=\n", "invalid authentication option");
	expect_error("host all all all md5,trust\n", "invalid or unsupported authentication method");
	expect_error("local all all \"trust\"\n", "invalid or unsupported authentication method");
	char longline[HBA_MAX_LINE + 100];
	memset(longline, 'a', sizeof(longline));
	memcpy(longline, "host ", 5);
	longline[sizeof(longline) - 1] = 0;
	expect_error(longline, "line too long");
	/* a good line before a bad one does not make a partial file */
	expect_error("local all all trust\nhost all all all bogus\n", "hba.conf:2:");
	/* and a map= option is accepted */
	Hba *h = parse("local all all peer map=omicron\nhostssl all all all cert map=x\n");
	CHECK(h != NULL && h->n == 2);
	hba_free(h);
	/* an empty file: no rules, everything rejected */
	h = parse("");
	CHECK(h != NULL && h->n == 0);
	CHECK(m(h, true, false, "", "a", "b") == HBA_REJECT);
	hba_free(h);
	CHECK_STR(hba_method_name(HBA_SCRAM), "scram-sha-256");
	CHECK_STR(hba_method_name(HBA_REJECT), "reject");
}

/* Random mutations of valid lines: no crash, no leak (run under ASan), a result or an error. */
static void test_fuzz(void)
{
	static const char *const seeds[] = {
	    "host appdb,\"Other DB\" app,bob 127.0.0.0/8 scram-sha-256\n",
	    "local all all peer map=x\n",
	    "hostssl @dbs.txt all ::1/128 cert # c\n",
	    "host sameuser all 10.0.0.0 255.0.0.0 trust\n",
	};
	static const char alphabet[] = "ahlostu\"#,@/:. \t\n0123456789abcdef+-=";
	unsigned seed = 12345;
	int parsed = 0, failed = 0;
	for (int i = 0; i < 20000; i++) {
		char buf[512];
		const char *s = seeds[i % 4];
		size_t len = strlen(s);
		memcpy(buf, s, len + 1);
		int edits = 1 + (int)(seed % 4);
		for (int e = 0; e < edits; e++) {
			seed = seed * 1103515245u + 12345u;
			size_t pos = (seed >> 8) % (len + 1);
			char c = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
			if ((seed >> 4) % 3 == 0 && len + 1 < sizeof(buf) - 1) {
				memmove(buf + pos + 1, buf + pos, len - pos + 1);
				buf[pos] = c;
				len++;
			} else if ((seed >> 4) % 3 == 1 && pos < len) {
				memmove(buf + pos, buf + pos + 1, len - pos);
				len--;
			} else if (pos < len) {
				buf[pos] = c;
			}
		}
		Hba *h = hba_parse(buf, "/etc/tp/hba.conf", fake_read, NULL, err, sizeof(err));
		if (h) {
			parsed++;
			m(h, false, true, "127.0.0.1", "appdb", "app");
			m(h, true, false, "", "appdb", "app");
			m(h, false, false, "::1", "x", "x");
			hba_free(h);
		} else {
			failed++;
			CHECK(strncmp(err, "/etc/tp/hba.conf:", 17) == 0);
		}
	}
	CHECK(parsed > 100 && failed > 100);
}

/* Whitespace on both sides of a list's comma keeps the list in one field. */
static void test_spaced_lists(void)
{
	Hba *h = parse("host tmp1,all user1,user2 , user3\t\t16.0.0.0/8 md5\n"
	               "host d1 ,d2\tu1\t,\tu2 17.0.0.0/8 trust\n");
	CHECK(h != NULL);
	if (!h) {
		fprintf(stderr, "%s\n", err);
		return;
	}
	CHECK(h->n == 2);
	CHECK(m(h, false, false, "16.1.2.3", "x", "user3") == HBA_MD5);
	CHECK(m(h, false, false, "16.1.2.3", "x", "user2") == HBA_MD5);
	CHECK(m(h, false, false, "16.1.2.3", "x", "user4") == HBA_REJECT);
	CHECK(m(h, false, false, "17.1.2.3", "d2", "u2") == HBA_TRUST);
	CHECK(m(h, false, false, "17.1.2.3", "d3", "u1") == HBA_REJECT);
	hba_free(h);
}

/* auth_ident_file: literal names, quoted names, all, /regex with \\1; map= kept on the rule. */
static void test_ident(void)
{
	HbaIdent *id = hba_ident_parse("# MAPNAME SYSTEM-USERNAME USERNAME\n"
	                               "test\tclient.example.org\tsomeuser\n"
	                               "test\tclient.example.org\tanotheruser  # two users\n"
	                               "test2 \"bouncer\" all\n"
	                               "test2 client.example.org \"all\"\n"
	                               "rx /^(.*)@example\\.org$ \\1\n",
	                               "/etc/tp/ident.conf", err, sizeof(err));
	CHECK(id != NULL);
	if (!id) {
		fprintf(stderr, "%s\n", err);
		return;
	}
	CHECK(hba_ident_match(id, "test", "client.example.org", "someuser"));
	CHECK(hba_ident_match(id, "test", "client.example.org", "anotheruser"));
	CHECK(!hba_ident_match(id, "test", "client.example.org", "bouncer"));
	CHECK(!hba_ident_match(id, "test", "other.example.org", "someuser"));
	CHECK(!hba_ident_match(id, "nomap", "client.example.org", "someuser"));
	CHECK(hba_ident_match(id, "test2", "bouncer", "anyone"));
	/* a quoted "all" is a user named all */
	CHECK(hba_ident_match(id, "test2", "client.example.org", "all"));
	CHECK(!hba_ident_match(id, "test2", "client.example.org", "someuser"));
	CHECK(hba_ident_match(id, "rx", "alice@example.org", "alice"));
	CHECK(!hba_ident_match(id, "rx", "alice@example.org", "bob"));
	CHECK(!hba_ident_match(id, "rx", "alice@example.com", "alice"));
	CHECK(!hba_ident_match(NULL, "test", "client.example.org", "someuser"));
	hba_ident_free(id);
	CHECK(hba_ident_parse("test onlytwo\n", "/etc/tp/ident.conf", err, sizeof(err)) == NULL);
	CHECK(strcmp(err, "/etc/tp/ident.conf:1: an ident line is MAPNAME SYSTEM-USERNAME USERNAME") == 0);
	CHECK(hba_ident_parse("\nm /(( u\n", "/etc/tp/ident.conf", err, sizeof(err)) == NULL);
	CHECK(strncmp(err, "/etc/tp/ident.conf:2: invalid regular expression", 48) == 0);
	CHECK(hba_ident_parse("m a,b u\n", "/etc/tp/ident.conf", err, sizeof(err)) == NULL);
	/* a repeated repetition would make regcomp() exponential: refused, naming it */
	CHECK(hba_ident_parse("m /^e+++++++++++++++++++++++++++++++++++++$ u\n", "/etc/tp/ident.conf", err,
	                      sizeof(err)) == NULL);
	CHECK(strstr(err, ":1: invalid regular expression") && strstr(err, "a repetition of a repetition"));
	CHECK(hba_ident_parse("m /a*{2} u\n", "/etc/tp/ident.conf", err, sizeof(err)) == NULL);
	CHECK(hba_ident_parse("m /a{2}+ u\n", "/etc/tp/ident.conf", err, sizeof(err)) == NULL);
	{
		/* escaped and bracketed quantifier characters are literals; single repetitions are fine */
		HbaIdent *ok = hba_ident_parse("m /^a\\+*[+*?]+(b?)*c{2}$ u\nn /^[]+]+x$ u\n",
		                               "/etc/tp/ident.conf", err, sizeof(err));
		CHECK(ok != NULL);
		CHECK(ok && hba_ident_match(ok, "m", "a++*bbcc", "u"));
		CHECK(ok && hba_ident_match(ok, "n", "]+]x", "u"));
		hba_ident_free(ok);
	}
	/* map= is kept on cert and peer rules, refused on others */
	Hba *h = parse("hostssl all all 0.0.0.0/0 cert map=test\nlocal all all peer map=m2\n");
	CHECK(h && h->n == 2 && strcmp(h->rules[0].map, "test") == 0 && strcmp(h->rules[1].map, "m2") == 0);
	hba_free(h);
	CHECK(parse("host all all 0.0.0.0/0 md5 map=test\n") == NULL);
	HbaRequest r = {false, true, "10.1.1.1", "db", "u", false};
	h = parse("hostssl all all 0.0.0.0/0 cert map=test\n");
	CHECK(h && hba_match_rule(h, &r) == &h->rules[0]);
	r.is_tls = false;
	CHECK(h && hba_match_rule(h, &r) == NULL);
	hba_free(h);
}

/* A physical replication connection matches the "replication" keyword only (not "all", not
 * its database name); for other connections the keyword matches nothing, not even a database
 * named "replication". */
static void test_replication_keyword(void)
{
	Hba *h = parse("host replication admin 127.0.0.1/32 trust\n"
	               "host db2,replication admin2 127.0.0.1/32 cert\n"
	               "host all all 127.0.0.1/32 md5\n");
	CHECK(h != NULL);
	HbaRequest phys = {false, false, "127.0.0.1", "appdb", "admin", true};
	CHECK(hba_match(h, &phys, NULL) == HBA_TRUST);
	phys.user = "admin2";
	CHECK(hba_match(h, &phys, NULL) == HBA_CERT);
	phys.user = "other"; /* "all" does not match a physical replication connection */
	CHECK(hba_match(h, &phys, NULL) == HBA_REJECT);
	HbaRequest plain = {false, false, "127.0.0.1", "replication", "admin", false};
	CHECK(hba_match(h, &plain, NULL) == HBA_MD5);
	plain.database = "db2";
	plain.user = "admin2";
	CHECK(hba_match(h, &plain, NULL) == HBA_CERT);
	hba_free(h);
}

int main(void)
{
	test_ident();
	test_spaced_lists();
	test_matrix();
	test_replication_keyword();
	test_includes();
	test_errors();
	test_fuzz();
	UNIT_DONE();
}
