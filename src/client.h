/* client.h: the client side of the pooler: login, authentication, forwarding to a server. */
#ifndef TIDEPOOL_CLIENT_H
#define TIDEPOOL_CLIENT_H

#include "pool.h"

/* Authentication succeeded: pick the pool and send the welcome or wait for it.
 * Returns false if the client was closed. */
bool client_login_done(Client *c);

/* Build "C-0x...: db/user@addr:port " for log lines. */
/* The log line prefix of a client, valid until the worker logs the next one. */
const char *client_log_prefix(Client *c);

#endif
