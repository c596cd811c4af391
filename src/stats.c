/* stats.c: per-database counters and the periodic stats line. */
#include "stats.h"

#include <inttypes.h>
#include <stdio.h>

void stats_add(Stats *t, const Stats *s)
{
	t->server_assignment_count += s->server_assignment_count;
	t->xact_count += s->xact_count;
	t->query_count += s->query_count;
	t->client_bytes += s->client_bytes;
	t->server_bytes += s->server_bytes;
	t->xact_time += s->xact_time;
	t->query_time += s->query_time;
	t->wait_time += s->wait_time;
	t->client_parse_count += s->client_parse_count;
	t->server_parse_count += s->server_parse_count;
	t->bind_count += s->bind_count;
}

static uint64_t per_sec(uint64_t now, uint64_t prev, int64_t period_usec)
{
	if (period_usec <= 0 || now < prev)
		return 0;
	return (uint64_t)((now - prev) * 1000000.0 / (double)period_usec);
}

static uint64_t avg(uint64_t num_now, uint64_t num_prev, uint64_t den_now, uint64_t den_prev)
{
	uint64_t den = den_now - den_prev;
	return den ? (num_now - num_prev) / den : 0;
}

void stats_rates(const Stats *n, const Stats *p, int64_t period_usec, Stats *o)
{
	o->server_assignment_count =
	    per_sec(n->server_assignment_count, p->server_assignment_count, period_usec);
	o->xact_count = per_sec(n->xact_count, p->xact_count, period_usec);
	o->query_count = per_sec(n->query_count, p->query_count, period_usec);
	o->client_bytes = per_sec(n->client_bytes, p->client_bytes, period_usec);
	o->server_bytes = per_sec(n->server_bytes, p->server_bytes, period_usec);
	o->client_parse_count = per_sec(n->client_parse_count, p->client_parse_count, period_usec);
	o->server_parse_count = per_sec(n->server_parse_count, p->server_parse_count, period_usec);
	o->bind_count = per_sec(n->bind_count, p->bind_count, period_usec);
	o->xact_time = avg(n->xact_time, p->xact_time, n->xact_count, p->xact_count);
	o->query_time = avg(n->query_time, p->query_time, n->query_count, p->query_count);
	/* PgBouncer averages wait time over the server assignments of the period. */
	o->wait_time =
	    avg(n->wait_time, p->wait_time, n->server_assignment_count, p->server_assignment_count);
}

void stats_format_line(const Stats *r, char *buf, unsigned buflen)
{
	snprintf(buf, buflen,
	         "stats: %" PRIu64 " xacts/s, %" PRIu64 " queries/s, %" PRIu64 " client parses/s, %" PRIu64
	         " server parses/s, %" PRIu64 " binds/s, in %" PRIu64 " B/s, out %" PRIu64
	         " B/s, xact %" PRIu64 " us, query %" PRIu64 " us, wait %" PRIu64 " us",
	         r->xact_count, r->query_count, r->client_parse_count, r->server_parse_count, r->bind_count,
	         r->client_bytes, r->server_bytes, r->xact_time, r->query_time, r->wait_time);
}
