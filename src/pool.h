/* pool.h: the pooler's objects (worker, database, user, pool, client, server), their lists and
 * lifecycle. A connection's state is the list it sits on; client_set_state() and
 * server_set_state() are the only ways to move one. */
#ifndef TIDEPOOL_POOL_H
#define TIDEPOOL_POOL_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "config.h"
#include "list.h"
#include "log.h"
#include "pktbuf.h"
#include "prepared.h"
#include "sbuf.h"
#include "scram.h"
#include "stats.h"

typedef struct App App;
typedef struct Worker Worker;
typedef struct Pool Pool;
typedef struct Client Client;
typedef struct Server Server;
typedef struct Shared Shared;

/* A replication connection (the startup parameter "replication"): none, physical
 * (true/on/yes/1) or logical (database). Such a client gets a server of its own (replication.c). */
typedef enum { REPLICATION_NONE = 0, REPLICATION_PHYSICAL, REPLICATION_LOGICAL } ReplicationType;

/* Parameters that are tracked per connection and re-applied when a client gets a server whose
 * values differ. Names are fixed at start: the five built-ins plus track_extra_parameters. */
#define VAR_MAX 16
typedef struct VarCache {
	char *value[VAR_MAX]; /* heap strings or NULL; index into Worker.var_names */
} VarCache;

/* A [databases] entry at run time. Owned by the worker's database list; survives reloads
 * (updated in place) so clients and pools can point at it. Freed at exit or when removed by
 * a reload once no pool uses it. */
typedef struct Database {
	List head;
	char name[64];
	char *host; /* NULL: Unix socket */
	int port;
	char *dbname; /* server-side database name */
	char *forced_user;
	char *forced_password;
	char *connect_query;
	int pool_size, min_pool_size, reserve_pool_size, pool_mode;
	int max_db_connections, max_db_client_connections;
	int server_lifetime; /* -1 inherit */
	char *startup_client_encoding, *startup_datestyle, *startup_timezone, *startup_application_name;
	bool autodb;  /* created from the "*" entry */
	bool console; /* the admin console's pseudo database (admin.c) */
	bool removed; /* gone from the config; clients get "database removed" */
	bool disabled;
	bool paused;
	usec_t last_used;
	int client_count; /* logged-in and logging-in clients */
	int server_count; /* all servers of all its pools */
	Stats stats;
	char *host_rr_next;     /* round-robin position in a host list (points into host) */
	int host_rr_index;      /* next host of the list (round-robin), or the one in use (disable) */
	int load_balance_hosts; /* LoadBalanceHosts, -1 unset (round-robin) */
	Shared *sh;             /* counts of all workers' copies (worker.c) */
} Database;

/* A user known from auth_file or [users]. Owned by the worker's user list. */
typedef struct User {
	List head;
	char name[64];
	char *secret; /* plain password, md5... or SCRAM secret; NULL when unknown */
	int pool_size, reserve_pool_size, pool_mode;
	int max_user_connections, max_user_client_connections;
	usec_t query_timeout, idle_transaction_timeout, transaction_timeout, client_idle_timeout;
	int client_count;
	int server_count;
	bool from_auth_file;
	bool from_config;
	bool found_by_query; /* auth_query's last lookup returned a row, maybe with no password */
	/* SCRAM pass-through (auth.c, server.c): the ClientKey a client proved against secret,
	 * used to log in to a server that stores the identical secret. */
	bool has_scram_key;
	uint8_t scram_client_key[SCRAM_KEY_LEN];
	Shared *sh; /* counts of all workers' copies (worker.c) */
} User;

/* The server-side parameters a pool learnt at its first login, sent to each new client. */
typedef struct Welcome {
	bool ready;
	int n;
	char *names[64];
	char *values[64];
} Welcome;

