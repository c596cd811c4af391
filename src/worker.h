/* worker.h: event-loop threads (the workers setting), the messages between them, the
 * stop-the-world pause the control plane runs under, and the process-wide counters that make
 * connection limits hold across workers. */
#ifndef TIDEPOOL_WORKER_H
#define TIDEPOOL_WORKER_H

#include <stdatomic.h>
#include <stdbool.h>

#include "pool.h"

/* A process-wide counter pair for one database, user or pool key, shared by the per-worker
 * copies of that object. Created on first use, never freed before exit (one per name). */
typedef enum {
	SHARED_DB = 0,
	SHARED_USER,
	SHARED_POOL,
	SHARED_AUTHPOOL, /* auth_query's private pool of a database */
} SharedKind;

/* Per worker and per pool key: since when its clients wait and how many servers idle. Read by
 * other workers to decide on a hand-off; padded so workers do not share a cache line. */
typedef struct PoolLane {
	atomic_int idle;     /* SV_IDLE servers */
	atomic_llong oldest; /* wait_start of the longest-waiting CL_WAITING client, 0: none */
	char pad[48];
} PoolLane;

typedef struct Shared {
	List head;
	SharedKind kind;
	char name[64];  /* database (or user) name */
	char name2[64]; /* pools: user name */
	atomic_int clients;
	atomic_int servers;
	PoolLane *lanes;           /* pools: one per worker */
	atomic_bool welcome_ready; /* pools: a server has logged in and welcome holds its parameters */
	atomic_llong login_ok_at;  /* pools: when a server of any worker last logged in */
	Welcome welcome;           /* pools: written once under App.shared_lock */
} Shared;

/* Find or create the shared counters of a name. Never NULL (aborts on OOM). */
Shared *shared_get(App *app, SharedKind kind, const char *name, const char *name2);
/* Count one more if that stays within limit (limit <= 0: no limit). */
bool shared_take(atomic_int *n, int limit);
void shared_put(atomic_int *n);
/* Publish a pool's welcome for workers whose own servers have not logged in. */
void shared_publish_welcome(App *app, Shared *sh, const Welcome *w);
/* A pool whose clients wait for a welcome takes the published one, if there is one. */
void worker_check_welcome(Pool *p);
/* Fill out with n (<= 64) cryptographically random bytes from a per-worker reserve that
 * RAND_bytes refills 256 bytes at a time: salts and cancel keys cost one call per ~30 logins
 * instead of several. False if OpenSSL has no randomness. */
bool worker_random(Worker *w, void *out, size_t n);
/* Copy the published welcome into a worker's pool; false when there is none yet. */
bool shared_copy_welcome(App *app, Shared *sh, Welcome *out);
void shared_free_all(App *app);

/* Create the worker objects (event base, DNS, buffers, janitor) for app->cf->workers. */
int worker_create_all(App *app, char *err, size_t errlen);
/* Run every worker: workers 1..n-1 in threads, worker 0 on the calling thread; returns when
 * all loops have ended. */
void worker_run_all(App *app);
/* Ask every worker loop to end (any thread). */
void worker_stop_all(App *app);
void worker_destroy_all(App *app);

/* Run fn(worker, arg) on the worker's own thread (any thread may call; fn runs soon). */
void worker_call(Worker *w, void (*fn)(Worker *, void *), void *arg);
/* Give an idle, logged-in server to another worker (the caller's thread owns it until then). */
void worker_send_server(Worker *to, Server *s);
/* Ask a worker to hand over an idle server of the pool key, if it has one to spare. */
void worker_want_server(Worker *to, Shared *key);

/* Pause every other worker at a safe point and return once they are parked: the caller may
 * then read and change any worker's objects as if it ran inside their callbacks. A no-op with
 * one worker. Control-plane only (console commands, reload, signals, the stats timer). */
void worker_stop_world(Worker *self);
void worker_resume_world(Worker *self);

/* The workers setting resolved: 0 means half the online CPU cores, at least one. */
int worker_count_for(int setting);

#endif
