/* main.c: tidepool-entrypoint, the container's entrypoint: generate pgbouncer.ini and
 * userlist.txt from the environment (envconf.c), write them atomically with mode 0600, then
 * execv the daemon so that tini's only child is the pooler. Also the image's healthcheck.
 * Links libc, OpenSSL's hashing and config.c only: none of the daemon's networking code. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdarg.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "envconf.h"

#define PROG "tidepool-entrypoint"
#define DEFAULT_CONFIG "/etc/pgbouncer/pgbouncer.ini"
#define DEFAULT_DAEMON "/usr/local/bin/tidepool"
#define DEFAULT_RUN_AS "tidepool"
#define VERSION "0.1.0"

extern char **environ;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static const char *env_or(const char *name, const char *def)
{
	const char *v = getenv(name);
	return v && *v ? v : def;
}

/* ---- file helpers ---- */

static char *read_file(void *arg, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;
	(void)arg;
	if (!f) {
		snprintf(err, errlen, "%s", strerror(errno));
		return NULL;
	}
	do {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap);
			if (!buf)
				abort();
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
	} while (n > 0);
	if (ferror(f)) {
		snprintf(err, errlen, "%s", strerror(errno));
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	buf[len] = 0;
	if (strlen(buf) != len) {
		snprintf(err, errlen, "the file contains a NUL byte");
		free(buf);
		return NULL;
	}
	return buf;
}

static int random_bytes(void *arg, unsigned char *buf, size_t n)
{
	(void)arg;
	return RAND_bytes(buf, (int)n) == 1 ? 0 : -1;
}

/* Does path start with our marker line? */
static int is_ours(const char *path)
{
	char line[64];
	size_t n = strlen(EP_MARKER);
	FILE *f = fopen(path, "r");
	int ours;
	if (!f)
		return 0;
	ours = fgets(line, sizeof(line), f) && strncmp(line, EP_MARKER, n) == 0;
	fclose(f);
	return ours;
}

static int file_is_mounted(void *arg, const char *path)
{
	(void)arg;
	return access(path, F_OK) == 0 && !is_ours(path);
}

