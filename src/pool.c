/* pool.c: object lifecycle and lists: databases, users, pools, the state transitions of
 * clients and servers, and handing servers to waiting clients. */
#include "pool.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <event2/dns.h>

#include "app.h"
#include "auth.h"
#include "peer.h"
#include "client.h"
#include "replication.h"
#include "server.h"
#include "worker.h"

usec_t now_usec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (usec_t)ts.tv_sec * USEC_PER_SEC + ts.tv_nsec / 1000;
}

/* ---- tracked parameters ---- */

int var_index(const Worker *w, const char *name)
{
	for (int i = 0; i < w->var_count; i++)
		if (strcasecmp(w->var_names[i], name) == 0)
			return i;
	return -1;
}

void var_set(VarCache *vc, int idx, const char *value)
{
	if (idx < 0 || idx >= VAR_MAX)
		return;
	if (vc->value[idx] && strcmp(vc->value[idx], value) == 0)
		return;
	free(vc->value[idx]);
	vc->value[idx] = strdup(value);
}

void var_free(VarCache *vc)
{
	for (int i = 0; i < VAR_MAX; i++) {
		free(vc->value[i]);
		vc->value[i] = NULL;
	}
}

/* Map the tracked parameters to the welcome's values once it is ready (it never changes
 * after), so client_var() costs no name lookup per transaction. */
void pool_index_welcome(Pool *p)
{
	for (int i = 0; i < p->w->var_count && i < VAR_MAX; i++) {
		p->welcome_var[i] = NULL;
		for (int j = 0; j < p->welcome.n; j++)
			if (strcasecmp(p->welcome.names[j], p->w->var_names[i]) == 0) {
				p->welcome_var[i] = p->welcome.values[j];
				break;
			}
	}
	p->welcome_var_done = true;
}

/* ---- state transitions: the list an object sits on is its state ---- */

/* Publish when this worker's longest-waiting client of the pool started waiting (0: none),
 * for hand_off() on other workers. The list is FIFO, so it is the first CL_WAITING one. */
static void lane_note_oldest(Pool *p)
{
	long long since = 0;
	List *item;
	LIST_FOREACH (item, &p->waiting_clients) {
		Client *c = LIST_CONTAINER(item, Client, head);
		if (c->state == CL_WAITING) {
			since = c->wait_start > 0 ? (long long)c->wait_start : 1;
			break;
		}
	}
	atomic_store_explicit(&p->sh->lanes[p->w->idx].oldest, since, memory_order_relaxed);
}

static bool client_is_waiting(ClientState st)
{
	return st == CL_WAITING || st == CL_WAITING_LOGIN;
}

void client_set_state(Client *c, ClientState st)
{
	Worker *w = c->w;
	list_del(&c->head);
	if (c->pool && client_is_waiting(c->state) != client_is_waiting(st)) {
		/* replication clients wait for a server of their own (replication.c) */
		int delta = client_is_waiting(st) ? 1 : -1;
		if (c->replication)
			c->pool->repl_waiting += delta;
		else
			c->pool->waiting_count += delta;
	}
	/* other workers look at the lanes to decide where a free server should go */
	bool lane_changed = c->pool && (c->state == CL_WAITING) != (st == CL_WAITING) && c->pool->sh;
	switch (st) {
	case CL_LOGIN:
		list_append(&w->login_clients, &c->head);
		break;
	case CL_WAITING_LOGIN:
	case CL_WAITING:
		list_append(&c->pool->waiting_clients, &c->head);
		break;
	case CL_ACTIVE:
		list_append(&c->pool->active_clients, &c->head);
		break;
	case CL_JUSTFREE:
		list_append(&w->justfree_clients, &c->head);
		break;
	case CL_FREE:
		break;
	}
	c->state = st;
	if (lane_changed && w->app->n_workers > 1)
		lane_note_oldest(c->pool);
}

static bool server_in_pool(ServerState st)
{
	return st != SV_FREE && st != SV_JUSTFREE && st != SV_OUTGOING;
}

