/* client.c: client connections: startup packet, login, and forwarding queries to a server. */
#include "client.h"
#include "pgoptions.h"
#include "worker.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "admin.h"
#include "app.h"
#include "auth.h"
#include "peer.h"
#include "replication.h"
#include "tls.h"

static bool client_proto(SBuf *sb, SBufEvent ev, PktHdr *pkt);

/* "C-0x...: db/user@addr:port ", made when a line is logged (into the worker's buffer) rather
 * than kept in every client: idle clients are many. */
const char *client_log_prefix(Client *c)
{
	char *buf = c->w->log_prefix_buf;
	snprintf(buf, sizeof(c->w->log_prefix_buf), "C-%p: %s/%s@%s:%d ", (void *)c,
	         c->dbname[0] ? c->dbname : "(nodb)", c->username[0] ? c->username : "(nouser)", c->addr,
	         c->port);
	return buf;
}

Client *client_new(Worker *w, int fd, const struct sockaddr *sa, socklen_t salen, bool is_unix)
{
	App *app = w->app;
	Client *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return NULL;
	}
	list_init(&c->head);
	c->w = w;
	c->id = worker_next_id(w);
	c->is_unix = is_unix;
	if (sbuf_init(&c->sb, w->base, &w->bufpool, (uint32_t)app->cf->pkt_buf, client_proto, c) < 0) {
		free(c);
		close(fd);
		return NULL;
	}
	c->sb.startup = true;
	c->sb.max_packet = (uint32_t)app->cf->max_packet_size;
	if (is_unix) {
		struct ucred cred;
		socklen_t len = sizeof(cred);
		int pid = 0;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
			pid = cred.pid;
		snprintf(c->addr, sizeof(c->addr), "unix(%d)", pid);
		c->port = app->cf->listen_port;
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, c->addr, sizeof(c->addr));
		c->port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, c->addr, sizeof(c->addr));
		c->port = ntohs(in6->sin6_port);
	}
	c->connect_time = c->request_time = now_usec();
	/* Our own cancel key: clients never learn a server's backend key. */
	if (!worker_random(w, &c->cancel_pid, sizeof(c->cancel_pid)) ||
	    !worker_random(w, &c->cancel_key, sizeof(c->cancel_key))) {
		log_msg(&app->log, LOG_LEVEL_ERROR, NULL, "no random bytes for a cancel key");
		sbuf_free(&c->sb);
		free(c);
		close(fd);
		return NULL;
	}
	/* peer_id in it (peer.c) lets a process sharing our port forward a request here; the low
	 * bits name the worker, so a cancel request arriving at another one finds it */
	peer_key_stamp(&c->cancel_pid, &c->cancel_key, app->cf->peer_id);
	c->cancel_pid = (c->cancel_pid & ~(uint32_t)(WORKERS_MAX - 1)) | (uint32_t)w->idx;
	w->client_count++;
	atomic_fetch_add(&app->client_total, 1);
	client_set_state(c, CL_LOGIN);
	SockOpts so;
	app_sock_opts(app, &so);
	if (sbuf_accept(&c->sb, fd, is_unix, &so) < 0) {
		close(fd); /* not the sbuf's yet */
		client_close(c, "accept failed");
		return NULL;
	}
	return c;
}

void client_send_error(Client *c, const char *severity, const char *sqlstate, const char *msg)
{
	PktBuf pb;
	pktbuf_init_fixed(&pb, c->w->scratch, sizeof(c->w->scratch));
	pktbuf_write_error(&pb, severity, sqlstate, msg);
	if (!pb.failed)
		sbuf_send_gen(&c->sb, pb.buf, pb.pos);
}

void client_send_notice(Client *c, const char *msg)
{
	PktBuf pb;
	pktbuf_init_fixed(&pb, c->w->scratch, sizeof(c->w->scratch));
	pktbuf_write_notice(&pb, "NOTICE", "00000", msg);
	if (!pb.failed)
		sbuf_send_gen(&c->sb, pb.buf, pb.pos);
}

