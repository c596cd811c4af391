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

#include "admin.h"
#include "app.h"
#include "auth.h"
#include "dns.h"
#include "janitor.h"
#include "tls.h"
#include "worker.h"
#include "listener.h"
#include "pool.h"
#include "server.h"

/* The README's settings table, printed from the settings table itself. */
static void print_settings_table(void)
{
	printf("| setting | default | changeable at reload | supported | meaning |\n");
	printf("|---|---|---|---|---|\n");
	for (int i = 0; i < config_n_settings; i++) {
		const Setting *s = &config_settings[i];
		char sup[256];
		printf("| %s | %s | %s | %s | %s |\n", s->name,
		       s->default_value && *s->default_value ? s->default_value : "(unset)",
		       (s->flags & SETTING_NO_RELOAD) ? "no" : "yes",
		       config_describe_support(s, sup, sizeof(sup)), s->help);
	}
}

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
	             "      --list-settings  print the supported settings as a Markdown table\n"
	             "  -h, --help           show this help, then exit\n");
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

static void add_signal(App *app, int sig)
{
	struct event *ev = &app->sig_events[app->n_sig_events++];
	event_assign(ev, app->workers[0]->base, sig, EV_SIGNAL | EV_PERSIST, app_on_signal, app);
	event_add(ev, NULL);
}

static void log_fd_limits(App *app)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		log_msg(&app->log, LOG_LEVEL_LOG, NULL,
		        "kernel file descriptor limit: %llu (hard: %llu); max_client_conn: %d, max expected "
		        "fd use: %d",
		        (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
		        app->cf->max_client_conn, app->cf->max_client_conn + 12);
}