void server_set_state(Server *s, ServerState st)
{
	Pool *p = s->pool;
	list_del(&s->head);
	if (!s->is_cancel && server_in_pool(s->state) != server_in_pool(st))
		p->server_count += server_in_pool(st) ? 1 : -1;
	if (!s->is_cancel && (s->state == SV_IDLE) != (st == SV_IDLE) && p->sh)
		atomic_fetch_add_explicit(&p->sh->lanes[s->w->idx].idle, st == SV_IDLE ? 1 : -1,
		                          memory_order_relaxed);
	switch (st) {
	case SV_LOGIN:
		list_append(&p->new_servers, &s->head);
		break;
	case SV_IDLE:
		/* Most recently used first (LIFO) keeps the hot set small; round-robin spreads. */
		if (s->w->app->cf->server_round_robin)
			list_append(&p->idle_servers, &s->head);
		else
			list_prepend(&p->idle_servers, &s->head);
		break;
	case SV_ACTIVE:
		list_append(&p->active_servers, &s->head);
		break;
	case SV_USED:
		list_append(&p->used_servers, &s->head);
		break;
	case SV_TESTED:
		list_append(&p->tested_servers, &s->head);
		break;
	case SV_BEING_CANCELED:
		list_append(&p->canceling_servers, &s->head);
		break;
	case SV_JUSTFREE:
		list_append(&s->w->justfree_servers, &s->head);
		break;
	case SV_OUTGOING:
		list_append(&s->w->outgoing_servers, &s->head);
		break;
	case SV_FREE:
		break;
	}
	s->state = st;
}

/* ---- databases and users ---- */

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static bool str_differs(const char *a, const char *b)
{
	if (!a || !b)
		return a != b;
	return strcmp(a, b) != 0;
}

static void mark_servers_close_needed(Worker *w, Database *db)
{
	List *pi, *si;
	LIST_FOREACH (pi, &w->pools) {
		Pool *p = LIST_CONTAINER(pi, Pool, head);
		if (p->db != db)
			continue;
		List *lists[] = {&p->active_servers, &p->idle_servers,      &p->used_servers,
		                 &p->tested_servers, &p->canceling_servers, &p->new_servers};
		for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
			LIST_FOREACH (si, lists[i])
				LIST_CONTAINER(si, Server, head)->close_needed = true;
	}
}

/* Copy a definition into a runtime database; changed connection targets retire servers. */
static void db_apply_def(Worker *w, Database *db, const DatabaseDef *def, const char *name)
{
	const char *dbname = def->dbname ? def->dbname : name;
	bool changed = str_differs(db->host, def->host) || db->port != def->port ||
	               str_differs(db->dbname, dbname) || str_differs(db->forced_user, def->user) ||
	               str_differs(db->forced_password, def->password);
	free(db->host);
	free(db->dbname);
	free(db->forced_user);
	free(db->forced_password);
	free(db->connect_query);
	free(db->startup_client_encoding);
	free(db->startup_datestyle);
	free(db->startup_timezone);
	free(db->startup_application_name);
	db->host = dup_or_null(def->host);
	db->port = def->port > 0 ? def->port : 5432;
	db->dbname = strdup(dbname);
	db->forced_user = dup_or_null(def->user);
	db->forced_password = dup_or_null(def->password);
	db->connect_query = dup_or_null(def->connect_query);
	db->startup_client_encoding = dup_or_null(def->client_encoding);
	db->startup_datestyle = dup_or_null(def->datestyle);
	db->startup_timezone = dup_or_null(def->timezone);
	db->startup_application_name = dup_or_null(def->application_name);
	db->pool_size = def->pool_size;
	db->min_pool_size = def->min_pool_size;
	db->reserve_pool_size = def->reserve_pool_size;
	db->pool_mode = def->pool_mode;
	db->max_db_connections = def->max_db_connections;
	db->max_db_client_connections = def->max_db_client_connections;
	db->server_lifetime = def->server_lifetime;
	db->load_balance_hosts = def->load_balance_hosts;
	db->removed = false;
	if (changed)
		mark_servers_close_needed(w, db);
}

static Database *db_new(Worker *w, const char *name)
{
	Database *db = calloc(1, sizeof(*db));
	if (!db)
		return NULL;
	snprintf(db->name, sizeof(db->name), "%s", name);
	db->port = 5432;
	db->sh = shared_get(w->app, SHARED_DB, name, NULL);
	list_append(&w->databases, &db->head);
	return db;
}

Database *pool_find_database(Worker *w, const char *name)
{
	List *item;
	LIST_FOREACH (item, &w->databases) {
		Database *db = LIST_CONTAINER(item, Database, head);
		if (strcmp(db->name, name) == 0 && !db->removed)
			return db;
	}
	const DatabaseDef *def = config_find_database(w->app->cf, "*", 0);
	if (!def || strcmp(name, "pgbouncer") == 0)
		return NULL;
	/* The "*" entry: create the database on first use. */
	Database *db = db_new(w, name);
	if (!db)
		return NULL;
	db_apply_def(w, db, def, name);
	db->autodb = true;
	log_msg(&w->app->log, LOG_LEVEL_LOG, NULL, "registered new auto-database: db=%s", name);
	return db;
}