/* Write text to path atomically: temp file in the same directory, fsync, rename, fsync dir. */
static int write_atomic(const char *path, const char *text, mode_t mode, uid_t uid, gid_t gid, int chown_it)
{
	char *tmp, *dir, *slash;
	size_t len = strlen(text), off = 0;
	int fd, dfd;

	if (asprintf(&tmp, "%s.XXXXXX", path) < 0)
		abort();
	/* mkstemp: O_EXCL, mode 0600 */
	if ((fd = mkstemp(tmp)) < 0) {
		int e = errno;
		say("cannot write %s: %s%s", path, strerror(e),
		    e == EROFS || e == EACCES || e == EPERM
			    ? " (read-only or foreign directory: mount a complete file there, or set TIDEPOOL_CONFIG "
			      "to a writable path)"
			    : "");
		free(tmp);
		return -1;
	}
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		off += (size_t)n;
	}
	if (fchmod(fd, mode) < 0 || (chown_it && fchown(fd, uid, gid) < 0) || fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto fail;
	dir = strdup(path);
	if (!dir)
		abort();
	slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = 0;
	dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	free(dir);
	free(tmp);
	return 0;
fail:
	say("cannot write %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	return -1;
}

/* Print text line by line after a prefix, skipping our comment header. */
static void print_indented(FILE *out, const char *prefix, const char *text)
{
	const char *line = text;
	while (*line) {
		const char *nl = strchr(line, '\n');
		int n = nl ? (int)(nl - line) : (int)strlen(line);
		if (strncmp(line, EP_MARKER, strlen(EP_MARKER)) != 0 && strncmp(line, "; To use your own", 17) != 0 &&
		    n > 0)
			fprintf(out, "%s%.*s\n", prefix, n, line);
		line += n + (nl ? 1 : 0);
	}
}

static void print_lines(const char *text, const char *kind)
{
	const char *line = text;
	while (*line) {
		const char *nl = strchr(line, '\n');
		int n = nl ? (int)(nl - line) : (int)strlen(line);
		if (n > 0)
			fprintf(stderr, PROG ": %s%.*s\n", kind, n, line);
		line += n + (nl ? 1 : 0);
	}
}

/* ---- healthcheck ---- */

static int wait_fd(int fd, short events, int ms)
{
	struct pollfd p = {fd, events, 0};
	int rc;
	do
		rc = poll(&p, 1, ms);
	while (rc < 0 && errno == EINTR);
	return rc;
}

/* Connect, send an SSLRequest and expect 'N' or 'S': the pooler's protocol handler answered.
 * Needs no password and logs nothing in the daemon (the client never logs in). */
static int probe(const struct sockaddr *sa, socklen_t salen, const char *what)
{
	static const unsigned char ssl_request[8] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
	char answer = 0;
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), err = 0;
	socklen_t elen = sizeof(err);
	if (fd < 0) {
		say("healthcheck: socket: %s", strerror(errno));
		return 1;
	}
	if (connect(fd, sa, salen) < 0 && errno != EINPROGRESS) {
		say("healthcheck: cannot connect to %s: %s", what, strerror(errno));
		close(fd);
		return 1;
	}
	if (wait_fd(fd, POLLOUT, 3000) <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err) {
		say("healthcheck: cannot connect to %s: %s", what, err ? strerror(err) : "timeout");
		close(fd);
		return 1;
	}
	if (write(fd, ssl_request, sizeof(ssl_request)) != (ssize_t)sizeof(ssl_request) ||
	    wait_fd(fd, POLLIN, 3000) <= 0 || read(fd, &answer, 1) != 1 || (answer != 'N' && answer != 'S')) {
		say("healthcheck: %s accepted the connection but did not answer like a pooler", what);
		close(fd);
		return 1;
	}
	close(fd);
	return 0;
}

static int healthcheck(const char *config_path)
{
	char err[1024], what[300];
	Config *cf = config_load(config_path, NULL, NULL, err, sizeof(err));
	int port = cf ? cf->listen_port : 6432, rc;
	const char *addr = cf && cf->listen_addr && *cf->listen_addr ? cf->listen_addr : NULL;

	if (cf && !addr && cf->unix_socket_dir && *cf->unix_socket_dir) { /* Unix socket only */
		struct sockaddr_un un;
		memset(&un, 0, sizeof(un));
		un.sun_family = AF_UNIX;
		snprintf(un.sun_path, sizeof(un.sun_path), "%s/.s.PGSQL.%d", cf->unix_socket_dir, port);
		snprintf(what, sizeof(what), "%s", un.sun_path);
		config_free(cf);
		return probe((struct sockaddr *)&un, sizeof(un), what);
	}
	{
		/* the first listen address; * and 0.0.0.0 are reached on 127.0.0.1, :: on ::1 */
		char first[256] = "127.0.0.1";
		struct sockaddr_in in4;
		struct sockaddr_in6 in6;
		if (addr) {
			size_t n = strcspn(addr, ", ");
			snprintf(first, sizeof(first), "%.*s", (int)n, addr);
			if (strcmp(first, "*") == 0 || strcmp(first, "0.0.0.0") == 0)
				snprintf(first, sizeof(first), "127.0.0.1");
			else if (strcmp(first, "::") == 0)
				snprintf(first, sizeof(first), "::1");
		}
		if (cf)
			config_free(cf);
		snprintf(what, sizeof(what), "%s port %d", first, port);
		memset(&in4, 0, sizeof(in4));
		memset(&in6, 0, sizeof(in6));
		if (inet_pton(AF_INET, first, &in4.sin_addr) == 1) {
			in4.sin_family = AF_INET;
			in4.sin_port = htons((uint16_t)port);
			rc = probe((struct sockaddr *)&in4, sizeof(in4), what);
		} else if (inet_pton(AF_INET6, first, &in6.sin6_addr) == 1) {
			in6.sin6_family = AF_INET6;
			in6.sin6_port = htons((uint16_t)port);
			rc = probe((struct sockaddr *)&in6, sizeof(in6), what);
		} else { /* a host name: the loopback answers for any local address */
			in4.sin_family = AF_INET;
			in4.sin_port = htons((uint16_t)port);
			in4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			snprintf(what, sizeof(what), "127.0.0.1 port %d", port);
			rc = probe((struct sockaddr *)&in4, sizeof(in4), what);
		}
	}
	return rc;
}

