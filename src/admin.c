/* admin.c: the admin console (virtual database "pgbouncer", docs/compatibility.md): the command parser,
 * console login, command dispatch, the control commands (PAUSE, RESUME, KILL, ...), replies that
 * wait (PAUSE, SUSPEND, WAIT_CLOSE) and the stats-period snapshots behind the averages.
 * SHOW output lives in admin_show.c. */
#include "admin.h"
#include "worker.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "app.h"
#include "auth.h"
#include "client.h"
#include "peer.h"
#include "server.h"

#define ADMIN_TICK_USEC 50000 /* upkeep of pause states and waiting replies */

enum { WAIT_NONE = 0, WAIT_PAUSE, WAIT_PAUSE_DB, WAIT_SUSPEND, WAIT_CLOSE };

/* ---------------------------------------------------------------- the parser */

static bool is_ws(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static const char *skip_ws(const char *p)
{
	while (is_ws(*p))
		p++;
	return p;
}

static bool is_word_char(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
}

/* End of text quoted with q at p (a doubled q inside is one q), or NULL if unterminated. */
static const char *scan_quoted(const char *p, char q)
{
	const char *s = p + 1;
	for (;;) {
		if (!*s)
			return NULL;
		if (*s == q) {
			if (s[1] != q)
				return s + 1;
			s++;
		}
		s++;
	}
}

/* End of the WORD at p ([0-9A-Za-z_]+ or a "quoted" identifier), or NULL if there is none. */
static const char *scan_word(const char *p)
{
	if (*p == '"')
		return scan_quoted(p, '"');
	const char *s = p;
	while (is_word_char(*s))
		s++;
	return s > p ? s : NULL;
}

/* Copy [s, e) into dst without its quotes q. Like PgBouncer's copy_arg, raw text that does not
 * fit dst is refused. */
static bool copy_word(const char *s, const char *e, char *dst, size_t dstmax, char q)
{
	size_t len = (size_t)(e - s), o = 0;
	dst[0] = 0;
	if (len >= dstmax)
		return false;
	if (len >= 2 && s[0] == q) {
		for (size_t i = 1; i + 1 < len; i++) {
			if (s[i] == q && s[i + 1] == q)
				i++;
			dst[o++] = s[i];
		}
	} else {
		memcpy(dst, s, len);
		o = len;
	}
	dst[o] = 0;
	return true;
}

/* WS* (';' WS*)? then the end of the string. */
static bool at_end(const char *p)
{
	p = skip_ws(p);
	if (*p == ';')
		p = skip_ws(p + 1);
	return *p == 0;
}

static AdminParseKind parse_set(const char *p, AdminCommand *out)
{
	if (strncasecmp(p, "set", 3) != 0 || !is_ws(p[3]))
		return ADMIN_PARSE_INVALID;
	const char *k = skip_ws(p + 3), *ke = scan_word(k);
	if (!ke)
		return ADMIN_PARSE_INVALID;
	const char *s = skip_ws(ke);
	if (*s == '=') {
		s++;
	} else if ((s[0] == 't' || s[0] == 'T') && (s[1] == 'o' || s[1] == 'O')) {
		s += 2;
	} else if (*k != '"' && ke - k > 2 && strncasecmp(ke - 2, "to", 2) == 0) {
		s = ke; /* "SET keyTO value": the regex backtracks into the key */
		ke -= 2;
	} else {
		return ADMIN_PARSE_INVALID;
	}
	const char *v = skip_ws(s);
	char q = *v == '\'' ? '\'' : '"';
	const char *ve = q == '\'' ? scan_quoted(v, '\'') : scan_word(v);
	if (!ve || !at_end(ve))
		return ADMIN_PARSE_INVALID;
	if (!copy_word(k, ke, out->arg, sizeof(out->arg), '"') || !out->arg[0] ||
	    !copy_word(v, ve, out->value, sizeof(out->value), q))
		return ADMIN_PARSE_BAD_ARGS;
	return ADMIN_PARSE_SET;
}

AdminParseKind admin_parse_command(const char *query, AdminCommand *out)
{
	memset(out, 0, sizeof(*out));
	if (!query)
		return out->kind = ADMIN_PARSE_INVALID;
	const char *p = skip_ws(query);
	const char *e1 = scan_word(p);
	if (e1) {
		const char *a = skip_ws(e1), *ae = NULL, *end = e1;
		if (a > e1 && (ae = scan_word(a)) != NULL)
			end = ae;
		if (at_end(end)) {
			if (!copy_word(p, e1, out->cmd, sizeof(out->cmd), '"') ||
			    (ae && !copy_word(a, ae, out->arg, sizeof(out->arg), '"'))) {
				out->cmd[0] = out->arg[0] = 0;
				return out->kind = ADMIN_PARSE_BAD_ARGS;
			}
			return out->kind = ADMIN_PARSE_CMD;
		}
	}
	out->kind = parse_set(p, out);
	if (out->kind != ADMIN_PARSE_SET)
		out->arg[0] = out->value[0] = 0;
	return out->kind;
}

/* ---------------------------------------------------------------- state */

/* The console's pseudo database, user and pool: one set per worker, since each worker's
 * console clients sit on its own lists. Owned by the worker (Worker.console). */
typedef struct Console {
	Database db;
	User user;
	Pool pool;
} Console;

static char s_name[] = "pgbouncer";
/* Control-plane state: read and written only with the world stopped (console commands,
 * admin_tick) or before the workers start. */
static bool s_suspended;
static usec_t s_suspend_start;
static bool s_was_paused;
static bool s_tick_work; /* a wait, pause or suspend for admin_tick to follow */
static struct event s_tick_ev;

void admin_worker_init(Worker *w)
{
	Console *con = calloc(1, sizeof(*con));
	if (!con)
		abort();
	w->console = con;
	Database *db = &con->db;
	User *u = &con->user;
	Pool *p = &con->pool;
	list_init(&db->head);
	snprintf(db->name, sizeof(db->name), "%s", s_name);
	db->dbname = s_name;
	db->forced_user = s_name;
	db->pool_size = 2;
	db->min_pool_size = 0;
	db->reserve_pool_size = 0;
	db->pool_mode = POOL_MODE_STATEMENT;
	db->max_db_connections = db->max_db_client_connections = -1;
	db->server_lifetime = -1;
	db->console = true;
	db->sh = shared_get(w->app, SHARED_DB, s_name, "\001console");
	list_init(&u->head);
	snprintf(u->name, sizeof(u->name), "%s", s_name);
	u->pool_size = u->reserve_pool_size = u->pool_mode = -1;
	u->max_user_connections = u->max_user_client_connections = -1;
	u->sh = shared_get(w->app, SHARED_USER, s_name, "\001console");
	pool_init(p, w, db, u, shared_get(w->app, SHARED_POOL, s_name, "\001console"));
	p->welcome.ready = true;
}

void admin_worker_cleanup(Worker *w)
{
	List *item;
	Console *con = w->console;
	if (!con)
		return;
	while ((item = list_first(&con->pool.active_clients)) != NULL) {
		Client *c = LIST_CONTAINER(item, Client, head);
		sbuf_close(&c->sb);
		client_set_state(c, CL_JUSTFREE);
	}
	pool_reap(w);
	free(con);
	w->console = NULL;
}

Database *admin_database(Worker *w)
{
	return &((Console *)w->console)->db;
}

Pool *admin_pool(Worker *w)
{
	return &((Console *)w->console)->pool;
}

bool admin_is_suspended(void)
{
	return s_suspended;
}

/* ---------------------------------------------------------------- replies */

static bool ready(Client *c, const char *tag)
{
	PktBuf pb;
	pktbuf_init_dynamic(&pb, 64);
	return admin_send_result(c, &pb, tag);
}

static bool syntax_error(Client *c, const char *query)
{
	return admin_error(c, "invalid command '%s', use SHOW HELP;", query);
}

static bool need_admin(Client *c)
{
	if (c->admin == ADMIN_FULL)
		return true;
	admin_error(c, "admin access needed");
	return false;
}

/* ---------------------------------------------------------------- lookups and counts */

/* With several workers each has its own copy of a database; the console (world stopped) acts
 * on all copies of a name. name NULL: every database. */
static bool db_matches(const Database *db, const char *name)
{
	return !name || strcmp(db->name, name) == 0;
}

static Database *find_db(Worker *w, const char *name)
{
	List *item;
	LIST_FOREACH (item, &w->databases) {
		Database *db = LIST_CONTAINER(item, Database, head);
		if (!db->removed && strcmp(db->name, name) == 0)
			return db;
	}
	return NULL;
}

/* Make sure every worker has the database (autodb creates it on first use); the caller's copy. */
static Database *find_db_everywhere(Worker *self, const char *name, bool create)
{
	App *app = self->app;
	Database *mine = NULL;
	for (int i = 0; i < app->n_workers; i++) {
		Worker *w = app->workers[i];
		Database *db = create ? pool_find_database(w, name) : find_db(w, name);
		if (w == self)
			mine = db;
	}
	return mine;
}

static void set_db_flag(App *app, const char *name, size_t off, bool value)
{
	List *item;
	for (int i = 0; i < app->n_workers; i++)
		LIST_FOREACH (item, &app->workers[i]->databases) {
			Database *db = LIST_CONTAINER(item, Database, head);
			if (db_matches(db, name))
				*(bool *)((char *)db + off) = value;
		}
}

static int db_server_count(App *app, const char *name)
{
	int n = 0;
	List *item;
	for (int i = 0; i < app->n_workers; i++)
		LIST_FOREACH (item, &app->workers[i]->pools) {
			Pool *p = LIST_CONTAINER(item, Pool, head);
			if (db_matches(p->db, name))
				n += pool_server_count(p);
		}
	return n;
}

static int close_needed_count(App *app, const char *name)
{
	int n = 0;
	List *pi, *si;
	for (int w = 0; w < app->n_workers; w++)
		LIST_FOREACH (pi, &app->workers[w]->pools) {
			Pool *p = LIST_CONTAINER(pi, Pool, head);
			if (!db_matches(p->db, name))
				continue;
			List *lists[] = {&p->active_servers, &p->idle_servers,      &p->used_servers,
			                 &p->tested_servers, &p->canceling_servers, &p->new_servers};
			for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
				LIST_FOREACH (si, lists[i])
					n += LIST_CONTAINER(si, Server, head)->close_needed;
		}
	return n;
}

static void close_server_list(List *list, const char *reason)
{
	List *item, *tmp;
	LIST_FOREACH_SAFE (item, tmp, list)
		server_close(LIST_CONTAINER(item, Server, head), reason);
}

/* Servers nobody uses go at once while paused; busy ones when released (pool_server_ready). */
static void pause_sweep(App *app)
{
	List *item;
	for (int w = 0; w < app->n_workers; w++)
		LIST_FOREACH (item, &app->workers[w]->pools) {
			Pool *p = LIST_CONTAINER(item, Pool, head);
			if (!((app->paused && !s_suspended) || p->db->paused))
				continue;
			close_server_list(&p->idle_servers, "pause mode");
			close_server_list(&p->used_servers, "pause mode");
		}
}

/* After a pause: hand idle servers to waiting clients and launch what is missing. */
static bool has_waiting(const Pool *p)
{
	const List *ci;
	LIST_FOREACH (ci, &p->waiting_clients) {
		if (LIST_CONTAINER(ci, Client, head)->state == CL_WAITING)
			return true;
	}
	return false;
}

static void kick_pools(App *app, const char *name)
{
	List *item, *si;
	for (int w = 0; w < app->n_workers; w++)
		LIST_FOREACH (item, &app->workers[w]->pools) {
			Pool *p = LIST_CONTAINER(item, Pool, head);
			if (!db_matches(p->db, name))
				continue;
			/* pool_server_ready links the first idle server to a waiting client (or closes it) */
			for (int guard = 0;
			     guard < 100000 && (si = list_first(&p->idle_servers)) && has_waiting(p); guard++)
				pool_server_ready(LIST_CONTAINER(si, Server, head));
			pool_launch_if_needed(p);
		}
}

/* Every socket except the console's: SUSPEND stops reading them, RESUME goes on. The sockets
 * are collected first: fn may run callbacks that move objects between lists (nothing is freed
 * before the loop's next reap). */
static void for_each_socket_of(Worker *w, void (*fn)(SBuf *sb))
{
	List *pi, *item;
	size_t n = 0, cap = 256;
	SBuf **all = malloc(cap * sizeof(*all));
	if (!all)
		return;
#define ADD_SB(sbp)                                                                                          \
	do {                                                                                                 \
		if (n == cap) {                                                                              \
			SBuf **nall = realloc(all, 2 * cap * sizeof(*all));                                  \
			if (!nall)                                                                           \
				goto done;                                                                   \
			all = nall;                                                                          \
			cap *= 2;                                                                            \
		}                                                                                            \
		all[n++] = (sbp);                                                                            \
	} while (0)
	LIST_FOREACH (item, &w->login_clients)
		ADD_SB(&LIST_CONTAINER(item, Client, head)->sb);
	LIST_FOREACH (pi, &w->pools) {
		Pool *p = LIST_CONTAINER(pi, Pool, head);
		List *lists[] = {&p->active_clients, &p->waiting_clients};
		for (size_t i = 0; i < 2; i++)
			LIST_FOREACH (item, lists[i])
				ADD_SB(&LIST_CONTAINER(item, Client, head)->sb);
		List *slists[] = {&p->active_servers, &p->idle_servers,      &p->used_servers,
		                  &p->tested_servers, &p->canceling_servers, &p->new_servers};
		for (size_t i = 0; i < sizeof(slists) / sizeof(slists[0]); i++)
			LIST_FOREACH (item, slists[i])
				ADD_SB(&LIST_CONTAINER(item, Server, head)->sb);
	}
#undef ADD_SB
done:
	for (size_t i = 0; i < n; i++)
		fn(all[i]);
	free(all);
}

static void for_each_socket(App *app, void (*fn)(SBuf *sb))
{
	for (int i = 0; i < app->n_workers; i++)
		for_each_socket_of(app->workers[i], fn);
}

static bool s_all_flushed;
static void check_flushed(SBuf *sb)
{
	if (!sb->closed && (!sbuf_is_empty(sb) || !sbuf_gen_empty(sb)))
		s_all_flushed = false;
}

static void continue_socket(SBuf *sb)
{
	if (!sb->closed && !sb->connecting)
		sbuf_continue(sb);
}

static void full_resume(App *app)
{
	bool was_suspended = s_suspended;
	app->paused = false;
	s_suspended = false;
	if (was_suspended)
		for_each_socket(app, continue_socket);
	kick_pools(app, NULL);
}

/* ---------------------------------------------------------------- waiting replies */

static bool wait_done(App *app, Client *c)
{
	const char *dbname = c->admin_wait_db ? c->admin_wait_db->name : NULL;
	switch (c->admin_wait) {
	case WAIT_PAUSE:
		return !app->paused || db_server_count(app, NULL) == 0;
	case WAIT_PAUSE_DB:
		return !c->admin_wait_db->paused || db_server_count(app, dbname) == 0;
	case WAIT_SUSPEND:
		s_all_flushed = true;
		for_each_socket(app, check_flushed);
		return s_all_flushed || !s_suspended ||
		       now_usec() - s_suspend_start >= app->cf->suspend_timeout;
	case WAIT_CLOSE:
		return close_needed_count(app, dbname) == 0;
	}
	return true;
}

static const char *wait_tag(int wait)
{
	switch (wait) {
	case WAIT_SUSPEND:
		return "SUSPEND";
	case WAIT_CLOSE:
		return "WAIT_CLOSE";
	}
	return "PAUSE";
}

/* Reply now if the condition already holds, else keep the reply for admin_tick. */
static bool wait_or_reply(Client *c, int wait, Database *db)
{
	c->admin_wait = wait;
	c->admin_wait_db = db;
	c->admin_wait_start = now_usec();
	s_tick_work = true;
	if (!wait_done(c->w->app, c))
		return true;
	c->admin_wait = WAIT_NONE;
	return ready(c, wait_tag(wait));
}

static void finish_waits(App *app)
{
	Client *waiting[64];
	int n = 0;
	List *item;
	/* collected first: a reply lets the client's next query run, which may close others */
	for (int w = 0; w < app->n_workers; w++)
		LIST_FOREACH (item, &admin_pool(app->workers[w])->active_clients) {
			Client *c = LIST_CONTAINER(item, Client, head);
			if (c->admin_wait != WAIT_NONE && n < (int)(sizeof(waiting) / sizeof(waiting[0])))
				waiting[n++] = c;
		}
	for (int i = 0; i < n; i++) {
		Client *c = waiting[i];
		if (c->state != CL_ACTIVE || c->sb.closed || c->admin_wait == WAIT_NONE || !wait_done(app, c))
			continue;
		const char *tag = wait_tag(c->admin_wait);
		c->admin_wait = WAIT_NONE;
		c->admin_wait_db = NULL;
		if (ready(c, tag))
			sbuf_continue(&c->sb);
	}
}

static bool any_console_client(App *app, bool waiting_only)
{
	List *item;
	for (int w = 0; w < app->n_workers; w++)
		LIST_FOREACH (item, &admin_pool(app->workers[w])->active_clients)
			if (!waiting_only || LIST_CONTAINER(item, Client, head)->admin_wait != WAIT_NONE)
				return true;
	return false;
}

static bool any_db_paused(App *app)
{
	List *item;
	for (int w = 0; w < app->n_workers; w++)
		LIST_FOREACH (item, &app->workers[w]->databases)
			if (LIST_CONTAINER(item, Database, head)->paused)
				return true;
	return false;
}

/* Follows pauses, suspends and waiting console replies. It stops the world, so it runs only
 * while there is something to follow. */
static void admin_tick(evutil_socket_t fd, short what, void *arg)
{
	App *app = arg;
	if (!s_tick_work && !app->paused && !s_was_paused && !s_suspended)
		return;
	worker_stop_world(app->workers[0]);
	if (s_suspended && !app->paused) /* SIGUSR2 during SUSPEND */
		full_resume(app);
	if (s_was_paused && !app->paused)
		kick_pools(app, NULL); /* SIGUSR2 after SIGUSR1 */
	s_was_paused = app->paused;
	pause_sweep(app);
	finish_waits(app);
	if (s_suspended && !any_console_client(app, false)) {
		log_msg(&app->log, LOG_LEVEL_LOG, NULL, "admin disappeared when suspended, doing RESUME");
		full_resume(app);
	}
	s_tick_work = app->paused || s_suspended || any_db_paused(app) || any_console_client(app, true);
	worker_resume_world(app->workers[0]);
}

/* ---------------------------------------------------------------- login */

void admin_init(App *app)
{
	struct timeval tick = {0, ADMIN_TICK_USEC};
	event_assign(&s_tick_ev, app->workers[0]->base, -1, EV_PERSIST, admin_tick, app);
	event_add(&s_tick_ev, &tick);
	admin_stats_start(app);
}

void admin_cleanup(App *app)
{
	List *item;
	if (event_initialized(&s_tick_ev))
		event_del(&s_tick_ev);
	admin_stats_stop();
	(void)item;
	(void)app;
}

bool admin_is_console_db(const char *dbname)
{
	return dbname && strcmp(dbname, s_name) == 0;
}

/* name is in a comma/space separated list (admin_users, stats_users); case matters. */
static bool in_user_list(const char *list, const char *name)
{
	size_t n = strlen(name);
	const char *p = list ? list : "";
	while (*p) {
		while (*p == ',' || is_ws(*p))
			p++;
		const char *start = p;
		while (*p && *p != ',')
			p++;
		const char *end = p;
		while (end > start && is_ws(end[-1]))
			end--;
		if ((size_t)(end - start) == n && n > 0 && strncmp(start, name, n) == 0)
			return true;
	}
	return false;
}

static bool peer_is_own_user(Client *c)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (!c->is_unix || c->sb.fd < 0)
		return false;
	if (getsockopt(c->sb.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	return cred.uid == getuid();
}

bool admin_startup(Client *c)
{
	App *app = c->w->app;
	if (atomic_load(&app->client_total) > app->cf->max_client_conn) {
		client_error_close(c, "08P01", "no more connections allowed (max_client_conn)");
		return false;
	}
	c->db = NULL;
	c->user = pool_find_user(c->w, c->username);
	c->console_login = true;
	if (strcmp(c->username, s_name) == 0 && peer_is_own_user(c)) {
		c->admin = ADMIN_FULL;
		c->auth_step = AUTH_STEP_DONE;
		if (app->cf->log_connections)
			log_msg(&app->log, LOG_LEVEL_LOG, client_log_prefix(c),
			        "pgbouncer access from unix socket");
		return client_login_done(c);
	}
	return auth_start(c);
}

bool admin_login_done(Client *c)
{
	App *app = c->w->app;
	const Config *cf = app->cf;
	if (c->admin == ADMIN_NONE) {
		if (in_user_list(cf->admin_users, c->username))
			c->admin = ADMIN_FULL;
		else if (in_user_list(cf->stats_users, c->username) || cf->auth_type == AUTH_TYPE_ANY)
			c->admin = ADMIN_STATS;
		else {
			client_error_close(c, "08P01", "not allowed");
			return false;
		}
	}
	if (!c->user)
		c->user = pool_get_user(c->w, c->username);
	c->db = admin_database(c->w);
	c->pool = admin_pool(c->w);
	/* the client limits hold on the console too, except for admin_users */
	if (!client_take_slots(c, c->admin == ADMIN_FULL))
		return false;

	/* PgBouncer's fixed welcome for console clients. */
	static const char *const params[][2] = {
	    {"server_version", TIDEPOOL_PGBOUNCER_VERSION "/bouncer"},
	    {"client_encoding", "UTF8"},
	    {"server_encoding", "UTF8"},
	    {"DateStyle", "ISO"},
	    {"TimeZone", "GMT"},
	    {"standard_conforming_strings", "on"},
	    {"is_superuser", "on"},
	};
	PktBuf pb;
	pktbuf_init_dynamic(&pb, 256);
	pktbuf_write_auth(&pb, 0);
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++)
		pktbuf_write_param_status(&pb, params[i][0], params[i][1]);
	pktbuf_write_backend_key(&pb, c->cancel_pid, c->cancel_key);
	pktbuf_write_ready(&pb, 'I');
	client_set_state(c, CL_ACTIVE);
	c->request_time = now_usec();
	return admin_send_or_close(c, &pb);
}

/* ---------------------------------------------------------------- commands */

typedef bool (*AdminFn)(Client *c, const char *arg, const char *query);

static bool cmd_show(Client *c, const char *arg, const char *query)
{
	static const char *const fake[][2] = {
	    {"client_encoding", "UTF-8"},
	    {"default_transaction_isolation", "read committed"},
	    {"standard_conforming_strings", "on"},
	    {"datestyle", "ISO"},
	    {"timezone", "GMT"},
	};
	PktBuf pb;
	for (size_t i = 0; i < sizeof(fake) / sizeof(fake[0]); i++) {
		if (strcasecmp(arg, fake[i][0]) != 0)
			continue;
		pktbuf_init_dynamic(&pb, 128);
		admin_row_description(&pb, "s", &fake[i][0]);
		admin_data_row(&pb, "s", fake[i][1]);
		return admin_send_result(c, &pb, "SHOW");
	}
	int r = admin_show(c, arg);
	if (r >= 0)
		return r > 0;
	/* Our extension: SHOW <setting> is one row, one column named after the setting. */
	const Setting *s = *arg ? config_find_setting(arg) : NULL;
	if (!s)
		return syntax_error(c, query);
	char val[1024];
	const char *name = s->name;
	config_format_value(c->w->app->cf, s, val, sizeof(val));
	pktbuf_init_dynamic(&pb, 128);
	admin_row_description(&pb, "s", &name);
	admin_data_row(&pb, "s", val);
	return admin_send_result(c, &pb, "SHOW");
}

static bool cmd_set(Client *c, const char *key, const char *value)
{
	static const char *const fake[] = {"client_encoding", "default_transaction_isolation",
	                                   "standard_conforming_strings", "datestyle", "timezone"};
	App *app = c->w->app;
	PktBuf pb;
	char err[512], tag[512];
	for (size_t i = 0; i < sizeof(fake) / sizeof(fake[0]); i++) {
		if (strcasecmp(key, fake[i]) == 0) {
			pktbuf_init_dynamic(&pb, 128);
			admin_write_message(&pb, 'N', "NOTICE", "00000", "SET ignored", NULL);
			return admin_send_result(c, &pb, "SET");
		}
	}
	if (!need_admin(c))
		return !c->sb.closed;
	const Setting *s = config_find_setting(key);
	if (!s) {
		log_msg(&app->log, LOG_LEVEL_ERROR, NULL, "unknown parameter: pgbouncer/%s", key);
		return admin_error(c, "SET failed");
	}
	if (s->flags & SETTING_NO_RELOAD)
		return admin_error(c,
		                   "SET failed: %s takes effect only at start (changeable = no); "
		                   "change it in the config file and restart",
		                   s->name);
	if (config_set(app->cf, s->name, value, err, sizeof(err)) < 0) {
		log_msg(&app->log, LOG_LEVEL_ERROR, NULL, "%s", err);
		return admin_error_reply(c, "08P01", "SET failed", err);
	}
	if (strcmp(s->name, "verbose") == 0)
		app->log.verbose = app->cf->verbose; /* one verbosity, as -v and the setting in PgBouncer */
	pktbuf_init_dynamic(&pb, 128);
	if (err[0]) {
		log_msg(&app->log, LOG_LEVEL_WARNING, NULL, "%s", err);
		admin_write_message(&pb, 'N', "WARNING", "01000", err, NULL);
	}
	/* The value is kept even when the contexts cannot be built yet: a certificate and its
	 * key are SET one after the other, and only the pair is valid. */
	if ((s->flags & SETTING_TLS) && app_apply_tls(app, err, sizeof(err)) < 0) {
		log_msg(&app->log, LOG_LEVEL_ERROR, NULL, "%s", err);
		admin_write_message(&pb, 'N', "NOTICE", "00000",
		                    "TLS settings could not be applied, still using old configuration", NULL);
	}
	snprintf(tag, sizeof(tag), "SET %s=%s", key, value);
	return admin_send_result(c, &pb, tag);
}

static void log_issued(Client *c, const char *cmd, const char *arg)
{
	Logger *lg = &c->w->app->log;
	if (arg && *arg)
		log_msg(lg, LOG_LEVEL_LOG, NULL, "%s '%s' command issued", cmd, arg);
	else
		log_msg(lg, LOG_LEVEL_LOG, NULL, "%s command issued", cmd);
}

static bool cmd_reload(Client *c, const char *arg, const char *query)
{
	App *app = c->w->app;
	char err[1024];
	if (*arg)
		return syntax_error(c, query);
	if (!need_admin(c))
		return !c->sb.closed;
	log_issued(c, "RELOAD", NULL);
	if (app_reload(app, err, sizeof(err)) < 0) {
		log_msg(&app->log, LOG_LEVEL_ERROR, NULL, "%s", err);
		log_msg(&app->log, LOG_LEVEL_ERROR, NULL, "RELOAD Failed, see logs for more details");
		return admin_error_reply(c, "F0000", "RELOAD failed, see logs for additional details", NULL);
	}
	return ready(c, "RELOAD");
}

static bool cmd_shutdown(Client *c, const char *arg, const char *query)
{
	App *app = c->w->app;
	ShutdownMode mode = SHUTDOWN_IMMEDIATE;
	if (strcasecmp(arg, "WAIT_FOR_CLIENTS") == 0)
		mode = SHUTDOWN_WAIT_FOR_CLIENTS;
	else if (strcasecmp(arg, "WAIT_FOR_SERVERS") == 0)
		mode = SHUTDOWN_WAIT_FOR_SERVERS;
	else if (*arg)
		return syntax_error(c, query);
	if (!need_admin(c))
		return !c->sb.closed;
	if (mode == SHUTDOWN_IMMEDIATE) {
		/* No reply: the connection stays open until the process exits. */
		log_msg(&app->log, LOG_LEVEL_LOG, NULL, "SHUTDOWN command issued");
		app_start_shutdown(app, SHUTDOWN_IMMEDIATE);
		return true;
	}
	log_msg(&app->log, LOG_LEVEL_LOG, NULL, "SHUTDOWN %s command issued",
	        mode == SHUTDOWN_WAIT_FOR_SERVERS ? "WAIT_FOR_SERVERS" : "WAIT_FOR_CLIENTS");
	if (mode == SHUTDOWN_WAIT_FOR_SERVERS)
		app->paused = true;
	bool ok = ready(c, "SHUTDOWN");
	app_start_shutdown(app, mode);
	return ok;
}

static bool cmd_pause(Client *c, const char *arg, const char *query)
{
	App *app = c->w->app;
	if (!need_admin(c))
		return !c->sb.closed;
	if (app->paused || s_suspended)
		return admin_error(c, "already suspended/paused");
	log_issued(c, "PAUSE", arg);
	if (!*arg) {
		app->paused = true;
		s_was_paused = true;
		s_tick_work = true;
		pause_sweep(app);
		return wait_or_reply(c, WAIT_PAUSE, NULL);
	}
	if (strcmp(arg, s_name) == 0)
		return admin_error(c, "cannot pause admin db: %s", arg);
	Database *db = find_db_everywhere(c->w, arg, true);
	if (!db)
		return admin_error(c, "no such database: %s", arg);
	set_db_flag(app, arg, offsetof(Database, paused), true);
	s_tick_work = true;
	pause_sweep(app);
	return wait_or_reply(c, WAIT_PAUSE_DB, db);
}

static bool cmd_resume(Client *c, const char *arg, const char *query)
{
	App *app = c->w->app;
	if (!need_admin(c))
		return !c->sb.closed;
	log_issued(c, "RESUME", arg);
	if (*arg) {
		Database *db = find_db(c->w, arg);
		if (!db)
			return admin_error(c, "no such database: %s", arg);
		if (!db->paused)
			return admin_error(c, "database %s is not paused", arg);
		set_db_flag(app, arg, offsetof(Database, paused), false);
		kick_pools(app, arg);
		return ready(c, "RESUME");
	}
	if (app->shutdown != SHUTDOWN_NONE)
		return admin_error(c, "pooler is shutting down");
	bool any_db = any_db_paused(app);
	set_db_flag(app, NULL, offsetof(Database, paused),
	            false); /* our choice: RESUME also undoes KILL and PAUSE <db> */
	if (!app->paused && !s_suspended && !any_db)
		return admin_error(c, "pooler is not paused/suspended");
	full_resume(app);
	s_was_paused = false;
	return ready(c, "RESUME");
}

static bool cmd_suspend(Client *c, const char *arg, const char *query)
{
	App *app = c->w->app;
	if (*arg)
		return syntax_error(c, query);
	if (!need_admin(c))
		return !c->sb.closed;
	if (app->paused || s_suspended)
		return admin_error(c, "already suspended/paused");
	if (any_db_paused(app))
		return admin_error(c, "cannot suspend with paused databases");
	log_issued(c, "SUSPEND", NULL);
	s_suspended = true;
	s_suspend_start = now_usec();
	app->paused = true; /* the pool hands out no server meanwhile */
	s_was_paused = true;
	s_tick_work = true;
	for_each_socket(app, sbuf_pause);
	return wait_or_reply(c, WAIT_SUSPEND, NULL);
}

/* Close every client and server of a database (KILL; NULL: all); it stays paused. */
static void kill_db(App *app, const char *name)
{
	List *pi, *item, *tmp;
	set_db_flag(app, name, offsetof(Database, paused), true);
	s_tick_work = true;
	for (int w = 0; w < app->n_workers; w++)
		LIST_FOREACH (pi, &app->workers[w]->pools) {
			Pool *p = LIST_CONTAINER(pi, Pool, head);
			if (!db_matches(p->db, name) || p->db->console)
				continue;
			LIST_FOREACH_SAFE (item, tmp, &p->waiting_clients)
				client_error_close(LIST_CONTAINER(item, Client, head), "08P01",
				                   "database removed");
			LIST_FOREACH_SAFE (item, tmp, &p->active_clients)
				client_error_close(LIST_CONTAINER(item, Client, head), "08P01",
				                   "database removed");
			close_server_list(&p->active_servers, "database removed");
			close_server_list(&p->idle_servers, "database removed");
			close_server_list(&p->used_servers, "database removed");
			close_server_list(&p->tested_servers, "database removed");
			close_server_list(&p->canceling_servers, "database removed");
			close_server_list(&p->new_servers, "database removed");
		}
}

static bool cmd_kill(Client *c, const char *arg, const char *query)
{
	App *app = c->w->app;
	if (!need_admin(c))
		return !c->sb.closed;
	if (app->paused || s_suspended)
		return admin_error(c, "already suspended/paused");
	log_issued(c, "KILL", arg);
	if (!*arg) {
		kill_db(app, NULL);
		return ready(c, "KILL");
	}
	if (strcmp(arg, s_name) == 0)
		return admin_error(c, "cannot kill admin db: %s", arg);
	Database *db = find_db_everywhere(c->w, arg, true);
	if (!db)
		return admin_error(c, "no such database: %s", arg);
	kill_db(app, arg);
	return ready(c, "KILL");
}

static Client *find_client_by_id(App *app, unsigned long long id)
{
	List *pi, *item;
	for (int k = 0; k < app->n_workers; k++) {
		Worker *w = app->workers[k];
		LIST_FOREACH (item, &admin_pool(w)->active_clients) {
			Client *c = LIST_CONTAINER(item, Client, head);
			if (c->id == id)
				return c;
		}
		LIST_FOREACH (pi, &w->pools) {
			Pool *p = LIST_CONTAINER(pi, Pool, head);
			List *lists[] = {&p->active_clients, &p->waiting_clients};
			for (size_t i = 0; i < 2; i++)
				LIST_FOREACH (item, lists[i]) {
					Client *c = LIST_CONTAINER(item, Client, head);
					if (c->id == id)
						return c;
				}
		}
	}
	return NULL;
}

static bool cmd_kill_client(Client *c, const char *arg, const char *query)
{
	unsigned long long id = 0;
	char extra;
	if (!need_admin(c))
		return !c->sb.closed;
	if (sscanf(arg, "%llu%c", &id, &extra) != 1)
		return admin_error(c, "invalid client pointer supplied");
	Client *target = find_client_by_id(c->w->app, id);
	if (!target)
		return admin_error(c, "client not found");
	client_error_close(target, "08P01", "admin forced disconnect");
	if (target == c)
		return false;
	return ready(c, "KILL_CLIENT");
}

static bool cmd_disable(Client *c, const char *arg, const char *query)
{
	if (!need_admin(c))
		return !c->sb.closed;
	if (!*arg)
		return admin_error(c, "a database is required");
	log_issued(c, "DISABLE", arg);
	if (strcmp(arg, s_name) == 0)
		return admin_error(c, "cannot disable admin db: %s", arg);
	Database *db = find_db_everywhere(c->w, arg, true);
	if (!db)
		return admin_error(c, "no such database: %s", arg);
	set_db_flag(c->w->app, arg, offsetof(Database, disabled), true);
	return ready(c, "DISABLE");
}

static bool cmd_enable(Client *c, const char *arg, const char *query)
{
	if (!need_admin(c))
		return !c->sb.closed;
	if (!*arg)
		return admin_error(c, "a database is required");
	log_issued(c, "ENABLE", arg);
	if (strcmp(arg, s_name) == 0)
		return admin_error(c, "cannot enable admin db: %s", arg);
	Database *db = find_db(c->w, arg);
	if (!db)
		return admin_error(c, "no such database: %s", arg);
	set_db_flag(c->w->app, arg, offsetof(Database, disabled), false);
	return ready(c, "ENABLE");
}

static void mark_close_needed(App *app, const char *name)
{
	List *pi, *si;
	for (int w = 0; w < app->n_workers; w++)
		LIST_FOREACH (pi, &app->workers[w]->pools) {
			Pool *p = LIST_CONTAINER(pi, Pool, head);
			if (!db_matches(p->db, name))
				continue;
			List *lists[] = {&p->active_servers, &p->idle_servers,      &p->used_servers,
			                 &p->tested_servers, &p->canceling_servers, &p->new_servers};
			for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
				LIST_FOREACH (si, lists[i])
					LIST_CONTAINER(si, Server, head)->close_needed = true;
		}
}

static bool cmd_reconnect(Client *c, const char *arg, const char *query)
{
	if (!need_admin(c))
		return !c->sb.closed;
	log_issued(c, "RECONNECT", arg);
	if (!*arg) {
		mark_close_needed(c->w->app, NULL);
		return ready(c, "RECONNECT");
	}
	if (strcmp(arg, s_name) == 0)
		return admin_error(c, "cannot reconnect admin db: %s", arg);
	Database *db = find_db_everywhere(c->w, arg, true);
	if (!db)
		return admin_error(c, "no such database: %s", arg);
	mark_close_needed(c->w->app, arg);
	return ready(c, "RECONNECT");
}

static bool cmd_wait_close(Client *c, const char *arg, const char *query)
{
	if (!need_admin(c))
		return !c->sb.closed;
	log_issued(c, "WAIT_CLOSE", arg);
	if (!*arg)
		return wait_or_reply(c, WAIT_CLOSE, NULL);
	if (strcmp(arg, s_name) == 0)
		return admin_error(c, "cannot wait in admin db: %s", arg);
	Database *db = find_db_everywhere(c->w, arg, true);
	if (!db)
		return admin_error(c, "no such database: %s", arg);
	return wait_or_reply(c, WAIT_CLOSE, db);
}

static const struct {
	const char *name;
	AdminFn fn;
} commands[] = {
    {"disable", cmd_disable},
    {"enable", cmd_enable},
    {"kill", cmd_kill},
    {"kill_client", cmd_kill_client},
    {"pause", cmd_pause},
    {"reconnect", cmd_reconnect},
    {"reload", cmd_reload},
    {"resume", cmd_resume},
    {"select", cmd_show},
    {"show", cmd_show},
    {"shutdown", cmd_shutdown},
    {"suspend", cmd_suspend},
    {"wait_close", cmd_wait_close},
};

/* Run one query; false if the client was closed. */
static bool admin_exec(Client *c, const char *query)
{
	AdminCommand cmd;
	switch (admin_parse_command(query, &cmd)) {
	case ADMIN_PARSE_INVALID:
		return syntax_error(c, query);
	case ADMIN_PARSE_BAD_ARGS:
		return admin_error(c, "bad arguments");
	case ADMIN_PARSE_SET:
		return cmd_set(c, cmd.arg, cmd.value);
	case ADMIN_PARSE_CMD:
		break;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcasecmp(commands[i].name, cmd.cmd) == 0)
			return commands[i].fn(c, cmd.arg, query);
	return syntax_error(c, query);
}

bool admin_handle_cancel(Worker *w, uint32_t pid, uint32_t key)
{
	App *app = w->app;
	List *item;
	if (!w->console)
		return false;
	LIST_FOREACH (item, &admin_pool(w)->active_clients) {
		Client *c = LIST_CONTAINER(item, Client, head);
		if (c->cancel_pid != pid || !peer_key_match(c->cancel_key, key))
			continue;
		if (c->admin_wait == WAIT_NONE)
			log_msg(&app->log, LOG_LEVEL_WARNING, client_log_prefix(c),
			        "admin cancel request for non-waiting client?");
		worker_stop_world(w);
		if (app->shutdown == SHUTDOWN_NONE && (app->paused || s_suspended))
			full_resume(app); /* the waiting PAUSE / SUSPEND then answers */
		worker_resume_world(w);
		return true;
	}
	return false;
}

bool admin_handle_packet(Client *c, PktHdr *pkt)
{
	App *app = c->w->app;
	char msg[128];
	if (pkt->type == 'X') {
		sbuf_prepare_skip(&c->sb, pkt->len);
		client_close(c, "client close request");
		return false;
	}
	if (pkt->avail < pkt->len) {
		client_error_close(c, "08P01", "incomplete pkt");
		return false;
	}
	switch (pkt->type) {
	case 'Q': {
		PktReader r;
		proto_reader_init(&r, pkt);
		const char *q = proto_get_string(&r);
		if (!q) {
			client_error_close(c, "08P01", "incomplete query");
			return false;
		}
		c->request_time = now_usec();
		log_msg(&app->log, LOG_LEVEL_DEBUG, client_log_prefix(c), "got admin query: %s", q);
		/* each console command is one query and one transaction of the console database */
		Stats *st = &admin_database(c->w)->stats;
		st->query_count++;
		st->xact_count++;
		st->client_bytes += pkt->len;
		/* Console commands read and change every worker's objects. */
		worker_stop_world(c->w);
		bool ok = admin_exec(c, q);
		worker_resume_world(c->w);
		if (!ok || c->sb.closed)
			return false;
		sbuf_prepare_skip(&c->sb, pkt->len);
		if (c->admin_wait != WAIT_NONE)
			sbuf_pause(&c->sb); /* the reply comes from admin_tick; read on after it */
		return true;
	}
	case 'P':
	case 'B':
	case 'E':
		admin_error(c, "extended query protocol not supported by admin console");
		break;
	default:
		snprintf(msg, sizeof(msg), "unsupported packet type for admin console: %d", pkt->type);
		admin_error(c, "%s", msg);
		break;
	}
	if (!c->sb.closed)
		client_error_close(c, "08P01", "bad packet");
	return false;
}