User *pool_find_user(Worker *w, const char *name)
{
	List *item;
	LIST_FOREACH (item, &w->users) {
		User *u = LIST_CONTAINER(item, User, head);
		if (strcmp(u->name, name) == 0)
			return (u->from_auth_file || u->from_config) ? u : NULL;
	}
	return NULL;
}

static User *user_new(Worker *w, const char *name)
{
	User *u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	snprintf(u->name, sizeof(u->name), "%s", name);
	u->sh = shared_get(w->app, SHARED_USER, name, NULL);
	u->pool_size = u->reserve_pool_size = u->pool_mode = -1;
	u->max_user_connections = u->max_user_client_connections = -1;
	u->query_timeout = u->idle_transaction_timeout = u->transaction_timeout = u->client_idle_timeout = -1;
	list_append(&w->users, &u->head);
	return u;
}

User *pool_get_user(Worker *w, const char *name)
{
	List *item;
	LIST_FOREACH (item, &w->users) {
		User *u = LIST_CONTAINER(item, User, head);
		if (strcmp(u->name, name) == 0)
			return u;
	}
	return user_new(w, name);
}

/* Bring databases, users and tracked parameter names in line with a (new) config. */
void pool_sync_config(Worker *w, const Config *cf, bool initial)
{
	App *app = w->app;
	List *item;
	if (initial) {
		static const char *const builtin[] = {"client_encoding", "DateStyle", "TimeZone",
		                                      "standard_conforming_strings", "application_name"};
		for (size_t i = 0; i < 5; i++)
			w->var_names[w->var_count++] = strdup(builtin[i]);
		const char *p = cf->track_extra_parameters ? cf->track_extra_parameters : "";
		while (*p && w->var_count < VAR_MAX) {
			while (*p == ',' || isspace((unsigned char)*p))
				p++;
			size_t n = strcspn(p, ", \t");
			if (n > 0 && n < 64) {
				char name[64];
				memcpy(name, p, n);
				name[n] = 0;
				if (var_index(w, name) < 0)
					w->var_names[w->var_count++] = strdup(name);
			}
			p += n;
		}
	}
	LIST_FOREACH (item, &w->databases) {
		Database *db = LIST_CONTAINER(item, Database, head);
		const DatabaseDef *def = config_find_database(cf, db->name, 0);
		if (def) {
			db_apply_def(w, db, def, db->name);
		} else if (db->autodb && config_find_database(cf, "*", 0)) {
			db_apply_def(w, db, config_find_database(cf, "*", 0), db->name);
		} else if (!db->removed) {
			db->removed = true;
			mark_servers_close_needed(w, db);
		}
	}
	for (int i = 0; i < cf->n_databases; i++) {
		const DatabaseDef *def = &cf->databases[i];
		if (strcmp(def->name, "*") == 0)
			continue;
		bool found = false;
		LIST_FOREACH (item, &w->databases) {
			Database *db = LIST_CONTAINER(item, Database, head);
			if (strcmp(db->name, def->name) == 0) {
				found = true;
				break;
			}
		}
		if (!found) {
			Database *db = db_new(w, def->name);
			if (db)
				db_apply_def(w, db, def, def->name);
		}
	}
	LIST_FOREACH (item, &w->users) {
		User *u = LIST_CONTAINER(item, User, head);
		const UserEntry *e = app->userlist ? userlist_find(app->userlist, u->name) : NULL;
		free(u->secret);
		u->secret = e ? strdup(e->secret) : NULL;
		u->from_auth_file = e != NULL;
		u->from_config = false;
	}
	if (app->userlist) {
		for (int i = 0; i < app->userlist->n; i++) {
			const UserEntry *e = &app->userlist->entries[i];
			User *u = pool_get_user(w, e->name);
			if (u && !u->secret) {
				u->secret = strdup(e->secret);
				u->from_auth_file = true;
			}
		}
	}
	LIST_FOREACH (item, &w->users) {
		User *u = LIST_CONTAINER(item, User, head);
		const UserDef *ud = config_find_user(cf, u->name);
		u->pool_size = ud ? ud->pool_size : -1;
		u->reserve_pool_size = ud ? ud->reserve_pool_size : -1;
		u->pool_mode = ud ? ud->pool_mode : -1;
		u->max_user_connections = ud ? ud->max_user_connections : -1;
		u->max_user_client_connections = ud ? ud->max_user_client_connections : -1;
		u->query_timeout = ud ? ud->query_timeout : -1;
		u->idle_transaction_timeout = ud ? ud->idle_transaction_timeout : -1;
		u->transaction_timeout = ud ? ud->transaction_timeout : -1;
		u->client_idle_timeout = ud ? ud->client_idle_timeout : -1;
		u->from_config = ud != NULL;
	}
	for (int i = 0; i < cf->n_users; i++) {
		User *u = pool_get_user(w, cf->users[i].name);
		if (u && !u->from_config) {
			const UserDef *ud = &cf->users[i];
			u->pool_size = ud->pool_size;
			u->reserve_pool_size = ud->reserve_pool_size;
			u->pool_mode = ud->pool_mode;
			u->max_user_connections = ud->max_user_connections;
			u->max_user_client_connections = ud->max_user_client_connections;
			u->query_timeout = ud->query_timeout;
			u->idle_transaction_timeout = ud->idle_transaction_timeout;
			u->transaction_timeout = ud->transaction_timeout;
			u->client_idle_timeout = ud->client_idle_timeout;
			u->from_config = true;
		}
	}
}