/* One (database, user) pair. Owned by the worker's pool list; lists of its connections. */
struct Pool {
	List head;
	Worker *w;
	Database *db;
	User *user;
	List active_clients;    /* CL_ACTIVE: logged in, with or without a server */
	List waiting_clients;   /* CL_WAITING, CL_WAITING_LOGIN: need a server (FIFO) */
	List active_servers;    /* SV_ACTIVE: linked to a client */
	List idle_servers;      /* SV_IDLE: ready */
	List used_servers;      /* SV_USED: released, not yet reset/checked */
	List tested_servers;    /* SV_TESTED: running reset or check query */
	List canceling_servers; /* SV_BEING_CANCELED: released while cancel requests are in flight */
	List new_servers;       /* SV_LOGIN: connecting / logging in */
	Welcome welcome;
	/* welcome values of the tracked parameters by Worker.var_names index (client_var), once
	 * welcome_var_done; they point into welcome, which never changes once ready */
	const char *welcome_var[VAR_MAX];
	bool welcome_var_done;
	usec_t last_login_fail; /* for server_login_retry */
	char last_login_error[256];
	int last_login_sqlstate_is_starting; /* 57P03: keep waiting clients */
	int waiting_count;                   /* clients on waiting_clients */
	int server_count;                    /* servers on any of the five server lists (this worker's) */
	Shared *sh;                          /* the pool key across workers: server slots, lanes, welcome */
	bool is_auth_pool;                   /* auth_query's private pool: its servers never change hands */
	int repl_waiting;                    /* replication clients on waiting_clients (replication.c) */
	bool repl_launching;                 /* repl_launch_waiting() is running: no re-entry */
};

typedef enum {
	CL_FREE = 0,
	CL_LOGIN,         /* worker->login_clients: startup and authentication */
	CL_WAITING_LOGIN, /* pool->waiting_clients: authenticated, pool has no welcome yet */
	CL_WAITING,       /* pool->waiting_clients: wants a server */
	CL_ACTIVE,        /* pool->active_clients */
	CL_JUSTFREE,      /* worker->justfree_clients: closed, freed after the callback returns */
} ClientState;

typedef enum {
	SV_FREE = 0,
	SV_LOGIN,          /* pool->new_servers */
	SV_IDLE,           /* pool->idle_servers */
	SV_ACTIVE,         /* pool->active_servers */
	SV_USED,           /* pool->used_servers */
	SV_TESTED,         /* pool->tested_servers */
	SV_BEING_CANCELED, /* pool->canceling_servers: no new client until its cancels are done */
	SV_JUSTFREE,       /* worker->justfree_servers */
	SV_OUTGOING,       /* worker->outgoing_servers: going to another worker at the next reap */
} ServerState;

typedef enum {
	AUTH_STEP_NONE = 0,
	AUTH_STEP_PASSWORD,     /* waiting for a PasswordMessage */
	AUTH_STEP_SASL_INITIAL, /* waiting for a SASLInitialResponse */
	AUTH_STEP_SASL_FINAL,   /* waiting for the SASLResponse with the client proof */
	AUTH_STEP_DONE,
} AuthStep;

/* A client connection. Allocated by the listener's accept, owned by the worker; freed by
 * pool_reap() after it reached CL_JUSTFREE. */
struct Client {
	List head;
	ClientState state;
	Worker *w;
	SBuf sb;
	Pool *pool;
	Database *db;
	User *user;
	Server *link;
	uint32_t id;
	char username[64];
	char dbname[64];
	char addr[INET6_ADDRSTRLEN + 8];
	int port;
	bool is_unix;
	uint32_t cancel_pid, cancel_key;
	usec_t connect_time;
	usec_t request_time; /* last time it asked for something */
	usec_t wait_start;   /* started waiting for a server */
	usec_t xact_start;
	usec_t query_start;
	bool wait_notified;
	bool counted;   /* included in the db/user client counts */
	bool is_cancel; /* a cancel request connection */
	AuthStep auth_step;
	int auth_method;    /* AUTH_TYPE_* of this login: auth_type, or the HBA rule's (auth.c) */
	bool console_login; /* logging in to the admin console: global auth settings apply */
	bool ident_mapped;  /* an auth_ident_file map let its certificate / OS user in as this user */
	uint8_t salt[4];
	char *password;    /* password the client gave (plain auth), for server login */
	ScramServer *sasl; /* SCRAM exchange in progress (auth.c); wiped and freed after */
	char *tls;         /* "TLSv1.3/cipher..." once on TLS (SHOW CLIENTS tls), else NULL */
	/* Tracked parameters the client set itself (startup packet, SET); NULL until it sets one.
	 * The others are what its pool's welcome told it: read them with client_var(). */
	VarCache *vars;
	char *startup_options_ignored;
	ReplicationType replication; /* its own server, never shared (replication.c) */
	char *repl_options;          /* the startup "options" of a replication client, passed on */
	ClientPsMap ps_map;          /* its named prepared statements */
	/* Admin console (admin.c): access level (ADMIN_*), a command whose reply waits
	 * (PAUSE, SUSPEND, WAIT_CLOSE) and for which database (NULL: all). */
	int admin;
	int admin_wait;
	Database *admin_wait_db;
	usec_t admin_wait_start;
};

