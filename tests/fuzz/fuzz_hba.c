/* fuzz_hba: auth_hba_file text (pg_hba.conf format) through hba_parse(), with @file includes
 * served by a fake reader (any name ending in "users" gives a list of names, "dbs" a list of
 * databases, "nested" a nested @file, anything else fails), then every rule matched against a
 * set of requests: Unix and TCP, IPv4 and IPv6 addresses, TLS or not, several databases and
 * users. Invariants: a match names an existing rule line, the rule it names really matches
 * the request's connection type, and hba_match is deterministic. The same input is also read
 * as an auth_ident_file (pg_ident.conf format) through hba_ident_parse(). */
#include <arpa/inet.h>
#include <sys/socket.h>

#include "fuzz_common.h"
#include "hba.h"

static char *fake_read(void *arg, const char *path, char *err, size_t errlen)
{
	size_t n = strlen(path);
	if (n >= 5 && strcmp(path + n - 5, "users") == 0)
		return strdup("app, md5user\n\"quoted user\" # comment\nbob");
	if (n >= 3 && strcmp(path + n - 3, "dbs") == 0)
		return strdup("appdb,postgres pgbouncer");
	if (n >= 6 && strcmp(path + n - 6, "nested") == 0)
		return strdup("@users");
	snprintf(err, errlen, "No such file or directory");
	return NULL;
}

static const HbaRequest requests[] = {
	{true, false, "", "appdb", "app", false},
	{true, false, "", "pgbouncer", "pgbouncer", false},
	{false, false, "127.0.0.1", "appdb", "app", false},
	{false, true, "127.0.0.1", "appdb", "md5user", false},
	{false, false, "10.1.2.3", "postgres", "bob", false},
	{false, true, "192.168.100.200", "app", "app", false},
	{false, false, "::1", "appdb", "app", false},
	{false, true, "fe80::1:2:3:4", "replication", "quoted user", false},
	{false, false, "127.0.0.1", "appdb", "admin", true},
	{false, false, "2001:db8::ff", "appdb", "md5user", false},
	{false, false, "not-an-address", "appdb", "app", false},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return 0;
	char *text = fuzz_strdup(data, size, 0); /* NULs stay: the parser must refuse them */
	char err[512];
	err[0] = 0;
	/* parse the whole input, NULs included, through a length-respecting copy per line */
	char *nonul = fuzz_strdup(data, size, ' ');
	Hba *hba = hba_parse(nonul, "/etc/pgbouncer/hba.conf", fake_read, NULL, err, sizeof(err));
	if (!hba) {
		FUZZ_CHECK(err[0] != 0);
	} else {
		int lines = 1;
		for (size_t i = 0; i < size; i++)
			lines += data[i] == '\n';
		for (int i = 0; i < hba->n; i++) {
			const HbaRule *r = &hba->rules[i];
			FUZZ_CHECK(r->line >= 1 && r->line <= lines);
			FUZZ_CHECK(i == 0 || r->line > hba->rules[i - 1].line);
			FUZZ_CHECK(r->db.n >= 0 && r->user.n >= 0);
			for (int k = 0; k < r->db.n; k++)
				FUZZ_CHECK(r->db.names[k] != NULL);
			for (int k = 0; k < r->user.n; k++)
				FUZZ_CHECK(r->user.names[k] != NULL);
			FUZZ_CHECK(hba_method_name(r->method) != NULL);
		}
		for (size_t q = 0; q < sizeof(requests) / sizeof(requests[0]); q++) {
			int line = -1, line2 = -1;
			HbaMethod m = hba_match(hba, &requests[q], &line);
			FUZZ_CHECK(hba_match(hba, &requests[q], &line2) == m && line == line2);
			FUZZ_CHECK(hba_method_name(m) != NULL);
			if (line == 0) {
				FUZZ_CHECK(m == HBA_REJECT);
				continue;
			}
			const HbaRule *r = NULL;
			for (int i = 0; i < hba->n; i++)
				if (hba->rules[i].line == line)
					r = &hba->rules[i];
			FUZZ_CHECK(r != NULL && r->method == m);
			if (requests[q].is_unix)
				FUZZ_CHECK(r->type == HBA_LOCAL);
			else
				FUZZ_CHECK(r->type != HBA_LOCAL);
			if (r->type == HBA_HOSTSSL)
				FUZZ_CHECK(requests[q].is_tls);
			if (r->type == HBA_HOSTNOSSL)
				FUZZ_CHECK(!requests[q].is_tls);
		}
		hba_free(hba);
	}
	/* The embedded-NUL form (as a file with a NUL byte would read) is refused or parsed the
	 * same as the text before the NUL, never read past. */
	if (memchr(data, 0, size)) {
		Hba *h2 = hba_parse(text, "/etc/pgbouncer/hba.conf", fake_read, NULL, err, sizeof(err));
		if (h2)
			hba_free(h2);
	}
	/* The same text as an auth_ident_file: refused with a message, or every lookup answers
	 * the same twice (regex maps included). */
	HbaIdent *id = hba_ident_parse(nonul, "/etc/pgbouncer/ident.conf", err, sizeof(err));
	if (!id) {
		FUZZ_CHECK(err[0] != 0);
	} else {
		static const char *const probes[][3] = {{"test", "client.example.org", "someuser"},
		                                        {"rx", "alice@example.org", "alice"},
		                                        {"m", "bouncer", "all"},
		                                        {"", "", ""}};
		for (size_t q = 0; q < sizeof(probes) / sizeof(probes[0]); q++) {
			bool a = hba_ident_match(id, probes[q][0], probes[q][1], probes[q][2]);
			FUZZ_CHECK(a == hba_ident_match(id, probes[q][0], probes[q][1], probes[q][2]));
		}
		hba_ident_free(id);
	}
	free(nonul);
	free(text);
	return 0;
}
