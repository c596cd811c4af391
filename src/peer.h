/* peer.h: peering of processes sharing a port (so_reuseport): the cancel key layout that names
 * the issuing process, and forwarding a CancelRequest to the [peers] entry it names. */
#ifndef TIDEPOOL_PEER_H
#define TIDEPOOL_PEER_H

#include <stdbool.h>
#include <stdint.h>

#include "pool.h"

/* The two lowest bits of the key half: how many more hops a request may be forwarded. */
#define PEER_TTL_MASK 3u

/* Shape fresh random key halves (pid, key are host-order, sent big-endian): the pid's sign bit
 * clear; with peer_id > 0 the pid's 2nd and 3rd bytes hold it (low byte first) and the key's
 * TTL bits are all set. The pid's lowest byte is left alone (it names the worker). */
void peer_key_stamp(uint32_t *pid, uint32_t *key, int peer_id);
/* The peer_id a key's pid half names (0 for keys issued without peering). */
int peer_key_id(uint32_t pid);
/* Whether a requested key half is the one a client was given, whatever hops it made. */
bool peer_key_match(uint32_t given, uint32_t requested);

/* A CancelRequest for another process: forward it (TTL - 1) to that [peers] entry, or drop
 * it (TTL spent, unknown peer). False when it is ours to handle (peering off, our own id, 0). */
bool peer_route_cancel(Worker *w, const char *log_prefix, uint32_t pid, uint32_t key);

/* Forwards of this worker to peer_id: connecting or sent, and waiting for a pool_size slot. */
void peer_count_forwards(const Worker *w, int peer_id, int *active, int *waiting);

/* The host and port a [peers] entry is reached at, and its pool_size, with the defaults. */
const char *peer_host_of(const Config *cf, const PeerDef *pd);
int peer_port_of(const Config *cf, const PeerDef *pd);
int peer_pool_size_of(const Config *cf, const PeerDef *pd);

/* Drop every forward (worker exit). */
void peer_free_all(Worker *w);

#endif
