/* netsim.h: an in-process tidepool for the protocol harnesses (fuzz_client, fuzz_server,
 * fuzz_console). A real App/Worker with the daemon's own code (client.c, server.c, pool.c,
 * sbuf.c, auth.c, admin.c, janitor.c) runs on a private libevent base; clients are socketpairs
 * handed to client_new() as if accepted; PostgreSQL is a Unix socket in a temp dir that the
 * harness itself answers, either with a small well-behaved fake server ("auto") or with the
 * fuzzer's bytes. Everything runs on one thread; the loop is pumped with EVLOOP_NONBLOCK and
 * every input is bounded. Each input gets a fresh App (config, pools, event base) and is torn
 * down completely, so LeakSanitizer and the fd check see per-input leaks.
 *
 * The fuzz input is an op stream (see ns_run_ops) preceded by a variant (NsVariant) that picks
 * the configuration: auth_type, pool_mode, pkt_buf, reset/check/connect queries, tiny timeouts
 * (fired by the janitor op), and so on. */
#ifndef TIDEPOOL_FUZZ_NETSIM_H
#define TIDEPOOL_FUZZ_NETSIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NS_MAX_CLI 6
#define NS_MAX_SRV 8

/* Bytes of the configuration variant at the start of every protocol fuzz input. */
#define NS_VARIANT_BYTES 4

typedef struct NsVariant {
	uint8_t b[NS_VARIANT_BYTES];
} NsVariant;

typedef enum {
	NS_DEFAULT_CLIENT = 0, /* an op byte that is no known op: client data */
	NS_DEFAULT_SERVER = 1, /* ... server data */
} NsDefault;

/* Once per process: temp dir, users file, the fake PostgreSQL's listening socket. */
void ns_global_init(void);

/* Start a fresh pooler for one input / tear it down (asserts no fd leaked). */
void ns_begin(const NsVariant *v, bool auto_pg);
void ns_end(void);

/* Interpret an op stream (see netsim.c for the op table). */
void ns_run_ops(const uint8_t *data, size_t size, NsDefault dflt);

/* Building blocks for prologues. */
int ns_client_new(bool is_unix);
void ns_client_login(int ci, const char *user, const char *db, const char *const *params);
void ns_client_query(int ci, const char *sql);
/* ... ending in a comment that marks the client: a row echoing it at another client is a finding. */
void ns_client_query_marked(int ci, const char *sql);
void ns_client_answer_auth(int ci, const char *password);
void ns_client_write(int ci, const void *data, size_t len);
void ns_server_write(int si, const void *data, size_t len);
void ns_pump(int rounds);
void ns_wait_ms(int ms);
int ns_server_count(void);
/* Stop (false) or resume (true) reading what the pooler sends to client ci. */
void ns_client_drain(int ci, bool on);
/* Bytes the pooler sent to client ci so far (for checks). */
size_t ns_client_received(int ci);

#endif
