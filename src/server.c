/* server.c: server connections: async connect, login (cleartext, md5, SCRAM-SHA-256),
 * parameter sync, and the replies that flow back to clients. */
#include "server.h"
#include "worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "app.h"
#include "auth.h"
#include "authquery.h"
#include "client.h"
#include "dns.h"
#include "replication.h"
#include "tls.h"
#include "userlist.h"

static bool server_proto(SBuf *sb, SBufEvent ev, PktHdr *pkt);

void server_update_log_prefix(Server *s)
{
	Pool *p = s->pool;
	snprintf(s->log_prefix, sizeof(s->log_prefix), "S-%p: %s/%s@%s:%d ", (void *)s,
	         p ? p->db->name : "(nodb)", p ? p->user->name : "(nouser)", s->addr, s->port);
}

static Server *server_alloc(Worker *w, Pool *p)
{
	App *app = w->app;
	Server *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	list_init(&s->head);
	s->w = w;
	s->pool = p;
	s->id = worker_next_id(w);
	if (sbuf_init(&s->sb, w->base, &w->bufpool, (uint32_t)app->cf->pkt_buf, server_proto, s) < 0) {
		free(s);
		return NULL;
	}
	s->sb.max_packet = (uint32_t)app->cf->max_packet_size;
	s->connect_time = s->request_time = now_usec();
	return s;
}

/* The password to log in with: the database's forced password, else the auth_file secret,
 * else what the client typed (plain auth). */
static const char *server_password(Server *s)
{
	Pool *p = s->pool;
	if (p->db->forced_user && p->db->forced_password)
		return p->db->forced_password;
	if (p->user->secret)
		return p->user->secret;
	List *item;
	LIST_FOREACH (item, &p->waiting_clients) {
		Client *c = LIST_CONTAINER(item, Client, head);
		if (c->password)
			return c->password;
	}
	return NULL;
}

static void send_startup(Server *s)
{
	Pool *p = s->pool;
	Database *db = p->db;
	PktBuf pb;
	pktbuf_init_fixed(&pb, s->w->scratch, sizeof(s->w->scratch));
	pktbuf_start(&pb, 0);
	pktbuf_put_int32(&pb, PROTO_V3);
	pktbuf_put_string(&pb, "user");
	pktbuf_put_string(&pb, p->user->name);
	pktbuf_put_string(&pb, "database");
	pktbuf_put_string(&pb, db->dbname ? db->dbname : db->name);
	if (db->startup_client_encoding) {
		pktbuf_put_string(&pb, "client_encoding");
		pktbuf_put_string(&pb, db->startup_client_encoding);
	}
	if (db->startup_datestyle) {
		pktbuf_put_string(&pb, "datestyle");
		pktbuf_put_string(&pb, db->startup_datestyle);
	}
	if (db->startup_timezone) {
		pktbuf_put_string(&pb, "timezone");
		pktbuf_put_string(&pb, db->startup_timezone);
	}
	if (db->startup_application_name) {
		pktbuf_put_string(&pb, "application_name");
		pktbuf_put_string(&pb, db->startup_application_name);
	}
	if (s->replication)
		repl_put_startup_params(s, &pb);
	pktbuf_put_byte(&pb, 0);
	pktbuf_finish(&pb);
	sbuf_send_gen(&s->sb, pb.buf, pb.pos);
}

/* What clients see when the password we have cannot answer the server's SCRAM request. */
#define SCRAM_WRONG_TYPE "cannot do SCRAM authentication: wrong password type"

/* The host could not be resolved or reached: with load_balance_hosts = disable the next
 * connection tries the next host of the list. */
static void server_host_failed(Server *s)
{
	Database *db = s->is_cancel || !s->pool ? NULL : s->pool->db;
	if (db && db->load_balance_hosts == LOAD_BALANCE_DISABLE && db->host && strchr(db->host, ','))
		db->host_rr_index++;
}

/* True if the pool has a logged-in server that is not about to be replaced (RECONNECT). */
static bool pool_has_usable_server(const Pool *p)
{
	const List *lists[] = {&p->idle_servers, &p->used_servers, &p->tested_servers, &p->active_servers,
	                       &p->canceling_servers};
	const List *item;
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
		LIST_FOREACH (item, lists[i])
			if (!LIST_CONTAINER(item, Server, head)->close_needed)
				return true;
	return false;
}

