/* authquery.c: auth_user + auth_query (see authquery.h).
 *
 * The query runs on server connections of a pool of its own per (auth database, auth_user):
 * the pool's user object is private, so no client is ever linked to those servers and no
 * client-supplied parameter (search_path...) is ever applied to them (PgBouncer's
 * CVE-2025-12819); the user name travels as a bound parameter, never inside the SQL. The
 * lookup runs at every login of such a user, so a role created after start works at once and
 * an expired one (rolvaliduntil, NULL password) is refused at once; the secret found is kept
 * on the user for its server logins. */
#include "authquery.h"
#include "worker.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "auth.h"
#include "client.h"
#include "server.h"

#define POLL_USEC                 10000
#define MAX_SERVERS_PER_AUTH_POOL 4
#define AUTH_LOGIN_FAILED         "auth_user cannot log in: "

typedef struct AuthPool {
	List head;
	Database *db;
	char auth_user[64];
	User *user; /* private: not in the worker's user list, so no client uses this pool */
	Pool *pool;
} AuthPool;

typedef struct AuthReq {
	List head;
	Client *c; /* NULL once the client went away */
	AuthPool *ap;
	Server *s; /* running the query; NULL while waiting for one */
	char username[64];
	char *query;
	usec_t start;
	bool got_row;
	bool failed;
	bool login_failed; /* the auth_user's own login failed: the client sees that error */
	char *secret;
	char error[300];
} AuthReq;

/* The lookups and private pools of a worker live in it (Worker.auth_pools, auth_requests). */

static void dispatch(Worker *w);

/* ---------------------------------------------------------------- settings per database */

static const DatabaseDef *def_of(const Config *cf, const Database *db)
{
	return db ? config_find_database(cf, db->name, 1) : NULL;
}

static const char *setting(const char *per_db, const char *global)
{
	return per_db && *per_db ? per_db : global && *global ? global : NULL;
}

/* The reserved name of the admin console, which cannot run an auth query. */
#define CONSOLE_DB "pgbouncer"

/* The [databases] entry whose auth settings apply: the client's; none (only the global
 * ones) for the console. */
static const DatabaseDef *client_def(const Config *cf, const Client *c)
{
	return c->console_login ? NULL : def_of(cf, c->db);
}

bool authquery_needed(const Client *c)
{
	const Config *cf = c->w->app->cf;
	const DatabaseDef *def;
	if ((!c->db && !c->console_login) || c->admin || (c->user && c->user->from_auth_file))
		return false;
	def = client_def(cf, c);
	return setting(def ? def->auth_user : NULL, cf->auth_user) != NULL;
}

/* ---------------------------------------------------------------- requests */

static void req_free(AuthReq *r)
{
	list_del(&r->head);
	if (r->secret) {
		OPENSSL_cleanse(r->secret, strlen(r->secret));
		free(r->secret);
	}
	free(r->query);
	free(r);
}

/* The lookup is over: authentication goes on (or the client is told it failed). */
static void finish(AuthReq *r)
{
	Client *c = r->c;
	Worker *w = c ? c->w : NULL;
	if (c && c->state == CL_LOGIN) {
		App *app = w->app;
		if (r->failed) {
			log_msg(&app->log, LOG_LEVEL_WARNING, client_log_prefix(c), "auth_query failed: %s",
			        r->error);
			if (r->login_failed)
				client_error_close(c, "08P01", r->error + strlen(AUTH_LOGIN_FAILED));
			else
				client_error_close(c, "08P01", "bouncer config error");
		} else if (!r->got_row) {
			/* no mock exchange for a user auth_query does not know: say so at once */
			client_error_close(c, "08P01", "no such user");
		} else {
			User *u = pool_get_user(w, r->username);
			if (!u) {
				client_error_close(c, "08P01", "out of memory");
			} else {
				if (u->secret) {
					OPENSSL_cleanse(u->secret, strlen(u->secret));
					free(u->secret);
				}
				/* NULL: unknown, no password or expired (the default query's CASE) */
				u->secret = r->got_row ? r->secret : NULL;
				u->found_by_query = r->got_row;
				r->secret = NULL;
				c->user = u;
				req_free(r);
				auth_continue(c);
				return;
			}
		}
	}
	req_free(r);
}