static void log_closing(Client *c, const char *reason)
{
	App *app = c->w->app;
	/* every client that got as far as a startup packet, logged in or not (cancels are not) */
	if (!c->is_cancel && c->username[0] && app->cf->log_disconnections) {
		usec_t age = (now_usec() - c->connect_time) / USEC_PER_SEC;
		log_msg(&app->log, LOG_LEVEL_LOG, client_log_prefix(c), "closing because: %s (age=%llds)",
		        reason, (long long)age);
	}
}

static void close_unlogged(Client *c);

/* Send a FATAL pooler error, log it (log_pooler_errors) and close. Both lines are logged before
 * the client can see the error, so whoever reads the log after the error finds them. */
void client_error_close(Client *c, const char *sqlstate, const char *msg)
{
	App *app = c->w->app;
	if (c->state == CL_JUSTFREE || c->state == CL_FREE)
		return;
	log_closing(c, msg);
	if (app->cf->log_pooler_errors)
		log_msg(&app->log, LOG_LEVEL_WARNING, client_log_prefix(c), "pooler error: %s", msg);
	client_send_error(c, "FATAL", sqlstate, msg);
	close_unlogged(c);
}

void client_close(Client *c, const char *reason)
{
	if (c->state == CL_JUSTFREE || c->state == CL_FREE)
		return;
	log_closing(c, reason);
	close_unlogged(c);
}

/* client_close() after its log line. */
static void close_unlogged(Client *c)
{
	App *app = c->w->app;
	Server *s = c->link;
	if (s) {
		c->link = NULL;
		s->link = NULL;
		int mode = pool_mode_of(s->pool, app->cf);
		if (c->replication)
			server_close(s, "replication client was closed"); /* never reused */
		else if (mode == POOL_MODE_SESSION && s->ready && s->ready_status == 'I' &&
		         s->expect_rfq == 0 && sbuf_is_empty(&s->sb) && sbuf_is_empty(&c->sb) &&
		         !s->close_needed)
			pool_release_server(s);
		else
			server_close(s, "client disconnect while server was not ready");
	}
	if (c->counted) {
		c->counted = false;
		if (c->db) {
			c->db->client_count--;
			shared_put(&c->db->sh->clients);
		}
		if (c->user) {
			c->user->client_count--;
			shared_put(&c->user->sh->clients);
		}
	}
	sbuf_close(&c->sb);
	client_set_state(c, CL_JUSTFREE);
	c->w->client_count--;
	atomic_fetch_sub(&app->client_total, 1);
	pool_schedule_reap(c->w);
	app_check_shutdown(c->w);
}

Client *client_find_by_cancel(Worker *w, uint32_t pid, uint32_t key)
{
	List *pi, *ci;
	LIST_FOREACH (pi, &w->pools) {
		Pool *p = LIST_CONTAINER(pi, Pool, head);
		LIST_FOREACH (ci, &p->active_clients) {
			Client *c = LIST_CONTAINER(ci, Client, head);
			if (c->cancel_pid == pid && peer_key_match(c->cancel_key, key))
				return c;
		}
		LIST_FOREACH (ci, &p->waiting_clients) {
			Client *c = LIST_CONTAINER(ci, Client, head);
			if (c->cancel_pid == pid && peer_key_match(c->cancel_key, key))
				return c;
		}
	}
	return NULL;
}

static bool name_in_list(const char *list, const char *name)
{
	if (!list)
		return false;
	size_t n = strlen(name);
	const char *p = list;
	while (*p) {
		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		const char *start = p;
		while (*p && *p != ',')
			p++;
		const char *end = p;
		while (end > start && isspace((unsigned char)end[-1]))
			end--;
		if ((size_t)(end - start) == n && strncasecmp(start, name, n) == 0)
			return true;
	}
	return false;
}

typedef struct CancelCall {
	uint32_t pid, key;
} CancelCall;

/* On the worker that owns the client being cancelled (worker_call). */
static void cancel_on_owner(Worker *w, void *arg)
{
	CancelCall *cc = arg;
	Client *target = client_find_by_cancel(w, cc->pid, cc->key);
	if (!target && admin_handle_cancel(w, cc->pid, cc->key))
		; /* ^C on a console waiting in PAUSE or SUSPEND (admin.c) */
	else if (!target)
		log_msg(&w->app->log, LOG_LEVEL_LOG, NULL, "cancel request for unknown client");
	else if (target->link && target->link->w == w)
		server_launch_cancel(target->link, NULL);
	free(cc);
}