/* ---- pools ---- */

void pool_init(Pool *p, Worker *w, Database *db, User *user, Shared *sh)
{
	list_init(&p->head);
	list_init(&p->active_clients);
	list_init(&p->waiting_clients);
	list_init(&p->active_servers);
	list_init(&p->idle_servers);
	list_init(&p->used_servers);
	list_init(&p->tested_servers);
	list_init(&p->canceling_servers);
	list_init(&p->new_servers);
	p->w = w;
	p->db = db;
	p->user = user;
	p->sh = sh;
}

Pool *pool_get(Worker *w, Database *db, User *user)
{
	List *item;
	LIST_FOREACH (item, &w->pools) {
		Pool *p = LIST_CONTAINER(item, Pool, head);
		if (p->db == db && p->user == user)
			return p;
	}
	Pool *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	pool_init(p, w, db, user, shared_get(w->app, SHARED_POOL, db->name, user->name));
	list_append(&w->pools, &p->head);
	return p;
}

/* A [users] value beats a [databases] value beats the global one; -1 means unset. */
static int layered(int user_value, int db_value, int global_value)
{
	return user_value >= 0 ? user_value : db_value >= 0 ? db_value : global_value;
}

int pool_size_of(const Pool *p)
{
	return layered(p->user->pool_size, p->db->pool_size, p->w->app->cf->default_pool_size);
}

int pool_reserve_of(const Pool *p)
{
	return layered(p->user->reserve_pool_size, p->db->reserve_pool_size,
	               p->w->app->cf->reserve_pool_size);
}

int pool_server_count(const Pool *p)
{
	return p->server_count;
}

static int count_waiting(const Pool *p, usec_t *oldest_wait)
{
	int n = 0;
	const List *item;
	*oldest_wait = 0;
	LIST_FOREACH (item, &p->waiting_clients) {
		const Client *c = LIST_CONTAINER(item, Client, head);
		if (!*oldest_wait || c->wait_start < *oldest_wait)
			*oldest_wait = c->wait_start;
		n++;
	}
	return n;
}

/* Take a server slot of the pool, its database and its user, all or none. The counters are
 * shared by every worker, so the limits hold for the whole process. */
bool pool_take_slots(Pool *p, int pool_limit, int db_limit, int user_limit)
{
	if (!shared_take(&p->sh->servers, pool_limit))
		return false;
	if (!shared_take(&p->db->sh->servers, db_limit)) {
		shared_put(&p->sh->servers);
		return false;
	}
	if (!shared_take(&p->user->sh->servers, user_limit)) {
		shared_put(&p->db->sh->servers);
		shared_put(&p->sh->servers);
		return false;
	}
	return true;
}

void pool_put_slots(Pool *p)
{
	shared_put(&p->user->sh->servers);
	shared_put(&p->db->sh->servers);
	shared_put(&p->sh->servers);
}

/* The pool is full here, clients wait, and another worker may sit on idle servers of the same
 * key: ask the one with the most to hand one over. */
static void want_from_others(Pool *p)
{
	App *app = p->w->app;
	int best = -1, most = 0;
	if (app->n_workers <= 1 || p->is_auth_pool)
		return;
	for (int i = 0; i < app->n_workers; i++) {
		if (i == p->w->idx)
			continue;
		int n = atomic_load_explicit(&p->sh->lanes[i].idle, memory_order_relaxed);
		if (n > most) {
			most = n;
			best = i;
		}
	}
	if (best >= 0)
		worker_want_server(app->workers[best], p->sh);
}

/* A server login of this pool failed less than server_login_retry ago, and no worker has logged
 * one in since (another worker's success means the server is back). */
static bool pool_login_failing(const Pool *p, usec_t now)
{
	if (!p->last_login_fail || now - p->last_login_fail >= p->w->app->cf->server_login_retry)
		return false;
	return !p->sh || atomic_load(&p->sh->login_ok_at) < (long long)p->last_login_fail;
}

