/* fuzz_userlist: auth_file lines. Every line of the input goes through userlist_parse_line()
 * with exactly-sized output buffers; the whole input is also loaded as a file with
 * userlist_load() (through a memfd, no disk), every entry looked up again, and each secret
 * classified (userlist_secret_kind, pg_md5_is_hash, scram_parse_secret) and, for cheap SCRAM
 * secrets, checked against a password the way client authentication would. */
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "scram.h"
#include "userlist.h"

static void classify(const char *user, const char *secret)
{
	int kind = userlist_secret_kind(secret);
	FUZZ_CHECK(kind == USERLIST_SECRET_PLAIN || kind == USERLIST_SECRET_MD5 ||
		   kind == USERLIST_SECRET_SCRAM);
	if (kind == USERLIST_SECRET_MD5)
		FUZZ_CHECK(pg_md5_is_hash(secret));
	ScramSecret ss;
	int prc = scram_parse_secret(secret, &ss);
	if (prc == 0) {
		FUZZ_CHECK(ss.iterations >= 1 && ss.iterations <= SCRAM_MAX_ITERATIONS);
		FUZZ_CHECK(ss.salt_len <= SCRAM_MAX_SALT);
		if (ss.iterations <= 64)
			(void)scram_secret_check_password(&ss, "password");
	}
	uint8_t salt[4] = {1, 2, 3, 4};
	char resp[36];
	if (prc != 0)
		pg_md5_response(secret, user, salt, resp);
	(void)pg_md5_check(secret, user, salt, "md5deadbeefdeadbeefdeadbeefdeadbeef");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return 0;
	/* Line by line with exact buffers (USERLIST_MAX_* + 1, as userlist_load passes). */
	const uint8_t *p = data, *end = data + size;
	while (p < end) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p + 1) : (size_t)(end - p);
		char *line = fuzz_strdup(p, n, ' ');
		char *name = malloc(USERLIST_MAX_NAME + 1);
		char *secret = malloc(USERLIST_MAX_SECRET + 1);
		char err[128];
		int rc = userlist_parse_line(line, name, USERLIST_MAX_NAME + 1, secret, USERLIST_MAX_SECRET + 1,
					     err, sizeof(err));
		FUZZ_CHECK(rc >= -1 && rc <= 1);
		if (rc == 1) {
			FUZZ_CHECK(strnlen(name, USERLIST_MAX_NAME + 1) <= USERLIST_MAX_NAME);
			FUZZ_CHECK(strnlen(secret, USERLIST_MAX_SECRET + 1) <= USERLIST_MAX_SECRET);
			FUZZ_CHECK(name[0] != 0);
			classify(name, secret);
		} else if (rc == -1) {
			FUZZ_CHECK(memchr(err, 0, sizeof(err)) && err[0]);
		}
		/* Smaller caller buffers are allowed too and must be respected. */
		char small_name[8], small_secret[8];
		rc = userlist_parse_line(line, small_name, sizeof(small_name), small_secret, sizeof(small_secret),
					 NULL, 0);
		if (rc == 1)
			FUZZ_CHECK(strlen(small_name) < 8 && strlen(small_secret) < 8);
		free(line);
		free(name);
		free(secret);
		p += n;
	}

	/* The whole input as a file. */
	int fd = memfd_create("userlist", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (size && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	char path[64], err[256];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	err[0] = 0;
	UserList *ul = userlist_load(path, NULL, NULL, err, sizeof(err));
	if (ul) {
		for (int i = 0; i < ul->n; i++) {
			const UserEntry *e = &ul->entries[i];
			FUZZ_CHECK(e->name && e->secret);
			FUZZ_CHECK(userlist_find(ul, e->name) == e);
			if (i > 0)
				FUZZ_CHECK(strcmp(ul->entries[i - 1].name, e->name) < 0);
			classify(e->name, e->secret);
		}
		FUZZ_CHECK(userlist_find(ul, "") == NULL);
		userlist_free(ul);
	} else {
		FUZZ_CHECK(err[0] != 0);
	}
	close(fd);
	return 0;
}
