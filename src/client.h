/* client.h: the client side of the pooler: login, authentication, forwarding to a server. */
#ifndef TIDEPOOL_CLIENT_H
#define TIDEPOOL_CLIENT_H

#include "pool.h"

/* Authentication succeeded: pick the pool and send the welcome or wait for it.
 * Returns false if the client was closed. */
bool client_login_done(Client *c);

/* Count a logged-in client against max_db_client_connections and max_user_client_connections
 * of its c->db and c->user (if any). An exempt client (a console admin) is counted but never
 * refused. Returns false if the client was refused and closed. */
bool client_take_slots(Client *c, bool exempt);

/* Build "C-0x...: db/user@addr:port " for log lines. */
/* The log line prefix of a client, valid until the worker logs the next one. */
const char *client_log_prefix(Client *c);

#endif
