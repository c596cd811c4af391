/* admin_show.c: the admin console's result sets: every SHOW of docs/compatibility.md with PgBouncer's
 * exact column names, order and wire types, the RowDescription/DataRow builders, and the
 * stats-period snapshots behind the avg_ columns. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "admin.h"
#include "worker.h"
#include "app.h"
#include "client.h"
#include "peer.h"
#include "replication.h"

/* ---------------------------------------------------------------- replies (for admin.c too) */

bool admin_send_or_close(Client *c, PktBuf *pb)
{
	int rc = pb->failed ? -1 : sbuf_send_gen(&c->sb, pb->buf, pb->pos);
	if (pb->dynamic)
		pktbuf_free(pb);
	if (rc < 0) {
		client_close(c, "client send failed");
		return false;
	}
	return true;
}

/* An ErrorResponse or NoticeResponse with an optional DETAIL. */
void admin_write_message(PktBuf *pb, uint8_t type, const char *severity, const char *sqlstate,
                         const char *msg, const char *detail)
{
	pktbuf_start(pb, type);
	pktbuf_put_byte(pb, 'S');
	pktbuf_put_string(pb, severity);
	pktbuf_put_byte(pb, 'V');
	pktbuf_put_string(pb, severity);
	pktbuf_put_byte(pb, 'C');
	pktbuf_put_string(pb, sqlstate);
	pktbuf_put_byte(pb, 'M');
	pktbuf_put_string(pb, msg);
	if (detail) {
		pktbuf_put_byte(pb, 'D');
		pktbuf_put_string(pb, detail);
	}
	pktbuf_put_byte(pb, 0);
	pktbuf_finish(pb);
}

/* PgBouncer's admin_error: "ERROR msg" in the log, the pooler error line, ERROR + ReadyForQuery. */
bool admin_error_reply(Client *c, const char *sqlstate, const char *msg, const char *detail)
{
	App *app = c->w->app;
	PktBuf pb;
	log_msg(&app->log, LOG_LEVEL_ERROR, NULL, "%s", msg);
	if (app->cf->log_pooler_errors)
		log_msg(&app->log, LOG_LEVEL_WARNING, client_log_prefix(c), "pooler error: %s", msg);
	pktbuf_init_dynamic(&pb, 128);
	admin_write_message(&pb, 'E', "ERROR", sqlstate, msg, detail);
	pktbuf_write_ready(&pb, 'I');
	return admin_send_or_close(c, &pb);
}

bool admin_error(Client *c, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return admin_error_reply(c, "08P01", msg, NULL);
}

bool admin_send_result(Client *c, PktBuf *pb, const char *tag)
{
	pktbuf_write_command_complete(pb, tag);
	pktbuf_write_ready(pb, 'I');
	return admin_send_or_close(c, pb);
}

/* ---------------------------------------------------------------- RowDescription / DataRow */

void admin_row_description(PktBuf *pb, const char *types, const char *const *names)
{
	size_t n = strlen(types);
	pktbuf_start(pb, 'T');
	pktbuf_put_int16(pb, (uint16_t)n);
	for (size_t i = 0; i < n; i++) {
		uint32_t oid = 25;
		int16_t len = -1;
		switch (types[i]) {
		case 'i':
			oid = 23;
			len = 4;
			break;
		case 'q':
			oid = 20;
			len = 8;
			break;
		case 'N':
			oid = 1700;
			break;
		case 'b':
			oid = 17;
			break;
		}
		pktbuf_put_string(pb, names[i]);
		pktbuf_put_int32(pb, 0); /* table */
		pktbuf_put_int16(pb, 0); /* column */
		pktbuf_put_int32(pb, oid);
		pktbuf_put_int16(pb, (uint16_t)len);
		pktbuf_put_int32(pb, 0xffffffffu); /* typmod -1 */
		pktbuf_put_int16(pb, 0);           /* text format */
	}
	pktbuf_finish(pb);
}

static void put_text(PktBuf *pb, const char *s)
{
	if (!s) {
		pktbuf_put_int32(pb, 0xffffffffu);
		return;
	}
	size_t n = strlen(s);
	pktbuf_put_int32(pb, (uint32_t)n);
	pktbuf_put_bytes(pb, s, n);
}

void admin_data_row(PktBuf *pb, const char *types, ...)
{
	char buf[64];
	size_t n = strlen(types);
	va_list ap;
	va_start(ap, types);
	pktbuf_start(pb, 'D');
	pktbuf_put_int16(pb, (uint16_t)n);
	for (size_t i = 0; i < n; i++) {
		switch (types[i]) {
		case 'i':
			snprintf(buf, sizeof(buf), "%d", va_arg(ap, int));
			put_text(pb, buf);
			break;
		case 'q':
			snprintf(buf, sizeof(buf), "%lld", (long long)va_arg(ap, int64_t));
			put_text(pb, buf);
			break;
		case 'N':
			snprintf(buf, sizeof(buf), "%llu", (unsigned long long)va_arg(ap, uint64_t));
			put_text(pb, buf);
			break;
		case 'T': {
			usec_t t = va_arg(ap, usec_t);
			if (t) {
				admin_format_time(t, buf, sizeof(buf));
				put_text(pb, buf);
			} else {
				put_text(pb, NULL);
			}
			break;
		}
		default: /* s, b */
			put_text(pb, va_arg(ap, const char *));
			break;
		}
	}
	va_end(ap);
	pktbuf_finish(pb);
}

/* Stats snapshots per database name, taken every stats_period (PgBouncer's older/newer). */
typedef struct DbSnap {
	char name[64];
	Stats older, newer;
} DbSnap;
static DbSnap *s_snaps;
static int s_nsnaps, s_capsnaps;
static usec_t s_old_stamp, s_new_stamp;
static struct event s_stats_ev;

/* ---------------------------------------------------------------- stats averages */

static DbSnap *snap_for(const char *name, bool create)
{
	for (int i = 0; i < s_nsnaps; i++)
		if (strcmp(s_snaps[i].name, name) == 0)
			return &s_snaps[i];
	if (!create)
		return NULL;
	if (s_nsnaps == s_capsnaps) {
		int ncap = s_capsnaps ? s_capsnaps * 2 : 16;
		DbSnap *n = realloc(s_snaps, (size_t)ncap * sizeof(*n));
		if (!n)
			return NULL;
		s_snaps = n;
		s_capsnaps = ncap;
	}
	DbSnap *s = &s_snaps[s_nsnaps++];
	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", name);
	return s;
}

