/* fuzz_pgoptions: the startup packet's "options" value (client bytes) through pgoptions_parse.
 * Every setting handed out has a non-empty name free of '=' and '-'; a parse that succeeds
 * never yields more settings than the input has bytes. */
#include "fuzz_common.h"
#include "pgoptions.h"

typedef struct Seen {
	size_t count, limit;
} Seen;

static int check_setting(void *arg, const char *name, const char *value)
{
	Seen *seen = arg;
	FUZZ_CHECK(name[0] != '\0');
	FUZZ_CHECK(strchr(name, '=') == NULL && strchr(name, '-') == NULL);
	FUZZ_CHECK(strlen(name) + strlen(value) <= seen->limit);
	seen->count++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 10000) /* the startup packet's own cap */
		return 0;
	char *opts = fuzz_strdup(data, size, ' ');
	Seen seen = {0, size};
	int rc = pgoptions_parse(opts, check_setting, &seen);
	FUZZ_CHECK(rc == 0 || rc == -1);
	FUZZ_CHECK(seen.count <= size / 4 + 1);
	free(opts);
	return 0;
}