/* A CancelRequest: forward it to the backend the client's server connection talks to. */
static void handle_cancel(Client *c, uint32_t pid, uint32_t key)
{
	App *app = c->w->app;
	c->is_cancel = true;
	if (peer_route_cancel(c->w, client_log_prefix(c), pid, key)) {
		client_close(c, "cancel request");
		return;
	}
	int owner = (int)(pid & (WORKERS_MAX - 1));
	if (owner != c->w->idx && owner < app->n_workers) {
		CancelCall *cc = malloc(sizeof(*cc));
		if (cc) {
			cc->pid = pid;
			cc->key = key;
			worker_call(app->workers[owner], cancel_on_owner, cc);
		}
		client_close(c, "cancel request");
		return;
	}
	Client *target = client_find_by_cancel(c->w, pid, key);
	if (!target && admin_handle_cancel(c->w, pid, key)) {
		/* ^C on a console waiting in PAUSE or SUSPEND: resume (admin.c) */
	} else if (!target) {
		log_msg(&app->log, LOG_LEVEL_LOG, client_log_prefix(c), "cancel request for unknown client");
	} else if (target->link) {
		server_launch_cancel(target->link, c);
	} else {
		log_msg(&app->log, LOG_LEVEL_DEBUG, client_log_prefix(c), "cancel request for idle client");
	}
	client_close(c, "cancel request");
}

/* One "-c name=value" of the options startup parameter: what a startup parameter of that
 * name would do (tracked: kept for the client; in ignore_startup_parameters: dropped), and the
 * rest is refused, unless all of options is ignored. 1 refuses (name in ctx->bad), 2 is out of
 * memory. */
typedef struct StartupOptions {
	Client *c;
	bool ignore_unknown; /* "options" itself is in ignore_startup_parameters */
	char bad[64];
} StartupOptions;

static int take_startup_option(void *arg, const char *name, const char *value)
{
	StartupOptions *so = arg;
	Client *c = so->c;
	App *app = c->w->app;
	int vi = var_index(c->w, name);
	if (vi >= 0)
		return client_set_var(c, vi, value) ? 0 : 2;
	if (so->ignore_unknown || name_in_list(app->cf->ignore_startup_parameters, name)) {
		log_msg(&app->log, LOG_LEVEL_DEBUG, client_log_prefix(c), "ignoring startup option: %s=%s",
		        name, value);
		return 0;
	}
	snprintf(so->bad, sizeof(so->bad), "%s", name);
	return 1;
}

/* The options startup parameter: false if the client was refused and closed. */
static bool handle_startup_options(Client *c, const char *val)
{
	StartupOptions so = {c, name_in_list(c->w->app->cf->ignore_startup_parameters, "options"), ""};
	char msg[200];
	switch (pgoptions_parse(val, take_startup_option, &so)) {
	case 0:
		return true;
	case 1:
		snprintf(msg, sizeof(msg), "unsupported startup parameter in options: %s", so.bad);
		break;
	case 2:
		snprintf(msg, sizeof(msg), "out of memory");
		break;
	default:
		if (so.ignore_unknown)
			return true;
		snprintf(msg, sizeof(msg), "%s", PGOPTIONS_BAD);
		break;
	}
	client_error_close(c, "08P01", msg);
	return false;
}