/* A server connection. Owned by its pool's lists; freed by pool_reap(). */
struct Server {
	List head;
	ServerState state;
	Worker *w;
	Pool *pool;
	SBuf sb;
	Client *link;
	uint32_t id;
	uint32_t backend_pid, backend_key;
	usec_t connect_time;
	usec_t request_time;
	usec_t idle_since;
	usec_t query_start;
	usec_t xact_start;
	char ready_status;               /* last ReadyForQuery status: I, T, E */
	bool ready;                      /* last packet was ReadyForQuery: nothing in flight */
	int expect_rfq;                  /* ReadyForQuery messages still owed for forwarded requests */
	struct sockaddr_storage peer_sa; /* where it connected, reused for cancel requests */
	socklen_t peer_salen;
	struct evdns_getaddrinfo_request *dns_req;
	bool internal_failed; /* our own query got an ErrorResponse */
	ServerPs *ps;         /* prepared statements and owed replies; NULL until used */
	int welcome_tmp_n;    /* parameters seen during login, before the pool has a welcome */
	char *welcome_tmp_names[64];
	char *welcome_tmp_values[64];
	bool close_needed;
	bool setting_vars;     /* swallowing replies to our own SET */
	bool running_internal; /* reset / check / connect_query in progress */
	bool release_on_flush;
	bool login_done;
	bool used;             /* has served a client: server_lifetime = 0 closes it when released */
	bool is_cancel;        /* a cancel request connection */
	int cancels_in_flight; /* cancel connections still sending for this server */
	Server *cancel_for;    /* a cancel connection: the server it cancels (NULL once that is gone) */
	bool ever_connected;
	int addr_family;
	char addr[INET6_ADDRSTRLEN + 8];
	int port;
	char local_addr[INET6_ADDRSTRLEN + 8];
	int local_port;
	ScramClient scram;
	int scram_step;
	char host[256]; /* the host name or address connected to (TLS SNI, verify-full) */
	void *auth_req; /* an auth_query lookup running on it (authquery.c), or NULL */
	char tls[96];   /* "TLSv1.3/cipher..." once on TLS (SHOW SERVERS tls), else "" */
	VarCache vars;
	uint32_t cancel_target_pid, cancel_target_key;
	bool needs_deallocate;       /* came from another worker with prepared statements we don't track */
	int handoff_to;              /* SV_OUTGOING: the worker it goes to */
	ReplicationType replication; /* dedicated to the replication client it was launched for */
	char log_prefix[160];
};

/* Per-thread context: the event loop, the lists of every object, scratch buffers. One per
 * event-loop thread (worker.c); owned by App, freed at exit. */
struct Worker {
	App *app;
	int idx; /* index in App.workers, also the lane in Shared pools */
	pthread_t thread;
	bool thread_started;
	int wake_fd; /* eventfd: messages and stop-the-world requests */
	struct event wake_ev;
	pthread_mutex_t inbox_lock;
	List inbox;         /* Msg (worker.c), under inbox_lock */
	List auth_pools;    /* auth_query's private pools (authquery.c) */
	List auth_requests; /* auth_query lookups in flight (authquery.c) */
	struct event auth_poll_ev;
	bool auth_poll_ready;
	void *console;       /* the admin console's database, user and pool (admin.c) */
	atomic_bool drained; /* SHUTDOWN WAIT_FOR_SERVERS: no server linked here any more */
	struct event_base *base;
	struct evdns_base *dns;
	List databases;
	List users;
	List pools;
	List login_clients;
	List justfree_clients;
	List justfree_servers;
	List cancel_servers;   /* servers carrying a CancelRequest */
	List peer_forwards;    /* CancelRequests on their way to another process (peer.c) */
	List outgoing_servers; /* SV_OUTGOING: handed to another worker, sent at the next reap */
	int client_count;      /* for max_client_conn */
	uint32_t next_id;
	uint32_t id_step; /* ids of different workers never collide (worker_next_id) */
	int var_count;
	char *var_names[VAR_MAX];
	struct event janitor_ev;
	struct event reap_ev;
	bool reap_scheduled;
	PsRegistry ps_registry;
	BufPool bufpool;          /* connection buffers of pkt_buf bytes, lent while in use */
	uint8_t scratch[8192];    /* building small pooler messages */
	char log_prefix_buf[160]; /* client_log_prefix() */
	uint8_t rand_buf[256];    /* worker_random(): RAND_bytes output not yet used */
	uint32_t rand_left;
};