/* Record why a login failed so clients can be told (server_login_retry). */
static void login_failed(Server *s, const char *why, const char *sqlstate, bool forward)
{
	Pool *p = s->pool;
	if (s->replication) {
		/* its own client is told; the pool's other clients are not concerned */
		server_close(s, forward ? "login failed" : why);
		return;
	}
	snprintf(p->last_login_error, sizeof(p->last_login_error), "%s", why);
	p->last_login_fail = now_usec();
	p->last_login_sqlstate_is_starting = sqlstate && strcmp(sqlstate, "57P03") == 0;
	if (forward && !p->last_login_sqlstate_is_starting) {
		/* PostgreSQL's own error (e.g. 3D000) is what the waiting login clients see, and,
		 * when no usable server is left to wait for, the clients waiting for a server too. */
		bool all = !pool_has_usable_server(p);
		List *item, *tmp;
		LIST_FOREACH_SAFE (item, tmp, &p->waiting_clients) {
			Client *c = LIST_CONTAINER(item, Client, head);
			if (c->replication ||
			    (c->state != CL_WAITING_LOGIN && !(all && c->state == CL_WAITING)))
				continue;
			client_error_close(c, sqlstate ? sqlstate : "08P01", why);
		}
	}
	server_close(s, why);
}

static void on_connect_addr(Server *s, const struct sockaddr *sa, socklen_t salen)
{
	App *app = s->w->app;
	memcpy(&s->peer_sa, sa, salen);
	s->peer_salen = salen;
	s->addr_family = sa->sa_family;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, s->addr, sizeof(s->addr));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, s->addr, sizeof(s->addr));
	server_update_log_prefix(s);
	SockOpts so;
	app_sock_opts(app, &so);
	if (sbuf_connect(&s->sb, sa, salen, app->cf->server_connect_timeout, &so) < 0) {
		char msg[200];
		snprintf(msg, sizeof(msg), "connect failed: %s", strerror(s->sb.last_errno));
		if (!s->is_cancel)
			log_msg(&app->log, LOG_LEVEL_WARNING, s->log_prefix, "%s", msg);
		server_host_failed(s);
		login_failed(s, "connect failed", NULL, false);
	}
}

static void on_dns(void *arg, int err, const struct sockaddr *sa, socklen_t salen)
{
	Server *s = arg;
	App *app = s->w->app;
	s->dns_req = NULL;
	if (s->state == SV_JUSTFREE)
		return;
	if (err) {
		log_msg(&app->log, LOG_LEVEL_WARNING, s->log_prefix, "DNS lookup failed: %s: %s", s->addr,
		        dns_strerror(err));
		server_host_failed(s);
		login_failed(s, "server DNS lookup failed", NULL, false);
		return;
	}
	on_connect_addr(s, sa, salen);
}

/* Pick a host of a comma list, copying it into out: the next one for round-robin; with
 * load_balance_hosts = disable the current one, which only moves on when it fails
 * (server_host_failed). */
static void pick_host(Database *db, char *out, size_t outlen)
{
	const char *h = db->host;
	int count = 1;
	for (const char *q = h; *q; q++)
		if (*q == ',')
			count++;
	int idx = db->host_rr_index % count;
	if (db->load_balance_hosts != LOAD_BALANCE_DISABLE)
		db->host_rr_index++;
	const char *start = h;
	for (int i = 0; i < idx; i++)
		start = strchr(start, ',') + 1;
	while (*start == ' ')
		start++;
	size_t n = strcspn(start, ",");
	while (n > 0 && start[n - 1] == ' ')
		n--;
	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, start, n);
	out[n] = 0;
}