/* Parse the v3 StartupMessage parameters into the client. */
static bool handle_startup_params(Client *c, PktReader *r)
{
	App *app = c->w->app;
	char msg[200];
	while (proto_remaining(r) > 0) {
		const char *key = proto_get_string(r);
		if (!key)
			break;
		if (!*key)
			break;
		const char *val = proto_get_string(r);
		if (!val)
			break;
		if (strcmp(key, "user") == 0) {
			snprintf(c->username, sizeof(c->username), "%s", val);
		} else if (strcmp(key, "database") == 0) {
			snprintf(c->dbname, sizeof(c->dbname), "%s", val);
		} else if (var_index(c->w, key) >= 0) {
			if (!client_set_var(c, var_index(c->w, key), val)) {
				client_error_close(c, "08P01", "out of memory");
				return false;
			}
		} else if (strcmp(key, "replication") == 0) {
			/* as PgBouncer: a value that is neither a boolean nor "database" means none */
			if (!repl_parse_value(val, &c->replication))
				c->replication = REPLICATION_NONE;
		} else if (strcmp(key, "options") == 0 && !c->repl_options) {
			/* a replication connection (decided below) passes it on as it is; any other
			 * reads it as settings */
			if (!(c->repl_options = strdup(val))) {
				client_error_close(c, "08P01", "out of memory");
				return false;
			}
		} else if (name_in_list(app->cf->ignore_startup_parameters, key)) {
			log_msg(&app->log, LOG_LEVEL_DEBUG, client_log_prefix(c),
			        "ignoring startup parameter: %s=%s", key, val);
		} else {
			snprintf(msg, sizeof(msg), "unsupported startup parameter: %s", key);
			client_error_close(c, "08P01", msg);
			return false;
		}
	}
	if (r->err) {
		client_error_close(c, "08P01", "bad startup packet");
		return false;
	}
	if (c->repl_options && !c->replication) {
		char *opts = c->repl_options;
		c->repl_options = NULL;
		bool ok = handle_startup_options(c, opts);
		free(opts);
		if (!ok)
			return false;
	}
	if (!c->username[0]) {
		client_error_close(c, "08P01", "no username supplied");
		return false;
	}
	if (!c->dbname[0])
		snprintf(c->dbname, sizeof(c->dbname), "%s", c->username);
	return true;
}

static void on_client_tls(SBuf *sb, bool ok, const char *err)
{
	Client *c = sb->owner;
	App *app = c->w->app;
	if (!ok) {
		log_msg(&app->log, LOG_LEVEL_LOG, client_log_prefix(c), "TLS handshake failed: %s", err);
		client_close(c, "TLS handshake failed");
		return;
	}
	{
		char desc[96];
		tls_describe(sb, desc, sizeof(desc));
		free(c->tls);
		c->tls = strdup(desc);
	}
	sbuf_continue(sb); /* the startup packet now comes over TLS */
}

/* Answer SSLRequest with 'S' and handshake inside the loop (tls.c); the sbuf waits. */
static bool start_tls(Client *c, PktHdr *pkt)
{
	/* Bytes the client sent behind SSLRequest, before our answer, would be taken as if they
	 * came over TLS: refuse them (CVE-2021-23214). */
	if (sbuf_unhandled(&c->sb) != pkt->len) {
		client_close(c, "unexpected data after SSL request");
		return false;
	}
	if (tls_accept_start(&c->sb, on_client_tls) < 0)
		client_error_close(c, "08P01", "TLS setup failed");
	return false;
}

