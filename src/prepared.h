/* prepared.h: protocol-level named prepared statements across server connections
 * (max_prepared_statements) in transaction and statement pooling. */
#ifndef TIDEPOOL_PREPARED_H
#define TIDEPOOL_PREPARED_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"

typedef struct Client Client;
typedef struct Server Server;
typedef struct Worker Worker;

/* One distinct statement (query text + parameter types). Owned by the worker's registry,
 * reference-counted by client maps, server caches and queued responses; freed at zero. */
typedef struct PreparedStatement {
	struct PreparedStatement *next; /* registry hash chain */
	uint64_t hash;
	uint32_t id;
	int refcount;
	char server_name[24]; /* the name the servers know it by */
	bool clears_all;      /* DEALLOCATE ALL / DISCARD ALL: running it empties the server */
	uint32_t body_len;    /* query\0 int16 nparams int32[nparams] */
	uint8_t *body;
} PreparedStatement;

/* Worker-wide registry of distinct statements. */
typedef struct PsRegistry {
	PreparedStatement **buckets;
	uint32_t nbuckets;
	uint32_t count;
	uint32_t next_id;
} PsRegistry;

/* A client's names for statements. Owned by the Client. */
typedef struct ClientPsEntry {
	struct ClientPsEntry *next;
	PreparedStatement *ps;
	char name[];
} ClientPsEntry;

typedef struct ClientPsMap {
	ClientPsEntry **buckets;
	uint32_t nbuckets;
	uint32_t count;
} ClientPsMap;

/* What a response from the server means for the client. */
typedef enum {
	RESP_FORWARD = 0, /* the client sent this message and gets the reply */
	RESP_FAKE_PARSE,  /* the client gets a ParseComplete we make (server never saw its Parse) */
	RESP_FAKE_CLOSE,  /* likewise CloseComplete */
	RESP_SWALLOW,     /* our own injected message: the reply is not forwarded */
} RespAction;

typedef struct PendingResp {
	uint8_t msg;           /* client message type it answers: P B D E C S Q F */
	uint8_t action;        /* RespAction */
	uint8_t sub;           /* Describe/Close target: 'S' or 'P' */
	PreparedStatement *ps; /* Parse entries: the statement being prepared on the server */
} PendingResp;

#define PS_QUEUE_SIZE 1024

/* A server's prepared statements (LRU) and its queue of replies still owed. Owned by the
 * Server, allocated on first use. */
typedef struct ServerPs {
	PreparedStatement **items;
	uint64_t *used;
	int n;
	int cap; /* room in items/used; the limit is max_prepared_statements at each insert */
	uint64_t tick;
	PendingResp q[PS_QUEUE_SIZE];
	uint32_t q_head;
	uint32_t q_count;
	uint32_t clears_sent; /* DEALLOCATE ALL / DISCARD ALL seen when sent, not answered yet */
	bool error_skip;      /* after an error the server ignores messages until Sync */
	bool client_blocked;
} ServerPs;

void ps_registry_free(PsRegistry *reg);
void ps_client_free(Client *c);
void ps_server_free(Server *s);
/* The server forgot every statement (DISCARD ALL, DEALLOCATE ALL, reconnect). */
void ps_server_forget_all(Server *s);
/* Whether packets of this client/server pair go through the tracker. */
bool ps_tracking(const Server *s);

/* A client packet while linked: handles P B D C S E Q F (rewrites, fakes, queue) and
 * prepares the sbuf. Returns the SBuf callback's result. */
bool ps_client_packet(Client *c, Server *s, PktHdr *pkt);
/* A simple query that bypasses the tracker: DEALLOCATE ALL / DISCARD ALL still empty the
 * client's names and the server's cache. */
void ps_client_simple_query(Client *c, Server *s, const PktHdr *pkt);
/* A client without a server sent Parse(named)+Sync (libpq's PQprepare): remember the statement
 * and answer ParseComplete + ReadyForQuery here, so no server is held for it. True if done
 * (the client may have been closed: a name it already uses). */
bool ps_client_prepare_local(Client *c, PktHdr *pkt);
/* A server reply while linked: updates the queue. Returns true if it goes to the client. */
bool ps_server_reply(Server *s, const PktHdr *pkt);
/* A CommandComplete from a linked server: DEALLOCATE ALL / DISCARD ALL, however they were sent,
 * leave the server only what was parsed after them, and the client none of its names. */
void ps_server_command_complete(Server *s, const PktHdr *pkt);
/* After the server's replies so far were written: emit fake replies now due. */
void ps_flush_fakes(Server *s);
/* Are fake replies waiting at the head of the queue? */
bool ps_fakes_due(const Server *s);
/* No replies owed (safe to release the server). */
bool ps_queue_empty(const Server *s);

#endif
