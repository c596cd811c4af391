/* fuzz_console: admin console commands executed by the daemon's real console (admin.c,
 * admin_show.c) over a live pooler: a regular client holds a server (in a transaction when
 * flags bit 1 is set) while the console runs SHOW *, PAUSE/RESUME, KILL, KILL_CLIENT,
 * SUSPEND, DISABLE/ENABLE, RECONNECT, WAIT_CLOSE, SET, RELOAD, SHUTDOWN and anything else.
 *
 * Input: NS_VARIANT_BYTES of configuration variant, a flags byte (bits 0-1: the console user:
 * pgbouncer over the Unix socket = admin, statsuser = stats only, app = not allowed,
 * md5user; bit 2: the regular client sends a query after each command; bit 3: the console
 * client stops reading), then queries separated by '\n', each sent as one Query message.
 * SET of settings that name files or directories is skipped (the console can write a log
 * file anywhere by design; that is not what we fuzz). */
#include <strings.h>

#include "admin.h"
#include "config.h"
#include "fuzz_common.h"
#include "netsim.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	ns_global_init();
	return 0;
}

static int names_a_path(const char *query)
{
	AdminCommand cmd;
	if (admin_parse_command(query, &cmd) != ADMIN_PARSE_SET)
		return 0;
	const Setting *s = config_find_setting(cmd.arg);
	if (!s || s->type != SETTING_STR)
		return 0;
	return strstr(s->name, "file") || strstr(s->name, "dir") || strstr(s->name, "conf") ||
	       strcmp(s->name, "user") == 0 || strchr(cmd.value, '/') != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < NS_VARIANT_BYTES + 1 || size > 16384)
		return 0;
	NsVariant v;
	memcpy(v.b, data, NS_VARIANT_BYTES);
	uint8_t flags = data[NS_VARIANT_BYTES];
	data += NS_VARIANT_BYTES + 1;
	size -= NS_VARIANT_BYTES + 1;
	char *text = fuzz_strdup(data, size, ' ');
	ns_begin(&v, true);

	/* a regular client with a server */
	int app = ns_client_new(false);
	ns_client_login(app, "app", "appdb", NULL);
	ns_pump(48);
	ns_client_answer_auth(app, "apppass");
	ns_pump(48);
	ns_client_query_marked(app, (flags & 2) ? "BEGIN" : "SELECT 1");
	ns_pump(48);

	static const char *const users[] = {"pgbouncer", "statsuser", "app", "md5user"};
	static const char *const pw[] = {"adminpass", "statspass", "apppass", "md5pass"};
	int con = ns_client_new(true);
	ns_client_login(con, users[flags & 3], "pgbouncer", NULL);
	ns_pump(48);
	ns_client_answer_auth(con, pw[flags & 3]);
	ns_pump(48);
	if (flags & 8)
		ns_client_drain(con, false);

	int n = 0;
	for (char *line = text; line && n < 64; n++) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		if (!names_a_path(line)) {
			ns_client_query(con, line);
			ns_pump(64);
			if (flags & 4) {
				ns_client_query_marked(app, "SELECT 2");
				ns_pump(48);
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	ns_end();
	free(text);
	return 0;
}
