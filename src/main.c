/* main.c: command line, startup, signals, reload and shutdown of the tidepool daemon. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <openssl/opensslv.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "dns.h"
#include "janitor.h"
#include "listener.h"
#include "pool.h"
#include "server.h"

static void usage(FILE *out)
{
	fprintf(out, "tidepool is a PostgreSQL connection pooler, compatible with PgBouncer.\n\n"
		     "Usage:\n"
		     "  tidepool [OPTION]... CONFIG_FILE\n\n"
		     "Options:\n"
		     "  -d, --daemon         run in background (as a daemon)\n"
		     "  -q, --quiet          run quietly (nothing on stderr)\n"
		     "  -u, --user=USERNAME  assume identity of USERNAME\n"
		     "  -v, --verbose        increase verbosity\n"
		     "  -V, --version        show version, then exit\n"
		     "  -h, --help           show this help, then exit\n");
}

static void on_config_warning(void *arg, const char *msg)
{
	App *app = arg;
	log_msg(&app->log, LOG_LEVEL_WARNING, NULL, "%s", msg);
}

/* Replace the auth_file contents; NULL path means no users file. */
static int load_userlist(App *app, const Config *cf, UserList **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!cf->auth_file || !*cf->auth_file)
		return 0;
	*out = userlist_load(cf->auth_file, err, errlen);
	return *out ? 0 : -1;
}

int app_reload(App *app, char *err, size_t errlen)
{
	Config *ncf = config_load(app->config_path, on_config_warning, app, err, errlen);
	if (!ncf)
		return -1;
	UserList *ul = NULL;
	if (load_userlist(app, ncf, &ul, err, errlen) < 0) {
		config_free(ncf);
		return -1;
	}
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
				"%s changed from \"%s\" to \"%s\"; it takes effect only after a restart", s->name,
				a, b);
			config_set(ncf, s->name, a, NULL, 0);
		}
	}
	if (!ncf->logfile || !app->log.file_path || strcmp(ncf->logfile, app->log.file_path) != 0 ||
	    true) {
		if (log_open_file(&app->log, ncf->logfile) < 0)
			log_msg(&app->log, LOG_LEVEL_WARNING, NULL, "cannot open logfile %s: %s", ncf->logfile,
				strerror(errno));
	}
	app->log.verbose = ncf->verbose > app->log.verbose ? ncf->verbose : app->log.verbose;
	Config *old = app->cf;
	UserList *old_ul = app->userlist;
	app->cf = ncf;
	app->userlist = ul;
	pool_sync_config(&app->worker, ncf, false);
	config_free(old);
	if (old_ul)
		userlist_free(old_ul);
	return 0;
}

static int count_linked_servers(Worker *w)
{
	int n = 0;
	List *item;
	LIST_FOREACH(item, &w->pools)
	{
		Pool *p = LIST_CONTAINER(item, Pool, head);
		n += list_count(&p->active_servers);
	}
	return n;
}

static void close_all_servers(Worker *w, const char *reason)
{
	List *pi, *si, *tmp;
	LIST_FOREACH(pi, &w->pools)
	{
		Pool *p = LIST_CONTAINER(pi, Pool, head);
		List *lists[] = {&p->idle_servers, &p->used_servers, &p->tested_servers, &p->new_servers,
				 &p->active_servers};
		for (size_t i = 0; i < 5; i++)
			LIST_FOREACH_SAFE(si, tmp, lists[i])
		server_close(LIST_CONTAINER(si, Server, head), reason);
	}
}

void app_check_shutdown(App *app)
{
	Worker *w = &app->worker;
	if (app->shutdown == SHUTDOWN_WAIT_FOR_CLIENTS && w->client_count == 0)
		event_base_loopbreak(w->base);
	else if (app->shutdown == SHUTDOWN_WAIT_FOR_SERVERS && count_linked_servers(w) == 0)
		event_base_loopbreak(w->base);
}