/* Resolve and connect: a Unix socket directory, an IP, or a name via async DNS. */
static void server_connect(Server *s)
{
	App *app = s->w->app;
	Database *db = s->pool->db;
	char host[256];
	s->port = db->port;
	if (!db->host || !*db->host)
		snprintf(host, sizeof(host), "%s",
		         app->cf->unix_socket_dir && *app->cf->unix_socket_dir ? app->cf->unix_socket_dir
		                                                               : "/tmp");
	else
		pick_host(db, host, sizeof(host));
	if (host[0] == '/') {
		struct sockaddr_un un;
		memset(&un, 0, sizeof(un));
		un.sun_family = AF_UNIX;
		if (snprintf(un.sun_path, sizeof(un.sun_path), "%s/.s.PGSQL.%d", host, db->port) >=
		    (int)sizeof(un.sun_path)) {
			login_failed(s, "Unix socket path too long", NULL, false);
			return;
		}
		snprintf(s->addr, sizeof(s->addr), "unix");
		s->host[0] = 0;
		on_connect_addr(s, (struct sockaddr *)&un, sizeof(un));
		return;
	}
	snprintf(s->addr, sizeof(s->addr), "%.*s", (int)sizeof(s->addr) - 1, host);
	snprintf(s->host, sizeof(s->host), "%s", host);
	server_update_log_prefix(s);
	s->dns_req = dns_resolve(s->w->dns, host, db->port, on_dns, s);
}

void server_launch(Pool *p)
{
	server_launch_linked(p, NULL);
}

void server_launch_linked(Pool *p, Client *repl_client)
{
	Worker *w = p->w;
	Server *s = server_alloc(w, p);
	if (!s) {
		pool_put_slots(p);
		if (repl_client)
			client_error_close(repl_client, "08P01", "out of memory");
		return;
	}
	s->ready_status = 'I';
	if (repl_client) {
		/* paired for life: a failure from here on closes the client too (server_close) */
		s->replication = repl_client->replication;
		s->link = repl_client;
		repl_client->link = s;
	}
	server_set_state(s, SV_LOGIN);
	p->db->server_count++;
	p->user->server_count++;
	server_update_log_prefix(s);
	server_connect(s);
}

void server_launch_cancel(Server *target, Client *requester)
{
	Worker *w = target->w;
	Server *s = server_alloc(w, target->pool);
	if (!s)
		return;
	s->is_cancel = true;
	/* until this connection is done, the target serves no other client (a late cancel must
	 * not hit the next client's query) */
	s->cancel_for = target;
	target->cancels_in_flight++;
	s->cancel_target_pid = target->backend_pid;
	s->cancel_target_key = target->backend_key;
	snprintf(s->addr, sizeof(s->addr), "%s", target->addr);
	snprintf(s->host, sizeof(s->host), "%s", target->host);
	s->port = target->port;
	list_append(&w->cancel_servers, &s->head);
	s->state = SV_LOGIN;
	server_update_log_prefix(s);
	on_connect_addr(s, (struct sockaddr *)&target->peer_sa, target->peer_salen);
}

/* A cancel connection is finished: its target may serve clients again. */
static void cancel_done(Server *s)
{
	Server *t = s->cancel_for;
	s->cancel_for = NULL;
	if (!t)
		return;
	t->cancels_in_flight--;
	if (t->cancels_in_flight == 0 && t->state == SV_BEING_CANCELED)
		pool_server_ready(t);
}

/* The target goes first: its cancel connections must not point at it any more. */
static void forget_cancels_for(Server *t)
{
	List *item;
	LIST_FOREACH (item, &t->w->cancel_servers) {
		Server *s = LIST_CONTAINER(item, Server, head);
		if (s->cancel_for == t)
			s->cancel_for = NULL;
	}
	t->cancels_in_flight = 0;
}

