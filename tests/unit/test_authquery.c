/* test_authquery.c: parsing auth_query's DataRow (two text columns: name, password). */
#include "authquery.h"
#include "unit.h"

#include <stdlib.h>

static size_t row(uint8_t *out, const char *name, const char *pw)
{
	size_t o = 0;
	out[o++] = 0;
	out[o++] = 2;
	const char *cols[2] = {name, pw};
	for (int i = 0; i < 2; i++) {
		uint32_t l = cols[i] ? (uint32_t)strlen(cols[i]) : 0xffffffffu;
		out[o++] = (uint8_t)(l >> 24);
		out[o++] = (uint8_t)(l >> 16);
		out[o++] = (uint8_t)(l >> 8);
		out[o++] = (uint8_t)l;
		if (cols[i]) {
			memcpy(out + o, cols[i], l);
			o += l;
		}
	}
	return o;
}

int main(void)
{
	uint8_t b[512];
	char name[64];
	char *secret = NULL;
	size_t n = row(b, "alice", "SCRAM-SHA-256$4096:abc$def:ghi");
	CHECK(authquery_parse_row(b, n, name, sizeof(name), &secret) == 0);
	CHECK_STR(name, "alice");
	CHECK_STR(secret, "SCRAM-SHA-256$4096:abc$def:ghi");
	free(secret);
	/* NULL password: found, but nothing can match */
	n = row(b, "bob", NULL);
	CHECK(authquery_parse_row(b, n, name, sizeof(name), &secret) == 0);
	CHECK_STR(name, "bob");
	CHECK(secret == NULL);
	/* NULL name, short packets, wrong column count, trailing bytes, NUL inside, long name */
	n = row(b, NULL, "x");
	CHECK(authquery_parse_row(b, n, name, sizeof(name), &secret) < 0 && !secret);
	n = row(b, "carol", "pw");
	for (size_t cut = 0; cut < n; cut++)
		CHECK(authquery_parse_row(b, cut, name, sizeof(name), &secret) < 0 && !secret);
	b[1] = 3;
	CHECK(authquery_parse_row(b, n, name, sizeof(name), &secret) < 0);
	b[1] = 2;
	b[n] = 'x';
	CHECK(authquery_parse_row(b, n + 1, name, sizeof(name), &secret) < 0 && !secret);
	n = row(b, "ca\0rol", "pw");
	CHECK(authquery_parse_row(b, n, name, sizeof(name), &secret) == 0); /* strlen stops at NUL */
	free(secret);
	memcpy(b + 6, "c\0", 2); /* "carol" with a NUL inside its 5 bytes... */
	n = row(b, "carol", "pw");
	b[7] = 0;
	CHECK(authquery_parse_row(b, n, name, sizeof(name), &secret) < 0);
	char longname[100];
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	n = row(b, longname, "pw");
	CHECK(authquery_parse_row(b, n, name, sizeof(name), &secret) < 0 && !secret);
	/* a huge length never reads past the end */
	n = row(b, "dave", "pw");
	b[2] = 0x7f;
	CHECK(authquery_parse_row(b, n, name, sizeof(name), &secret) < 0);
	UNIT_DONE();
}