/* ---- ~/.pgpass, so that psql inside the container needs no prompt ---- */

static void pgpass_field(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == ':' || *s == '\\')
			fputc('\\', f);
		fputc(*s, f);
	}
}

static void write_pgpass(const EpResult *r, uid_t uid, gid_t gid, int chown_it, const char *home)
{
	char *path, *text = NULL;
	size_t len = 0;
	FILE *f;
	if (!home || !*home || r->n_users == 0)
		return;
	f = open_memstream(&text, &len);
	if (!f)
		return;
	fprintf(f, "# written by " PROG " at container start (TIDEPOOL_PGPASS=0 turns this off)\n");
	for (int i = 0; i < r->n_users; i++) {
		const char *hosts[] = {"localhost", "127.0.0.1", "::1"};
		for (int h = 0; h < 3; h++) {
			fprintf(f, "%s:%d:*:", hosts[h], r->listen_port);
			pgpass_field(f, r->users[i].name);
			fputc(':', f);
			pgpass_field(f, r->users[i].password);
			fputc('\n', f);
		}
	}
	fclose(f);
	if (asprintf(&path, "%s/.pgpass", home) < 0)
		abort();
	if (access(home, W_OK) == 0)
		write_atomic(path, text, 0600, uid, gid, chown_it);
	memset(text, 0, len);
	free(text);
	free(path);
}

/* ---- main ---- */

static void usage_error(const char *arg)
{
	say("unknown option %s (see --help)", arg);
	exit(2);
}