void authquery_forget(Client *c)
{
	List *item, *tmp;
	LIST_FOREACH_SAFE (item, tmp, &c->w->auth_requests) {
		AuthReq *r = LIST_CONTAINER(item, AuthReq, head);
		if (r->c != c)
			continue;
		if (r->s)
			r->c = NULL; /* the running query finishes; its server goes back */
		else
			req_free(r);
	}
}

static AuthPool *get_auth_pool(Worker *w, Database *db, const char *auth_user)
{
	List *item;
	LIST_FOREACH (item, &w->auth_pools) {
		AuthPool *ap = LIST_CONTAINER(item, AuthPool, head);
		if (ap->db == db && strcmp(ap->auth_user, auth_user) == 0)
			return ap;
	}
	AuthPool *ap = calloc(1, sizeof(*ap));
	User *u = calloc(1, sizeof(*u));
	Pool *p = u ? pool_get(w, db, u) : NULL;
	if (!ap || !u || !p) {
		free(ap);
		free(u);
		return NULL;
	}
	list_init(&u->head);
	snprintf(u->name, sizeof(u->name), "%s", auth_user);
	u->pool_size = u->reserve_pool_size = u->pool_mode = -1;
	u->max_user_connections = u->max_user_client_connections = -1;
	u->query_timeout = u->idle_transaction_timeout = u->transaction_timeout = u->client_idle_timeout = -1;
	/* counted apart from client pools (and from a user of the same name) in every worker */
	u->sh = shared_get(w->app, SHARED_USER, "\001auth_user", auth_user);
	p->sh = shared_get(w->app, SHARED_AUTHPOOL, db->name, auth_user);
	p->is_auth_pool = true;
	ap->db = db;
	snprintf(ap->auth_user, sizeof(ap->auth_user), "%s", auth_user);
	ap->user = u;
	ap->pool = p;
	list_append(&w->auth_pools, &ap->head);
	return ap;
}

/* The auth_user logs in with its auth_file entry (re-read at each lookup: RELOAD may change
 * it), including SCRAM keys a client proved for it. */
static void refresh_credentials(Worker *w, AuthPool *ap)
{
	User *real = pool_find_user(w, ap->auth_user);
	User *u = ap->user;
	if (u->secret) {
		OPENSSL_cleanse(u->secret, strlen(u->secret));
		free(u->secret);
	}
	u->secret = real && real->secret ? strdup(real->secret) : NULL;
	u->has_scram_key = real && real->has_scram_key;
	if (u->has_scram_key)
		memcpy(u->scram_client_key, real->scram_client_key, SCRAM_KEY_LEN);
}

bool authquery_start(Client *c)
{
	Worker *w = c->w;
	const Config *cf = w->app->cf;
	const DatabaseDef *def = client_def(cf, c);
	const char *auth_user = setting(def ? def->auth_user : NULL, cf->auth_user);
	const char *query = setting(def ? def->auth_query : NULL, cf->auth_query);
	const char *auth_dbname = setting(def ? def->auth_dbname : NULL, cf->auth_dbname);
	const char *adb_name = auth_dbname ? auth_dbname : c->console_login ? CONSOLE_DB : c->db->name;
	Database *adb = NULL;
	char msg[200];
	if (strcmp(adb_name, CONSOLE_DB) == 0)
		snprintf(msg, sizeof(msg), "cannot use the reserved \"%s\" database as an auth_dbname",
		         CONSOLE_DB);
	else if (!(adb = auth_dbname ? pool_find_database(w, auth_dbname) : c->db))
		snprintf(msg, sizeof(msg), "authentication database \"%s\" is not configured", adb_name);
	else if (!query)
		snprintf(msg, sizeof(msg), "auth_query is not set");
	if (!adb || !query) {
		log_msg(&w->app->log, LOG_LEVEL_WARNING, client_log_prefix(c), "%s", msg);
		client_error_close(c, "08P01", "bouncer config error");
		return false;
	}
	AuthPool *ap = get_auth_pool(w, adb, auth_user);
	AuthReq *r = ap ? calloc(1, sizeof(*r)) : NULL;
	if (!r || !(r->query = strdup(query))) {
		free(r);
		client_error_close(c, "08P01", "out of memory");
		return false;
	}
	r->c = c;
	r->ap = ap;
	r->start = now_usec();
	snprintf(r->username, sizeof(r->username), "%s", c->username);
	list_append(&w->auth_requests, &r->head);
	refresh_credentials(w, ap);
	log_msg(&w->app->log, LOG_LEVEL_DEBUG, client_log_prefix(c),
	        "looking up the user with auth_query as %s in %s", auth_user, adb->name);
	dispatch(w);
	return c->state == CL_LOGIN;
}

