/* pgoptions.h: the startup packet's "options" value split into settings, as PostgreSQL does. */
#ifndef TIDEPOOL_PGOPTIONS_H
#define TIDEPOOL_PGOPTIONS_H

#include <stddef.h>

/* Called once per setting, name and value unescaped (valid during the call only). Return 0
 * to go on, anything else to stop: pgoptions_parse() then returns that value. */
typedef int (*PgOptionFn)(void *arg, const char *name, const char *value);

/* The message for a malformed options value, worded as PgBouncer's. */
#define PGOPTIONS_BAD                                                                                        \
	"unsupported options startup parameter: only '-c config=val' and '--config=val' are allowed"

/* Split opts into words at unescaped white space (a backslash takes the next byte as is), then
 * read "-c name=value", "-cname=value" and "--name=value" (dashes in the name become
 * underscores, as in PostgreSQL). 0 when every setting was passed to fn; -1 when opts holds
 * anything else (another switch, a word that is no switch, "-c" without "name=value", an
 * empty name); fn's nonzero result otherwise. Settings before a malformed word have been
 * passed to fn already. */
int pgoptions_parse(const char *opts, PgOptionFn fn, void *arg);

#endif