static inline int pool_mode_of(const Pool *p, const Config *cf)
{
	if (p->user && p->user->pool_mode >= 0)
		return p->user->pool_mode;
	if (p->db->pool_mode >= 0)
		return p->db->pool_mode;
	return cf->pool_mode;
}

usec_t now_usec(void);

static inline uint32_t worker_next_id(Worker *w)
{
	w->next_id += w->id_step;
	return w->next_id;
}

void client_set_state(Client *c, ClientState st);
void server_set_state(Server *s, ServerState st);

/* Pool lookups and the server assignment machinery (pool.c). */
Database *pool_find_database(Worker *w, const char *name);
User *pool_find_user(Worker *w, const char *name);
User *pool_get_user(Worker *w, const char *name); /* creates an unknown (no secret) user */
/* Empty lists and the given owners; for pool_get() and the console's own pool (admin.c). */
void pool_init(Pool *p, Worker *w, Database *db, User *user, Shared *sh);
Pool *pool_get(Worker *w, Database *db, User *user);
int pool_size_of(const Pool *p);
int pool_reserve_of(const Pool *p);
int pool_server_count(const Pool *p);
/* Give the client a server now (true) or queue it and launch one if allowed (false). */
bool pool_find_server(Client *c);
/* A server became free: link it to the oldest waiting client or park it idle. */
void pool_server_ready(Server *s);
/* Unlink client and server after a transaction (or session) ends. */
void pool_release_server(Server *s);
void pool_launch_if_needed(Pool *p);
void pool_schedule_reap(Worker *w);
void pool_reap(Worker *w);
void pool_sync_config(Worker *w, const Config *cf, bool initial);
void pool_fail_waiting(Pool *p, const char *reason, bool login_only);
/* At exit: close every connection and free every object of the worker. */
void pool_free_all(Worker *w);

/* Client side (client.c). client_new takes fd: on failure it is closed and NULL returned. */
Client *client_new(Worker *w, int fd, const struct sockaddr *sa, socklen_t salen, bool is_unix);
void client_close(Client *c, const char *reason);
void client_error_close(Client *c, const char *sqlstate, const char *msg);
void client_send_error(Client *c, const char *severity, const char *sqlstate, const char *msg);
void client_send_notice(Client *c, const char *msg);
void client_server_linked(Client *c);
void client_welcome_ready(Pool *p);
Client *client_find_by_cancel(Worker *w, uint32_t pid, uint32_t key);

/* Server slots of the pool, its database and user, across workers: take all or none. */
bool pool_take_slots(Pool *p, int pool_limit, int db_limit, int user_limit);
void pool_put_slots(Pool *p);
/* A server from another worker arrives (p: our pool of its key, NULL if we have none). */
void pool_adopt_server(Worker *w, Pool *p, Server *s);
/* Another worker's clients wait: give it an idle server if ours are not needed here. */
void pool_give_idle_server(Pool *p);

/* Worker setup shared by the daemon and the fuzz harness (worker.c). */
void worker_init(App *app, Worker *w, int idx);
int worker_open(Worker *w, const char *resolv_conf, char *err, size_t errlen);
void worker_close(Worker *w);
void app_init_shared(App *app);

/* Server side (server.c). */
/* Launch a server for the pool; its slots must be taken (pool_take_slots). */
void server_launch(Pool *p);
/* The same for a replication client: the server is its own from the start (replication.c). */
void server_launch_linked(Pool *p, Client *repl_client);
void server_close(Server *s, const char *reason);
void server_send_query(Server *s, const char *sql);
void server_launch_cancel(Server *target, Client *requester);
bool server_vars_differ(const Server *s, const Client *c);
/* The value of tracked parameter idx the client expects (NULL: none known). */
const char *client_var(const Client *c, int idx);
/* Record a value the client set; false when out of memory. */
bool client_set_var(Client *c, int idx, const char *value);
void pool_index_welcome(Pool *p);
void server_apply_vars(Server *s, Client *c);

void var_set(VarCache *vc, int idx, const char *value);
int var_index(const Worker *w, const char *name);
void var_free(VarCache *vc);

#endif
