/* fuzz_connstr: one connection string (the right side of a [databases] line), one [users] line
 * or one [peers] line, through the real ini loader so that every field it fills is freed by
 * config_free().
 *
 * Input: a mode byte (bit 0: [users] instead of [databases]; bit 3: [peers] instead of both;
 * bits 1-2: the entry name), then the value; newlines become spaces so the input stays one
 * line. The parsed definition is then looked up and its strings read in full. */
#include <stdbool.h>

#include "config.h"
#include "fuzz_common.h"

static const char *const names[] = {"appdb", "*", "\"quoted db\"", "pgbouncer"};
static const char *const peer_names[] = {"1", "16383", "0", "16384"}; /* the last two are refused */

static void touch(const char *s)
{
	if (s)
		FUZZ_CHECK(strlen(s) < (1u << 20));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 8192)
		return 0;
	uint8_t mode = data[0];
	char *val = fuzz_strdup(data + 1, size - 1, ' ');
	for (char *p = val; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	bool peers = (mode & 8) != 0;
	const char *section = peers ? "peers" : (mode & 1) ? "users" : "databases";
	const char *name = (peers ? peer_names : names)[(mode >> 1) & 3];
	size_t tlen = strlen(val) + 64;
	char *text = malloc(tlen);
	snprintf(text, tlen, "[%s]\n%s = %s\n", section, name, val);
	char err[512];
	err[0] = 0;
	Config *cf = config_load_string(text, "/nonexistent/fuzz.ini", NULL, NULL, err, sizeof(err));
	if (cf) {
		for (int i = 0; i < cf->n_databases; i++) {
			const DatabaseDef *d = &cf->databases[i];
			touch(d->name);
			touch(d->host);
			touch(d->dbname);
			touch(d->user);
			touch(d->password);
			touch(d->auth_user);
			touch(d->auth_query);
			touch(d->auth_dbname);
			touch(d->connect_query);
			touch(d->client_encoding);
			touch(d->datestyle);
			touch(d->timezone);
			touch(d->application_name);
			FUZZ_CHECK(config_find_database(cf, d->name, 0) != NULL);
			FUZZ_CHECK(d->port >= -1 && d->port <= 65535);
		}
		for (int i = 0; i < cf->n_users; i++)
			FUZZ_CHECK(config_find_user(cf, cf->users[i].name) != NULL);
		FUZZ_CHECK(!peers || cf->n_peers == 1);
		for (int i = 0; i < cf->n_peers; i++) {
			const PeerDef *pd = &cf->peers[i];
			touch(pd->host);
			FUZZ_CHECK(pd->peer_id >= 1 && pd->peer_id <= 16383);
			FUZZ_CHECK(config_find_peer(cf, pd->peer_id) == pd);
			FUZZ_CHECK(pd->port == -1 || (pd->port >= 1 && pd->port <= 65535));
			FUZZ_CHECK(pd->pool_size >= -1);
		}
		config_free(cf);
	} else {
		FUZZ_CHECK(err[0] != 0);
	}
	free(text);
	free(val);
	return 0;
}