/* ---------------------------------------------------------------- running the query */

static void send_query(Server *s, const char *query, const char *username)
{
	PktBuf pb;
	pktbuf_init_dynamic(&pb, 256);
	pktbuf_start(&pb, 'P'); /* unnamed statement, types inferred */
	pktbuf_put_string(&pb, "");
	pktbuf_put_string(&pb, query);
	pktbuf_put_int16(&pb, 0);
	pktbuf_finish(&pb);
	pktbuf_start(&pb, 'B'); /* the user name as $1, text in and out */
	pktbuf_put_string(&pb, "");
	pktbuf_put_string(&pb, "");
	pktbuf_put_int16(&pb, 0);
	pktbuf_put_int16(&pb, 1);
	pktbuf_put_int32(&pb, (uint32_t)strlen(username));
	pktbuf_put_bytes(&pb, username, strlen(username));
	pktbuf_put_int16(&pb, 0);
	pktbuf_finish(&pb);
	pktbuf_start(&pb, 'E');
	pktbuf_put_string(&pb, "");
	pktbuf_put_int32(&pb, 0);
	pktbuf_finish(&pb);
	pktbuf_start(&pb, 'S');
	pktbuf_finish(&pb);
	if (!pb.failed)
		sbuf_send_gen(&s->sb, pb.buf, pb.pos);
	pktbuf_free(&pb);
}

static Server *take_idle(Pool *p)
{
	List *item;
	while ((item = list_first(&p->idle_servers)) != NULL) {
		Server *s = LIST_CONTAINER(item, Server, head);
		if (s->close_needed) {
			server_close(s, "obsolete connection");
			continue;
		}
		return s;
	}
	return NULL;
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
	dispatch(arg);
}

static void poll_later(Worker *w)
{
	struct timeval tv = {0, POLL_USEC};
	if (!w->auth_poll_ready) {
		event_assign(&w->auth_poll_ev, w->base, -1, 0, on_poll, w);
		w->auth_poll_ready = true;
	}
	if (!evtimer_pending(&w->auth_poll_ev, NULL))
		evtimer_add(&w->auth_poll_ev, &tv);
}

/* Give waiting lookups a server: an idle one, else start one (a few per auth pool). */
static void dispatch_worker(Worker *w)
{
	List *item, *tmp;
	bool waiting = false;
	LIST_FOREACH_SAFE (item, tmp, &w->auth_requests) {
		AuthReq *r = LIST_CONTAINER(item, AuthReq, head);
		Pool *p = r->ap->pool;
		if (r->s)
			continue;
		if (p->last_login_fail && p->last_login_fail >= r->start) {
			r->failed = r->login_failed = true;
			snprintf(r->error, sizeof(r->error), AUTH_LOGIN_FAILED "%s", p->last_login_error);
			finish(r);
			continue;
		}
		Server *s = take_idle(p);
		if (!s) {
			int n = pool_server_count(p);
			if (list_empty(&p->new_servers) && n < MAX_SERVERS_PER_AUTH_POOL &&
			    n < pool_size_of(p) && pool_take_slots(p, 0, 0, 0))
				server_launch(p);
			waiting = true;
			continue;
		}
		server_set_state(s, SV_ACTIVE);
		s->auth_req = r;
		s->ready = false;
		s->request_time = now_usec();
		r->s = s;
		send_query(s, r->query, r->username);
	}
	if (waiting)
		poll_later(w);
}

static void dispatch(Worker *w)
{
	dispatch_worker(w);
}

