/* sandbox.c: linked into every harness. The code under test opens files by name (%include in
 * an ini, auth_file, conffile); fuzzed text can name /dev/zero, a FIFO or /proc/self/mem, which
 * would hang or exhaust memory instead of finding bugs. fopen() here refuses anything that is
 * not a regular file (EACCES) and otherwise behaves as libc's (and AddressSanitizer's). */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

FILE *__interceptor_fopen(const char *path, const char *mode) __attribute__((weak));

int fuzz_sandbox_refusals;

FILE *fopen(const char *path, const char *mode)
{
	static FILE *(*real)(const char *, const char *);
	struct stat st;
	if (path && stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		fuzz_sandbox_refusals++;
		errno = EACCES;
		return NULL;
	}
	if (__interceptor_fopen)
		return __interceptor_fopen(path, mode);
	if (!real)
		real = (FILE * (*)(const char *, const char *)) dlsym(RTLD_NEXT, "fopen");
	return real(path, mode);
}
