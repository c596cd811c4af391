/* userlist.c: parse the auth_file (userlist.txt) into a sorted, searchable list of users. */
#include "userlist.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

__attribute__((format(printf, 3, 4))) static void userlist_set_err(char *err, size_t errlen, const char *fmt,
                                                                   ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int userlist_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Read a quoted field starting at *pp (on the opening quote) into out, at most max bytes.
 * A doubled "" stands for one ". Leaves *pp after the closing quote.
 * 0, -1 for a missing closing quote, -2 if longer than max. */
static int userlist_read_field(const char **pp, char *out, size_t max)
{
	const char *p = *pp + 1;
	size_t o = 0;

	for (;;) {
		if (*p == '\0' || *p == '\n')
			return -1;
		if (*p == '"') {
			if (p[1] != '"')
				break;
			p++; /* doubled quote: keep one */
		}
		if (o == max)
			return -2;
		out[o++] = *p++;
	}
	out[o] = '\0';
	*pp = p + 1;
	return 0;
}

int userlist_parse_line(const char *line, char *name, size_t namelen, char *secret, size_t secretlen,
                        char *err, size_t errlen)
{
	const char *p = line;
	size_t name_max, secret_max;
	int rc;

	if (namelen == 0 || secretlen == 0) {
		userlist_set_err(err, errlen, "internal error: no room for the fields");
		return -1;
	}
	name_max = namelen - 1 < USERLIST_MAX_NAME ? namelen - 1 : USERLIST_MAX_NAME;
	secret_max = secretlen - 1 < USERLIST_MAX_SECRET ? secretlen - 1 : USERLIST_MAX_SECRET;

	while (userlist_is_space(*p))
		p++;
	if (*p == '\0' || *p == ';' || *p == '#')
		return 0;
	if (*p != '"')
		goto expected;

	rc = userlist_read_field(&p, name, name_max);
	if (rc == -1)
		goto unclosed;
	if (rc == -2) {
		userlist_set_err(err, errlen, "user name too long (max %zu bytes)", name_max);
		goto fail;
	}
	if (name[0] == '\0') {
		userlist_set_err(err, errlen, "empty user name");
		goto fail;
	}

	while (userlist_is_space(*p))
		p++;
	if (*p != '"')
		goto expected;
	rc = userlist_read_field(&p, secret, secret_max);
	if (rc == -1)
		goto unclosed;
	if (rc == -2) {
		userlist_set_err(err, errlen, "password too long (max %zu bytes)", secret_max);
		goto fail;
	}
	/* anything after the password is ignored, as PgBouncer does */
	return 1;

expected:
	userlist_set_err(err, errlen, "expected \"user\" \"password\"");
	goto fail;
unclosed:
	userlist_set_err(err, errlen, "missing closing quote");
fail:
	/* a half-copied password must not linger in the caller's buffer */
	OPENSSL_cleanse(secret, secretlen);
	name[0] = '\0';
	return -1;
}

/* A loaded entry with its line order, so duplicates can keep the last occurrence. */
typedef struct UserListLoadEntry {
	char *name;
	char *secret;
	size_t seq;
} UserListLoadEntry;

static int userlist_cmp_load(const void *a, const void *b)
{
	const UserListLoadEntry *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c != 0)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void userlist_free_secret(char *secret)
{
	if (secret) {
		OPENSSL_cleanse(secret, strlen(secret));
		free(secret);
	}
}

static void userlist_free_load(UserListLoadEntry *tmp, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(tmp[i].name);
		userlist_free_secret(tmp[i].secret);
	}
	free(tmp);
}

/* Sort by name and keep the last line for each name. Takes ownership of tmp. */
static UserList *userlist_build(UserListLoadEntry *tmp, size_t n)
{
	UserList *ul = calloc(1, sizeof(*ul));
	size_t out = 0;

	if (!ul || (n > 0 && !(ul->entries = calloc(n, sizeof(UserEntry))))) {
		free(ul);
		userlist_free_load(tmp, n);
		return NULL;
	}
	if (n > 0)
		qsort(tmp, n, sizeof(*tmp), userlist_cmp_load);
	for (size_t i = 0; i < n; i++) {
		if (i + 1 < n && strcmp(tmp[i].name, tmp[i + 1].name) == 0) {
			free(tmp[i].name);
			userlist_free_secret(tmp[i].secret);
			continue;
		}
		ul->entries[out].name = tmp[i].name;
		ul->entries[out].secret = tmp[i].secret;
		out++;
	}
	free(tmp);
	ul->n = (int)out;
	return ul;
}

