/* server.h: the server side of the pooler: connecting and logging in to PostgreSQL. */
#ifndef TIDEPOOL_SERVER_H
#define TIDEPOOL_SERVER_H

#include "pool.h"

/* Build "S-0x...: db/user@addr:port " for log lines. */
void server_update_log_prefix(Server *s);

#endif