int main(int argc, char **argv)
{
	const char *config_path = env_or("TIDEPOOL_CONFIG", DEFAULT_CONFIG);
	const char *daemon = env_or("TIDEPOOL_DAEMON", DEFAULT_DAEMON);
	int print_config = 0, first_daemon_arg = 1;
	char *mounted = NULL, err[1024];
	EpIo io = {read_file, random_bytes, file_is_mounted, NULL};
	EpInput in;
	EpResult res;
	uid_t uid = 0;
	gid_t gid = 0;
	int as_root = geteuid() == 0;
	const char *run_as = env_or("TIDEPOOL_RUN_AS", DEFAULT_RUN_AS);

	if (argc > 1) {
		const char *a = argv[1];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			char *h = ep_help_text(0);
			fputs(h, stdout);
			free(h);
			return 0;
		}
		if (strcmp(a, "--help-markdown") == 0) {
			char *h = ep_help_text(1);
			fputs(h, stdout);
			free(h);
			return 0;
		}
		if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
			printf(PROG " " VERSION "\n");
			return 0;
		}
		if (strcmp(a, "--healthcheck") == 0)
			return healthcheck(config_path);
		if (strcmp(a, "--print-config") == 0) {
			print_config = 1;
			first_daemon_arg = 2;
		} else if (a[0] != '-') { /* another command: run it instead (docker run IMAGE sh) */
			execvp(a, argv + 1);
			say("cannot run %s: %s", a, strerror(errno));
			return 127;
		}
	}
	for (int i = first_daemon_arg; i < argc; i++)
		if (argv[i][0] != '-' || strcmp(argv[i], "-d") == 0 || strcmp(argv[i], "--daemon") == 0)
			usage_error(argv[i]); /* -d would leave tini with no child */

	/* a config file we did not write is the user's: used as-is, never rewritten */
	if (file_is_mounted(NULL, config_path)) {
		mounted = read_file(NULL, config_path, err, sizeof(err));
		if (!mounted) {
			say("cannot read %s: %s", config_path, err);
			return 1;
		}
	}
	memset(&in, 0, sizeof(in));
	in.envp = environ;
	in.config_path = config_path;
	in.mounted_config = mounted;
	if (ep_generate(&in, &io, &res) < 0) {
		print_lines(res.warnings, "warning: ");
		print_lines(res.errors, "error: ");
		ep_result_free(&res);
		free(mounted);
		return 2;
	}
	print_lines(res.warnings, "warning: ");

	if (print_config) {
		char *m = mounted ? ep_mask_ini(mounted) : NULL;
		printf("; %s%s\n", config_path, mounted ? " (mounted, used as-is)" : " (generated)");
		fputs(m ? m : res.ini_masked, stdout);
		free(m);
		if (res.auth_file) {
			char *ul = NULL;
			if (!res.userlist)
				ul = read_file(NULL, res.auth_file, err, sizeof(err));
			printf("\n; %s%s\n", res.auth_file, res.userlist ? " (generated)" : ul ? " (mounted, used as-is)" : " (missing)");
			if (res.userlist_masked) {
				fputs(res.userlist_masked, stdout);
			} else if (ul) {
				char *mu = ep_mask_userlist(ul);
				fputs(mu, stdout);
				free(mu);
			}
			if (ul) {
				memset(ul, 0, strlen(ul));
				free(ul);
			}
		}
		ep_result_free(&res);
		free(mounted);
		return 0;
	}

	if (as_root) {
		struct passwd *pw = getpwnam(run_as);
		if (!pw) {
			say("running as root, and user %s (TIDEPOOL_RUN_AS) does not exist", run_as);
			return 1;
		}
		uid = pw->pw_uid;
		gid = pw->pw_gid;
	}
	umask(077);
	if (res.ini) {
		if (write_atomic(config_path, res.ini, 0600, uid, gid, as_root) < 0)
			return 1;
		say("wrote %s (passwords masked):", config_path);
		print_indented(stderr, PROG ":   ", res.ini_masked);
	} else {
		say("using mounted %s as-is", config_path);
	}
	if (res.userlist) {
		if (write_atomic(res.auth_file, res.userlist, 0600, uid, gid, as_root) < 0)
			return 1;
		say("wrote %s (secrets masked):", res.auth_file);
		print_indented(stderr, PROG ":   ", res.userlist_masked);
	} else if (res.auth_file && access(res.auth_file, F_OK) == 0) {
		say("using mounted %s as-is", res.auth_file);
	}
	if (strcmp(env_or("TIDEPOOL_PGPASS", "1"), "0") != 0) {
		const char *home = getenv("HOME");
		struct passwd *pw = as_root ? getpwnam(run_as) : NULL;
		write_pgpass(&res, uid, gid, as_root, pw ? pw->pw_dir : home);
	}
	ep_result_free(&res);
	free(mounted);

	/* The daemon needs no secret from the environment: drop them before exec. */
	for (int again = 1; again;) {
		again = 0;
		for (char **e = environ; *e; e++) {
			char name[256];
			size_t n = strcspn(*e, "=");
			snprintf(name, sizeof(name), "%.*s", (int)(n < sizeof(name) ? n : sizeof(name) - 1), *e);
			if (ep_is_secret_var(name)) {
				unsetenv(name);
				again = 1;
				break;
			}
		}
	}
	{
		int nargs = argc - first_daemon_arg;
		char **args = calloc((size_t)nargs + 5, sizeof(char *));
		int k = 0;
		if (!args)
			abort();
		args[k++] = (char *)daemon;
		if (as_root) {
			args[k++] = "-u";
			args[k++] = (char *)run_as;
		}
		for (int i = first_daemon_arg; i < argc; i++)
			args[k++] = argv[i];
		args[k++] = (char *)config_path;
		args[k] = NULL;
		say("starting %s", daemon);
		fflush(stderr);
		execv(daemon, args);
		say("cannot exec %s: %s", daemon, strerror(errno));
		free(args);
	}
	return 127;
}
