/* app.c: process-wide behaviour: reload, shutdown modes, signals, the stats log line. */
#include "app.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "listener.h"
#include "tls.h"
#include "server.h"
#include "worker.h"

void app_config_warning(void *arg, const char *msg)
{
	App *app = arg;
	log_msg(&app->log, LOG_LEVEL_WARNING, NULL, "%s", msg);
}

/* Replace the auth_file contents; NULL path means no users file. */
int app_load_userlist(App *app, const Config *cf, UserList **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!cf->auth_file || !*cf->auth_file)
		return 0;
	*out = userlist_load(cf->auth_file, app_config_warning, app, err, errlen);
	return *out ? 0 : -1;
}

int app_reload(App *app, char *err, size_t errlen)
{
	/* conffile (SET conffile = ...) names the file the next reload reads. */
	const char *path = app->cf->conffile && *app->cf->conffile ? app->cf->conffile : app->config_path;
	Config *ncf = config_load(path, app_config_warning, app, err, errlen);
	if (!ncf)
		return -1;
	UserList *ul = NULL;
	if (app_load_userlist(app, ncf, &ul, err, errlen) < 0) {
		config_free(ncf);
		return -1;
	}
	/* TLS and HBA files are read now: a bad one keeps the running configuration */
	bool tls_server_changed = false;
	if (auth_prepare(ncf, err, errlen) < 0 || tls_configure(ncf, &tls_server_changed, err, errlen) < 0) {
		auth_abort();
		config_free(ncf);
		if (ul)
			userlist_free(ul);
		return -1;
	}
	auth_commit();
	if (tls_server_changed)
		app_tls_server_changed(app);
	/* Settings that only take effect at start keep their running value, said out loud. */
	for (int i = 0; i < config_n_settings; i++) {
		const Setting *s = &config_settings[i];
		if (!(s->flags & SETTING_NO_RELOAD))
			continue;
		char a[512], b[512];
		config_format_value(app->cf, s, a, sizeof(a));
		config_format_value(ncf, s, b, sizeof(b));
		if (strcmp(a, b) != 0) {
			log_msg(&app->log, LOG_LEVEL_WARNING, NULL,
			        "%s changed from \"%s\" to \"%s\"; it takes effect only after a restart",
			        s->name, a, b);
			/* Keep the running value itself: SHOW CONFIG's text of some settings (the mode
			 * in decimal, as PgBouncer prints it) is not how the file writes them. */
			config_copy_value(ncf, app->cf, s);
		}
	}
	if (!ncf->logfile || !app->log.file_path || strcmp(ncf->logfile, app->log.file_path) != 0 || true) {
		if (log_open_file(&app->log, ncf->logfile) < 0)
			log_msg(&app->log, LOG_LEVEL_WARNING, NULL, "cannot open logfile %s: %s",
			        ncf->logfile, strerror(errno));
	}
	app->log.verbose = ncf->verbose > app->log.verbose ? ncf->verbose : app->log.verbose;
	Config *old = app->cf;
	UserList *old_ul = app->userlist;
	app->cf = ncf;
	app->userlist = ul;
	for (int i = 0; i < app->n_workers; i++)
		pool_sync_config(app->workers[i], ncf, false);
	config_free(old);
	if (old_ul)
		userlist_free(old_ul);
	return 0;
}

/* The server-side TLS settings changed: every server connection is replaced (as RECONNECT
 * does), and a login failure seen with the old settings no longer holds clients back. */
void app_tls_server_changed(App *app)
{
	List *item;
	for (int i = 0; i < app->n_workers; i++) {
		app_reconnect_all_servers(app->workers[i]);
		LIST_FOREACH (item, &app->workers[i]->pools)
			LIST_CONTAINER(item, Pool, head)->last_login_fail = 0;
	}
}

int app_apply_tls(App *app, char *err, size_t errlen)
{
	bool server_changed = false;
	if (tls_configure(app->cf, &server_changed, err, errlen) < 0)
		return -1;
	if (server_changed)
		app_tls_server_changed(app);
	return 0;
}

static int count_linked_servers(Worker *w)
{
	int n = 0;
	List *item;
	LIST_FOREACH (item, &w->pools) {
		Pool *p = LIST_CONTAINER(item, Pool, head);
		n += list_count(&p->active_servers);
	}
	return n;
}

void app_reconnect_all_servers(Worker *w)
{
	List *pi, *si;
	LIST_FOREACH (pi, &w->pools) {
		Pool *p = LIST_CONTAINER(pi, Pool, head);
		List *lists[] = {&p->idle_servers, &p->used_servers,   &p->tested_servers,
		                 &p->new_servers,  &p->active_servers, &p->canceling_servers};
		for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
			LIST_FOREACH (si, lists[i])
				LIST_CONTAINER(si, Server, head)->close_needed = true;
	}
}

void app_close_all_servers(Worker *w, const char *reason)
{
	List *pi, *si, *tmp;
	LIST_FOREACH (pi, &w->pools) {
		Pool *p = LIST_CONTAINER(pi, Pool, head);
		List *lists[] = {&p->idle_servers, &p->used_servers,   &p->tested_servers,
		                 &p->new_servers,  &p->active_servers, &p->canceling_servers};
		for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
			LIST_FOREACH_SAFE (si, tmp, lists[i])
				server_close(LIST_CONTAINER(si, Server, head), reason);
	}
}

/* End every loop once (any worker's thread). */
static void stop_loops(App *app)
{
	if (!atomic_exchange(&app->stopping, true))
		worker_stop_all(app);
}