static bool handle_startup(Client *c, PktHdr *pkt)
{
	App *app = c->w->app;
	PktReader r;
	/* A startup packet may be larger than pkt_buf (long options): wait for all of it; the
	 * header parser already capped its length. */
	if (pkt->avail < pkt->len) {
		if (!sbuf_require(&c->sb, pkt->len))
			client_error_close(c, "08P01", "startup packet too long");
		return false;
	}
	proto_reader_init(&r, pkt);
	uint32_t code = proto_get_int32(&r);
	sbuf_prepare_skip(&c->sb, pkt->len);
	if (code == PROTO_SSL_REQUEST || code == PROTO_GSSENC_REQUEST) {
		if (pkt->len != 8) {
			client_error_close(c, "08P01", "bad SSL request");
			return false;
		}
		if (code == PROTO_SSL_REQUEST && !c->is_unix && !tls_active(&c->sb) &&
		    tls_client_mode() != TLS_MODE_DISABLE)
			return start_tls(c, pkt);
		/* "N" tells the client to go on in plaintext (or give up). */
		sbuf_send_gen(&c->sb, "N", 1);
		return true;
	}
	if (code == PROTO_CANCEL_REQUEST) {
		uint32_t pid = proto_get_int32(&r);
		uint32_t key = proto_get_int32(&r);
		if (r.err || pkt->len != 16) {
			client_close(c, "bad cancel request");
			return false;
		}
		handle_cancel(c, pid, key);
		return false;
	}
	if (code >> 16 != 3) {
		client_error_close(c, "08P01", "unsupported protocol version");
		return false;
	}
	c->sb.startup = false;
	if (!c->is_unix && !tls_active(&c->sb) && tls_client_mode() >= TLS_MODE_REQUIRE) {
		client_error_close(c, "08P01", "SSL required");
		return false;
	}
	if (!handle_startup_params(c, &r))
		return false;
	if (app->cf->application_name_add_host) {
		/* Lets the server's pg_stat_activity show which client host a session serves. */
		int vi = var_index(c->w, "application_name");
		char name[256];
		const char *given = client_var(c, vi); /* no pool yet: only what the client sent */
		snprintf(name, sizeof(name), "%s - %s:%d", given ? given : "", c->addr, c->port);
		if (!client_set_var(c, vi, name)) {
			client_error_close(c, "08P01", "out of memory");
			return false;
		}
	}
	if (app->cf->log_connections)
		log_msg(&app->log, LOG_LEVEL_LOG, client_log_prefix(c),
		        "login attempt: db=%s user=%s tls=%s replication=%s", c->dbname, c->username,
		        c->tls && c->tls[0] ? c->tls : "no", repl_log_name(c->replication));
	if (admin_is_console_db(c->dbname))
		return admin_startup(c); /* the console: allowed during shutdown, own access rules */
	if (app->shutdown != SHUTDOWN_NONE) {
		client_error_close(c, "08P01", "pooler is shutting down");
		return false;
	}
	if (atomic_load(&app->client_total) > app->cf->max_client_conn) {
		client_error_close(c, "08P01", "no more connections allowed (max_client_conn)");
		return false;
	}
	c->db = pool_find_database(c->w, c->dbname);
	c->user = pool_find_user(c->w, c->username);
	return auth_start(c);
}

/* Send AuthenticationOk, the pool's server parameters (with the client's own values for the
 * tracked ones), our cancel key and ReadyForQuery. */
static bool send_welcome(Client *c)
{
	Pool *p = c->pool;
	Worker *w = c->w;
	PktBuf pb;
	pktbuf_init_dynamic(&pb, 1024);
	pktbuf_write_auth(&pb, 0);
	for (int i = 0; i < p->welcome.n; i++) {
		const char *name = p->welcome.names[i];
		const char *val = p->welcome.values[i];
		int vi = var_index(w, name);
		if (vi >= 0 && c->vars && c->vars->value[vi])
			val = c->vars->value[vi]; /* its own; the rest stay the welcome's (client_var) */
		pktbuf_write_param_status(&pb, name, val);
	}
	pktbuf_write_backend_key(&pb, c->cancel_pid, c->cancel_key);
	pktbuf_write_ready(&pb, 'I');
	int rc = pb.failed ? -1 : sbuf_send_gen(&c->sb, pb.buf, pb.pos);
	pktbuf_free(&pb);
	if (rc < 0) {
		client_close(c, "client send failed");
		return false;
	}
	client_set_state(c, CL_ACTIVE);
	c->request_time = now_usec();
	return true;
}

const char *client_var(const Client *c, int idx)
{
	if (idx < 0 || idx >= VAR_MAX)
		return NULL;
	if (c->vars && c->vars->value[idx])
		return c->vars->value[idx];
	Pool *p = c->pool;
	if (!p || !p->welcome.ready)
		return NULL;
	if (!p->welcome_var_done)
		pool_index_welcome(p);
	return p->welcome_var[idx];
}

/* Most clients never set a tracked parameter, so the cache is allocated on the first one:
 * 136 bytes less per idle client. */
bool client_set_var(Client *c, int idx, const char *value)
{
	if (idx < 0 || idx >= VAR_MAX)
		return true;
	if (!c->vars && !(c->vars = calloc(1, sizeof(*c->vars))))
		return false;
	var_set(c->vars, idx, value);
	return c->vars->value[idx] != NULL;
}

