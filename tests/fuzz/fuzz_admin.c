/* fuzz_admin: the admin console's command parser, admin_parse_command(), on arbitrary text
 * (exactly NUL-terminated, so any read past the end is an AddressSanitizer report). The
 * console's command execution over a live pooler is fuzzed by fuzz_console. */
#include "admin.h"
#include "fuzz_common.h"

static void check_field(const char *f, size_t cap)
{
	FUZZ_CHECK(memchr(f, 0, cap) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	char *q = fuzz_strdup(data, size, 0); /* embedded NULs end the query, as in a 'Q' packet */
	AdminCommand cmd;
	memset(&cmd, 0x5a, sizeof(cmd));
	AdminParseKind k = admin_parse_command(q, &cmd);
	FUZZ_CHECK(k == cmd.kind);
	FUZZ_CHECK(k == ADMIN_PARSE_INVALID || k == ADMIN_PARSE_BAD_ARGS || k == ADMIN_PARSE_CMD ||
		   k == ADMIN_PARSE_SET);
	if (k == ADMIN_PARSE_CMD || k == ADMIN_PARSE_SET) {
		check_field(cmd.cmd, sizeof(cmd.cmd));
		check_field(cmd.arg, sizeof(cmd.arg));
		if (k == ADMIN_PARSE_SET) {
			check_field(cmd.value, sizeof(cmd.value));
			FUZZ_CHECK(cmd.arg[0] != 0); /* an empty SET key is "bad arguments" */
		}
	}
	/* Deterministic: the same text parses the same way. */
	AdminCommand again;
	FUZZ_CHECK(admin_parse_command(q, &again) == k);
	if (k == ADMIN_PARSE_CMD || k == ADMIN_PARSE_SET)
		FUZZ_CHECK(strcmp(again.cmd, cmd.cmd) == 0 && strcmp(again.arg, cmd.arg) == 0);
	free(q);
	return 0;
}
