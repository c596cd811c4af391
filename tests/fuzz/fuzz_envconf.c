/* fuzz_envconf: the container entrypoint's pure core, ep_generate(): environment variables in,
 * pgbouncer.ini and userlist.txt text out. Files named by *_FILE variables come from a fake
 * (any path under /run/secrets/ holds "s3cret\n"), randomness is fixed.
 *
 * Input: a flags byte, then "NAME=VALUE" entries separated by '\n' (a value cannot contain a
 * newline, as with `docker run -e`... unless it is escaped as "\n", which we turn into a real
 * newline when flags bit 1 is set, as an env_file or compose YAML can produce). flags bit 0:
 * after a "\0" the rest is a mounted pgbouncer.ini used as-is.
 *
 * Invariants on success: the generated ini loads with config_load_string (ep_generate checks
 * that too), it holds only section headers, comments and "key = value" lines (no line an env
 * value smuggled in, such as "%include" or a second [section]), every userlist line parses,
 * and the masked texts are produced. */
#include "config.h"
#include "envconf.h"
#include "fuzz_common.h"
#include "userlist.h"

static char *fake_read(void *arg, const char *path, char *err, size_t errlen)
{
	if (strncmp(path, "/run/secrets/", 13) == 0)
		return strdup("s3cret\n");
	snprintf(err, errlen, "No such file or directory");
	return NULL;
}

static int fake_random(void *arg, unsigned char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (unsigned char)(i * 37 + 11);
	return 0;
}

static int fake_mounted(void *arg, const char *path)
{
	return path && strstr(path, "mounted") != NULL;
}

static const EpIo io = {fake_read, fake_random, fake_mounted, NULL};

static void check_ini_lines(const char *ini)
{
	int section = 0; /* 1 databases, 2 pgbouncer, 3 users */
	for (const char *line = ini; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);
		if (n == 0 || line[0] == ';' || line[0] == '#') {
			/* blank or comment */
		} else if (line[0] == '[') {
			if (strncmp(line, "[databases]", 11) == 0)
				section = 1;
			else if (strncmp(line, "[pgbouncer]", 11) == 0)
				section = 2;
			else if (strncmp(line, "[users]", 7) == 0)
				section = 3;
			else
				section = -1;
			FUZZ_CHECK(section > 0);
		} else {
			FUZZ_CHECK(line[0] != '%');
			const char *eq = memchr(line, '=', n);
			if (!eq) {
				fprintf(stderr, "generated ini line without '=': %.*s\n", (int)n, line);
				FUZZ_CHECK(eq != NULL);
			}
			if (section == 2) {
				/* a [pgbouncer] key must be a known setting */
				char key[128];
				size_t kl = (size_t)(eq - line);
				while (kl > 0 && line[kl - 1] == ' ')
					kl--;
				FUZZ_CHECK(kl < sizeof(key));
				memcpy(key, line, kl);
				key[kl] = 0;
				if (!config_find_setting(key)) {
					fprintf(stderr, "generated [pgbouncer] line with unknown key: %.*s\n", (int)n,
						line);
					FUZZ_CHECK(0);
				}
			}
		}
		line = nl ? nl + 1 : NULL;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 16384)
		return 0;
	uint8_t flags = data[0];
	data++;
	size--;
	if (fuzz_big_iterations((const char *)data, size, 4096))
		return -1;
	const uint8_t *zero = (flags & 1) ? memchr(data, 0, size) : NULL;
	size_t env_len = zero ? (size_t)(zero - data) : size;
	char *envtext = fuzz_strdup(data, env_len, ' ');
	char *mounted = zero ? fuzz_strdup(zero + 1, size - env_len - 1, ' ') : NULL;

	char *envp[65];
	int n = 0;
	for (char *p = envtext; *p && n < 64;) {
		char *nl = strchr(p, '\n');
		if (nl)
			*nl = 0;
		if (*p)
			envp[n++] = p;
		if (!nl)
			break;
		p = nl + 1;
	}
	envp[n] = NULL;
	if (flags & 2) {
		for (int i = 0; i < n; i++) {
			char *w = envp[i];
			for (char *r = envp[i]; *r; r++) {
				if (r[0] == '\\' && r[1] == 'n') {
					*w++ = '\n';
					r++;
				} else {
					*w++ = *r;
				}
			}
			*w = 0;
		}
	}

	EpInput in = {envp, (flags & 4) ? "/etc/mounted/pgbouncer.ini" : "/etc/pgbouncer/pgbouncer.ini",
		      mounted};
	EpResult res;
	int rc = ep_generate(&in, &io, &res);
	FUZZ_CHECK(res.errors != NULL && res.warnings != NULL);
	if (rc == 0) {
		FUZZ_CHECK(res.n_errors == 0 && res.errors[0] == 0);
		if (res.ini) {
			char err[512];
			Config *cf = config_load_string(res.ini, "/etc/pgbouncer/pgbouncer.ini", NULL, NULL, err,
							sizeof(err));
			if (!cf)
				fprintf(stderr, "generated ini does not load: %s\n", err);
			FUZZ_CHECK(cf != NULL);
			config_free(cf);
			check_ini_lines(res.ini);
			FUZZ_CHECK(res.ini_masked != NULL);
			char *m = ep_mask_ini(res.ini);
			FUZZ_CHECK(m != NULL);
			free(m);
		}
		if (res.userlist) {
			char *ul = strdup(res.userlist);
			for (char *line = strtok(ul, "\n"); line; line = strtok(NULL, "\n")) {
				char name[USERLIST_MAX_NAME + 1], secret[USERLIST_MAX_SECRET + 1], err[128];
				int r = userlist_parse_line(line, name, sizeof(name), secret, sizeof(secret), err,
							    sizeof(err));
				if (r < 0)
					fprintf(stderr, "generated userlist line does not parse (%s): %s\n", err, line);
				FUZZ_CHECK(r >= 0);
			}
			free(ul);
			char *m = ep_mask_userlist(res.userlist);
			FUZZ_CHECK(m != NULL);
			free(m);
		}
		for (int i = 0; i < res.n_users; i++)
			FUZZ_CHECK(res.users[i].name != NULL);
	} else {
		FUZZ_CHECK(res.n_errors > 0 && res.errors[0] != 0);
		FUZZ_CHECK(res.ini == NULL && res.userlist == NULL);
	}
	ep_result_free(&res);
	/* The helpers on raw input as well. */
	char *m = ep_mask_ini(envtext);
	free(m);
	m = ep_mask_userlist(envtext);
	free(m);
	for (int i = 0; i < n; i++) {
		char *dec = NULL;
		if (ep_percent_decode(envp[i], strlen(envp[i]), &dec) == 0)
			free(dec);
		char *q = ep_quote_connstr_value(envp[i]);
		free(q);
		(void)ep_is_secret_var(envp[i]);
	}
	free(envtext);
	free(mounted);
	return 0;
}
