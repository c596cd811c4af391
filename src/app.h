/* app.h: the process-wide context: configuration, log, users file, listeners, workers. */
#ifndef TIDEPOOL_APP_H
#define TIDEPOOL_APP_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "config.h"
#include "log.h"
#include "pool.h"
#include "stats.h"
#include "userlist.h"

#define TIDEPOOL_VERSION "0.2.0"
/* The PgBouncer release whose behaviour we follow. SHOW VERSION and the first line of
 * --version both print TIDEPOOL_VERSION_LINE: monitoring tools parse a PgBouncer version
 * out of it to choose their queries. */
#define TIDEPOOL_PGBOUNCER_VERSION "1.25.2"
#define TIDEPOOL_VERSION_LINE      "PgBouncer " TIDEPOOL_PGBOUNCER_VERSION " (tidepool " TIDEPOOL_VERSION ")"
#define MAX_LISTENERS              16

typedef enum {
	SHUTDOWN_NONE = 0,
	SHUTDOWN_WAIT_FOR_CLIENTS, /* SIGTERM: stop accepting, exit when the last client leaves */
	SHUTDOWN_WAIT_FOR_SERVERS, /* SIGINT: pause, exit when servers are released */
	SHUTDOWN_IMMEDIATE,
} ShutdownMode;

typedef struct Listener Listener;

/* One worker's watch on a listening socket. */
typedef struct ListenerEv {
	struct event ev;
	bool added;
	Listener *l;
	Worker *w;
} ListenerEv;

/* A listening socket; owned by App. */
struct Listener {
	int fd;
	bool is_unix;
	char path[108];              /* Unix socket path, removed at exit */
	ListenerEv evs[WORKERS_MAX]; /* one per worker */
	App *app;
};

/* Owned by main(); lives for the whole process. */
struct App {
	Config *cf; /* current config; replaced whole on reload */
	char *config_path;
	Logger log;
	UserList *userlist;           /* current auth_file; replaced whole on reload */
	Worker *workers[WORKERS_MAX]; /* event loops (worker.c); workers[0] runs on the main thread */
	int n_workers;
	pthread_mutex_t shared_lock; /* the Shared list and pool welcomes (login path only) */
	List shared;                 /* Shared (worker.c) */
	atomic_int client_total;     /* clients of all workers, for max_client_conn */
	struct {
		pthread_mutex_t m;
		pthread_cond_t cv;
		atomic_bool requested; /* a worker wants the others parked */
		Worker *owner;
		int parked;   /* workers waiting in park_locked() */
		int live;     /* workers whose loop is running */
	} stw;                /* stop the world (worker.c) */
	bool exiting;         /* loops ended: no more hand-offs */
	atomic_bool stopping; /* the loops were asked to end */
	Listener listeners[MAX_LISTENERS];
	int n_listeners;
	ShutdownMode shutdown;
	bool paused;
	struct event sig_events[8];
	int n_sig_events;
	struct event stats_ev;
	Stats stats_prev;
	usec_t stats_prev_time;
	bool daemonize;
	char *run_as_user;
	char *pidfile_written;
};

/* Reload configuration and auth_file; on error the running configuration stays. */
int app_reload(App *app, char *err, size_t errlen);
/* Called when a client or server went away, to finish a pending shutdown. */
void app_check_shutdown(Worker *w);
/* Start a shutdown as the signals do (a second one, or SHUTDOWN_IMMEDIATE, exits at once). */
void app_start_shutdown(App *app, ShutdownMode mode);
/* Config loader warnings go to the log. */
void app_config_warning(void *arg, const char *msg);
/* Load cf's auth_file into *out (NULL when none is set). */
int app_load_userlist(App *app, const Config *cf, UserList **out, char *err, size_t errlen);
void app_on_signal(evutil_socket_t sig, short what, void *arg);
void app_on_stats(evutil_socket_t fd, short what, void *arg);
void app_close_all_servers(Worker *w, const char *reason);
/* Mark every server to be closed once released (RECONNECT), e.g. after TLS settings changed. */
void app_reconnect_all_servers(Worker *w);
void app_tls_server_changed(App *app);
/* Rebuild the TLS contexts from the running configuration (SET of a TLS setting). On error
 * (-1 with err) the previous contexts stay in use. */
int app_apply_tls(App *app, char *err, size_t errlen);
/* The TCP options of the current config. */
void app_sock_opts(const App *app, SockOpts *o);

#endif