void server_close(Server *s, const char *reason)
{
	App *app = s->w->app;
	if (s->state == SV_JUSTFREE || s->state == SV_FREE)
		return;
	if (!s->is_cancel && app->cf->log_disconnections)
		log_msg(&app->log, LOG_LEVEL_LOG, s->log_prefix, "closing because: %s (age=%llds)", reason,
		        (long long)((now_usec() - s->connect_time) / USEC_PER_SEC));
	if (s->dns_req) {
		struct evdns_getaddrinfo_request *r = s->dns_req;
		s->dns_req = NULL;
		dns_cancel(r);
	}
	Client *c = s->link;
	if (c) {
		s->link = NULL;
		c->link = NULL;
	}
	if (!s->is_cancel) {
		s->pool->db->server_count--;
		s->pool->user->server_count--;
		pool_put_slots(s->pool);
	}
	if (s->auth_req)
		authquery_server_closed(s);
	if (s->is_cancel)
		cancel_done(s);
	else if (s->cancels_in_flight > 0)
		forget_cancels_for(s);
	if (s->login_done && !s->is_cancel && s->sb.fd >= 0 && s->sb.out.len == 0) {
		/* A polite goodbye; the socket is closed right after. */
		static const char terminate[5] = {'X', 0, 0, 0, 4};
		s->sb.io->send(&s->sb, terminate, sizeof(terminate)); /* non-blocking; TLS-aware */
	}
	sbuf_close(&s->sb);
	scram_client_wipe(&s->scram);
	if (s->is_cancel)
		list_del(&s->head);
	server_set_state(s, SV_JUSTFREE);
	pool_schedule_reap(s->w);
	if (c)
		client_error_close(c, "08P01", reason);
	else if (!s->is_cancel && s->login_done)
		/* A server that never logged in is replaced by the janitor's next pass instead: with
		 * server_login_retry = 0 an immediate relaunch of a connect that fails at once would
		 * recurse without end. */
		pool_launch_if_needed(s->pool);
	app_check_shutdown(s->w);
}

void server_send_query(Server *s, const char *sql)
{
	PktBuf pb;
	pktbuf_init_dynamic(&pb, 256);
	pktbuf_write_query(&pb, sql);
	if (!pb.failed)
		sbuf_send_gen(&s->sb, pb.buf, pb.pos);
	pktbuf_free(&pb);
	s->ready = false;
	s->expect_rfq++;
}

bool server_vars_differ(const Server *s, const Client *c)
{
	for (int i = 0; i < s->w->var_count; i++) {
		const char *cv = client_var(c, i), *sv = s->vars.value[i];
		if (cv && (!sv || strcmp(cv, sv) != 0))
			return true;
	}
	return false;
}

/* Append a quoted SQL literal. */
static void append_literal(char *buf, size_t len, size_t *pos, const char *v)
{
	if (*pos + 3 >= len)
		return;
	buf[(*pos)++] = '\'';
	for (; *v && *pos + 3 < len; v++) {
		if (*v == '\'')
			buf[(*pos)++] = '\'';
		buf[(*pos)++] = *v;
	}
	buf[(*pos)++] = '\'';
	buf[*pos] = 0;
}

/* Send SET for each tracked parameter whose value differs; replies are swallowed and the
 * client continues at ReadyForQuery. */
void server_apply_vars(Server *s, Client *c)
{
	char sql[2048];
	size_t pos = 0;
	sql[0] = 0;
	for (int i = 0; i < s->w->var_count; i++) {
		const char *cv = client_var(c, i), *sv = s->vars.value[i];
		if (!cv || (sv && strcmp(cv, sv) == 0))
			continue;
		pos += (size_t)snprintf(sql + pos, sizeof(sql) - pos, "SET %s=", s->w->var_names[i]);
		if (pos >= sizeof(sql))
			break;
		append_literal(sql, sizeof(sql), &pos, cv);
		if (pos + 2 < sizeof(sql)) {
			sql[pos++] = ';';
			sql[pos] = 0;
		}
	}
	log_msg(&s->w->app->log, LOG_LEVEL_NOISE, s->log_prefix, "varcache_apply: %s", sql);
	s->setting_vars = true;
	server_send_query(s, sql);
}

static void server_login_ok(Server *s)
{
	App *app = s->w->app;
	Pool *p = s->pool;
	s->login_done = true;
	s->ever_connected = true;
	p->last_login_fail = 0;
	p->last_login_error[0] = 0;
	if (p->sh)
		atomic_store(&p->sh->login_ok_at, (long long)now_usec());
	if (s->replication) {
		repl_server_login_ok(s);
		return;
	}
	if (!p->welcome.ready) {
		/* The first server's parameters become what new clients are told. */
		for (int i = 0; i < s->welcome_tmp_n && p->welcome.n < 64; i++) {
			p->welcome.names[p->welcome.n] = s->welcome_tmp_names[i];
			p->welcome.values[p->welcome.n] = s->welcome_tmp_values[i];
			s->welcome_tmp_names[i] = s->welcome_tmp_values[i] = NULL;
			p->welcome.n++;
		}
		p->welcome.ready = true;
		if (!p->is_auth_pool)
			shared_publish_welcome(app, p->sh, &p->welcome);
		client_welcome_ready(p);
	}
	if (p->db->connect_query && *p->db->connect_query) {
		s->running_internal = true;
		server_send_query(s, p->db->connect_query);
		return;
	}
	(void)app;
	pool_server_ready(s);
}

