/* admin.h: the admin console, the virtual database "pgbouncer" (docs/compatibility.md): the command
 * parser, console login, SHOW output, the control commands and their deferred replies. */
#ifndef TIDEPOOL_ADMIN_H
#define TIDEPOOL_ADMIN_H

#include <stdbool.h>
#include <stdint.h>

#include "pool.h"

/* ---- the command parser (pure; never reads past the NUL of query) ---- */

typedef enum {
	ADMIN_PARSE_INVALID = 0, /* no grammar matched: "invalid command '...', use SHOW HELP;" */
	ADMIN_PARSE_BAD_ARGS,    /* matched, but a word is too long or a SET key empty: "bad arguments" */
	ADMIN_PARSE_CMD,         /* WORD [WORD] [;] : cmd and arg (arg may be empty) */
	ADMIN_PARSE_SET,         /* SET key = value / SET key TO value : key and value */
} AdminParseKind;

/* PgBouncer's buffer sizes: a longer word is "bad arguments". */
#define ADMIN_CMD_MAX 16
#define ADMIN_ARG_MAX 64
#define ADMIN_VAL_MAX 256

typedef struct AdminCommand {
	AdminParseKind kind;
	char cmd[ADMIN_CMD_MAX];   /* as typed (compare case-insensitively); unquoted */
	char arg[ADMIN_ARG_MAX];   /* CMD: the argument; SET: the key. Unquoted, case kept */
	char value[ADMIN_VAL_MAX]; /* SET: the value, unquoted */
} AdminCommand;

/* Parse one console query with the grammar of docs/compatibility.md:
 *   ^WS* WORD (WS+ WORD)? WS* (; WS*)?$
 *   ^WS* SET WS+ WORD WS* (=|TO) WS* (WORD | 'string') WS* (; WS*)?$
 * WORD is [0-9A-Za-z_]+ or a "quoted" identifier ("" inside is a quote); a 'string' uses ''.
 * Returns out->kind. */
AdminParseKind admin_parse_command(const char *query, AdminCommand *out);

/* ---- hooks called from the client code ---- */

/* Console access level kept in Client.admin. */
enum { ADMIN_NONE = 0, ADMIN_STATS = 1, ADMIN_FULL = 2 };

/* Start the console's timers (deferred replies, pause upkeep, stats averages). */
void admin_init(App *app);
/* At exit, before pool_free_all(): stop the timers, hand console clients to the reaper. */
void admin_cleanup(App *app);
/* The startup packet asks for the virtual database "pgbouncer". */
bool admin_is_console_db(const char *dbname);
/* Startup of a console client (instead of the usual limits and auth_start): the same-uid
 * "pgbouncer" user over the Unix socket skips the password. Returns false if closed. */
bool admin_startup(Client *c);
/* Authentication succeeded for a console client: access check, then the welcome.
 * Returns false if the client was closed. */
bool admin_login_done(Client *c);
/* A CancelRequest for a console client (psql's ^C): a console waiting in PAUSE or SUSPEND
 * resumes, as PgBouncer does. False if the key is no console client's. */
bool admin_handle_cancel(Worker *w, uint32_t pid, uint32_t key);
/* A packet from a logged-in console client (c->admin != ADMIN_NONE). Same contract as an
 * SBuf callback for SBUF_EV_READ. */
bool admin_handle_packet(Client *c, PktHdr *pkt);

/* ---- shared by admin.c and admin_show.c ---- */

/* RowDescription from a type string, one char per column: s text, i int4, q int8,
 * N numeric, T timestamp (text), b bytea; names has one entry per column. */
void admin_row_description(PktBuf *pb, const char *types, const char *const *names);
/* DataRow with values matching types: s const char * (NULL = SQL NULL), i int, q int64_t,
 * N uint64_t, T usec_t of now_usec() (0 = NULL), b NULL only. */
void admin_data_row(PktBuf *pb, const char *types, ...);
/* Queue pb for the client (freeing a dynamic pb); on failure close it. False if closed. */
bool admin_send_or_close(Client *c, PktBuf *pb);
/* An ErrorResponse ('E') or NoticeResponse ('N') with an optional DETAIL. */
void admin_write_message(PktBuf *pb, uint8_t type, const char *severity, const char *sqlstate,
                         const char *msg, const char *detail);
/* PgBouncer's admin_error with any SQLSTATE: logged, then ERROR + ReadyForQuery. */
bool admin_error_reply(Client *c, const char *sqlstate, const char *msg, const char *detail);
/* CommandComplete(tag) + ReadyForQuery, then queue everything for the client. */
bool admin_send_result(Client *c, PktBuf *pb, const char *tag);
/* ErrorResponse ERROR 08P01 (logged like PgBouncer) + ReadyForQuery. */
bool admin_error(Client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The console's own database and pool (not on the worker's lists). */
Database *admin_database(Worker *w);
Pool *admin_pool(Worker *w);
/* The console's objects of one worker (created with the worker, freed with it). */
void admin_worker_init(Worker *w);
void admin_worker_cleanup(Worker *w);
/* Per-database averages over the stats period, PgBouncer's way; dbname NULL = all databases. */
void admin_stats_for(App *app, const char *dbname, Stats *total, Stats *avg);
/* Take stats snapshots every stats_period from now on; stop and free them (admin_show.c). */
void admin_stats_start(App *app);
void admin_stats_stop(void);
/* Pause state for SHOW STATE. */
bool admin_is_suspended(void);

/* SHOW <what> (admin_show.c): -1 if what is no SHOW command, else 1, or 0 if the client was
 * closed. */
int admin_show(Client *c, const char *what);
/* Timestamp text of a now_usec() value: "2026-11-23 00:49:00 UTC". */
void admin_format_time(usec_t mono, char *buf, size_t buflen);

#endif