static void arm_stats_timer(App *app)
{
	usec_t period = app->cf->stats_period > 0 ? app->cf->stats_period : 60 * USEC_PER_SEC;
	struct timeval tv = {(time_t)(period / USEC_PER_SEC), (suseconds_t)(period % USEC_PER_SEC)};
	event_add(&s_stats_ev, &tv);
}

static void admin_stats_refresh(evutil_socket_t fd, short what, void *arg)
{
	App *app = arg;
	List *item;
	s_old_stamp = s_new_stamp;
	s_new_stamp = now_usec();
	worker_stop_world(app->workers[0]);
	for (int i = 0; i < s_nsnaps; i++) {
		s_snaps[i].older = s_snaps[i].newer;
		memset(&s_snaps[i].newer, 0, sizeof(s_snaps[i].newer));
	}
	for (int w = 0; w < app->n_workers; w++) {
		LIST_FOREACH (item, &app->workers[w]->databases) {
			Database *db = LIST_CONTAINER(item, Database, head);
			DbSnap *s = snap_for(db->name, true);
			if (s)
				stats_add(&s->newer, &db->stats);
		}
		Database *console = admin_database(app->workers[w]);
		DbSnap *s = console ? snap_for(console->name, true) : NULL;
		if (s)
			stats_add(&s->newer, &console->stats);
	}
	worker_resume_world(app->workers[0]);
	arm_stats_timer(app);
}

void admin_stats_start(App *app)
{
	s_new_stamp = now_usec();
	s_old_stamp = s_new_stamp - USEC_PER_SEC; /* as PgBouncer: the first period counts from 1 s ago */
	event_assign(&s_stats_ev, app->workers[0]->base, -1, 0, admin_stats_refresh, app);
	arm_stats_timer(app);
}

static Config *s_defaults; /* SHOW CONFIG's default column */

void admin_stats_stop(void)
{
	if (event_initialized(&s_stats_ev))
		event_del(&s_stats_ev);
	free(s_snaps);
	s_snaps = NULL;
	s_nsnaps = s_capsnaps = 0;
	config_free(s_defaults);
	s_defaults = NULL;
}

void admin_stats_for(App *app, const char *dbname, Stats *total, Stats *avg)
{
	Stats older;
	List *item;
	memset(total, 0, sizeof(*total));
	memset(&older, 0, sizeof(older));
	for (int w = 0; w < app->n_workers; w++) {
		LIST_FOREACH (item, &app->workers[w]->databases) {
			Database *db = LIST_CONTAINER(item, Database, head);
			if (dbname && strcmp(db->name, dbname) != 0)
				continue;
			stats_add(total, &db->stats);
		}
		/* the console counts its commands too (SHOW TOTALS includes them, as PgBouncer) */
		Database *console = admin_database(app->workers[w]);
		if (console && (!dbname || strcmp(console->name, dbname) == 0))
			stats_add(total, &console->stats);
	}
	for (int i = 0; i < s_nsnaps; i++)
		if (!dbname || strcmp(s_snaps[i].name, dbname) == 0)
			stats_add(&older, &s_snaps[i].older);
	stats_rates(total, &older, now_usec() - s_old_stamp, avg);
}

/* ---------------------------------------------------------------- time */

