/* stats.h: per-database counters (SHOW STATS, the periodic stats log line). */
#ifndef TIDEPOOL_STATS_H
#define TIDEPOOL_STATS_H

#include <stdint.h>

/* Counters only grow; averages come from differences between two snapshots. Times are in
 * microseconds. */
typedef struct Stats {
	uint64_t server_assignment_count;
	uint64_t xact_count;
	uint64_t query_count;
	uint64_t client_bytes; /* received from clients */
	uint64_t server_bytes; /* received from servers */
	uint64_t xact_time;
	uint64_t query_time;
	uint64_t wait_time;
	uint64_t client_parse_count;
	uint64_t server_parse_count;
	uint64_t bind_count;
} Stats;

void stats_add(Stats *total, const Stats *s);

/* Per-second rates between two snapshots taken period_usec apart; averages of times per
 * transaction / query. */
void stats_rates(const Stats *now, const Stats *prev, int64_t period_usec, Stats *out);

/* Format the periodic log line's body ("stats: 12 xacts/s, ..."). */
void stats_format_line(const Stats *rates, char *buf, unsigned buflen);

#endif
