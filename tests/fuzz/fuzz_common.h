/* fuzz_common.h: helpers shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.c). */
#ifndef TIDEPOOL_FUZZ_COMMON_H
#define TIDEPOOL_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An invariant of the code under test: a violation is a finding, like a sanitizer report. */
#define FUZZ_CHECK(cond)                                                                              \
	do {                                                                                          \
		if (!(cond)) {                                                                        \
			fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                                      \
		}                                                                                     \
	} while (0)

/* A heap copy of exactly size bytes (size 0 gets a 1-byte allocation that is never read), so
 * AddressSanitizer sees any read past the input. */
static inline uint8_t *fuzz_dup(const uint8_t *data, size_t size)
{
	uint8_t *p = malloc(size ? size : 1);
	if (!p)
		abort();
	if (size)
		memcpy(p, data, size);
	return p;
}

/* A heap NUL-terminated copy; embedded NULs are replaced by repl (0 keeps them). */
static inline char *fuzz_strdup(const uint8_t *data, size_t size, char repl)
{
	char *p = malloc(size + 1);
	if (!p)
		abort();
	for (size_t i = 0; i < size; i++)
		p[i] = (data[i] == 0 && repl) ? repl : (char)data[i];
	p[size] = 0;
	return p;
}

/* Does text contain an "iterations" setting above max (PBKDF2 cost would stall fuzzing; the
 * bounds themselves are unit-tested)? Looks at every "iterations" / "i=" followed by digits. */
static inline int fuzz_big_iterations(const char *text, size_t len, long max)
{
	for (size_t i = 0; i + 1 < len; i++) {
		size_t j = 0;
		if ((text[i] == 'i' || text[i] == 'I') && i + 10 <= len &&
		    strncasecmp(text + i, "iterations", 10) == 0)
			j = i + 10;
		else if (text[i] == 'i' && text[i + 1] == '=')
			j = i + 1;
		else
			continue;
		while (j < len && (text[j] == ' ' || text[j] == '\t' || text[j] == '=' || text[j] == ':' ||
				   text[j] == '"' || text[j] == '\''))
			j++;
		long v = 0;
		int digits = 0;
		while (j < len && text[j] >= '0' && text[j] <= '9') {
			if (v < 100000000)
				v = v * 10 + (text[j] - '0');
			j++;
			digits++;
		}
		if (digits && v > max)
			return 1;
	}
	return 0;
}

#endif
