/* test_userlist.c: auth_file line parsing, file loading with line numbers, lookup, kinds. */
#include "userlist.h"
#include "unit.h"

#include <stdlib.h>
#include <unistd.h>

static char name[USERLIST_MAX_NAME + 1];
static char secret[USERLIST_MAX_SECRET + 1];
static char err[256];
static char warnings[1024]; /* what userlist_load reported, one line each */

static void collect_warning(void *arg, const char *msg)
{
	(void)arg;
	strncat(warnings, msg, sizeof(warnings) - strlen(warnings) - 2);
	strcat(warnings, "\n");
}

static int parse(const char *line)
{
	name[0] = secret[0] = err[0] = '\0';
	return userlist_parse_line(line, name, sizeof(name), secret, sizeof(secret), err, sizeof(err));
}

static void test_parse_ok(void)
{
	CHECK(parse("\"alice\" \"wonderland\"") == 1);
	CHECK_STR(name, "alice");
	CHECK_STR(secret, "wonderland");

	CHECK(parse("  \"bob\"\t\"pw with spaces\"\n") == 1);
	CHECK_STR(name, "bob");
	CHECK_STR(secret, "pw with spaces");

	CHECK(parse("\"bob\"\"\"\"x\" \"a\"\"b\"\"\"") == 1); /* "bob""""x" "a""b""" */
	CHECK_STR(name, "bob\"\"x");
	CHECK_STR(secret, "a\"b\"");

	CHECK(parse("\"carol\" \"\"") == 1); /* empty password */
	CHECK_STR(name, "carol");
	CHECK_STR(secret, "");

	CHECK(parse("\"dave\" \"md5abc\" trailing words \"and quotes\"") == 1);
	CHECK_STR(secret, "md5abc");
	CHECK(parse("\"dave\" \"pw\"\"\"garbage") == 1);
	CHECK_STR(secret, "pw\"");
	CHECK(parse("\"dave\"\"pw\"") == -1); /* "dave""pw" is one field: dave"pw */
	CHECK(parse("\"eve\" \"pw\"\r\n") == 1);
	CHECK_STR(secret, "pw");
	CHECK(parse("\"x;y#z\" \"; not a comment\"") == 1);
	CHECK_STR(name, "x;y#z");
	CHECK_STR(secret, "; not a comment");
	CHECK(parse("\"\xc3\xa9mile\" \"p\xc3\xa4ss\"") == 1); /* UTF-8 passes through */
	CHECK_STR(name, "\xc3\xa9mile");
}

static void test_parse_skip(void)
{
	CHECK(parse("") == 0);
	CHECK(parse("\n") == 0);
	CHECK(parse("   \t \r\n") == 0);
	CHECK(parse(";comment \"a\" \"b\"") == 0);
	CHECK(parse("#comment") == 0);
	CHECK(parse("   # indented comment") == 0);
	CHECK_STR(err, "");
}

static void test_parse_errors(void)
{
	char longname[USERLIST_MAX_NAME + 8], longpw[USERLIST_MAX_SECRET + 8];
	char line[USERLIST_MAX_SECRET + 64];

	CHECK(parse("\"alice") == -1);
	CHECK_STR(err, "missing closing quote");
	CHECK(parse("\"alice\" \"secret") == -1);
	CHECK_STR(err, "missing closing quote");
	CHECK_STR(secret, ""); /* the half-read password was wiped */
	CHECK(parse("\"alice\" \"sec\nret\"") == -1);
	CHECK_STR(err, "missing closing quote");
	CHECK(parse("alice \"secret\"") == -1);
	CHECK_STR(err, "expected \"user\" \"password\"");
	CHECK(parse("\"alice\"") == -1);
	CHECK_STR(err, "expected \"user\" \"password\"");
	CHECK(parse("\"alice\" secret") == -1);
	CHECK_STR(err, "expected \"user\" \"password\"");
	CHECK(parse("\"\" \"secret\"") == -1);
	CHECK_STR(err, "empty user name");

	/* 63 bytes is fine, 64 is not */
	memset(longname, 'n', USERLIST_MAX_NAME);
	longname[USERLIST_MAX_NAME] = '\0';
	snprintf(line, sizeof(line), "\"%s\" \"pw\"", longname);
	CHECK(parse(line) == 1);
	CHECK(strlen(name) == USERLIST_MAX_NAME);
	strcat(longname, "n");
	snprintf(line, sizeof(line), "\"%s\" \"pw\"", longname);
	CHECK(parse(line) == -1);
	CHECK_STR(err, "user name too long (max 63 bytes)");

	memset(longpw, 'p', USERLIST_MAX_SECRET);
	longpw[USERLIST_MAX_SECRET] = '\0';
	snprintf(line, sizeof(line), "\"u\" \"%s\"", longpw);
	CHECK(parse(line) == 1);
	CHECK(strlen(secret) == USERLIST_MAX_SECRET);
	strcat(longpw, "p");
	snprintf(line, sizeof(line), "\"u\" \"%s\"", longpw);
	CHECK(parse(line) == -1);
	CHECK_STR(err, "password too long (max 65535 bytes)");

	/* smaller caller buffers lower the limits rather than overflow */
	{
		char n8[8], s8[8];
		CHECK(userlist_parse_line("\"abcdefgh\" \"x\"", n8, sizeof(n8), s8, sizeof(s8), err,
		                          sizeof(err)) == -1);
		CHECK_STR(err, "user name too long (max 7 bytes)");
		CHECK(userlist_parse_line("\"abcdefg\" \"1234567\"", n8, sizeof(n8), s8, sizeof(s8), err,
		                          sizeof(err)) == 1);
		CHECK_STR(s8, "1234567");
	}
}