/* Everything after the command line; main() frees what it allocated whatever this returns. */
static int run(App *app)
{
	/* Signals that arrive before the loop's handlers exist wait instead of killing us:
	 * the listening socket accepts connections before the loop runs. */
	sigset_t early;
	sigemptyset(&early);
	int sigs[] = {SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(&early, sigs[i]);
	sigprocmask(SIG_BLOCK, &early, NULL);
	char err[1024];
	app->cf = config_load(app->config_path, app_config_warning, app, err, sizeof(err));
	if (!app->cf) {
		log_msg(&app->log, LOG_LEVEL_ERROR, NULL, "%s", err);
		log_msg(&app->log, LOG_LEVEL_FATAL, NULL, "cannot load config file");
		return 1;
	}
	if (app->cf->verbose > app->log.verbose)
		app->log.verbose = app->cf->verbose;
	const char *run_as = app->run_as_user ? app->run_as_user : app->cf->user;
	if (geteuid() == 0 && (!run_as || !*run_as)) {
		log_msg(&app->log, LOG_LEVEL_FATAL, NULL,
		        "tidepool should not run as root: use -u USER or the user setting");
		return 1;
	}
	if (app->daemonize && (!app->cf->pidfile || !*app->cf->pidfile)) {
		log_msg(&app->log, LOG_LEVEL_FATAL, NULL, "-d needs the pidfile setting");
		return 1;
	}
	if (log_open_file(&app->log, app->cf->logfile) < 0) {
		log_msg(&app->log, LOG_LEVEL_FATAL, NULL, "cannot open logfile %s: %s", app->cf->logfile,
		        strerror(errno));
		return 1;
	}
	if (app_load_userlist(app, app->cf, &app->userlist, err, sizeof(err)) < 0) {
		log_msg(&app->log, LOG_LEVEL_FATAL, NULL, "cannot load auth_file: %s", err);
		return 1;
	}
	if (auth_prepare(app->cf, err, sizeof(err)) < 0 ||
	    tls_configure(app->cf, NULL, err, sizeof(err)) < 0) {
		log_msg(&app->log, LOG_LEVEL_FATAL, NULL, "%s", err);
		return 1;
	}
	auth_commit();
	if (listener_open_all(app, err, sizeof(err)) < 0) {
		log_msg(&app->log, LOG_LEVEL_FATAL, NULL, "%s", err);
		return 1;
	}
	if (run_as && *run_as && geteuid() == 0) {
		/* The listening sockets are open, and the pidfile is written by the final user so
		 * that it can remove it at exit. */
		for (int i = 0; i < app->n_listeners; i++)
			if (app->listeners[i].is_unix) {
				struct passwd *pw = getpwnam(run_as);
				if (pw && chown(app->listeners[i].path, pw->pw_uid, pw->pw_gid) < 0)
					log_msg(&app->log, LOG_LEVEL_WARNING, NULL, "chown %s: %s",
					        app->listeners[i].path, strerror(errno));
			}
		if (change_user(app, run_as) < 0)
			return 1;
	}
	if (app->daemonize && daemon(1, 0) < 0) {
		log_msg(&app->log, LOG_LEVEL_FATAL, NULL, "daemon: %s", strerror(errno));
		return 1;
	}
	if (app->daemonize) {
		app->log.quiet = 1;
		app->log.pid = (int)getpid(); /* daemon() forked */
	}
	if (write_pidfile(app) < 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);

	app_init_shared(app);
	if (worker_create_all(app, err, sizeof(err)) < 0) {
		log_msg(&app->log, LOG_LEVEL_FATAL, NULL, "%s", err);
		return 1;
	}
	Worker *w = app->workers[0];
	admin_init(app);
	listener_start(app);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		add_signal(app, sigs[i]);
	sigprocmask(SIG_UNBLOCK, &early, NULL);
	if (app->cf->stats_period > 0) {
		struct timeval tv = {(time_t)(app->cf->stats_period / USEC_PER_SEC),
		                     (suseconds_t)(app->cf->stats_period % USEC_PER_SEC)};
		event_assign(&app->stats_ev, w->base, -1, EV_PERSIST, app_on_stats, app);
		event_add(&app->stats_ev, &tv);
	}
	log_fd_limits(app);
	for (int i = 0; i < app->n_listeners; i++) {
		if (app->listeners[i].is_unix)
			log_msg(&app->log, LOG_LEVEL_LOG, NULL, "listening on unix:%s",
			        app->listeners[i].path);
	}
	if (app->cf->listen_addr && *app->cf->listen_addr)
		log_msg(&app->log, LOG_LEVEL_LOG, NULL, "listening on %s:%d", app->cf->listen_addr,
		        app->cf->listen_port);
	log_msg(&app->log, LOG_LEVEL_LOG, NULL,
	        "process up: tidepool %s, libevent %s (%s), tls: %s, workers: %d", TIDEPOOL_VERSION,
	        event_get_version(), event_base_get_method(w->base), OPENSSL_VERSION_TEXT, app->n_workers);

	worker_run_all(app);

	/* Every loop has ended and every thread is joined: this thread owns all objects now. */
	app->exiting = true;
	listener_close_all(app);
	for (int i = 0; i < app->n_workers; i++)
		app_close_all_servers(app->workers[i], app->shutdown ? "server shutting down" : "exit");
	for (int i = 0; i < app->n_sig_events; i++)
		event_del(&app->sig_events[i]);
	if (event_initialized(&app->stats_ev))
		event_del(&app->stats_ev);
	admin_cleanup(app);
	worker_destroy_all(app);
	shared_free_all(app);
	tls_cleanup();
	auth_cleanup();
	if (app->pidfile_written)
		unlink(app->pidfile_written);
	log_msg(&app->log, LOG_LEVEL_LOG, NULL, "shutdown complete");
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {{"daemon", no_argument, NULL, 'd'},
	                                         {"quiet", no_argument, NULL, 'q'},
	                                         {"verbose", no_argument, NULL, 'v'},
	                                         {"user", required_argument, NULL, 'u'},
	                                         {"version", no_argument, NULL, 'V'},
	                                         {"help", no_argument, NULL, 'h'},
	                                         {"reboot", no_argument, NULL, 'R'},
	                                         {"list-settings", no_argument, NULL, 'L'},
	                                         {NULL, 0, NULL, 0}};
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
			printf("%s\nlibevent %s\n%s\n", TIDEPOOL_VERSION_LINE, event_get_version(),
			       OPENSSL_VERSION_TEXT);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		case 'L':
			print_settings_table();
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

	int rc = run(&app);
	if (app.cf)
		config_free(app.cf);
	if (app.userlist)
		userlist_free(app.userlist);
	free(app.config_path);
	free(app.pidfile_written);
	log_close(&app.log);
	return rc;
}