UserList *userlist_load(const char *path, UserListWarnFn warn, void *warn_arg, char *err, size_t errlen)
{
	char name[USERLIST_MAX_NAME + 1];
	char *secret; /* USERLIST_MAX_SECRET + 1 bytes: too big for a thread's stack */
	char msg[128];
	UserListLoadEntry *tmp = NULL;
	size_t n = 0, cap = 0, linecap = 0, lineno = 0;
	char *line = NULL;
	ssize_t len;
	FILE *f;

	f = fopen(path, "r");
	if (!f) {
		userlist_set_err(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (!(secret = malloc(USERLIST_MAX_SECRET + 1))) {
		fclose(f);
		userlist_set_err(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	while ((len = getline(&line, &linecap, f)) >= 0) {
		int rc;

		lineno++;
		if (strlen(line) != (size_t)len) {
			snprintf(msg, sizeof(msg), "line contains a NUL byte");
			rc = -1;
		} else {
			rc = userlist_parse_line(line, name, sizeof(name), secret, USERLIST_MAX_SECRET + 1,
			                         msg, sizeof(msg));
		}
		OPENSSL_cleanse(line, (size_t)len);
		if (rc < 0) {
			if (warn) {
				char where[PATH_MAX + 160];
				snprintf(where, sizeof(where), "%s:%zu: %s, line skipped", path, lineno, msg);
				warn(warn_arg, where);
			}
			continue;
		}
		if (rc == 0)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			UserListLoadEntry *t = realloc(tmp, ncap * sizeof(*tmp));
			if (!t)
				goto nomem;
			tmp = t;
			cap = ncap;
		}
		tmp[n].name = strdup(name);
		tmp[n].secret = strdup(secret);
		tmp[n].seq = n;
		n++;
		OPENSSL_cleanse(secret, strlen(secret));
		if (!tmp[n - 1].name || !tmp[n - 1].secret)
			goto nomem;
	}
	if (ferror(f)) {
		userlist_set_err(err, errlen, "%s: read error: %s", path, strerror(errno));
		goto fail;
	}
	if (line)
		OPENSSL_cleanse(line, linecap);
	free(line);
	free(secret);
	fclose(f);
	{
		UserList *ul = userlist_build(tmp, n);
		if (!ul)
			userlist_set_err(err, errlen, "%s: out of memory", path);
		return ul;
	}

nomem:
	userlist_set_err(err, errlen, "%s: out of memory", path);
fail:
	OPENSSL_cleanse(secret, USERLIST_MAX_SECRET + 1);
	free(secret);
	if (line)
		OPENSSL_cleanse(line, linecap);
	free(line);
	fclose(f);
	userlist_free_load(tmp, n);
	return NULL;
}

static int userlist_cmp_find(const void *key, const void *elem)
{
	return strcmp(key, ((const UserEntry *)elem)->name);
}

const UserEntry *userlist_find(const UserList *ul, const char *name)
{
	if (!ul || !name || ul->n <= 0)
		return NULL;
	return bsearch(name, ul->entries, (size_t)ul->n, sizeof(UserEntry), userlist_cmp_find);
}

void userlist_free(UserList *ul)
{
	if (!ul)
		return;
	for (int i = 0; i < ul->n; i++) {
		free(ul->entries[i].name);
		userlist_free_secret(ul->entries[i].secret);
	}
	free(ul->entries);
	free(ul);
}

static int userlist_is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int userlist_is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
	       c == '/' || c == '=';
}

/* Skip a non-empty run of base64 characters; NULL if there is none. */
static const char *userlist_skip_b64(const char *p)
{
	const char *s = p;

	while (userlist_is_b64(*p))
		p++;
	return p == s ? NULL : p;
}

int userlist_secret_kind(const char *secret)
{
	static const char prefix[] = "SCRAM-SHA-256$";
	const char *p;

	if (strncmp(secret, "md5", 3) == 0 && strlen(secret) == 35) {
		for (p = secret + 3; *p && userlist_is_hex(*p); p++)
			;
		if (*p == '\0')
			return USERLIST_SECRET_MD5;
	}
	/* Only the shape is checked here (scram_parse_secret() decodes it fully), so this file
	 * does not depend on the crypto code: <digits>:<b64>$<b64>:<b64> */
	if (strncmp(secret, prefix, sizeof(prefix) - 1) == 0) {
		p = secret + sizeof(prefix) - 1;
		if (*p < '0' || *p > '9')
			return USERLIST_SECRET_PLAIN;
		while (*p >= '0' && *p <= '9')
			p++;
		if (*p++ != ':' || !(p = userlist_skip_b64(p)) || *p++ != '$' ||
		    !(p = userlist_skip_b64(p)) || *p++ != ':' || !(p = userlist_skip_b64(p)) || *p != '\0')
			return USERLIST_SECRET_PLAIN;
		return USERLIST_SECRET_SCRAM;
	}
	return USERLIST_SECRET_PLAIN;
}