/* Remember a ParameterStatus: in the var cache if tracked, and for the welcome message. */
static void note_param(Server *s, const char *name, const char *value)
{
	int vi = var_index(s->w, name);
	if (vi >= 0)
		var_set(&s->vars, vi, value);
	if (!s->login_done && s->welcome_tmp_n < 64) {
		s->welcome_tmp_names[s->welcome_tmp_n] = strdup(name);
		s->welcome_tmp_values[s->welcome_tmp_n] = strdup(value);
		s->welcome_tmp_n++;
	}
}

static bool handle_auth(Server *s, PktHdr *pkt)
{
	App *app = s->w->app;
	AuthRequest ar;
	char msg[256];
	if (proto_parse_auth_request(pkt, &ar) != PROTO_OK) {
		login_failed(s, "bad authentication request from server", NULL, false);
		return false;
	}
	const char *password = server_password(s);
	const char *user = s->pool->user->name;
	PktBuf pb;
	pktbuf_init_fixed(&pb, s->w->scratch, sizeof(s->w->scratch));
	switch (ar.code) {
	case 0:
		return true;
	case 3:
		if (!password || userlist_secret_kind(password) != USERLIST_SECRET_PLAIN) {
			login_failed(s, "server requested a cleartext password, which is not known", NULL,
			             true);
			return false;
		}
		pktbuf_write_password(&pb, password);
		break;
	case 5: {
		char resp[36];
		if (!password || userlist_secret_kind(password) == USERLIST_SECRET_SCRAM) {
			login_failed(s, "server requested md5 authentication, no password known", NULL, true);
			return false;
		}
		pg_md5_response(password, user, ar.salt, resp);
		pktbuf_write_password(&pb, resp);
		break;
	}
	case 10: {
		char out[512];
		size_t outlen = 0;
		if (!memmem(ar.payload, ar.payload_len, "SCRAM-SHA-256", 14)) {
			login_failed(s, "server offers no supported SASL mechanism", NULL, true);
			return false;
		}
		if (password && userlist_secret_kind(password) == USERLIST_SECRET_SCRAM) {
			/* SCRAM pass-through with the ClientKey a client proved (auth.c) */
			if (auth_scram_passthrough_start(s->pool->user, password, &s->scram, out, sizeof(out),
			                                 &outlen) < 0) {
				log_msg(&s->w->app->log, LOG_LEVEL_WARNING, s->log_prefix,
				        "the password is a SCRAM secret but no client logged in with SCRAM "
				        "to provide its keys");
				login_failed(s, SCRAM_WRONG_TYPE, NULL, true);
				return false;
			}
		} else if (!password || userlist_secret_kind(password) != USERLIST_SECRET_PLAIN) {
			log_msg(
			    &s->w->app->log, LOG_LEVEL_WARNING, s->log_prefix,
			    "server requested SCRAM-SHA-256 authentication, which needs a plain password");
			login_failed(s, SCRAM_WRONG_TYPE, NULL, true);
			return false;
		} else if (scram_client_start(&s->scram, password, out, sizeof(out), &outlen) < 0) {
			login_failed(s, "SCRAM start failed", NULL, false);
			return false;
		}
		pktbuf_write_sasl_initial(&pb, "SCRAM-SHA-256", out, outlen);
		break;
	}
	case 11: {
		char out[512];
		size_t outlen = 0;
		if (scram_client_continue(&s->scram, (const char *)ar.payload, ar.payload_len, out,
		                          sizeof(out), &outlen, msg, sizeof(msg)) < 0) {
			login_failed(s, msg, NULL, false);
			return false;
		}
		pktbuf_write_sasl_response(&pb, out, outlen);
		break;
	}
	case 12:
		if (scram_client_finish(&s->scram, (const char *)ar.payload, ar.payload_len, msg,
		                        sizeof(msg)) < 0) {
			login_failed(s, msg, NULL, false);
			return false;
		}
		return true;
	default:
		snprintf(msg, sizeof(msg), "server requested unsupported authentication method %u", ar.code);
		login_failed(s, msg, NULL, true);
		return false;
	}
	(void)app;
	sbuf_send_gen(&s->sb, pb.buf, pb.pos);
	return true;
}