/* Runs on w's thread: it can look at its own lists; other workers are seen through counters
 * (clients) or their own drained flags (servers), which only go one way during a shutdown. */
void app_check_shutdown(Worker *w)
{
	App *app = w->app;
	if (app->shutdown == SHUTDOWN_WAIT_FOR_CLIENTS && atomic_load(&app->client_total) == 0) {
		stop_loops(app);
	} else if (app->shutdown == SHUTDOWN_WAIT_FOR_SERVERS) {
		if (count_linked_servers(w) == 0)
			atomic_store(&w->drained, true);
		for (int i = 0; i < app->n_workers; i++)
			if (!atomic_load(&app->workers[i]->drained))
				return;
		stop_loops(app);
	}
}

static void start_shutdown(App *app, ShutdownMode mode)
{
	if (app->shutdown != SHUTDOWN_NONE || mode == SHUTDOWN_IMMEDIATE) {
		log_msg(&app->log, LOG_LEVEL_LOG, NULL, "shutting down immediately");
		app->shutdown = SHUTDOWN_IMMEDIATE;
		stop_loops(app);
		return;
	}
	app->shutdown = mode;
	listener_close_tcp(app);
	if (mode == SHUTDOWN_WAIT_FOR_SERVERS) {
		/* Idle servers go now; active ones when their transaction ends. */
		List *pi, *si, *tmp;
		for (int i = 0; i < app->n_workers; i++)
			LIST_FOREACH (pi, &app->workers[i]->pools) {
				Pool *p = LIST_CONTAINER(pi, Pool, head);
				LIST_FOREACH_SAFE (si, tmp, &p->idle_servers)
					server_close(LIST_CONTAINER(si, Server, head),
					             "server shutting down");
			}
	}
	/* the world is stopped: every worker's lists can be read from here */
	for (int i = 0; i < app->n_workers; i++)
		app_check_shutdown(app->workers[i]);
}

/* The console's SHUTDOWN [WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS] (admin.c). */
void app_start_shutdown(App *app, ShutdownMode mode)
{
	start_shutdown(app, mode);
}

static void on_signal(App *app, int sig);

/* Signals arrive on the first worker; what they do touches every worker. */
void app_on_signal(evutil_socket_t sig, short what, void *arg)
{
	App *app = arg;
	worker_stop_world(app->workers[0]);
	on_signal(app, (int)sig);
	worker_resume_world(app->workers[0]);
}

static void on_signal(App *app, int sig)
{
	char err[512];
	switch (sig) {
	case SIGHUP:
		log_msg(&app->log, LOG_LEVEL_LOG, NULL, "got SIGHUP, re-reading config");
		if (app_reload(app, err, sizeof(err)) < 0)
			log_msg(&app->log, LOG_LEVEL_ERROR, NULL, "%s; keeping the running configuration",
			        err);
		break;
	case SIGTERM:
		log_msg(&app->log, LOG_LEVEL_LOG, NULL,
		        "got SIGTERM, shutting down, waiting for all clients to disconnect");
		start_shutdown(app, SHUTDOWN_WAIT_FOR_CLIENTS);
		break;
	case SIGINT:
		log_msg(&app->log, LOG_LEVEL_LOG, NULL,
		        "got SIGINT, shutting down, waiting for all servers connections to be released");
		start_shutdown(app, SHUTDOWN_WAIT_FOR_SERVERS);
		break;
	case SIGQUIT:
		log_msg(&app->log, LOG_LEVEL_LOG, NULL, "got SIGQUIT, fast exit");
		start_shutdown(app, SHUTDOWN_IMMEDIATE);
		break;
	case SIGUSR1:
		log_msg(&app->log, LOG_LEVEL_LOG, NULL, "got SIGUSR1, pausing all activity");
		app->paused = true;
		break;
	case SIGUSR2:
		if (app->shutdown != SHUTDOWN_NONE) {
			log_msg(&app->log, LOG_LEVEL_LOG, NULL, "got SIGUSR2 while shutting down, ignoring");
			break;
		}
		log_msg(&app->log, LOG_LEVEL_LOG, NULL, "got SIGUSR2, continuing from pause");
		app->paused = false;
		break;
	}
}

void app_on_stats(evutil_socket_t fd, short what, void *arg)
{
	App *app = arg;
	Stats total = {0};
	List *item;
	worker_stop_world(app->workers[0]);
	for (int i = 0; i < app->n_workers; i++)
		LIST_FOREACH (item, &app->workers[i]->databases) {
			stats_add(&total, &LIST_CONTAINER(item, Database, head)->stats);
		}
	worker_resume_world(app->workers[0]);
	usec_t now = now_usec();
	if (app->cf->log_stats && app->stats_prev_time) {
		Stats rates;
		char line[512];
		stats_rates(&total, &app->stats_prev, now - app->stats_prev_time, &rates);
		stats_format_line(&rates, line, sizeof(line));
		log_msg(&app->log, LOG_LEVEL_LOG, NULL, "%s", line);
	}
	app->stats_prev = total;
	app->stats_prev_time = now;
}

void app_sock_opts(const App *app, SockOpts *o)
{
	const Config *cf = app->cf;
	o->keepalive = cf->tcp_keepalive;
	o->keepcnt = cf->tcp_keepcnt;
	o->keepidle = cf->tcp_keepidle;
	o->keepintvl = cf->tcp_keepintvl;
	o->user_timeout_ms = cf->tcp_user_timeout;
}