int authquery_parse_row(const uint8_t *body, size_t len, char *name, size_t namelen, char **secret)
{
	size_t pos = 2;
	uint32_t l;
	*secret = NULL;
	if (len < 2 || ((body[0] << 8) | body[1]) != 2)
		return -1;
	for (int col = 0; col < 2; col++) {
		if (pos + 4 > len)
			goto bad;
		l = (uint32_t)body[pos] << 24 | (uint32_t)body[pos + 1] << 16 | (uint32_t)body[pos + 2] << 8 |
		    body[pos + 3];
		pos += 4;
		if (l == 0xffffffffu) {
			if (col == 0)
				goto bad; /* a NULL user name */
			continue;
		}
		if (l > len - pos || memchr(body + pos, 0, l))
			goto bad;
		if (col == 0) {
			if (l >= namelen)
				goto bad;
			memcpy(name, body + pos, l);
			name[l] = 0;
		} else {
			if (!(*secret = malloc(l + 1)))
				goto bad;
			memcpy(*secret, body + pos, l);
			(*secret)[l] = 0;
		}
		pos += l;
	}
	if (pos != len)
		goto bad;
	return 0;
bad:
	free(*secret);
	*secret = NULL;
	return -1;
}

bool authquery_server_packet(Server *s, PktHdr *pkt)
{
	AuthReq *r = s->auth_req;
	App *app = s->w->app;
	sbuf_prepare_skip(&s->sb, pkt->len);
	if (pkt->avail < pkt->len) {
		server_close(s, "auth_query reply does not fit the buffer");
		return false;
	}
	switch (pkt->type) {
	case '1': /* ParseComplete, BindComplete, CommandComplete, notices, parameters */
	case '2':
	case 'C':
	case 'N':
	case 'S':
	case 'n':
		return true;
	case 'D': {
		char name[64];
		char *secret = NULL;
		if (authquery_parse_row(pkt->data + 5, pkt->len - 5, name, sizeof(name), &secret) < 0) {
			r->failed = true;
			snprintf(r->error, sizeof(r->error),
			         "auth_query must return 2 columns: a name and a password");
		} else if (!r->got_row && strcmp(name, r->username) == 0) {
			r->got_row = true;
			r->secret = secret;
			secret = NULL;
		}
		if (secret) {
			OPENSSL_cleanse(secret, strlen(secret));
			free(secret);
		}
		return true;
	}
	case 'E': {
		ErrorFields ef;
		proto_parse_error(pkt, &ef);
		r->failed = true;
		snprintf(r->error, sizeof(r->error), "%s", ef.message ? ef.message : "error response");
		return true;
	}
	case 'Z': {
		char status = pkt->avail >= 6 ? (char)pkt->data[5] : '?';
		Worker *w = s->w;
		s->auth_req = NULL;
		r->s = NULL;
		if (r->failed)
			r->got_row = false;
		if (status == 'I') {
			s->ready = true;
			s->ready_status = 'I';
			pool_server_ready(s);
		} else {
			server_close(s, "auth_query left a transaction open");
		}
		finish(r);
		dispatch(w);
		return s->state != SV_JUSTFREE;
	}
	default:
		log_msg(&app->log, LOG_LEVEL_WARNING, s->log_prefix,
		        "unexpected packet '%c' during auth_query", pkt->type);
		server_close(s, "unexpected packet during auth_query");
		return false;
	}
}

void authquery_server_closed(Server *s)
{
	AuthReq *r = s->auth_req;
	s->auth_req = NULL;
	if (!r)
		return;
	r->s = NULL;
	r->failed = true;
	snprintf(r->error, sizeof(r->error), "server connection closed during the query");
	finish(r);
}

void authquery_cleanup(Worker *w)
{
	List *item;
	if (w->auth_poll_ready) {
		event_del(&w->auth_poll_ev);
		w->auth_poll_ready = false;
	}
	while ((item = list_first(&w->auth_requests)) != NULL)
		req_free(LIST_CONTAINER(item, AuthReq, head));
	while ((item = list_first(&w->auth_pools)) != NULL) {
		AuthPool *ap = LIST_CONTAINER(item, AuthPool, head);
		list_del(&ap->head);
		if (ap->user->secret) {
			OPENSSL_cleanse(ap->user->secret, strlen(ap->user->secret));
			free(ap->user->secret);
		}
		OPENSSL_cleanse(ap->user, sizeof(*ap->user));
		free(ap->user);
		free(ap);
	}
}
