/* app.h: the process-wide context: configuration, log, users file, listeners, workers. */
#ifndef TIDEPOOL_APP_H
#define TIDEPOOL_APP_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdbool.h>

#include "config.h"
#include "log.h"
#include "pool.h"
#include "stats.h"
#include "userlist.h"

#define TIDEPOOL_VERSION "0.1.0"
#define MAX_LISTENERS    16

typedef enum {
	SHUTDOWN_NONE = 0,
	SHUTDOWN_WAIT_FOR_CLIENTS, /* SIGTERM: stop accepting, exit when the last client leaves */
	SHUTDOWN_WAIT_FOR_SERVERS, /* SIGINT: pause, exit when servers are released */
	SHUTDOWN_IMMEDIATE,
} ShutdownMode;

/* A listening socket; owned by App. */
typedef struct Listener {
	int fd;
	bool is_unix;
	char path[108]; /* Unix socket path, removed at exit */
	struct event ev;
	bool ev_added;
	App *app;
} Listener;

/* Owned by main(); lives for the whole process. */
struct App {
	Config *cf; /* current config; replaced whole on reload */
	char *config_path;
	Logger log;
	UserList *userlist; /* current auth_file; replaced whole on reload */
	Worker worker;      /* one event loop for now; more with the workers setting */
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
void app_check_shutdown(App *app);
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
/* The TCP options of the current config. */
void app_sock_opts(const App *app, SockOpts *o);

#endif