/* max_db_connections or max_user_connections keeps p from launching while another pool of the
 * same database (or user) in this worker sits on idle servers: close the one idle longest, as
 * PgBouncer does. true if one was closed (its slot is free again). */
static bool evict_idle_server(Pool *p, int db_max, int user_max)
{
	bool db_full =
	    db_max > 0 && atomic_load_explicit(&p->db->sh->servers, memory_order_relaxed) >= db_max;
	bool user_full =
	    user_max > 0 && atomic_load_explicit(&p->user->sh->servers, memory_order_relaxed) >= user_max;
	Server *victim = NULL;
	List *item, *sitem;
	if (!db_full && !user_full)
		return false;
	LIST_FOREACH (item, &p->w->pools) {
		Pool *q = LIST_CONTAINER(item, Pool, head);
		if (q == p || q->is_auth_pool || (db_full && q->db != p->db) ||
		    (!db_full && q->user != p->user))
			continue;
		LIST_FOREACH (sitem, &q->idle_servers) {
			Server *s = LIST_CONTAINER(sitem, Server, head);
			if (!victim || s->idle_since < victim->idle_since)
				victim = s;
		}
	}
	if (!victim)
		return false;
	server_close(victim, "evicted");
	return true;
}

/* Launch servers for waiting clients and min_pool_size, within every limit. */
void pool_launch_if_needed(Pool *p)
{
	App *app = p->w->app;
	const Config *cf = app->cf;
	usec_t now = now_usec();
	/* Paused (PAUSE, KILL, SUSPEND, SIGUSR1): no new servers, or each would be closed at once. */
	if (app->shutdown != SHUTDOWN_NONE || p->db->removed || app->paused || p->db->paused)
		return;
	if (p->repl_waiting > 0)
		repl_launch_waiting(p);
	if (pool_login_failing(p, now))
		return;
	int waiting = p->waiting_count;
	int total = atomic_load_explicit(&p->sh->servers, memory_order_relaxed);
	int min_size = p->db->min_pool_size >= 0 ? p->db->min_pool_size : cf->min_pool_size;
	int size = pool_size_of(p);
	int reserve = pool_reserve_of(p);
	/* The common case under load: everyone waits for a full pool. Decide without list walks. */
	if (total >= min_size && (waiting == 0 || (size > 0 && total >= size + reserve))) {
		if (waiting > 0)
			want_from_others(p);
		return;
	}
	usec_t oldest = 0;
	count_waiting(p, &oldest);
	int logging_in = list_count(&p->new_servers);
	/* Until one server has logged in the pool knows nothing (is the host up, is the password
	 * right): like PgBouncer, one login at a time until then. */
	if (!p->welcome.ready && logging_in > 0)
		return;
	int want = waiting - logging_in;
	if (min_size > 0 && (p->db->forced_user || !list_empty(&p->active_clients) || waiting > 0) &&
	    total < min_size && want < min_size - total)
		want = min_size - total;
	int db_max = p->db->max_db_connections >= 0 ? p->db->max_db_connections : cf->max_db_connections;
	int user_max =
	    p->user->max_user_connections >= 0 ? p->user->max_user_connections : cf->max_user_connections;
	while (want > 0) {
		int limit = size;
		if (size > 0 && atomic_load_explicit(&p->sh->servers, memory_order_relaxed) >= size) {
			bool reserve_ok =
			    reserve > 0 && waiting > 0 && now - oldest >= cf->reserve_pool_timeout;
			if (!reserve_ok)
				break;
			limit = size + reserve;
		}
		if (!pool_take_slots(p, limit, db_max, user_max)) {
			/* a database or user limit is full: an idle server of another pool gives way */
			if (waiting > 0 && evict_idle_server(p, db_max, user_max))
				continue;
			break;
		}
		if (limit > size && size > 0)
			log_msg(&app->log, LOG_LEVEL_LOG, NULL, "taking connection from reserve_pool (%s/%s)",
			        p->db->name, p->user->name);
		server_launch(p);
		want--;
	}
	if (want > 0 && waiting > 0)
		want_from_others(p);
}

/* Link a server to a client and count the assignment. */
static void link_pair(Client *c, Server *s)
{
	usec_t now = now_usec();
	c->link = s;
	s->link = c;
	server_set_state(s, SV_ACTIVE);
	s->used = true;
	if (c->state != CL_ACTIVE)
		client_set_state(c, CL_ACTIVE);
	s->pool->db->stats.server_assignment_count++;
	if (c->wait_start) {
		s->pool->db->stats.wait_time += (uint64_t)(now - c->wait_start);
		c->wait_start = 0;
	}
	c->wait_notified = false;
	s->request_time = now;
	s->sb.dst = &c->sb;
	c->sb.dst = &s->sb;
}

