/* janitor.h: periodic maintenance: timeouts, pool sizes, idle server cleanup. */
#ifndef TIDEPOOL_JANITOR_H
#define TIDEPOOL_JANITOR_H

#include "pool.h"

void janitor_start(Worker *w);
void janitor_stop(Worker *w);
/* One pass over every object; exposed for tests. */
void janitor_run(Worker *w);

#endif
