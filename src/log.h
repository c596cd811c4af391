/* log.h: PgBouncer-format log lines to stderr and/or a log file. */
#ifndef TIDEPOOL_LOG_H
#define TIDEPOOL_LOG_H

#include <stdarg.h>
#include <stdio.h>

typedef enum {
	LOG_LEVEL_FATAL = 0,
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_LOG,
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_NOISE,
} LogLevel;

/* Process-wide log sink; owned by main, pointed to by the app. Writes are whole lines with a
 * single write(2) each, so several threads may log without interleaving. */
typedef struct Logger {
	int verbose; /* 0: LOG and above; 1: DEBUG; 2: NOISE */
	int quiet;   /* -q: nothing to stderr */
	int file_fd; /* -1 when no logfile */
	char *file_path;
	int pid; /* getpid() cached for the line prefix: set by log_init, again after daemon() */
} Logger;

void log_init(Logger *lg);
/* (Re)open the log file; keeps the old one on failure. Returns 0 or -1 (errno set). */
int log_open_file(Logger *lg, const char *path);
void log_close(Logger *lg);

void log_msg(Logger *lg, LogLevel level, const char *prefix, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void log_vmsg(Logger *lg, LogLevel level, const char *prefix, const char *fmt, va_list ap);

#define log_error(lg, ...)   log_msg((lg), LOG_LEVEL_ERROR, NULL, __VA_ARGS__)
#define log_warning(lg, ...) log_msg((lg), LOG_LEVEL_WARNING, NULL, __VA_ARGS__)
#define log_info(lg, ...)    log_msg((lg), LOG_LEVEL_LOG, NULL, __VA_ARGS__)
#define log_debug(lg, ...)   log_msg((lg), LOG_LEVEL_DEBUG, NULL, __VA_ARGS__)
#define log_noise(lg, ...)   log_msg((lg), LOG_LEVEL_NOISE, NULL, __VA_ARGS__)

#endif