/* Finish the logins that waited for the pool's welcome. The scan restarts from the head after
 * each one: sbuf_continue() runs that client's buffered requests, which may close or move
 * other clients of the list. Each pass takes one client out of CL_WAITING_LOGIN, so it ends. */
void client_welcome_ready(Pool *p)
{
	bool again = true;
	while (again) {
		List *item;
		again = false;
		LIST_FOREACH (item, &p->waiting_clients) {
			Client *c = LIST_CONTAINER(item, Client, head);
			if (c->state != CL_WAITING_LOGIN || c->replication)
				continue;
			if (send_welcome(c))
				sbuf_continue(&c->sb);
			again = true;
			break;
		}
	}
}

bool client_take_slots(Client *c, bool exempt)
{
	const Config *cf = c->w->app->cf;
	int db_max = c->db->max_db_client_connections >= 0 ? c->db->max_db_client_connections
	                                                   : cf->max_db_client_connections;
	if (!shared_take(&c->db->sh->clients, exempt ? 0 : db_max)) {
		client_error_close(c, "08P01", "client connections exceeded (max_db_client_connections)");
		return false;
	}
	if (c->user) {
		int user_max = c->user->max_user_client_connections >= 0
		                   ? c->user->max_user_client_connections
		                   : cf->max_user_client_connections;
		if (!shared_take(&c->user->sh->clients, exempt ? 0 : user_max)) {
			shared_put(&c->db->sh->clients);
			client_error_close(c, "08P01",
			                   "client connections exceeded (max_user_client_connections)");
			return false;
		}
		c->user->client_count++;
	}
	c->db->client_count++;
	c->counted = true;
	return true;
}

bool client_login_done(Client *c)
{
	char msg[200];
	if (admin_is_console_db(c->dbname))
		return admin_login_done(c);
	if (!c->db) {
		snprintf(msg, sizeof(msg), "no such database: %s", c->dbname);
		client_error_close(c, "08P01", msg);
		return false;
	}
	if (c->db->disabled) {
		snprintf(msg, sizeof(msg), "database \"%s\" is disabled", c->dbname);
		client_error_close(c, "08P01", msg);
		return false;
	}
	User *pool_user = c->user;
	if (c->db->forced_user)
		pool_user = pool_get_user(c->w, c->db->forced_user);
	else if (!pool_user)
		pool_user = pool_get_user(c->w, c->username);
	if (!c->user)
		c->user = pool_get_user(c->w, c->username);
	if (!client_take_slots(c, false))
		return false;
	c->db->last_used = now_usec();
	c->pool = pool_get(c->w, c->db, pool_user);
	if (!c->pool) {
		client_error_close(c, "08P01", "out of memory");
		return false;
	}
	if (c->replication)
		return repl_client_login(c);
	/* Another worker's server may have logged in first. Taking its welcome here also lets
	 * this worker's clients already waiting for one go on: they must not wait for a message
	 * that will find the welcome already taken. */
	worker_check_welcome(c->pool);
	if (c->pool->welcome.ready)
		return send_welcome(c);
	/* The first client of a pool waits until a server has told us its parameters. */
	client_set_state(c, CL_WAITING_LOGIN);
	c->wait_start = now_usec();
	pool_launch_if_needed(c->pool);
	return false;
}

/* Called once a server is linked and its parameters match the client's. */
void client_server_linked(Client *c)
{
	sbuf_continue(&c->sb);
}

/* Count the replies the server owes: one ReadyForQuery per Query, Sync or FunctionCall. */
static void note_request(Client *c, Server *s, uint8_t type)
{
	if (type == 'Q' || type == 'S' || type == 'F') {
		s->expect_rfq++;
		if (!s->query_start)
			s->query_start = now_usec();
	}
	s->ready = false;
}

/* Frontend message types of protocol v3 after login; anything else is refused rather than
 * forwarded, where PostgreSQL would kill the pooled backend for it. */
static bool frontend_type_ok(uint8_t t)
{
	return t && strchr("QFSHcfPECBDdXp", t) != NULL;
}