/* Write text to a fresh temp file; its path goes into path. */
static void write_temp(char *path, size_t pathlen, const char *text)
{
	int fd;
	FILE *f;

	snprintf(path, pathlen, "/tmp/tidepool-userlist-XXXXXX");
	fd = mkstemp(path);
	if (fd < 0) {
		perror("mkstemp");
		exit(2);
	}
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
}

static void test_load(void)
{
	char path[64];
	const UserEntry *e;
	UserList *ul;

	write_temp(path, sizeof(path),
	           "; pgbouncer userlist\n"
	           "\"alice\" \"wonderland\"\n"
	           "\n"
	           "# md5 of secret+app\n"
	           "\"app\" \"md56a422f785c9e20873908ce25d1736ae2\" extra\n"
	           "\"bob\" \"old\"\n"
	           "\"q\"\"uote\" \"\"\n"
	           "\"bob\" \"new\"\r\n"
	           "\"last\" \"no newline at end\"");
	err[0] = '\0';
	ul = userlist_load(path, collect_warning, NULL, err, sizeof(err));
	CHECK(ul != NULL);
	CHECK_STR(err, "");
	if (ul) {
		CHECK(ul->n == 5); /* bob appears twice */
		e = userlist_find(ul, "alice");
		CHECK(e && strcmp(e->secret, "wonderland") == 0);
		e = userlist_find(ul, "app");
		CHECK(e && strcmp(e->secret, "md56a422f785c9e20873908ce25d1736ae2") == 0);
		e = userlist_find(ul, "bob");
		CHECK(e && strcmp(e->secret, "new") == 0); /* the later line wins */
		e = userlist_find(ul, "q\"uote");
		CHECK(e && strcmp(e->secret, "") == 0);
		e = userlist_find(ul, "last");
		CHECK(e && strcmp(e->secret, "no newline at end") == 0);
		CHECK(userlist_find(ul, "Alice") == NULL);
		CHECK(userlist_find(ul, "alic") == NULL);
		CHECK(userlist_find(ul, "") == NULL);
		CHECK(userlist_find(ul, NULL) == NULL);
		for (int i = 1; i < ul->n; i++)
			CHECK(strcmp(ul->entries[i - 1].name, ul->entries[i].name) < 0);
	}
	userlist_free(ul);
	unlink(path);

	/* an empty file is an empty list, not an error */
	write_temp(path, sizeof(path), "");
	ul = userlist_load(path, collect_warning, NULL, err, sizeof(err));
	CHECK(ul != NULL && ul->n == 0);
	CHECK(userlist_find(ul, "x") == NULL);
	userlist_free(ul);
	unlink(path);

	/* a bad line is reported with the file and its line number, and skipped */
	write_temp(path, sizeof(path), "\"a\" \"1\"\n;c\n\n\"b\" \"2\"\n\"c\" \"3\n\"d\" \"4\"\n");
	warnings[0] = '\0';
	ul = userlist_load(path, collect_warning, NULL, err, sizeof(err));
	CHECK(ul != NULL && ul->n == 3);
	CHECK(ul && userlist_find(ul, "c") == NULL && userlist_find(ul, "d") != NULL);
	{
		char want[256];
		snprintf(want, sizeof(want), "%s:5: missing closing quote, line skipped\n", path);
		CHECK_STR(warnings, want);
	}
	userlist_free(ul);
	unlink(path);

	write_temp(path, sizeof(path), "\"a\" \"1\"\nb \"2\"\n");
	warnings[0] = '\0';
	ul = userlist_load(path, collect_warning, NULL, err, sizeof(err));
	CHECK(ul != NULL && ul->n == 1);
	{
		char want[256];
		snprintf(want, sizeof(want), "%s:2: expected \"user\" \"password\", line skipped\n", path);
		CHECK_STR(warnings, want);
	}
	userlist_free(ul);
	unlink(path);

	/* without a callback a bad line is skipped silently */
	write_temp(path, sizeof(path), "bad\n\"a\" \"1\"\n");
	ul = userlist_load(path, NULL, NULL, err, sizeof(err));
	CHECK(ul != NULL && ul->n == 1);
	userlist_free(ul);
	unlink(path);

	/* a missing file is an error that names it */
	ul = userlist_load("/nonexistent/tidepool/userlist.txt", NULL, NULL, err, sizeof(err));
	CHECK(ul == NULL);
	CHECK(strncmp(err, "/nonexistent/tidepool/userlist.txt: ", 36) == 0);
	CHECK(strstr(err, "No such file") != NULL);

	/* a line far longer than any buffer is read whole (and rejected as too long) */
	{
		size_t big = 100000;
		char *text = malloc(big + 32);
		memcpy(text, "\"u\" \"ok\"\n\"v\" \"", 14);
		memset(text + 14, 'x', big);
		memcpy(text + 14 + big, "\"\n", 3);
		write_temp(path, sizeof(path), text);
		free(text);
		warnings[0] = '\0';
		ul = userlist_load(path, collect_warning, NULL, err, sizeof(err));
		CHECK(ul != NULL && ul->n == 1);
		CHECK(strstr(warnings, ":2: password too long") != NULL);
		userlist_free(ul);
		unlink(path);
	}

	/* long trailing junk after the fields does not matter */
	{
		size_t big = 100000;
		char *text = malloc(big + 32);
		memcpy(text, "\"u\" \"ok\" ", 9);
		memset(text + 9, 'j', big);
		memcpy(text + 9 + big, "\n", 2);
		write_temp(path, sizeof(path), text);
		free(text);
		ul = userlist_load(path, collect_warning, NULL, err, sizeof(err));
		CHECK(ul != NULL && ul->n == 1);
		userlist_free(ul);
		unlink(path);
	}
}

