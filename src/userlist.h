/* userlist.h: the auth_file (userlist.txt) of "user" "password-or-secret" lines. */
#ifndef TIDEPOOL_USERLIST_H
#define TIDEPOOL_USERLIST_H

#include <stddef.h>

#define USERLIST_MAX_NAME   63    /* PostgreSQL identifiers: NAMEDATALEN - 1 bytes */
#define USERLIST_MAX_SECRET 65535 /* plain passwords may be long (cloud IAM tokens, JWTs) */

typedef enum {
	USERLIST_SECRET_PLAIN = 0, /* a cleartext password */
	USERLIST_SECRET_MD5,       /* "md5" + 32 hex digits: md5(password || user) */
	USERLIST_SECRET_SCRAM,     /* "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>" */
} UserListSecretKind;

typedef struct UserEntry {
	char *name;
	char *secret;
} UserEntry;

/* Entries sorted by name, one per name, for binary search. Owned by whoever called
 * userlist_load(); userlist_free() releases it all and wipes the secrets. */
typedef struct UserList {
	UserEntry *entries;
	int n;
} UserList;

/* Parse one line (a trailing newline is allowed). 1: an entry was stored in name and
 * secret (NUL-terminated); 0: comment or blank line; -1: error, message in err. */
int userlist_parse_line(const char *line, char *name, size_t namelen, char *secret, size_t secretlen,
                        char *err, size_t errlen);

/* Called with "path:<line>: <why>" for each line that cannot be parsed; the line is skipped. */
typedef void (*UserListWarnFn)(void *arg, const char *msg);

/* Load a whole file. A bad line is reported to warn (if not NULL) and skipped, as PgBouncer
 * does, so one typo does not lock every user out. NULL with "path: <why>" in err only when
 * the file cannot be read or memory runs out. If a user appears twice, the later line wins. */
UserList *userlist_load(const char *path, UserListWarnFn warn, void *warn_arg, char *err, size_t errlen);

/* The entry whose name is exactly name, or NULL. O(log n). */
const UserEntry *userlist_find(const UserList *ul, const char *name);

void userlist_free(UserList *ul);

/* Which kind of secret a userlist password field holds (a UserListSecretKind). A field that
 * only looks roughly like a hash is a plain password, as PostgreSQL treats it. */
int userlist_secret_kind(const char *secret);

#endif
