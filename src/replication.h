/* replication.h: replication connections (physical and logical). Each such client gets a server
 * connection of its own, opened with the same replication parameter, never shared or reset;
 * both are closed together. Everything after login, including CopyBoth streaming, is forwarded
 * unchanged. */
#ifndef TIDEPOOL_REPLICATION_H
#define TIDEPOOL_REPLICATION_H

#include "pool.h"

/* The value of the startup parameter "replication": false when it is not one PostgreSQL
 * accepts (a boolean or "database"). */
bool repl_parse_value(const char *value, ReplicationType *out);

/* How SHOW CLIENTS / SHOW SERVERS name it: none, physical, logical. */
const char *repl_type_name(ReplicationType t);

/* How the "login attempt" log line names it: no, yes, database. */
const char *repl_log_name(ReplicationType t);

/* The client is authenticated and has its pool: wait for a server of its own. Returns false
 * (the client waits, or was closed). */
bool repl_client_login(Client *c);

/* Launch servers for the pool's replication clients that have none, within the pool, database
 * and user limits; idle normal servers are evicted to make room. */
void repl_launch_waiting(Pool *p);

/* The extra startup parameters of a replication server: replication, the client's options
 * and its tracked parameters. */
void repl_put_startup_params(const Server *s, PktBuf *pb);

/* The dedicated server logged in: tell the client what it told us and start forwarding. */
void repl_server_login_ok(Server *s);

/* Forward a packet between a replication client and its server (either direction). */
bool repl_forward_packet(SBuf *from, SBuf *to, PktHdr *pkt);

#endif
