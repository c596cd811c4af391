/* hba.h: the auth_hba_file (pg_hba.conf format, as PgBouncer reads it): a pure parser and the
 * rule lookup for auth_type = hba. No I/O except through the caller's include reader. */
#ifndef TIDEPOOL_HBA_H
#define TIDEPOOL_HBA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
	HBA_REJECT = 0, /* also the result when no rule matches */
	HBA_TRUST,
	HBA_PASSWORD, /* cleartext password (auth_type plain) */
	HBA_MD5,
	HBA_SCRAM,
	HBA_CERT,
	HBA_PEER,
} HbaMethod;

typedef enum { HBA_LOCAL, HBA_HOST, HBA_HOSTSSL, HBA_HOSTNOSSL } HbaConnType;

/* A database or user column: keywords plus literal names (lists and @file expanded). */
typedef struct HbaNames {
	bool all;
	bool sameuser;    /* database column: the database named like the user */
	bool replication; /* database column: physical replication connections (only they) */
	int n;
	char **names;
} HbaNames;

typedef struct HbaRule {
	int line;
	HbaConnType type;
	HbaNames db;
	HbaNames user;
	bool addr_all; /* host lines: "all" */
	int family;    /* AF_INET / AF_INET6 when !addr_all */
	uint8_t addr[16];
	uint8_t mask[16];
	HbaMethod method;
	char *map; /* cert/peer: the map= ident map name, or NULL */
} HbaRule;

typedef struct Hba {
	int n;
	HbaRule *rules;
} Hba;

/* Reads an @file include: a malloc'd NUL-terminated text, or NULL (errno-like reason in err). */
typedef char *(*HbaReadFn)(void *arg, const char *path, char *err, size_t errlen);

#define HBA_MAX_LINE  8192
#define HBA_MAX_RULES 100000

/* Parse the text of an HBA file named path (for messages and relative @file names). Returns
 * the rules, or NULL with "path:line: why" in err. read may be NULL (then @file fails). */
Hba *hba_parse(const char *text, const char *path, HbaReadFn read, void *arg, char *err, size_t errlen);

/* Read and parse a file (includes read from disk). */
Hba *hba_load(const char *path, char *err, size_t errlen);

void hba_free(Hba *hba);

/* What a connecting client is. addr: its address as text (IPv4 or IPv6, "" for Unix). */
typedef struct HbaRequest {
	bool is_unix;
	bool is_tls;
	const char *addr;
	const char *database;
	const char *user;
	bool replication; /* a physical replication connection: only the "replication" keyword matches */
} HbaRequest;

/* The method of the first rule that matches (HBA_REJECT when none); *line gets the rule's
 * line number or 0. */
HbaMethod hba_match(const Hba *hba, const HbaRequest *req, int *line);

/* The first rule that matches, or NULL. */
const HbaRule *hba_match_rule(const Hba *hba, const HbaRequest *req);

/* auth_ident_file (pg_ident.conf format): lines MAPNAME SYSTEM-USERNAME USERNAME. A system
 * name starting with / is a POSIX extended regular expression, and \1 in the user name is
 * then its first group; a user name of all (unquoted) allows any. */
typedef struct HbaIdent HbaIdent;

/* Parse the text of an ident file named path: the maps, or NULL with "path:line: why". */
HbaIdent *hba_ident_parse(const char *text, const char *path, char *err, size_t errlen);

/* Read and parse a file. */
HbaIdent *hba_ident_load(const char *path, char *err, size_t errlen);

void hba_ident_free(HbaIdent *id);

/* Does map let the system (certificate or OS) user sys log in as user? */
bool hba_ident_match(const HbaIdent *id, const char *map, const char *sys, const char *user);

const char *hba_method_name(HbaMethod m);

#endif