static void start_shutdown(App *app, ShutdownMode mode)
{
	if (app->shutdown != SHUTDOWN_NONE || mode == SHUTDOWN_IMMEDIATE) {
		log_msg(&app->log, LOG_LEVEL_LOG, NULL, "shutting down immediately");
		app->shutdown = SHUTDOWN_IMMEDIATE;
		event_base_loopbreak(app->worker.base);
		return;
	}
	app->shutdown = mode;
	listener_close_tcp(app);
	if (mode == SHUTDOWN_WAIT_FOR_SERVERS) {
		/* Idle servers go now; active ones when their transaction ends. */
		List *pi, *si, *tmp;
		LIST_FOREACH(pi, &app->worker.pools)
		{
			Pool *p = LIST_CONTAINER(pi, Pool, head);
			LIST_FOREACH_SAFE(si, tmp, &p->idle_servers)
			server_close(LIST_CONTAINER(si, Server, head), "server shutting down");
		}
	}
	app_check_shutdown(app);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	App *app = arg;
	char err[512];
	switch (sig) {
	case SIGHUP:
		log_msg(&app->log, LOG_LEVEL_LOG, NULL, "got SIGHUP, re-reading config");
		if (app_reload(app, err, sizeof(err)) < 0)
			log_msg(&app->log, LOG_LEVEL_ERROR, NULL, "%s; keeping the running configuration", err);
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

static void on_stats(evutil_socket_t fd, short what, void *arg)
{
	App *app = arg;
	Stats total = {0};
	List *item;
	LIST_FOREACH(item, &app->worker.databases)
	{
		stats_add(&total, &LIST_CONTAINER(item, Database, head)->stats);
	}
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

static int write_pidfile(App *app)
{
	const char *path = app->cf->pidfile;
	if (!path || !*path)
		return 0;
	FILE *f = fopen(path, "r");
	if (f) {
		long pid = 0;
		if (fscanf(f, "%ld", &pid) == 1 && pid > 0 && pid != getpid() && kill((pid_t)pid, 0) == 0) {
			fclose(f);
			log_msg(&app->log, LOG_LEVEL_FATAL, NULL, "pidfile %s: process %ld is still running",
				path, pid);
			return -1;
		}
		fclose(f);
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		log_msg(&app->log, LOG_LEVEL_FATAL, NULL, "cannot write pidfile %s: %s", path,
			strerror(errno));
		return -1;
	}
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (write(fd, buf, (size_t)n) != n) {
		close(fd);
		return -1;
	}
	close(fd);
	app->pidfile_written = strdup(path);
	return 0;
}

static int change_user(App *app, const char *user)
{
	struct passwd *pw = getpwnam(user);
	if (!pw) {
		log_msg(&app->log, LOG_LEVEL_FATAL, NULL, "user %s not found", user);
		return -1;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
		log_msg(&app->log, LOG_LEVEL_FATAL, NULL, "cannot change to user %s: %s", user,
			strerror(errno));
		return -1;
	}
	return 0;
}

static void worker_init(App *app, Worker *w)
{
	memset(w, 0, sizeof(*w));
	w->app = app;
	list_init(&w->databases);
	list_init(&w->users);
	list_init(&w->pools);
	list_init(&w->login_clients);
	list_init(&w->justfree_clients);
	list_init(&w->justfree_servers);
	list_init(&w->cancel_servers);
}

static void add_signal(App *app, int sig)
{
	struct event *ev = &app->sig_events[app->n_sig_events++];
	event_assign(ev, app->worker.base, sig, EV_SIGNAL | EV_PERSIST, on_signal, app);
	event_add(ev, NULL);
}

static void log_fd_limits(App *app)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		log_msg(&app->log, LOG_LEVEL_LOG, NULL,
			"kernel file descriptor limit: %llu (hard: %llu); max_client_conn: %d, max expected fd use: %d",
			(unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
			app->cf->max_client_conn, app->cf->max_client_conn + 12);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"daemon", no_argument, NULL, 'd'},  {"quiet", no_argument, NULL, 'q'},
		{"verbose", no_argument, NULL, 'v'}, {"user", required_argument, NULL, 'u'},
		{"version", no_argument, NULL, 'V'}, {"help", no_argument, NULL, 'h'},
		{"reboot", no_argument, NULL, 'R'},  {NULL, 0, NULL, 0}};
	App app;
	memset(&app, 0, sizeof(app));
	log_init(&app.log);
	int opt;
	while ((opt = getopt_long(argc, argv, "dqvu:VhR", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			app.daemonize = true;
			break;
		case 'q':
			app.log.quiet = 1;
			break;
		case 'v':
			app.log.verbose++;
			break;
		case 'u':
			app.run_as_user = optarg;
			break;
		case 'V':
			printf("tidepool %s\nlibevent %s\n%s\n", TIDEPOOL_VERSION, event_get_version(),
			       OPENSSL_VERSION_TEXT);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		case 'R':
			fprintf(stderr, "tidepool: -R (online restart) is not supported\n");
			return 1;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return 1;
	}
	app.config_path = realpath(argv[optind], NULL);
	if (!app.config_path)
		app.config_path = strdup(argv[optind]);

	char err[1024];
	app.cf = config_load(app.config_path, on_config_warning, &app, err, sizeof(err));
	if (!app.cf) {
		log_msg(&app.log, LOG_LEVEL_ERROR, NULL, "%s", err);
		log_msg(&app.log, LOG_LEVEL_FATAL, NULL, "cannot load config file");
		return 1;
	}
	if (app.cf->verbose > app.log.verbose)
		app.log.verbose = app.cf->verbose;
	const char *run_as = app.run_as_user ? app.run_as_user : app.cf->user;
	if (geteuid() == 0 && (!run_as || !*run_as)) {
		log_msg(&app.log, LOG_LEVEL_FATAL, NULL,
			"tidepool should not run as root: use -u USER or the user setting");
		return 1;
	}
	if (app.daemonize && (!app.cf->pidfile || !*app.cf->pidfile)) {
		log_msg(&app.log, LOG_LEVEL_FATAL, NULL, "-d needs the pidfile setting");
		return 1;
	}
	if (log_open_file(&app.log, app.cf->logfile) < 0) {
		log_msg(&app.log, LOG_LEVEL_FATAL, NULL, "cannot open logfile %s: %s", app.cf->logfile,
			strerror(errno));
		return 1;
	}
	if (load_userlist(&app, app.cf, &app.userlist, err, sizeof(err)) < 0) {
		log_msg(&app.log, LOG_LEVEL_FATAL, NULL, "cannot load auth_file: %s", err);
		return 1;
	}
	if (listener_open_all(&app, err, sizeof(err)) < 0) {
		log_msg(&app.log, LOG_LEVEL_FATAL, NULL, "%s", err);
		return 1;
	}
	if (run_as && *run_as && geteuid() == 0) {
		/* The listening sockets are open, and the pidfile is written by the final user so
		 * that it can remove it at exit. */
		for (int i = 0; i < app.n_listeners; i++)
			if (app.listeners[i].is_unix) {
				struct passwd *pw = getpwnam(run_as);
				if (pw && chown(app.listeners[i].path, pw->pw_uid, pw->pw_gid) < 0)
					log_msg(&app.log, LOG_LEVEL_WARNING, NULL, "chown %s: %s",
						app.listeners[i].path, strerror(errno));
			}
		if (change_user(&app, run_as) < 0)
			return 1;
	}
	if (app.daemonize && daemon(1, 0) < 0) {
		log_msg(&app.log, LOG_LEVEL_FATAL, NULL, "daemon: %s", strerror(errno));
		return 1;
	}
	if (app.daemonize)
		app.log.quiet = 1;
	if (write_pidfile(&app) < 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);

	Worker *w = &app.worker;
	worker_init(&app, w);
	w->base = event_base_new();
	if (!w->base) {
		log_msg(&app.log, LOG_LEVEL_FATAL, NULL, "cannot create event loop");
		return 1;
	}
	w->dns = dns_create(w->base, app.cf->resolv_conf);
	pool_sync_config(w, app.cf, true);
	janitor_start(w);
	listener_start(&app);
	int sigs[] = {SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		add_signal(&app, sigs[i]);
	if (app.cf->stats_period > 0) {
		struct timeval tv = {(time_t)(app.cf->stats_period / USEC_PER_SEC),
				     (suseconds_t)(app.cf->stats_period % USEC_PER_SEC)};
		event_assign(&app.stats_ev, w->base, -1, EV_PERSIST, on_stats, &app);
		event_add(&app.stats_ev, &tv);
	}
	log_fd_limits(&app);
	for (int i = 0; i < app.n_listeners; i++) {
		if (app.listeners[i].is_unix)
			log_msg(&app.log, LOG_LEVEL_LOG, NULL, "listening on unix:%s", app.listeners[i].path);
	}
	if (app.cf->listen_addr && *app.cf->listen_addr)
		log_msg(&app.log, LOG_LEVEL_LOG, NULL, "listening on %s:%d", app.cf->listen_addr,
			app.cf->listen_port);
	log_msg(&app.log, LOG_LEVEL_LOG, NULL, "process up: tidepool %s, libevent %s (%s), tls: %s",
		TIDEPOOL_VERSION, event_get_version(), event_base_get_method(w->base),
		OPENSSL_VERSION_TEXT);

	event_base_dispatch(w->base);

	listener_close_all(&app);
	close_all_servers(w, app.shutdown ? "server shutting down" : "exit");
	pool_reap(w);
	if (app.pidfile_written)
		unlink(app.pidfile_written);
	log_msg(&app.log, LOG_LEVEL_LOG, NULL, "shutdown complete");
	return 0;
}