/* Packets during login: authentication, parameters, key data, errors, ReadyForQuery. */
static bool handle_login_packet(Server *s, PktHdr *pkt)
{
	App *app = s->w->app;
	PktReader r;
	sbuf_prepare_skip(&s->sb, pkt->len);
	if (pkt->avail < pkt->len) {
		login_failed(s, "server login packet too large", NULL, false);
		return false;
	}
	switch (pkt->type) {
	case 'R':
		return handle_auth(s, pkt);
	case 'S': {
		const char *name, *value;
		if (proto_parse_param_status(pkt, &name, &value) == PROTO_OK)
			note_param(s, name, value);
		return true;
	}
	case 'K':
		proto_reader_init(&r, pkt);
		s->backend_pid = proto_get_int32(&r);
		s->backend_key = proto_get_int32(&r);
		return true;
	case 'N':
		return true;
	case 'E': {
		ErrorFields ef;
		proto_parse_error(pkt, &ef);
		const char *m = ef.message ? ef.message : "server login failed";
		log_msg(&app->log, LOG_LEVEL_WARNING, s->log_prefix, "server login failed: %s %s",
		        ef.severity ? ef.severity : "ERROR", m);
		login_failed(s, m, ef.sqlstate, true);
		return false;
	}
	case 'Z':
		if (app->cf->log_connections)
			log_msg(&app->log, LOG_LEVEL_LOG, s->log_prefix,
			        "new connection to server (from %s:%d)", s->local_addr, s->local_port);
		server_login_ok(s);
		return true;
	default:
		login_failed(s, "unexpected packet from server during login", NULL, false);
		return false;
	}
}

static void note_local_addr(Server *s)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(s->sb.fd, (struct sockaddr *)&ss, &len) < 0)
		return;
	if (ss.ss_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, s->local_addr,
		          sizeof(s->local_addr));
		s->local_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, s->local_addr,
		          sizeof(s->local_addr));
		s->local_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	} else {
		snprintf(s->local_addr, sizeof(s->local_addr), "unix");
	}
}

/* ReadyForQuery from a server linked to a client: count stats, decide about release. */
static bool handle_ready(Server *s, PktHdr *pkt)
{
	App *app = s->w->app;
	Client *c = s->link;
	char status = pkt->avail >= 6 ? (char)pkt->data[5] : 'I';
	usec_t now = now_usec();
	Stats *st = &s->pool->db->stats;
	if (s->expect_rfq > 0)
		s->expect_rfq--;
	st->query_count++;
	/* A transaction starts with its first query; an autocommit statement is one (SHOW STATS). */
	usec_t qstart = s->query_start ? s->query_start : now;
	if (s->query_start) {
		st->query_time += (uint64_t)(now - s->query_start);
		s->query_start = 0;
	}
	if (status != 'I' && !s->xact_start)
		s->xact_start = qstart;
	if (status == 'I') {
		st->xact_count++;
		st->xact_time += (uint64_t)(now - (s->xact_start ? s->xact_start : qstart));
		s->xact_start = 0;
	}
	s->ready_status = status;
	s->ready = s->expect_rfq == 0;
	s->request_time = now;
	if (c)
		c->request_time = now;
	int mode = pool_mode_of(s->pool, app->cf);
	if (c && mode == POOL_MODE_STATEMENT && status != 'I') {
		sbuf_prepare_skip(&s->sb, pkt->len);
		client_error_close(c, "08P01", "transaction blocks not allowed in statement pooling mode");
		return false;
	}
	if (!c) {
		sbuf_prepare_skip(&s->sb, pkt->len);
		return true;
	}
	st->server_bytes += pkt->len;
	sbuf_prepare_send(&s->sb, &c->sb, pkt->len);
	if (mode != POOL_MODE_SESSION && status == 'I' && s->ready && ps_queue_empty(s)) {
		s->release_on_flush = true;
		sbuf_want_flush(&s->sb);
	}
	return true;
}

