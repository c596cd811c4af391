/* fuzz_config: pgbouncer.ini text through config_load_string(), then every loaded value
 * formatted the way SHOW CONFIG prints it and set again the way RELOAD re-applies settings
 * that need a restart (app_reload: config_format_value -> config_set). Lookups by database
 * and user name run over the loaded sections.
 *
 * %include is followed only into FUZZ_INC_DIR (files made at start-up: a plain include, a
 * self-include loop, a databases section); any other %include makes the input uninteresting,
 * so the fuzzer never reads /dev/zero or the machine's files. */
#include <stdbool.h>
#include <sys/stat.h>

#include "config.h"
#include "fuzz_common.h"
#include "peer.h"
#include "tls.h"

#define FUZZ_INC_DIR "/tmp/tidepool-fuzz-inc"

static void write_file(const char *name, const char *text)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", FUZZ_INC_DIR, name);
	FILE *f = fopen(path, "w");
	if (!f)
		return;
	fputs(text, f);
	fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	mkdir(FUZZ_INC_DIR, 0755);
	write_file("plain.ini", "[pgbouncer]\nlisten_port = 7432\nmax_client_conn = 10\n");
	write_file("loop.ini", "%include " FUZZ_INC_DIR "/loop.ini\n");
	write_file("dbs.ini", "[databases]\nincluded = host=/tmp port=5433 dbname=x\n* = host=127.0.0.1\n");
	write_file("nested.ini", "%include " FUZZ_INC_DIR "/plain.ini\n[users]\nbob = pool_mode=session\n");
	return 0;
}

/* Every %include line must name a file in FUZZ_INC_DIR without "..". */
static bool includes_are_sandboxed(const char *text)
{
	const char *line = text;
	if (strncmp(line, "\xef\xbb\xbf", 3) == 0) /* the loader skips a UTF-8 BOM */
		line += 3;
	while (line && *line) {
		const char *p = line;
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\f' || *p == '\v')
			p++;
		if (strncmp(p, "%include", 8) == 0) {
			p += 8;
			while (*p == ' ' || *p == '\t')
				p++;
			const char *end = strchr(p, '\n');
			size_t n = end ? (size_t)(end - p) : strlen(p);
			if (strncmp(p, FUZZ_INC_DIR "/", strlen(FUZZ_INC_DIR) + 1) != 0)
				return false;
			for (size_t i = 0; i + 1 < n; i++)
				if (p[i] == '.' && p[i + 1] == '.')
					return false;
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return true;
}

static void warn_cb(void *arg, const char *msg)
{
	FUZZ_CHECK(msg != NULL);
	(*(int *)arg)++;
}

/* unix_socket_mode is shown in decimal (511 for 0777, as PgBouncer's SHOW CONFIG does) but
 * written in octal, so its text does not round-trip by design. The finding this harness made
 * (regressions/fuzz_config/unix_socket_mode_0700_roundtrip) was real: RELOAD kept start-only
 * settings by parsing their formatted text again; it now copies the value itself
 * (config_copy_value), which exercise() checks for every setting instead. */
static bool check_mode_roundtrip;

static void exercise(Config *cf)
{
	char buf[1024], buf2[1024], err[512];
	for (int i = 0; i < config_n_settings; i++) {
		const Setting *s = &config_settings[i];
		const char *v = config_format_value(cf, s, buf, sizeof(buf));
		FUZZ_CHECK(v == buf && memchr(buf, 0, sizeof(buf)));
		(void)config_describe_support(s, buf2, sizeof(buf2));
		FUZZ_CHECK(config_find_setting(s->name) == s);
		{
			/* What app_reload does for a start-only setting: copy the running value. */
			Config *copy = config_new_defaults();
			FUZZ_CHECK(config_copy_value(copy, cf, s) == 0);
			char a[1024];
			config_format_value(copy, s, a, sizeof(a));
			FUZZ_CHECK(strcmp(a, buf) == 0);
			config_free(copy);
		}
		if (s->type == SETTING_STR || s->type == SETTING_MODE)
			continue;
		/* What app_reload does with a NO_RELOAD setting: the formatted value parses again
		 * and gives the same value. */
		err[0] = 0;
		int rc = config_set(cf, s->name, buf, err, sizeof(err));
		if (rc != 0) {
			fprintf(stderr, "setting %s: formatted value \"%s\" does not parse: %s\n", s->name, buf,
				err);
			FUZZ_CHECK(rc == 0);
		}
		config_format_value(cf, s, buf2, sizeof(buf2));
		if (strcmp(buf, buf2) != 0) {
			fprintf(stderr, "setting %s: \"%s\" became \"%s\"\n", s->name, buf, buf2);
			FUZZ_CHECK(strcmp(buf, buf2) == 0);
		}
	}
	for (int i = 0; i < cf->n_databases; i++) {
		const DatabaseDef *d = &cf->databases[i];
		FUZZ_CHECK(d->name != NULL);
		const DatabaseDef *f = config_find_database(cf, d->name, 1);
		FUZZ_CHECK(f != NULL);
		(void)config_pool_mode_name(d->pool_mode);
	}
	(void)config_find_database(cf, "no-such-database", 1);
	for (int i = 0; i < cf->n_users; i++) {
		FUZZ_CHECK(cf->users[i].name != NULL);
		FUZZ_CHECK(config_find_user(cf, cf->users[i].name) != NULL);
	}
	for (int i = 0; i < cf->n_peers; i++) {
		const PeerDef *pd = &cf->peers[i];
		FUZZ_CHECK(pd->peer_id >= 1 && pd->peer_id <= 16383);
		FUZZ_CHECK(config_find_peer(cf, pd->peer_id) == pd); /* a later line replaced an earlier one */
		/* what SHOW PEERS and a forward read (peer.c) */
		FUZZ_CHECK(peer_host_of(cf, pd) != NULL);
		FUZZ_CHECK(peer_port_of(cf, pd) >= 1 && peer_port_of(cf, pd) <= 65535);
		FUZZ_CHECK(peer_pool_size_of(cf, pd) >= 0);
	}
	(void)config_pool_mode_name(cf->pool_mode);
	(void)config_auth_type_name(cf->auth_type);
	/* the TLS settings' own little languages (tls_configure parses them at start and RELOAD) */
	int lo = 0, hi = 0;
	if (cf->client_tls_protocols && tls_parse_protocols(cf->client_tls_protocols, &lo, &hi) == 0)
		FUZZ_CHECK(lo <= hi || hi == 0);
	if (cf->server_tls_protocols)
		(void)tls_parse_protocols(cf->server_tls_protocols, &lo, &hi);
	if (cf->client_tls_sslmode)
		(void)tls_mode_from_name(cf->client_tls_sslmode);
	if (cf->server_tls_sslmode)
		(void)tls_mode_from_name(cf->server_tls_sslmode);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return 0;
	char *text = fuzz_strdup(data, size, ' ');
	if (!includes_are_sandboxed(text)) {
		free(text);
		return -1; /* not added to the corpus */
	}
	/* FUZZ_SKIP_KNOWN=1 (a fuzzing campaign before the fix) leaves the known finding out. */
	check_mode_roundtrip = false;
	char err[512];
	int warnings = 0;
	err[0] = 0;
	Config *cf = config_load_string(text, "/tmp/tidepool-fuzz-inc/fuzz.ini", warn_cb, &warnings, err,
					sizeof(err));
	if (cf) {
		exercise(cf);
		config_free(cf);
	} else {
		FUZZ_CHECK(err[0] != 0); /* a failed load always says why */
	}
	free(text);
	return 0;
}