void admin_format_time(usec_t mono, char *buf, size_t buflen)
{
	struct timespec rt, mt;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mt);
	int64_t offset = ((int64_t)rt.tv_sec - (int64_t)mt.tv_sec) * USEC_PER_SEC +
	                 ((int64_t)rt.tv_nsec - (int64_t)mt.tv_nsec) / 1000;
	time_t t = (time_t)((mono + offset) / USEC_PER_SEC);
	gmtime_r(&t, &tm);
	strftime(buf, buflen, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* ---------------------------------------------------------------- sorted views */

/* With several workers, each has its own copy of every database, user and pool; the console
 * shows one row per name, summing the copies (the world is stopped while it reads them). */
static int cmp_pool(const void *a, const void *b)
{
	const Pool *x = *(Pool *const *)a, *y = *(Pool *const *)b;
	int c = strcmp(x->db->name, y->db->name);
	if (!c)
		c = strcmp(x->user->name, y->user->name);
	if (!c)
		c = (int)x->db->console - (int)y->db->console;
	return c ? c : x->w->idx - y->w->idx;
}

static bool same_pool(const Pool *x, const Pool *y)
{
	return x->db->console == y->db->console && strcmp(x->db->name, y->db->name) == 0 &&
	       strcmp(x->user->name, y->user->name) == 0;
}

/* Every pool of every worker, the consoles' included, sorted by database, user and worker
 * (PgBouncer's pool_list order); copies of one pool are next to each other. */
static Pool **sorted_pools(App *app, int *count)
{
	int n = 0, i = 0;
	for (int k = 0; k < app->n_workers; k++)
		n += list_count(&app->workers[k]->pools) + 1;
	Pool **v = malloc((size_t)(n ? n : 1) * sizeof(*v));
	List *item;
	if (!v) {
		*count = 0;
		return NULL;
	}
	for (int k = 0; k < app->n_workers; k++) {
		Worker *w = app->workers[k];
		LIST_FOREACH (item, &w->pools)
			v[i++] = LIST_CONTAINER(item, Pool, head);
		v[i++] = admin_pool(w);
	}
	qsort(v, (size_t)i, sizeof(*v), cmp_pool);
	*count = i;
	return v;
}

/* End of the group of copies that starts at v[i]. */
static int group_end(Pool **v, int n, int i)
{
	int j = i + 1;
	while (j < n && same_pool(v[i], v[j]))
		j++;
	return j;
}

static int cmp_db(const void *a, const void *b)
{
	const Database *x = *(Database *const *)a, *y = *(Database *const *)b;
	int c = strcmp(x->name, y->name);
	return c ? c : (int)x->console - (int)y->console;
}

static bool same_db(const Database *x, const Database *y)
{
	return x->console == y->console && strcmp(x->name, y->name) == 0;
}

static bool db_has_pool(App *app, const Database *db)
{
	List *pi;
	if (db->console)
		return true;
	for (int k = 0; k < app->n_workers; k++)
		LIST_FOREACH (pi, &app->workers[k]->pools)
			if (LIST_CONTAINER(pi, Pool, head)->db == db)
				return true;
	return false;
}

/* Databases of every worker sorted by name, with the consoles'; copies are adjacent.
 * with_pool: only those that have a pool (the rows of SHOW STATS, which PgBouncer builds
 * from its pool list). */
static Database **sorted_dbs(App *app, bool with_pool, int *count)
{
	int n = 0, i = 0;
	for (int k = 0; k < app->n_workers; k++)
		n += list_count(&app->workers[k]->databases) + 1;
	Database **v = malloc((size_t)(n ? n : 1) * sizeof(*v));
	List *item;
	if (!v) {
		*count = 0;
		return NULL;
	}
	for (int k = 0; k < app->n_workers; k++) {
		Worker *w = app->workers[k];
		LIST_FOREACH (item, &w->databases) {
			Database *db = LIST_CONTAINER(item, Database, head);
			if (!db->removed)
				v[i++] = db;
		}
		v[i++] = admin_database(w);
	}
	qsort(v, (size_t)i, sizeof(*v), cmp_db);
	/* one entry per name: the first copy; with_pool asks whether any copy has a pool */
	int out = 0;
	for (int a = 0; a < i;) {
		int b = a + 1;
		bool keep = !with_pool;
		for (int k = a; k < i && same_db(v[a], v[k]); k++) {
			b = k + 1;
			keep |= db_has_pool(app, v[k]);
		}
		if (keep)
			v[out++] = v[a];
		a = b;
	}
	*count = out;
	return v;
}

/* Sum a counter over every worker's copy of a database. */
static void db_counts(App *app, const Database *db, int *servers, int *clients)
{
	List *item;
	*servers = *clients = 0;
	for (int k = 0; k < app->n_workers; k++) {
		Worker *w = app->workers[k];
		if (db->console) {
			*clients += admin_database(w)->client_count;
			continue;
		}
		LIST_FOREACH (item, &w->databases) {
			Database *d = LIST_CONTAINER(item, Database, head);
			if (same_db(d, db)) {
				*servers += d->server_count;
				*clients += d->client_count;
			}
		}
	}
}

static const char *lb_hosts_of(const Config *cf, const Database *db)
{
	static const char *const names[] = {"round-robin", "disable"};
	if (!db->host || !strchr(db->host, ','))
		return NULL;
	const DatabaseDef *def = config_find_database(cf, db->name, 0);
	if (!def && db->autodb)
		def = config_find_database(cf, "*", 0);
	int v = def ? def->load_balance_hosts : -1;
	return names[v == LOAD_BALANCE_DISABLE ? 1 : 0];
}

/* ---------------------------------------------------------------- SHOW DATABASES / POOLS */

static int show_databases(Client *c)
{
	static const char *const cols[] = {"name",
	                                   "host",
	                                   "port",
	                                   "database",
	                                   "force_user",
	                                   "pool_size",
	                                   "min_pool_size",
	                                   "reserve_pool_size",
	                                   "server_lifetime",
	                                   "pool_mode",
	                                   "load_balance_hosts",
	                                   "max_connections",
	                                   "current_connections",
	                                   "max_client_connections",
	                                   "current_client_connections",
	                                   "paused",
	                                   "disabled"};
	static const char types[] = "ssissiiiissiiiiii";
	const Config *cf = c->w->app->cf;
	PktBuf pb;
	int n;
	Database **dbs = sorted_dbs(c->w->app, false, &n);
	pktbuf_init_dynamic(&pb, 1024);
	admin_row_description(&pb, types, cols);
	for (int i = 0; i < n; i++) {
		Database *db = dbs[i];
		bool is_admin = db->console;
		int servers, clients;
		db_counts(c->w->app, db, &servers, &clients);
		usec_t lifetime = db->server_lifetime > 0 ? (usec_t)db->server_lifetime * USEC_PER_SEC
		                                          : cf->server_lifetime;
		admin_data_row(
		    &pb, types, db->name, db->host, is_admin ? cf->listen_port : db->port,
		    db->dbname ? db->dbname : db->name, db->forced_user,
		    db->pool_size >= 0 ? db->pool_size : cf->default_pool_size,
		    db->min_pool_size >= 0 ? db->min_pool_size : cf->min_pool_size,
		    db->reserve_pool_size >= 0 ? db->reserve_pool_size : cf->reserve_pool_size,
		    (int)(lifetime / USEC_PER_SEC), config_pool_mode_name(db->pool_mode), lb_hosts_of(cf, db),
		    db->max_db_connections >= 0 ? db->max_db_connections : cf->max_db_connections, servers,
		    db->max_db_client_connections >= 0 ? db->max_db_client_connections
		                                       : cf->max_db_client_connections,
		    clients, (int)db->paused, (int)db->disabled);
	}
	free(dbs);
	return admin_send_result(c, &pb, "SHOW");
}

static int count_cancel_servers(Worker *w, Pool *p)
{
	int n = 0;
	List *item;
	LIST_FOREACH (item, &w->cancel_servers)
		n += LIST_CONTAINER(item, Server, head)->pool == p;
	return n;
}

static int show_pools(Client *c)
{
	static const char *const cols[] = {"database",
	                                   "user",
	                                   "cl_active",
	                                   "cl_waiting",
	                                   "cl_active_cancel_req",
	                                   "cl_waiting_cancel_req",
	                                   "sv_active",
	                                   "sv_active_cancel",
	                                   "sv_being_canceled",
	                                   "sv_idle",
	                                   "sv_used",
	                                   "sv_tested",
	                                   "sv_login",
	                                   "maxwait",
	                                   "maxwait_us",
	                                   "pool_mode",
	                                   "load_balance_hosts"};
	static const char types[] = "ssiiiiiiiiiiiiiss";
	const Config *cf = c->w->app->cf;
	usec_t now = now_usec();
	PktBuf pb;
	int n;
	Pool **pools = sorted_pools(c->w->app, &n);
	pktbuf_init_dynamic(&pb, 1024);
	admin_row_description(&pb, types, cols);
	for (int i = 0; i < n;) {
		int end = group_end(pools, n, i);
		Pool *p = pools[i];
		usec_t oldest = 0;
		int cl_active = 0, cl_waiting = 0, sv_active = 0, sv_cancel = 0, sv_idle = 0, sv_used = 0,
		    sv_tested = 0, sv_login = 0, sv_canceled = 0;
		for (int k = i; k < end; k++) {
			Pool *q = pools[k];
			List *item;
			LIST_FOREACH (item, &q->waiting_clients) {
				const Client *w = LIST_CONTAINER(item, Client, head);
				if (w->wait_start && (!oldest || w->wait_start < oldest))
					oldest = w->wait_start;
			}
			cl_active += list_count(&q->active_clients);
			cl_waiting += list_count(&q->waiting_clients);
			sv_active += list_count(&q->active_servers);
			sv_cancel += q->db->console ? 0 : count_cancel_servers(q->w, q);
			sv_idle += list_count(&q->idle_servers);
			sv_used += list_count(&q->used_servers);
			sv_tested += list_count(&q->tested_servers);
			sv_canceled += list_count(&q->canceling_servers);
			sv_login += list_count(&q->new_servers);
		}
		i = end;
		usec_t maxwait = oldest ? now - oldest : 0;
		admin_data_row(&pb, types, p->db->name, p->user->name, cl_active, cl_waiting, 0, 0, sv_active,
		               sv_cancel, sv_canceled, sv_idle, sv_used, sv_tested, sv_login,
		               (int)(maxwait / USEC_PER_SEC), (int)(maxwait % USEC_PER_SEC),
		               config_pool_mode_name(pool_mode_of(p, cf)), lb_hosts_of(cf, p->db));
	}
	free(pools);
	return admin_send_result(c, &pb, "SHOW");
}

/* ---------------------------------------------------------------- SHOW CLIENTS / SERVERS / SOCKETS */

static const char *const socket_cols[] = {
    "type",         "user",       "database",   "replication",      "state",
    "addr",         "port",       "local_addr", "local_port",       "connect_time",
    "request_time", "wait",       "wait_us",    "close_needed",     "ptr",
    "link",         "remote_pid", "tls",        "application_name", "prepared_statements",
    "id",           "recv_pos",   "pkt_pos",    "pkt_remain",       "send_pos",
    "send_remain",  "pkt_avail",  "send_avail"};
#define SOCKET_TYPES       "ssssssisiTTiiississii"
#define SOCKET_TYPES_DEBUG SOCKET_TYPES "iiiiiii"

/* What one row needs, from a client or a server. */
typedef struct SockInfo {
	bool server;
	const char *user, *db, *state, *addr, *appname, *tls, *replication;
	int port, remote_pid, close_needed, prepared;
	uint32_t id;
	usec_t connect_time, request_time, wait;
	const void *self, *link;
	const SBuf *sb;
	char local_addr[INET6_ADDRSTRLEN + 8];
	int local_port;
} SockInfo;

static void socket_row(PktBuf *pb, const SockInfo *si, bool debug)
{
	char ptr[32], link[32];
	const SBuf *sb = si->sb;
	snprintf(ptr, sizeof(ptr), "%p", si->self);
	if (si->link)
		snprintf(link, sizeof(link), "%p", si->link);
	else
		link[0] = 0;
	int wait_s = (int)(si->wait / USEC_PER_SEC), wait_us = (int)(si->wait % USEC_PER_SEC);
	if (!debug) {
		admin_data_row(pb, SOCKET_TYPES, si->server ? "S" : "C", si->user, si->db, si->replication,
		               si->state, si->addr, si->port, si->local_addr, si->local_port,
		               si->connect_time, si->request_time, wait_s, wait_us, si->close_needed, ptr,
		               link, si->remote_pid, si->tls, si->appname, si->prepared, (int)si->id);
		return;
	}
	admin_data_row(pb, SOCKET_TYPES_DEBUG, si->server ? "S" : "C", si->user, si->db, si->replication,
	               si->state, si->addr, si->port, si->local_addr, si->local_port, si->connect_time,
	               si->request_time, wait_s, wait_us, si->close_needed, ptr, link, si->remote_pid,
	               si->tls, si->appname, si->prepared, (int)si->id, (int)sb->recv_pos, (int)sb->pkt_pos,
	               (int)sb->pkt_remain, (int)sb->send_pos, 0, (int)(sb->recv_pos - sb->pkt_pos),
	               (int)(sb->pkt_pos - sb->send_pos + (sb->out.len - sb->out.off)));
}

static const char *var_of(const Worker *w, const VarCache *vc, const char *name)
{
	int i = var_index(w, name);
	return i >= 0 && vc->value[i] ? vc->value[i] : "";
}

static void client_info(Client *c, const char *state, SockInfo *si)
{
	const Config *cf = c->w->app->cf;
	memset(si, 0, sizeof(*si));
	si->user = c->username[0] ? c->username : "(nouser)";
	si->db = c->pool ? c->pool->db->name : "(nodb)";
	si->replication = repl_type_name(c->replication);
	si->state = state;
	si->addr = c->addr;
	si->port = c->port;
	if (c->is_unix) {
		si->addr = "unix";
		sscanf(c->addr, "unix(%d)", &si->remote_pid);
		snprintf(si->local_addr, sizeof(si->local_addr), "unix");
		si->local_port = cf->listen_port;
	} else {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		if (c->sb.fd >= 0 && getsockname(c->sb.fd, (struct sockaddr *)&ss, &len) == 0) {
			if (ss.ss_family == AF_INET) {
				const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
				inet_ntop(AF_INET, &in->sin_addr, si->local_addr, sizeof(si->local_addr));
				si->local_port = ntohs(in->sin_port);
			} else if (ss.ss_family == AF_INET6) {
				const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
				inet_ntop(AF_INET6, &in6->sin6_addr, si->local_addr, sizeof(si->local_addr));
				si->local_port = ntohs(in6->sin6_port);
			}
		}
	}
	si->connect_time = c->connect_time;
	si->request_time = c->request_time;
	if ((c->state == CL_WAITING || c->state == CL_WAITING_LOGIN) && c->wait_start)
		si->wait = now_usec() - c->wait_start;
	si->self = c;
	si->link = c->link;
	const char *app_name = client_var(c, var_index(c->w, "application_name"));
	si->appname = app_name ? app_name : "";
	si->tls = c->tls ? c->tls : "";
	si->prepared = (int)c->ps_map.count;
	si->id = c->id;
	si->sb = &c->sb;
}

static void server_info(Server *s, const char *state, SockInfo *si)
{
	memset(si, 0, sizeof(*si));
	si->server = true;
	si->user = s->pool ? s->pool->user->name : "(nouser)";
	si->db = s->pool ? s->pool->db->name : "(nodb)";
	si->replication = repl_type_name(s->replication);
	si->state = state;
	si->addr = s->addr;
	si->port = s->port;
	snprintf(si->local_addr, sizeof(si->local_addr), "%s", s->local_addr);
	si->local_port = s->local_port;
	si->connect_time = s->connect_time;
	si->request_time = s->request_time;
	si->wait = s->query_start ? now_usec() - s->query_start : 0;
	si->close_needed = s->close_needed;
	si->self = s;
	si->link = s->link;
	si->remote_pid = (int)s->backend_pid;
	si->appname = var_of(s->w, &s->vars, "application_name");
	si->tls = s->tls;
	si->prepared = s->ps ? s->ps->n : 0;
	si->id = s->id;
	si->sb = &s->sb;
}

/* SHOW CLIENTS and SHOW SERVERS: a clean client without a server shows as idle. */
static void client_list_rows(PktBuf *pb, List *list, const char *state, bool debug, bool only_busy)
{
	List *item;
	SockInfo si;
	LIST_FOREACH (item, list) {
		Client *c = LIST_CONTAINER(item, Client, head);
		if (only_busy && sbuf_is_empty(&c->sb) && sbuf_gen_empty(&c->sb))
			continue;
		client_info(c, (!debug && !c->link && strcmp(state, "active") == 0) ? "idle" : state, &si);
		socket_row(pb, &si, debug);
	}
}

static void server_list_rows(PktBuf *pb, List *list, const char *state, bool debug, bool only_busy,
                             Pool *only_pool)
{
	List *item;
	SockInfo si;
	LIST_FOREACH (item, list) {
		Server *s = LIST_CONTAINER(item, Server, head);
		if (only_pool && s->pool != only_pool)
			continue;
		if (only_busy && sbuf_is_empty(&s->sb) && sbuf_gen_empty(&s->sb))
			continue;
		server_info(s, state, &si);
		socket_row(pb, &si, debug);
	}
}

static int show_clients(Client *c)
{
	PktBuf pb;
	int n;
	Pool **pools = sorted_pools(c->w->app, &n);
	pktbuf_init_dynamic(&pb, 4096);
	admin_row_description(&pb, SOCKET_TYPES, socket_cols);
	for (int i = 0; i < n; i++) {
		client_list_rows(&pb, &pools[i]->active_clients, "active", false, false);
		client_list_rows(&pb, &pools[i]->waiting_clients, "waiting", false, false);
	}
	free(pools);
	return admin_send_result(c, &pb, "SHOW");
}

static int show_servers(Client *c)
{
	PktBuf pb;
	int n;
	Pool **pools = sorted_pools(c->w->app, &n);
	pktbuf_init_dynamic(&pb, 4096);
	admin_row_description(&pb, SOCKET_TYPES, socket_cols);
	for (int i = 0; i < n; i++) {
		Pool *p = pools[i];
		server_list_rows(&pb, &p->active_servers, "active", false, false, NULL);
		server_list_rows(&pb, &p->idle_servers, "idle", false, false, NULL);
		server_list_rows(&pb, &p->used_servers, "used", false, false, NULL);
		server_list_rows(&pb, &p->tested_servers, "tested", false, false, NULL);
		server_list_rows(&pb, &p->canceling_servers, "being_canceled", false, false, NULL);
		server_list_rows(&pb, &p->new_servers, "new", false, false, NULL);
		if (!p->db->console)
			server_list_rows(&pb, &p->w->cancel_servers, "active_cancel", false, false, p);
	}
	free(pools);
	return admin_send_result(c, &pb, "SHOW");
}

static int show_sockets_common(Client *c, bool only_busy)
{
	PktBuf pb;
	int n;
	Pool **pools = sorted_pools(c->w->app, &n);
	pktbuf_init_dynamic(&pb, 4096);
	admin_row_description(&pb, SOCKET_TYPES_DEBUG, socket_cols);
	for (int i = 0; i < n; i++) {
		Pool *p = pools[i];
		client_list_rows(&pb, &p->active_clients, "cl_active", true, only_busy);
		client_list_rows(&pb, &p->waiting_clients, "cl_waiting", true, only_busy);
		server_list_rows(&pb, &p->active_servers, "sv_active", true, only_busy, NULL);
		server_list_rows(&pb, &p->idle_servers, "sv_idle", true, only_busy, NULL);
		server_list_rows(&pb, &p->used_servers, "sv_used", true, only_busy, NULL);
		server_list_rows(&pb, &p->tested_servers, "sv_tested", true, only_busy, NULL);
		server_list_rows(&pb, &p->canceling_servers, "sv_being_canceled", true, only_busy, NULL);
		server_list_rows(&pb, &p->new_servers, "sv_login", true, only_busy, NULL);
	}
	for (int k = 0; k < c->w->app->n_workers; k++)
		client_list_rows(&pb, &c->w->app->workers[k]->login_clients, "cl_login", true, only_busy);
	free(pools);
	return admin_send_result(c, &pb, "SHOW");
}

static int show_sockets(Client *c)
{
	return show_sockets_common(c, false);
}

static int show_active_sockets(Client *c)
{
	return show_sockets_common(c, true);
}

/* ---------------------------------------------------------------- SHOW USERS / CONFIG */

static int cmp_user(const void *a, const void *b)
{
	return strcmp((*(User *const *)a)->name, (*(User *const *)b)->name);
}

/* The users PgBouncer lists: auth_file, [users], and "pgbouncer" (worker 0's copies; every
 * worker has the same set from the same config). */
static User **listed_users(Worker *w, int *count)
{
	int n = list_count(&w->users) + 1, i = 0;
	User **v = malloc((size_t)n * sizeof(*v));
	List *item;
	bool have_admin = false;
	if (!v) {
		*count = 0;
		return NULL;
	}
	LIST_FOREACH (item, &w->users) {
		User *u = LIST_CONTAINER(item, User, head);
		bool is_admin = strcmp(u->name, "pgbouncer") == 0;
		if (u->from_auth_file || u->from_config || is_admin) {
			v[i++] = u;
			have_admin |= is_admin;
		}
	}
	if (!have_admin)
		v[i++] = admin_pool(w)->user;
	qsort(v, (size_t)i, sizeof(*v), cmp_user);
	*count = i;
	return v;
}

static int show_users(Client *c)
{
	static const char *const cols[] = {"name",
	                                   "pool_size",
	                                   "reserve_pool_size",
	                                   "pool_mode",
	                                   "max_user_connections",
	                                   "current_connections",
	                                   "max_user_client_connections",
	                                   "current_client_connections"};
	static const char types[] = "ssssiiii";
	const Config *cf = c->w->app->cf;
	PktBuf pb;
	int n;
	App *app = c->w->app;
	User **users = listed_users(app->workers[0], &n);
	pktbuf_init_dynamic(&pb, 1024);
	admin_row_description(&pb, types, cols);
	for (int i = 0; i < n; i++) {
		User *u = users[i];
		int servers = 0, clients = 0;
		for (int k = 0; k < app->n_workers; k++) {
			List *item;
			Worker *w = app->workers[k];
			bool found = false;
			LIST_FOREACH (item, &w->users) {
				User *x = LIST_CONTAINER(item, User, head);
				if (strcmp(x->name, u->name) == 0) {
					servers += x->server_count;
					clients += x->client_count;
					found = true;
				}
			}
			if (!found && u == admin_pool(app->workers[0])->user) {
				clients += admin_pool(w)->user->client_count;
			}
		}
		char ps[16] = "", rs[16] = "";
		if (u->pool_size >= 0)
			snprintf(ps, sizeof(ps), "%9d", u->pool_size);
		if (u->reserve_pool_size >= 0)
			snprintf(rs, sizeof(rs), "%9d", u->reserve_pool_size);
		admin_data_row(&pb, types, u->name, ps, rs, config_pool_mode_name(u->pool_mode),
		               u->max_user_connections >= 0 ? u->max_user_connections
		                                            : cf->max_user_connections,
		               servers,
		               u->max_user_client_connections >= 0 ? u->max_user_client_connections
		                                                   : cf->max_user_client_connections,
		               clients);
	}
	free(users);
	return admin_send_result(c, &pb, "SHOW");
}

/* A setting's text the way SHOW CONFIG prints it; NULL for an unset string. */
static const char *setting_text(const Config *cf, const Setting *s, char *buf, size_t buflen)
{
	if (s->type == SETTING_STR && !*(char *const *)((const char *)cf + s->offset))
		return NULL;
	return config_format_value(cf, s, buf, buflen);
}

static int show_config(Client *c)
{
	static const char *const cols[] = {"key", "value", "default", "changeable"};
	const Config *cf = c->w->app->cf;
	char val[1024], def[1024];
	PktBuf pb;
	if (!s_defaults)
		s_defaults = config_new_defaults();
	pktbuf_init_dynamic(&pb, 8192);
	admin_row_description(&pb, "ssss", cols);
	for (int i = 0; i < config_n_settings; i++) {
		const Setting *s = &config_settings[i];
		/* the default as PgBouncer prints it: the normalized value, but a mode as written */
		const char *d = s->type == SETTING_MODE ? s->default_value
		                                        : setting_text(s_defaults, s, def, sizeof(def));
		admin_data_row(&pb, "ssss", s->name, setting_text(cf, s, val, sizeof(val)), d,
		               (s->flags & SETTING_NO_RELOAD) ? "no" : "yes");
	}
	return admin_send_result(c, &pb, "SHOW");
}

/* ---------------------------------------------------------------- small SHOWs */

static int show_lists(Client *c)
{
	static const char *const cols[] = {"list", "items"};
	App *app = c->w->app;
	Worker *w0 = app->workers[0];
	int users = 0, servers = 0, pools = 1, dbs = 1, clients = 0, login = 0;
	List *item;
	User **u = listed_users(w0, &users);
	free(u);
	LIST_FOREACH (item, &w0->databases)
		dbs += !LIST_CONTAINER(item, Database, head)->removed;
	int np;
	Pool **pv = sorted_pools(app, &np);
	for (int i = 0; i < np; i = group_end(pv, np, i))
		pools += !pv[i]->db->console;
	free(pv);
	for (int k = 0; k < app->n_workers; k++) {
		Worker *w = app->workers[k];
		servers += list_count(&w->cancel_servers);
		LIST_FOREACH (item, &w->pools)
			servers += pool_server_count(LIST_CONTAINER(item, Pool, head));
		clients += w->client_count;
		login += list_count(&w->login_clients);
	}
	PktBuf pb;
	pktbuf_init_dynamic(&pb, 512);
	admin_row_description(&pb, "si", cols);
	admin_data_row(&pb, "si", "databases", dbs);
	admin_data_row(&pb, "si", "users", users);
	admin_data_row(&pb, "si", "peers", 0);
	admin_data_row(&pb, "si", "pools", pools);
	admin_data_row(&pb, "si", "peer_pools", 0);
	admin_data_row(&pb, "si", "free_clients", 0);
	admin_data_row(&pb, "si", "used_clients", clients);
	admin_data_row(&pb, "si", "login_clients", login);
	admin_data_row(&pb, "si", "free_servers", 0);
	admin_data_row(&pb, "si", "used_servers", servers);
	admin_data_row(&pb, "si", "dns_names", 0);
	admin_data_row(&pb, "si", "dns_zones", 0);
	admin_data_row(&pb, "si", "dns_queries", 0);
	admin_data_row(&pb, "si", "dns_pending", 0);
	return admin_send_result(c, &pb, "SHOW");
}

static int show_mem(Client *c)
{
	static const char *const cols[] = {"name", "size", "used", "free", "memtotal"};
	App *app = c->w->app;
	int users = 0, dbs = 0, pools = 0, servers = 0, clients = 0, pkt_buf = app->cf->pkt_buf, nps = 0;
	List *item;
	for (int k = 0; k < app->n_workers; k++) {
		Worker *w = app->workers[k];
		users += list_count(&w->users);
		dbs += list_count(&w->databases) + 1;
		pools += list_count(&w->pools) + 1;
		servers += list_count(&w->cancel_servers);
		LIST_FOREACH (item, &w->pools)
			servers += pool_server_count(LIST_CONTAINER(item, Pool, head));
		clients += w->client_count;
		nps += (int)w->ps_registry.count;
	}
	struct {
		const char *name;
		int size, used;
	} rows[] = {
	    {"user_cache", (int)sizeof(User), users},
	    {"credentials_cache", 0, 0},
	    {"db_cache", (int)sizeof(Database), dbs},
	    {"peer_cache", 0, 0},
	    {"peer_pool_cache", 0, 0},
	    {"pool_cache", (int)sizeof(Pool), pools},
	    {"outstanding_request_cache", 0, 0},
	    {"server_cache", (int)sizeof(Server), servers},
	    {"client_cache", (int)sizeof(Client), clients},
	    {"iobuf_cache", pkt_buf, clients + servers},
	    {"var_list_cache", 0, 0},
	    {"server_prepared_statement_cache", (int)sizeof(PreparedStatement), nps},
	};
	PktBuf pb;
	pktbuf_init_dynamic(&pb, 1024);
	admin_row_description(&pb, "siiii", cols);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		admin_data_row(&pb, "siiii", rows[i].name, rows[i].size, rows[i].used, 0,
		               rows[i].size * rows[i].used);
	return admin_send_result(c, &pb, "SHOW");
}

static int show_version(Client *c)
{
	static const char *const cols[] = {"version"};
	PktBuf pb;
	pktbuf_init_dynamic(&pb, 128);
	admin_row_description(&pb, "s", cols);
	admin_data_row(&pb, "s", TIDEPOOL_VERSION_LINE);
	return admin_send_result(c, &pb, "SHOW");
}

static int show_state(Client *c)
{
	static const char *const cols[] = {"key", "value"};
	App *app = c->w->app;
	bool susp = admin_is_suspended(), paused = app->paused && !susp;
	PktBuf pb;
	pktbuf_init_dynamic(&pb, 128);
	admin_row_description(&pb, "ss", cols);
	admin_data_row(&pb, "ss", "active", !paused && !susp ? "yes" : "no");
	admin_data_row(&pb, "ss", "paused", paused ? "yes" : "no");
	admin_data_row(&pb, "ss", "suspended", susp ? "yes" : "no");
	return admin_send_result(c, &pb, "SHOW");
}

/* Result sets tidepool has no rows for (no DNS cache, no fd passing). */
static int empty_set(Client *c, const char *types, const char *const *cols)
{
	PktBuf pb;
	pktbuf_init_dynamic(&pb, 256);
	admin_row_description(&pb, types, cols);
	return admin_send_result(c, &pb, "SHOW");
}

/* The [peers] section as it runs, defaults filled in. */
static int show_peers(Client *c)
{
	static const char *const cols[] = {"peer_id", "host", "port", "pool_size"};
	const Config *cf = c->w->app->cf;
	PktBuf pb;
	pktbuf_init_dynamic(&pb, 256);
	admin_row_description(&pb, "isii", cols);
	for (int i = 0; i < cf->n_peers; i++) {
		const PeerDef *pd = &cf->peers[i];
		admin_data_row(&pb, "isii", pd->peer_id, peer_host_of(cf, pd), peer_port_of(cf, pd),
		               peer_pool_size_of(cf, pd));
	}
	return admin_send_result(c, &pb, "SHOW");
}

/* Per configured peer that requests are being forwarded to now, those connecting or sent and
 * those waiting for a pool_size slot, over all workers. */
static int show_peer_pools(Client *c)
{
	static const char *const cols[] = {"peer_id", "cl_active_cancel_req", "cl_waiting_cancel_req",
	                                   "sv_active_cancel", "sv_login"};
	App *app = c->w->app;
	const Config *cf = app->cf;
	PktBuf pb;
	pktbuf_init_dynamic(&pb, 256);
	admin_row_description(&pb, "iiiii", cols);
	for (int i = 0; i < cf->n_peers; i++) {
		int active = 0, waiting = 0;
		for (int k = 0; k < app->n_workers; k++) {
			int a, wt;
			peer_count_forwards(app->workers[k], cf->peers[i].peer_id, &a, &wt);
			active += a;
			waiting += wt;
		}
		if (active || waiting)
			admin_data_row(&pb, "iiiii", cf->peers[i].peer_id, active, waiting, active, 0);
	}
	return admin_send_result(c, &pb, "SHOW");
}

static int show_dns_hosts(Client *c)
{
	static const char *const cols[] = {"hostname", "ttl", "addrs"};
	return empty_set(c, "sqs", cols);
}

static int show_dns_zones(Client *c)
{
	static const char *const cols[] = {"zonename", "serial", "count"};
	return empty_set(c, "sqi", cols);
}

static int show_fds(Client *c)
{
	static const char *const cols[] = {
	    "fd",        "task",     "user",     "database",         "addr",
	    "port",      "cancel",   "link",     "client_encoding",  "std_strings",
	    "datestyle", "timezone", "password", "scram_client_key", "scram_server_key"};
	if (c->admin != ADMIN_FULL)
		return admin_error(c, "admin access needed");
	return empty_set(c, "issssiqisssssbb", cols);
}

static int show_help(Client *c)
{
	PktBuf pb;
	pktbuf_init_dynamic(&pb, 1024);
	pktbuf_start(&pb, 'N');
	pktbuf_put_byte(&pb, 'S');
	pktbuf_put_string(&pb, "NOTICE");
	pktbuf_put_byte(&pb, 'C');
	pktbuf_put_string(&pb, "00000");
	pktbuf_put_byte(&pb, 'M');
	pktbuf_put_string(&pb, "Console usage");
	pktbuf_put_byte(&pb, 'D');
	pktbuf_put_string(&pb, "\n\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION\n"
	                       "\tSHOW PEERS|PEER_POOLS\n"
	                       "\tSHOW FDS|SOCKETS|ACTIVE_SOCKETS|LISTS|MEM|STATE\n"
	                       "\tSHOW DNS_HOSTS|DNS_ZONES\n"
	                       "\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS\n"
	                       "\tSHOW <setting>\n"
	                       "\tSET key = arg\n"
	                       "\tRELOAD\n"
	                       "\tPAUSE [<db>]\n"
	                       "\tRESUME [<db>]\n"
	                       "\tDISABLE <db>\n"
	                       "\tENABLE <db>\n"
	                       "\tRECONNECT [<db>]\n"
	                       "\tKILL [<db>]\n"
	                       "\tKILL_CLIENT <client_id>\n"
	                       "\tSUSPEND\n"
	                       "\tSHUTDOWN\n"
	                       "\tSHUTDOWN WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS\n"
	                       "\tWAIT_CLOSE [<db>]");
	pktbuf_put_byte(&pb, 0);
	pktbuf_finish(&pb);
	return admin_send_result(c, &pb, "SHOW");
}

/* ---------------------------------------------------------------- SHOW STATS and friends */

/* Counters in SHOW STATS order (docs/compatibility.md). */
#define STAT_VALUES(st)                                                                                      \
	(st).server_assignment_count, (st).xact_count, (st).query_count, (st).client_bytes,                  \
	    (st).server_bytes, (st).xact_time, (st).query_time, (st).wait_time, (st).client_parse_count,     \
	    (st).server_parse_count, (st).bind_count

static int show_stats_kind(Client *c, int kind)
{
	static const char *const stats_cols[] = {"database",
	                                         "total_server_assignment_count",
	                                         "total_xact_count",
	                                         "total_query_count",
	                                         "total_received",
	                                         "total_sent",
	                                         "total_xact_time",
	                                         "total_query_time",
	                                         "total_wait_time",
	                                         "total_client_parse_count",
	                                         "total_server_parse_count",
	                                         "total_bind_count",
	                                         "avg_server_assignment_count",
	                                         "avg_xact_count",
	                                         "avg_query_count",
	                                         "avg_recv",
	                                         "avg_sent",
	                                         "avg_xact_time",
	                                         "avg_query_time",
	                                         "avg_wait_time",
	                                         "avg_client_parse_count",
	                                         "avg_server_parse_count",
	                                         "avg_bind_count"};
	static const char *const totals_cols[] = {"database",           "server_assignment_count",
	                                          "xact_count",         "query_count",
	                                          "bytes_received",     "bytes_sent",
	                                          "xact_time",          "query_time",
	                                          "wait_time",          "client_parse_count",
	                                          "server_parse_count", "bind_count"};
	static const char *const averages_cols[] = {"database",
	                                            "server_assignment_count",
	                                            "xact_count",
	                                            "query_count",
	                                            "bytes_received",
	                                            "bytes_sent",
	                                            "xact_time",
	                                            "query_time",
	                                            "wait_time",
	                                            "avg_client_parse_count",
	                                            "avg_server_parse_count",
	                                            "avg_bind_count"};
	static const char t23[] = "sNNNNNNNNNNNNNNNNNNNNNN", t12[] = "sNNNNNNNNNNN";
	App *app = c->w->app;
	PktBuf pb;
	int n;
	Database **dbs = sorted_dbs(app, true, &n);
	pktbuf_init_dynamic(&pb, 2048);
	admin_row_description(&pb, kind == 0 ? t23 : t12,
	                      kind == 0   ? stats_cols
	                      : kind == 1 ? totals_cols
	                                  : averages_cols);
	for (int i = 0; i < n; i++) {
		Stats total, avg;
		memset(&total, 0, sizeof(total));
		memset(&avg, 0, sizeof(avg));
		admin_stats_for(app, dbs[i]->name, &total, &avg);
		if (kind == 0)
			admin_data_row(&pb, t23, dbs[i]->name, STAT_VALUES(total), STAT_VALUES(avg));
		else if (kind == 1)
			admin_data_row(&pb, t12, dbs[i]->name, STAT_VALUES(total));
		else
			admin_data_row(&pb, t12, dbs[i]->name, STAT_VALUES(avg));
	}
	free(dbs);
	return admin_send_result(c, &pb, "SHOW");
}

static int show_stats(Client *c)
{
	return show_stats_kind(c, 0);
}

static int show_stats_totals(Client *c)
{
	return show_stats_kind(c, 1);
}

static int show_stats_averages(Client *c)
{
	return show_stats_kind(c, 2);
}

static int show_totals(Client *c)
{
	static const char *const cols[] = {"name", "value"};
	static const char *const names[] = {"server_assignment_count",
	                                    "xact_count",
	                                    "query_count",
	                                    "client_bytes",
	                                    "server_bytes",
	                                    "xact_time",
	                                    "query_time",
	                                    "wait_time",
	                                    "ps_client_parse_count",
	                                    "ps_server_parse_count",
	                                    "ps_bind_count"};
	Stats total, avg;
	char name[64];
	admin_stats_for(c->w->app, NULL, &total, &avg);
	const uint64_t tv[] = {STAT_VALUES(total)}, av[] = {STAT_VALUES(avg)};
	PktBuf pb;
	pktbuf_init_dynamic(&pb, 1024);
	admin_row_description(&pb, "sN", cols);
	for (int a = 0; a < 2; a++)
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			snprintf(name, sizeof(name), "%s_%s", a ? "avg" : "total", names[i]);
			admin_data_row(&pb, "sN", name, a ? av[i] : tv[i]);
		}
	return admin_send_result(c, &pb, "SHOW");
}

/* ---------------------------------------------------------------- dispatch */

static const struct {
	const char *name;
	int (*fn)(Client *c);
} show_map[] = {
    {"active_sockets", show_active_sockets},
    {"clients", show_clients},
    {"config", show_config},
    {"databases", show_databases},
    {"dns_hosts", show_dns_hosts},
    {"dns_zones", show_dns_zones},
    {"fds", show_fds},
    {"help", show_help},
    {"lists", show_lists},
    {"mem", show_mem},
    {"peer_pools", show_peer_pools},
    {"peers", show_peers},
    {"pools", show_pools},
    {"servers", show_servers},
    {"sockets", show_sockets},
    {"state", show_state},
    {"stats", show_stats},
    {"stats_averages", show_stats_averages},
    {"stats_totals", show_stats_totals},
    {"totals", show_totals},
    {"users", show_users},
    {"version", show_version},
};

int admin_show(Client *c, const char *what)
{
	for (size_t i = 0; i < sizeof(show_map) / sizeof(show_map[0]); i++)
		if (strcasecmp(show_map[i].name, what) == 0)
			return show_map[i].fn(c) ? 1 : 0;
	return -1;
}