static bool hand_off(Server *s, bool only_if_fairer);

static bool server_expired(const Server *s, usec_t now)
{
	const Config *cf = s->w->app->cf;
	usec_t lifetime = s->pool->db->server_lifetime >= 0
	                      ? (usec_t)s->pool->db->server_lifetime * USEC_PER_SEC
	                      : cf->server_lifetime;
	if (lifetime == 0) /* PgBouncer's "use once" */
		return s->used;
	return now - s->connect_time >= lifetime;
}

bool pool_find_server(Client *c)
{
	Pool *p = c->pool;
	App *app = c->w->app;
	const Config *cf = app->cf;
	usec_t now = now_usec();
	char msg[400];

	if (!app->paused && !p->db->paused && app->shutdown != SHUTDOWN_WAIT_FOR_SERVERS) {
		List *item;
		while ((item = list_first(&p->idle_servers)) != NULL) {
			Server *s = LIST_CONTAINER(item, Server, head);
			if (s->close_needed) {
				server_close(s, "obsolete connection");
				continue;
			}
			if (server_expired(s, now)) {
				server_close(s, "server lifetime over");
				continue;
			}
			/* a server that has only just logged in is known good: no check before its
			 * first client */
			if (s->used && cf->server_check_query && *cf->server_check_query &&
			    cf->server_check_delay >= 0 && now - s->idle_since > cf->server_check_delay) {
				/* Test it before trusting it; the client waits for this or another one. */
				server_set_state(s, SV_TESTED);
				s->running_internal = true;
				server_send_query(s, strcmp(cf->server_check_query, "<empty>") == 0
				                         ? ""
				                         : cf->server_check_query);
				continue;
			}
			link_pair(c, s);
			return true;
		}
	}
	if (app->shutdown == SHUTDOWN_WAIT_FOR_SERVERS) {
		/* a new transaction during SHUTDOWN WAIT_FOR_SERVERS: no server will come */
		client_error_close(c, "08P01", "server shutting down");
		return false;
	}
	if (c->state != CL_WAITING) {
		c->wait_start = now;
		client_set_state(c, CL_WAITING);
	}
	if (pool_login_failing(p, now) && list_empty(&p->new_servers) && p->welcome.ready &&
	    !p->last_login_sqlstate_is_starting) {
		snprintf(msg, sizeof(msg),
		         "server login has been failing, cached error: %s (server_login_retry)",
		         p->last_login_error);
		client_error_close(c, "08P01", msg);
		return false;
	}
	pool_launch_if_needed(p);
	return false;
}

void pool_server_ready(Server *s)
{
	Pool *p = s->pool;
	App *app = s->w->app;
	usec_t now = now_usec();
	if (s->cancels_in_flight > 0) {
		/* released while cancel requests for it are still on their way: wait for them */
		server_set_state(s, SV_BEING_CANCELED);
		return;
	}
	if (s->close_needed) {
		server_close(s, "obsolete connection");
		return;
	}
	if (server_expired(s, now) && s->login_done) {
		server_close(s, "server lifetime over");
		return;
	}
	if (app->shutdown == SHUTDOWN_WAIT_FOR_SERVERS || app->paused || p->db->paused) {
		server_close(s, app->shutdown ? "server shutting down" : "pause mode");
		return;
	}
	List *item;
	/* Clients here wait too: the server still goes where clients wait longest per server, so a
	 * worker that got no share of a full pool is not starved by a busy one. */
	if (p->waiting_count > 0 && app->n_workers > 1 && hand_off(s, true))
		return;
	LIST_FOREACH (item, &p->waiting_clients) {
		Client *c = LIST_CONTAINER(item, Client, head);
		if (c->state != CL_WAITING)
			continue;
		link_pair(c, s);
		if (server_vars_differ(s, c))
			server_apply_vars(s, c);
		else
			client_server_linked(c);
		return;
	}
	if (hand_off(s, false))
		return;
	s->idle_since = now;
	server_set_state(s, SV_IDLE);
}

/* Give the server to another worker whose clients of the same pool wait (the limit is shared,
 * so they may have no other way to get one). only_if_fairer: our clients wait too.
 * A move costs a cross-thread message and two epoll changes, and the server's prepared
 * statements, so with clients waiting on both sides it moves only when the other side's oldest
 * client has waited 20 ms longer: under even load moves are rare, and a worker left without a
 * server still gets one within that much of its turn. */