static void test_find_many(void)
{
	enum { N = 10000 };
	char path[64], buf[64];
	UserList *ul;
	FILE *f;
	int found = 0, right = 0;

	snprintf(path, sizeof(path), "/tmp/tidepool-userlist-XXXXXX");
	{
		int fd = mkstemp(path);
		CHECK(fd >= 0);
		f = fdopen(fd, "w");
	}
	/* write in a scrambled order so the loader has to sort */
	for (int k = 0; k < N; k++) {
		int i = (int)(((long)k * 7919) % N);
		fprintf(f, "\"user%05d\" \"pw%d\"\n", i, i);
	}
	fclose(f);

	ul = userlist_load(path, collect_warning, NULL, err, sizeof(err));
	CHECK(ul != NULL);
	if (ul) {
		CHECK(ul->n == N);
		for (int i = 0; i < N; i++) {
			const UserEntry *e;
			char pw[32];

			snprintf(buf, sizeof(buf), "user%05d", i);
			snprintf(pw, sizeof(pw), "pw%d", i);
			e = userlist_find(ul, buf);
			found += e != NULL;
			right += e && strcmp(e->name, buf) == 0 && strcmp(e->secret, pw) == 0;
		}
		CHECK(found == N);
		CHECK(right == N);
		CHECK(userlist_find(ul, "user10000") == NULL);
		CHECK(userlist_find(ul, "user0000") == NULL);
		CHECK(userlist_find(ul, "aaa") == NULL);
		CHECK(userlist_find(ul, "zzz") == NULL);
	}
	userlist_free(ul);
	unlink(path);
}

static void test_secret_kind(void)
{
	CHECK(userlist_secret_kind("") == USERLIST_SECRET_PLAIN);
	CHECK(userlist_secret_kind("wonderland") == USERLIST_SECRET_PLAIN);
	CHECK(userlist_secret_kind("md56a422f785c9e20873908ce25d1736ae2") == USERLIST_SECRET_MD5);
	CHECK(userlist_secret_kind("md56A422F785C9E20873908CE25D1736AE2") == USERLIST_SECRET_MD5);
	CHECK(userlist_secret_kind("md56a422f785c9e20873908ce25d1736ae") == USERLIST_SECRET_PLAIN);
	CHECK(userlist_secret_kind("md56a422f785c9e20873908ce25d1736ae22") == USERLIST_SECRET_PLAIN);
	CHECK(userlist_secret_kind("md56a422f785c9e20873908ce25d1736aez") == USERLIST_SECRET_PLAIN);
	CHECK(userlist_secret_kind("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
	                           "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	                           "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=") == USERLIST_SECRET_SCRAM);
	CHECK(userlist_secret_kind("SCRAM-SHA-256$") == USERLIST_SECRET_PLAIN);
	CHECK(userlist_secret_kind("SCRAM-SHA-256$4096:salt$key") == USERLIST_SECRET_PLAIN);
	CHECK(userlist_secret_kind("SCRAM-SHA-256$x:salt$a:b") == USERLIST_SECRET_PLAIN);
	CHECK(userlist_secret_kind("SCRAM-SHA-256$4096:salt$a:b c") == USERLIST_SECRET_PLAIN);
	CHECK(userlist_secret_kind("SCRAM-SHA-1$4096:salt$a:b") == USERLIST_SECRET_PLAIN);
}

int main(void)
{
	test_parse_ok();
	test_parse_skip();
	test_parse_errors();
	test_load();
	test_find_many();
	test_secret_kind();
	UNIT_DONE();
}
