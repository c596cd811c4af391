/* listener.c: listening sockets and accepting clients. */
#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static void on_accept(evutil_socket_t fd, short what, void *arg);

static int add_listener(App *app, int fd, bool is_unix, const char *path, char *err, size_t errlen)
{
	if (app->n_listeners >= MAX_LISTENERS) {
		snprintf(err, errlen, "too many listen addresses");
		close(fd);
		return -1;
	}
	Listener *l = &app->listeners[app->n_listeners++];
	memset(l, 0, sizeof(*l));
	l->fd = fd;
	l->is_unix = is_unix;
	l->app = app;
	if (path)
		snprintf(l->path, sizeof(l->path), "%s", path);
	return 0;
}

/* A TCP socket for listening. With so_reuseport, a root process that will switch to another
 * user creates it as that user: Linux lets only sockets of one owner share a port, and a
 * PgBouncer (or tidepool) started directly as that user, or with -u (PgBouncer switches before
 * it listens), is the other process of a rolling restart. Binding stays root's. */
static int listen_socket(App *app, int family)
{
	const char *run_as = app->run_as_user ? app->run_as_user : app->cf->user;
	struct passwd *pw = NULL;
	if (app->cf->so_reuseport && geteuid() == 0 && run_as && *run_as)
		pw = getpwnam(run_as);
	if (pw && seteuid(pw->pw_uid) < 0)
		pw = NULL;
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (pw && seteuid(0) < 0) {
		log_msg(&app->log, LOG_LEVEL_FATAL, NULL, "seteuid(0): %s", strerror(errno));
		abort();
	}
	return fd;
}

static int open_tcp(App *app, const char *host, int port, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	char portstr[16];
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%d", port);
	const char *node = strcmp(host, "*") == 0 ? NULL : host;
	int rc = getaddrinfo(node, portstr, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve listen_addr %s: %s", host, gai_strerror(rc));
		return -1;
	}
	int opened = 0;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int fd = listen_socket(app, ai->ai_family);
		if (fd < 0)
			continue;
		int on = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		if (app->cf->so_reuseport)
			setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, app->cf->listen_backlog) < 0) {
			int e = errno;
			close(fd);
			if (node == NULL && ai->ai_family == AF_INET6 && e == EAFNOSUPPORT)
				continue;
			snprintf(err, errlen, "cannot bind to %s:%d: %s", host, port, strerror(e));
			freeaddrinfo(res);
			return -1;
		}
		if (add_listener(app, fd, false, NULL, err, errlen) < 0) {
			freeaddrinfo(res);
			return -1;
		}
		opened++;
	}
	freeaddrinfo(res);
	if (!opened) {
		snprintf(err, errlen, "cannot listen on %s:%d", host, port);
		return -1;
	}
	return 0;
}