#define HANDOFF_MARGIN_USEC 20000
static bool hand_off(Server *s, bool only_if_fairer)
{
	Pool *p = s->pool;
	App *app = s->w->app;
	if (app->n_workers <= 1 || p->is_auth_pool || app->exiting || app->shutdown != SHUTDOWN_NONE ||
	    !s->login_done || s->close_needed || s->link || !sbuf_is_empty(&s->sb) ||
	    sbuf_unhandled(&s->sb) > 0)
		return false;
	PoolLane *lanes = p->sh->lanes;
	long long mine = atomic_load_explicit(&lanes[s->w->idx].oldest, memory_order_relaxed);
	int best = -1;
	long long best_since = 0;
	for (int k = 1; k < app->n_workers; k++) {
		int i = (s->w->idx + k) % app->n_workers; /* not always the first one */
		long long since = atomic_load_explicit(&lanes[i].oldest, memory_order_relaxed);
		if (since > 0 && (best < 0 || since < best_since)) {
			best = i;
			best_since = since;
		}
	}
	/* Our clients wait too: it goes only to a worker whose oldest client has waited clearly
	 * longer than ours (first come, first served across workers, without ping-pong). */
	if (best >= 0 && only_if_fairer && mine > 0 && best_since + HANDOFF_MARGIN_USEC >= mine)
		best = -1;
	if (best < 0)
		return false;
	/* Our statement names mean nothing to its registry: it forgets them on the server. */
	if (s->ps && s->ps->n > 0) {
		ps_server_forget_all(s);
		s->needs_deallocate = true;
	}
	/* We may be inside this server's own callback: it leaves once that has returned. */
	server_set_state(s, SV_OUTGOING);
	s->handoff_to = best;
	pool_schedule_reap(s->w);
	return true;
}

void pool_give_idle_server(Pool *p)
{
	if (p->waiting_count > 0)
		return; /* ours come first; the janitor's pass will ask again */
	List *item = list_first(&p->idle_servers);
	if (!item)
		return;
	Server *s = LIST_CONTAINER(item, Server, head);
	(void)hand_off(s, false);
}

void pool_adopt_server(Worker *w, Pool *p, Server *s)
{
	s->w = w;
	if (!p) {
		/* cannot happen (pools live until exit); close it without a pool to count in */
		sbuf_attach(&s->sb, w->base, &w->bufpool);
		sbuf_close(&s->sb);
		log_msg(&w->app->log, LOG_LEVEL_WARNING, s->log_prefix,
		        "handed-over server has no pool here");
		return;
	}
	s->pool = p;
	sbuf_attach(&s->sb, w->base, &w->bufpool);
	if (s->needs_deallocate) {
		s->needs_deallocate = false;
		server_set_state(s, SV_TESTED);
		s->running_internal = true;
		server_send_query(s, "DEALLOCATE ALL");
		return;
	}
	pool_server_ready(s);
}

void pool_release_server(Server *s)
{
	App *app = s->w->app;
	const Config *cf = app->cf;
	Client *c = s->link;
	if (c) {
		c->link = NULL;
		s->link = NULL;
	}
	if (!s->ready || s->ready_status != 'I' || !sbuf_is_empty(&s->sb) || s->expect_rfq > 0 ||
	    !ps_queue_empty(s)) {
		server_close(s, "server released while not ready");
		return;
	}
	int mode = pool_mode_of(s->pool, cf);
	bool reset = cf->server_reset_query && *cf->server_reset_query &&
	             (mode == POOL_MODE_SESSION || cf->server_reset_query_always);
	if (reset && !s->close_needed) {
		/* DISCARD ALL (the default) drops the server's prepared statements too. */
		ps_server_forget_all(s);
		server_set_state(s, SV_TESTED);
		s->running_internal = true;
		server_send_query(s, cf->server_reset_query);
		return;
	}
	pool_server_ready(s);
}

/* Fail every waiting client of a pool (server down, database removed). */
void pool_fail_waiting(Pool *p, const char *reason, bool login_only)
{
	List *item, *tmp;
	LIST_FOREACH_SAFE (item, tmp, &p->waiting_clients) {
		Client *c = LIST_CONTAINER(item, Client, head);
		if (login_only && c->state != CL_WAITING_LOGIN)
			continue;
		client_error_close(c, "08P01", reason);
	}
}

/* ---- deferred free ---- */

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
	Worker *w = arg;
	w->reap_scheduled = false;
	pool_reap(w);
}

void pool_schedule_reap(Worker *w)
{
	if (w->reap_scheduled)
		return;
	if (!event_initialized(&w->reap_ev))
		event_assign(&w->reap_ev, w->base, -1, 0, on_reap, w);
	w->reap_scheduled = true;
	event_active(&w->reap_ev, 0, 0);
}

