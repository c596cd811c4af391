/* unit.h: a minimal unit-test harness; each tests/unit/test_*.c is its own binary. */
#ifndef TIDEPOOL_UNIT_H
#define TIDEPOOL_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_passed;
static int unit_failed;

#define CHECK(cond)                                                                                          \
	do {                                                                                                 \
		if (cond) {                                                                                  \
			unit_passed++;                                                                       \
		} else {                                                                                     \
			unit_failed++;                                                                       \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                      \
		}                                                                                            \
	} while (0)

#define CHECK_STR(a, b)                                                                                      \
	do {                                                                                                 \
		const char *a_ = (a), *b_ = (b);                                                             \
		if (a_ && b_ && strcmp(a_, b_) == 0) {                                                       \
			unit_passed++;                                                                       \
		} else {                                                                                     \
			unit_failed++;                                                                       \
			fprintf(stderr, "FAIL %s:%d: %s == %s (\"%s\" vs \"%s\")\n", __FILE__, __LINE__, #a, \
			        #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                 \
		}                                                                                            \
	} while (0)

/* Print the totals in a form scripts/unit.sh adds up; exit status tells failure. */
#define UNIT_DONE()                                                                                          \
	do {                                                                                                 \
		printf("UNIT %s %d %d\n", __FILE__, unit_passed, unit_failed);                               \
		return unit_failed ? 1 : 0;                                                                  \
	} while (0)

#endif
