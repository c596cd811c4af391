/* authquery.h: auth_user + auth_query: look up the secret of a user missing from auth_file
 * through a server connection, then let authentication go on with it. */
#ifndef TIDEPOOL_AUTHQUERY_H
#define TIDEPOOL_AUTHQUERY_H

#include <stdbool.h>

#include "pool.h"

/* Does this login need a lookup (the user is not in auth_file and an auth_user applies to its
 * database)? */
bool authquery_needed(const Client *c);

/* Start the lookup; authentication resumes with auth_continue() once the secret (or its
 * absence) is known. Returns false if the client was closed. */
bool authquery_start(Client *c);

/* A client is going away: forget it (its lookup finishes without it). */
void authquery_forget(Client *c);

/* Packets of a server running an auth query (server.c routes them here). */
bool authquery_server_packet(Server *s, PktHdr *pkt);

/* A server running an auth query is being closed. */
void authquery_server_closed(Server *s);

/* At exit, after pool_free_all(): free the lookup pools' users. */
void authquery_cleanup(Worker *w);

/* Parse one DataRow of two text columns: 0 with name (NUL-terminated, at most namelen-1
 * bytes, longer is an error) and *secret (malloc'd; NULL for SQL NULL), -1 if malformed.
 * Pure; unit-tested. */
int authquery_parse_row(const uint8_t *body, size_t len, char *name, size_t namelen, char **secret);

#endif