static int open_unix(App *app, char *err, size_t errlen)
{
	const Config *cf = app->cf;
	struct sockaddr_un un;
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	int n = snprintf(un.sun_path, sizeof(un.sun_path), "%s/.s.PGSQL.%d", cf->unix_socket_dir,
	                 cf->listen_port);
	if (n >= (int)sizeof(un.sun_path)) {
		snprintf(err, errlen, "unix_socket_dir too long: %s", cf->unix_socket_dir);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/* A stale socket from a crashed run is removed only if nobody answers on it. */
	if (connect(fd, (struct sockaddr *)&un, sizeof(un)) == 0) {
		close(fd);
		snprintf(err, errlen, "another process is listening on %s", un.sun_path);
		return -1;
	}
	close(fd);
	unlink(un.sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&un, sizeof(un)) < 0 ||
	    listen(fd, cf->listen_backlog) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", un.sun_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	chmod(un.sun_path, (mode_t)cf->unix_socket_mode);
	if (cf->unix_socket_group && *cf->unix_socket_group) {
		struct group *gr = getgrnam(cf->unix_socket_group);
		if (!gr || chown(un.sun_path, (uid_t)-1, gr->gr_gid) < 0) {
			snprintf(err, errlen, "cannot set group %s on %s", cf->unix_socket_group,
			         un.sun_path);
			close(fd);
			return -1;
		}
	}
	return add_listener(app, fd, true, un.sun_path, err, errlen);
}

int listener_open_all(App *app, char *err, size_t errlen)
{
	const Config *cf = app->cf;
	if (cf->listen_addr && *cf->listen_addr) {
		char *list = strdup(cf->listen_addr);
		char *save = NULL;
		for (char *tok = strtok_r(list, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
			if (open_tcp(app, tok, cf->listen_port, err, errlen) < 0) {
				free(list);
				return -1;
			}
		}
		free(list);
	}
	if (cf->unix_socket_dir && *cf->unix_socket_dir && open_unix(app, err, errlen) < 0)
		return -1;
	if (app->n_listeners == 0) {
		snprintf(err, errlen, "nothing to listen on: set listen_addr or unix_socket_dir");
		return -1;
	}
	return 0;
}

/* Every worker watches every listening socket: the kernel wakes them all and whoever accepts
 * first gets the connection, which spreads clients across workers without a hand-off. */
void listener_start(App *app)
{
	for (int i = 0; i < app->n_listeners; i++) {
		Listener *l = &app->listeners[i];
		for (int k = 0; k < app->n_workers; k++) {
			ListenerEv *le = &l->evs[k];
			le->l = l;
			le->w = app->workers[k];
			event_assign(&le->ev, le->w->base, l->fd, EV_READ | EV_PERSIST, on_accept, le);
			event_add(&le->ev, NULL);
			le->added = true;
		}
	}
}

/* Control plane (the world stopped, or at exit). */
static void close_one(Listener *l)
{
	if (l->fd < 0)
		return;
	for (int k = 0; k < WORKERS_MAX; k++) {
		if (l->evs[k].added)
			event_del(&l->evs[k].ev);
		l->evs[k].added = false;
	}
	close(l->fd);
	l->fd = -1;
	if (l->path[0])
		unlink(l->path);
}

void listener_close_tcp(App *app)
{
	for (int i = 0; i < app->n_listeners; i++)
		if (!app->listeners[i].is_unix)
			close_one(&app->listeners[i]);
}

void listener_close_all(App *app)
{
	for (int i = 0; i < app->n_listeners; i++)
		close_one(&app->listeners[i]);
}

void listener_resume_if_needed(Worker *w)
{
	App *app = w->app;
	for (int i = 0; i < app->n_listeners; i++) {
		Listener *l = &app->listeners[i];
		ListenerEv *le = &l->evs[w->idx];
		if (l->fd >= 0 && le->w == w && !le->added && app->shutdown == SHUTDOWN_NONE) {
			event_add(&le->ev, NULL);
			le->added = true;
		}
	}
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
	ListenerEv *le = arg;
	Listener *l = le->l;
	App *app = l->app;
	/* A bounded batch per wake-up keeps other connections served during a storm; with several
	 * workers a small one leaves the rest of a burst to the others. */
	int batch = app->n_workers > 1 ? 4 : 64;
	for (int i = 0; i < batch; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int cfd = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
			    errno == ECONNABORTED)
				return;
			if (errno == EMFILE || errno == ENFILE) {
				/* Out of descriptors: stop accepting until the janitor's next pass. */
				log_msg(&app->log, LOG_LEVEL_WARNING, NULL, "accept() failed: %s",
				        strerror(errno));
				event_del(&le->ev);
				le->added = false;
				return;
			}
			log_msg(&app->log, LOG_LEVEL_WARNING, NULL, "accept() failed: %s", strerror(errno));
			return;
		}
		client_new(le->w, cfd, (struct sockaddr *)&ss, len, l->is_unix);
	}
}
