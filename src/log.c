/* log.c: PgBouncer-format log lines ("2026-11-23 00:57:50.608 UTC [pid] LOG ..."). */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = {"FATAL", "ERROR", "WARNING", "LOG", "DEBUG", "NOISE"};

void log_init(Logger *lg)
{
	memset(lg, 0, sizeof(*lg));
	lg->file_fd = -1;
	lg->pid = (int)getpid();
}

int log_open_file(Logger *lg, const char *path)
{
	if (!path || !*path) {
		log_close(lg);
		return 0;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	log_close(lg);
	lg->file_fd = fd;
	lg->file_path = strdup(path);
	return 0;
}

void log_close(Logger *lg)
{
	if (lg->file_fd >= 0)
		close(lg->file_fd);
	lg->file_fd = -1;
	free(lg->file_path);
	lg->file_path = NULL;
}

/* Write all of buf, retrying on EINTR; a log line is never worth blocking the loop for
 * long, but short writes to a pipe or file are completed. */
static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		buf += n;
		len -= (size_t)n;
	}
}

void log_vmsg(Logger *lg, LogLevel level, const char *prefix, const char *fmt, va_list ap)
{
	if (lg && (int)level > LOG_LEVEL_LOG + (lg->verbose > 0 ? lg->verbose : 0))
		return;
	char line[4096];
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	int n =
	    snprintf(line, sizeof(line), "%04d-%02d-%02d %02d:%02d:%02d.%03d UTC [%d] %s ", tm.tm_year + 1900,
	             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000),
	             lg && lg->pid ? lg->pid : (int)getpid(), level_names[level]);
	if (prefix && n < (int)sizeof(line))
		n += snprintf(line + n, sizeof(line) - n, "%s", prefix);
	if (n < (int)sizeof(line))
		n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (n >= (int)sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (!lg || !lg->quiet)
		write_all(STDERR_FILENO, line, n);
	if (lg && lg->file_fd >= 0)
		write_all(lg->file_fd, line, n);
}

void log_msg(Logger *lg, LogLevel level, const char *prefix, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(lg, level, prefix, fmt, ap);
	va_end(ap);
}