static bool handle_client_packet(Client *c, PktHdr *pkt)
{
	App *app = c->w->app;
	if (c->admin)
		return admin_handle_packet(c, pkt);
	if (pkt->type == 'X') {
		sbuf_prepare_skip(&c->sb, pkt->len);
		client_close(c, "client close request");
		return false;
	}
	if (!frontend_type_ok(pkt->type)) {
		char msg[64];
		snprintf(msg, sizeof(msg), "unknown packet type from client: 0x%02x", pkt->type);
		sbuf_prepare_skip(&c->sb, pkt->len);
		client_error_close(c, "08P01", msg);
		return false;
	}
	if (c->state == CL_WAITING_LOGIN)
		return false;
	if (c->replication && c->link) {
		c->request_time = now_usec();
		c->db->stats.client_bytes += pkt->len;
		return repl_forward_packet(&c->sb, &c->link->sb, pkt);
	}
	Server *s = c->link;
	if (!s) {
		if (c->state == CL_WAITING)
			return false;
		if (c->db->removed) {
			client_error_close(c, "08P01", "database removed");
			return false;
		}
		if (pkt->type == 'S' || pkt->type == 'H') {
			/* A lone Sync/Flush outside a transaction: answer it ourselves. */
			if (pkt->type == 'S') {
				PktBuf pb;
				pktbuf_init_fixed(&pb, c->w->scratch, sizeof(c->w->scratch));
				pktbuf_write_ready(&pb, 'I');
				sbuf_send_gen(&c->sb, pb.buf, pb.pos);
			}
			sbuf_prepare_skip(&c->sb, pkt->len);
			return true;
		}
		c->request_time = now_usec();
		if (c->state != CL_WAITING && ps_client_prepare_local(c, pkt))
			return c->state != CL_JUSTFREE;
		if (!pool_find_server(c))
			return false;
		s = c->link;
		if (!s)
			return false;
		if (server_vars_differ(s, c)) {
			server_apply_vars(s, c);
			return false;
		}
	}
	if (s->setting_vars || s->running_internal)
		return false;
	if (ps_tracking(s) && (pkt->type != 'Q' || !ps_queue_empty(s))) {
		/* Named prepared statements are rewritten; the tracker prepares the sbuf. */
		if (!ps_client_packet(c, s, pkt))
			return false;
	} else {
		if (pkt->type == 'Q' && ps_tracking(s))
			ps_client_simple_query(c, s, pkt);
		sbuf_prepare_send(&c->sb, &s->sb, pkt->len);
	}
	note_request(c, s, pkt->type);
	c->request_time = now_usec();
	c->db->stats.client_bytes += pkt->len;
	(void)app;
	return true;
}

static bool client_proto(SBuf *sb, SBufEvent ev, PktHdr *pkt)
{
	Client *c = sb->owner;
	switch (ev) {
	case SBUF_EV_RECV_FAILED:
		client_close(c, c->state == CL_LOGIN && c->sb.startup ? "client unexpected eof"
		                                                      : "client unexpected eof");
		return false;
	case SBUF_EV_SEND_FAILED:
		client_close(c, "client send failed");
		return false;
	case SBUF_EV_BAD_PACKET:
		client_error_close(c, "08P01", "invalid packet length");
		return false;
	case SBUF_EV_FLUSH:
	case SBUF_EV_CONNECT_OK:
	case SBUF_EV_CONNECT_FAILED:
		return true;
	case SBUF_EV_READ:
		break;
	}
	if (c->state == CL_LOGIN) {
		if (c->sb.startup)
			return handle_startup(c, pkt);
		if (auth_expects_packet(c) && pkt->type == 'p') {
			sbuf_prepare_skip(&c->sb, pkt->len);
			return auth_handle_password(c, pkt);
		}
		if (pkt->type == 'X') {
			sbuf_prepare_skip(&c->sb, pkt->len);
			client_close(c, "client close request");
			return false;
		}
		client_error_close(c, "08P01", "unexpected packet during login");
		return false;
	}
	return handle_client_packet(c, pkt);
}