/* Our SETs went through: where the server now holds another spelling of a client's value
 * ("ISO" is "ISO, MDY"; PostgreSQL reports nothing when the value did not change), the client
 * takes the server's, or every transaction would send the same SET again. */
static void adopt_canonical_vars(Server *s, Client *c)
{
	App *app = s->w->app;
	for (int i = 0; i < s->w->var_count; i++) {
		const char *cv = client_var(c, i), *sv = s->vars.value[i];
		if (!cv || !sv || strcmp(cv, sv) == 0)
			continue;
		log_msg(&app->log, LOG_LEVEL_NOISE, client_log_prefix(c),
		        "varcache_set_canonical: setting %s to its canonical version %s -> %s",
		        s->w->var_names[i], cv, sv);
		if (!client_set_var(c, i, sv))
			log_msg(&app->log, LOG_LEVEL_ERROR, client_log_prefix(c),
			        "out of memory: %s not remembered", s->w->var_names[i]);
	}
}

/* Replies to our own queries (SET sync, reset, check, connect_query) are not forwarded. */
static bool handle_internal_reply(Server *s, PktHdr *pkt)
{
	App *app = s->w->app;
	sbuf_prepare_skip(&s->sb, pkt->len);
	const char *name, *value;
	if (pkt->type == 'S' && proto_parse_param_status(pkt, &name, &value) == PROTO_OK) {
		note_param(s, name, value);
	} else if (pkt->type == 'E') {
		ErrorFields ef;
		proto_parse_error(pkt, &ef);
		log_msg(&app->log, LOG_LEVEL_WARNING, s->log_prefix, "query of the pooler failed: %s",
		        ef.message ? ef.message : "(no message)");
		s->internal_failed = true;
	} else if (pkt->type == 'Z') {
		if (s->expect_rfq > 0)
			s->expect_rfq--;
		if (s->expect_rfq > 0)
			return true;
		s->ready = true;
		s->ready_status = pkt->avail >= 6 ? (char)pkt->data[5] : 'I';
		if (s->setting_vars) {
			s->setting_vars = false;
			if (s->link && !s->internal_failed)
				adopt_canonical_vars(s, s->link);
			s->internal_failed = false;
			if (s->link)
				client_server_linked(s->link);
			return true;
		}
		s->running_internal = false;
		if (s->internal_failed && s->state != SV_LOGIN && s->ready_status != 'I') {
			server_close(s, "reset or check query failed");
			return false;
		}
		s->internal_failed = false;
		pool_server_ready(s);
		return true;
	}
	return true;
}

static bool handle_linked_packet(Server *s, PktHdr *pkt)
{
	Client *c = s->link;
	if (s->replication) {
		s->pool->db->stats.server_bytes += pkt->len;
		return repl_forward_packet(&s->sb, &c->sb, pkt);
	}
	if (pkt->type == 'C' && ps_tracking(s))
		ps_server_command_complete(s, pkt);
	bool forward = s->ps ? ps_server_reply(s, pkt) : true;
	if (pkt->type == 'Z')
		return handle_ready(s, pkt);
	if (!forward) {
		sbuf_prepare_skip(&s->sb, pkt->len);
		return true;
	}
	const char *name, *value;
	if (pkt->type == 'S' && proto_parse_param_status(pkt, &name, &value) == PROTO_OK) {
		/* The client changed it (SET): that is now the value it expects on every server. */
		int vi = var_index(s->w, name);
		if (vi >= 0) {
			var_set(&s->vars, vi, value);
			if (!client_set_var(c, vi, value))
				log_msg(&s->w->app->log, LOG_LEVEL_ERROR, client_log_prefix(c),
				        "out of memory: SET %s not remembered", name);
		}
	}
	s->pool->db->stats.server_bytes += pkt->len;
	sbuf_prepare_send(&s->sb, &c->sb, pkt->len);
	return true;
}