/* Free closed objects, after the callbacks that closed them have returned; send servers
 * handed to other workers. */
void pool_reap(Worker *w)
{
	List *item;
	while ((item = list_first(&w->outgoing_servers)) != NULL) {
		Server *s = LIST_CONTAINER(item, Server, head);
		Worker *to = w->app->workers[s->handoff_to];
		if (w->app->exiting || w->app->shutdown != SHUTDOWN_NONE) {
			server_close(s, "server shutting down");
			continue;
		}
		server_set_state(s, SV_FREE);
		sbuf_detach(&s->sb);
		s->w = NULL; /* in flight: owned by the message until adopted */
		worker_send_server(to, s);
	}
	while ((item = list_first(&w->justfree_clients)) != NULL) {
		Client *c = LIST_CONTAINER(item, Client, head);
		list_del(&c->head);
		sbuf_free(&c->sb);
		ps_client_free(c);
		auth_client_free(c);
		if (c->vars) {
			var_free(c->vars);
			free(c->vars);
			c->vars = NULL;
		}
		free(c->tls);
		free(c->password);
		free(c->repl_options);
		free(c);
	}
	while ((item = list_first(&w->justfree_servers)) != NULL) {
		Server *s = LIST_CONTAINER(item, Server, head);
		list_del(&s->head);
		sbuf_free(&s->sb);
		ps_server_free(s);
		var_free(&s->vars);
		for (int i = 0; i < s->welcome_tmp_n; i++) {
			free(s->welcome_tmp_names[i]);
			free(s->welcome_tmp_values[i]);
		}
		free(s);
	}
}

static void free_client_list(List *l)
{
	List *item;
	while ((item = list_first(l)) != NULL) {
		Client *c = LIST_CONTAINER(item, Client, head);
		sbuf_close(&c->sb);
		client_set_state(c, CL_JUSTFREE);
	}
}

static void free_server_list(List *l)
{
	List *item;
	while ((item = list_first(l)) != NULL) {
		Server *s = LIST_CONTAINER(item, Server, head);
		if (s->dns_req) {
			struct evdns_getaddrinfo_request *r = s->dns_req;
			s->dns_req = NULL;
			evdns_getaddrinfo_cancel(r);
		}
		sbuf_close(&s->sb);
		list_del(&s->head);
		list_append(&s->w->justfree_servers, &s->head);
		s->state = SV_JUSTFREE;
	}
}

void pool_free_all(Worker *w)
{
	List *item;
	free_client_list(&w->login_clients);
	free_server_list(&w->cancel_servers);
	peer_free_all(w);
	while ((item = list_first(&w->outgoing_servers)) != NULL) {
		/* leaving at exit: closed here, its slots given back */
		Server *s = LIST_CONTAINER(item, Server, head);
		server_set_state(s, SV_FREE);
		pool_put_slots(s->pool);
		sbuf_close(&s->sb);
		list_append(&w->justfree_servers, &s->head);
		s->state = SV_JUSTFREE;
	}
	LIST_FOREACH (item, &w->pools) {
		Pool *p = LIST_CONTAINER(item, Pool, head);
		free_client_list(&p->active_clients);
		free_client_list(&p->waiting_clients);
		free_server_list(&p->active_servers);
		free_server_list(&p->idle_servers);
		free_server_list(&p->used_servers);
		free_server_list(&p->tested_servers);
		free_server_list(&p->canceling_servers);
		free_server_list(&p->new_servers);
	}
	pool_reap(w);
	while ((item = list_first(&w->pools)) != NULL) {
		Pool *p = LIST_CONTAINER(item, Pool, head);
		list_del(&p->head);
		for (int i = 0; i < p->welcome.n; i++) {
			free(p->welcome.names[i]);
			free(p->welcome.values[i]);
		}
		free(p);
	}
	while ((item = list_first(&w->databases)) != NULL) {
		Database *db = LIST_CONTAINER(item, Database, head);
		list_del(&db->head);
		free(db->host);
		free(db->dbname);
		free(db->forced_user);
		free(db->forced_password);
		free(db->connect_query);
		free(db->startup_client_encoding);
		free(db->startup_datestyle);
		free(db->startup_timezone);
		free(db->startup_application_name);
		free(db);
	}
	while ((item = list_first(&w->users)) != NULL) {
		User *u = LIST_CONTAINER(item, User, head);
		list_del(&u->head);
		free(u->secret);
		free(u);
	}
	for (int i = 0; i < w->var_count; i++)
		free(w->var_names[i]);
	w->var_count = 0;
	ps_registry_free(&w->ps_registry);
	bufpool_free(&w->bufpool);
}