/* A server with no client: only asynchronous messages are expected. */
static bool handle_idle_packet(Server *s, PktHdr *pkt)
{
	const char *name, *value;
	sbuf_prepare_skip(&s->sb, pkt->len);
	switch (pkt->type) {
	case 'S':
		if (proto_parse_param_status(pkt, &name, &value) == PROTO_OK)
			note_param(s, name, value);
		return true;
	case 'N':
	case 'A':
		return true;
	case 'E': {
		ErrorFields ef;
		proto_parse_error(pkt, &ef);
		char msg[300];
		snprintf(msg, sizeof(msg), "server error while idle: %s", ef.message ? ef.message : "?");
		server_close(s, msg);
		return false;
	}
	default:
		server_close(s, "unexpected packet from idle server");
		return false;
	}
}

/* The connection is ready (TLS or not): a cancel request, or the startup packet. */
static void send_first_packet(Server *s)
{
	if (s->is_cancel) {
		PktBuf pb;
		pktbuf_init_fixed(&pb, s->w->scratch, sizeof(s->w->scratch));
		pktbuf_write_cancel(&pb, s->cancel_target_pid, s->cancel_target_key);
		sbuf_send_gen(&s->sb, pb.buf, pb.pos);
		return;
	}
	send_startup(s);
}

static void on_server_tls(SBuf *sb, bool ok, const char *err)
{
	Server *s = sb->owner;
	App *app = s->w->app;
	char msg[400];
	if (!ok) {
		snprintf(msg, sizeof(msg), "server TLS: %s", err);
		log_msg(&app->log, LOG_LEVEL_WARNING, s->log_prefix, "%s", msg);
		if (s->is_cancel)
			server_close(s, msg);
		else /* like a server that went away: clients keep waiting for a retry */
			login_failed(s, msg, NULL, false);
		return;
	}
	tls_describe(sb, s->tls, sizeof(s->tls));
	send_first_packet(s);
	sbuf_continue(sb);
}

static bool server_proto(SBuf *sb, SBufEvent ev, PktHdr *pkt)
{
	Server *s = sb->owner;
	App *app = s->w->app;
	char msg[200];
	switch (ev) {
	case SBUF_EV_CONNECT_OK:
		note_local_addr(s);
		if (s->addr_family != AF_UNIX && tls_server_mode() != TLS_MODE_DISABLE) {
			/* SSLRequest first (server_tls_sslmode); the login starts once TLS is up */
			if (tls_connect_start(&s->sb, s->host, on_server_tls) < 0)
				login_failed(s, "TLS setup failed", NULL, false);
			return false;
		}
		send_first_packet(s);
		return true;
	case SBUF_EV_CONNECT_FAILED:
		snprintf(msg, sizeof(msg), "connect failed: %s", strerror(s->sb.last_errno));
		if (!s->is_cancel)
			log_msg(&app->log, LOG_LEVEL_WARNING, s->log_prefix, "%s", msg);
		server_host_failed(s);
		login_failed(s, "connect failed", NULL, false);
		return false;
	case SBUF_EV_RECV_FAILED:
		if (s->is_cancel) {
			server_close(s, "cancel request done");
			return false;
		}
		if (s->state == SV_LOGIN) {
			login_failed(s, "server closed the connection during login", NULL, false);
			return false;
		}
		server_close(s, s->link ? "server conn crashed?" : "server closed the connection");
		return false;
	case SBUF_EV_SEND_FAILED:
		server_close(s, "server send failed");
		return false;
	case SBUF_EV_BAD_PACKET:
		server_close(s, "bad packet header from server");
		return false;
	case SBUF_EV_FLUSH:
		if (ps_fakes_due(s))
			ps_flush_fakes(s);
		if (s->release_on_flush) {
			s->release_on_flush = false;
			if (s->link)
				pool_release_server(s);
		}
		return true;
	case SBUF_EV_READ:
		break;
	}
	if (s->is_cancel) {
		sbuf_prepare_skip(&s->sb, pkt->len);
		return true;
	}
	if (s->state == SV_LOGIN && !s->login_done)
		return handle_login_packet(s, pkt);
	if (s->auth_req)
		return authquery_server_packet(s, pkt);
	if (s->setting_vars || s->running_internal)
		return handle_internal_reply(s, pkt);
	if (s->link)
		return handle_linked_packet(s, pkt);
	return handle_idle_packet(s, pkt);
}
