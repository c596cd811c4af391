/* prepared.c: named prepared statements in transaction/statement pooling.
 *
 * A client's Parse of a named statement is remembered under the client's name and prepared on
 * the server under a name of ours (TP_<id>), once per server. Bind/Describe/Close that name a
 * statement are rewritten to our name; when the client's current server has not seen the
 * statement, a Parse is injected first. Replies the client must not see are swallowed, and
 * ParseComplete/CloseComplete for messages the server never got are made here, each at its
 * place in the reply stream, which the per-server queue of owed replies tracks. */
#include "prepared.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "client.h"
#include "pool.h"
#include "server.h"

/* ---- registry ---- */

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static bool sql_clears_statements(const char *q, uint32_t n);

static PreparedStatement *registry_get(Worker *w, const uint8_t *body, uint32_t len)
{
	PsRegistry *reg = &w->ps_registry;
	if (!reg->buckets) {
		reg->nbuckets = 1024;
		reg->buckets = calloc(reg->nbuckets, sizeof(*reg->buckets));
		if (!reg->buckets)
			return NULL;
	}
	uint64_t h = fnv1a(body, len);
	uint32_t b = (uint32_t)(h % reg->nbuckets);
	for (PreparedStatement *ps = reg->buckets[b]; ps; ps = ps->next)
		if (ps->hash == h && ps->body_len == len && memcmp(ps->body, body, len) == 0)
			return ps;
	PreparedStatement *ps = calloc(1, sizeof(*ps));
	if (!ps)
		return NULL;
	ps->body = malloc(len);
	if (!ps->body) {
		free(ps);
		return NULL;
	}
	memcpy(ps->body, body, len);
	ps->body_len = len;
	ps->hash = h;
	ps->id = ++reg->next_id;
	snprintf(ps->server_name, sizeof(ps->server_name), "TP_%u", ps->id);
	ps->clears_all = sql_clears_statements((const char *)body, len);
	ps->next = reg->buckets[b];
	reg->buckets[b] = ps;
	reg->count++;
	return ps;
}

static void ps_ref(PreparedStatement *ps)
{
	ps->refcount++;
}

static void ps_unref(Worker *w, PreparedStatement *ps)
{
	if (!ps || --ps->refcount > 0)
		return;
	PsRegistry *reg = &w->ps_registry;
	uint32_t b = (uint32_t)(ps->hash % reg->nbuckets);
	for (PreparedStatement **pp = &reg->buckets[b]; *pp; pp = &(*pp)->next) {
		if (*pp == ps) {
			*pp = ps->next;
			break;
		}
	}
	reg->count--;
	free(ps->body);
	free(ps);
}

void ps_registry_free(PsRegistry *reg)
{
	for (uint32_t i = 0; reg->buckets && i < reg->nbuckets; i++) {
		PreparedStatement *ps = reg->buckets[i];
		while (ps) {
			PreparedStatement *next = ps->next;
			free(ps->body);
			free(ps);
			ps = next;
		}
	}
	free(reg->buckets);
	memset(reg, 0, sizeof(*reg));
}

/* ---- client map ---- */

static uint32_t name_bucket(const ClientPsMap *m, const char *name)
{
	return (uint32_t)(fnv1a((const uint8_t *)name, strlen(name)) % m->nbuckets);
}

static PreparedStatement *client_get(Client *c, const char *name)
{
	ClientPsMap *m = &c->ps_map;
	if (!m->buckets)
		return NULL;
	for (ClientPsEntry *e = m->buckets[name_bucket(m, name)]; e; e = e->next)
		if (strcmp(e->name, name) == 0)
			return e->ps;
	return NULL;
}

static void client_del(Client *c, const char *name)
{
	ClientPsMap *m = &c->ps_map;
	if (!m->buckets)
		return;
	for (ClientPsEntry **pp = &m->buckets[name_bucket(m, name)]; *pp; pp = &(*pp)->next) {
		ClientPsEntry *e = *pp;
		if (strcmp(e->name, name) == 0) {
			*pp = e->next;
			ps_unref(c->w, e->ps);
			free(e);
			m->count--;
			return;
		}
	}
}

static bool client_put(Client *c, const char *name, PreparedStatement *ps)
{
	ClientPsMap *m = &c->ps_map;
	if (!m->buckets) {
		m->nbuckets = 64;
		m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
		if (!m->buckets)
			return false;
	}
	/* Take the new reference before the old entry drops its own: a client that parses the
	 * same statement under the same name again would otherwise free it here (found by
	 * fuzz_client). */
	ps_ref(ps);
	client_del(c, name);
	size_t n = strlen(name);
	ClientPsEntry *e = malloc(sizeof(*e) + n + 1);
	if (!e) {
		ps_unref(c->w, ps);
		return false;
	}
	memcpy(e->name, name, n + 1);
	e->ps = ps;
	uint32_t b = name_bucket(m, name);
	e->next = m->buckets[b];
	m->buckets[b] = e;
	m->count++;
	return true;
}

static void client_clear(Client *c)
{
	ClientPsMap *m = &c->ps_map;
	for (uint32_t i = 0; m->buckets && i < m->nbuckets; i++) {
		ClientPsEntry *e = m->buckets[i];
		while (e) {
			ClientPsEntry *next = e->next;
			ps_unref(c->w, e->ps);
			free(e);
			e = next;
		}
		m->buckets[i] = NULL;
	}
	m->count = 0;
}

void ps_client_free(Client *c)
{
	client_clear(c);
	free(c->ps_map.buckets);
	c->ps_map.buckets = NULL;
}

/* ---- server cache and reply queue ---- */

static ServerPs *server_ps(Server *s)
{
	if (s->ps)
		return s->ps;
	ServerPs *sp = calloc(1, sizeof(*sp));
	if (!sp)
		return NULL;
	s->ps = sp;
	return sp;
}

/* Make room in the cache arrays for limit statements (the limit follows max_prepared_statements
 * as it is now: a reload may raise it after the server's cache was made). */
static bool cache_reserve(ServerPs *sp, int limit)
{
	if (limit <= sp->cap)
		return true;
	PreparedStatement **items = realloc(sp->items, (size_t)limit * sizeof(*items));
	if (!items)
		return false;
	sp->items = items;
	uint64_t *used = realloc(sp->used, (size_t)limit * sizeof(*used));
	if (!used)
		return false;
	sp->used = used;
	sp->cap = limit;
	return true;
}

static int cache_find(ServerPs *sp, const PreparedStatement *ps)
{
	for (int i = 0; i < sp->n; i++)
		if (sp->items[i] == ps)
			return i;
	return -1;
}

static void cache_remove_at(Server *s, int i)
{
	ServerPs *sp = s->ps;
	ps_unref(s->w, sp->items[i]);
	sp->n--;
	sp->items[i] = sp->items[sp->n];
	sp->used[i] = sp->used[sp->n];
}

static void cache_remove(Server *s, PreparedStatement *ps)
{
	if (!s->ps || !ps)
		return;
	int i = cache_find(s->ps, ps);
	if (i >= 0)
		cache_remove_at(s, i);
}

void ps_server_forget_all(Server *s)
{
	while (s->ps && s->ps->n > 0)
		cache_remove_at(s, 0);
}

static void queue_pop(Server *s)
{
	ServerPs *sp = s->ps;
	PendingResp *r = &sp->q[sp->q_head];
	ps_unref(s->w, r->ps);
	r->ps = NULL;
	sp->q_head = (sp->q_head + 1) % PS_QUEUE_SIZE;
	sp->q_count--;
	if (sp->client_blocked && sp->q_count < PS_QUEUE_SIZE / 2 && s->link) {
		/* The client stopped because the queue was full; there is room again. */
		sp->client_blocked = false;
		sbuf_continue(&s->link->sb);
	}
}

void ps_server_free(Server *s)
{
	if (!s->ps)
		return;
	while (s->ps->q_count > 0)
		queue_pop(s);
	ps_server_forget_all(s);
	free(s->ps->items);
	free(s->ps->used);
	free(s->ps);
	s->ps = NULL;
}

static void queue_push(Server *s, uint8_t msg, RespAction action, uint8_t sub, PreparedStatement *ps)
{
	ServerPs *sp = s->ps;
	if (sp->error_skip) {
		/* The server discards everything up to Sync: nothing will answer these. */
		if (msg != 'S')
			return;
		sp->error_skip = false;
	}
	PendingResp *r = &sp->q[(sp->q_head + sp->q_count) % PS_QUEUE_SIZE];
	r->msg = msg;
	r->action = (uint8_t)action;
	r->sub = sub;
	r->ps = ps;
	if (ps)
		ps_ref(ps);
	sp->q_count++;
}

bool ps_tracking(const Server *s)
{
	const Config *cf = s->w->app->cf;
	return cf->max_prepared_statements > 0 && pool_mode_of(s->pool, cf) != POOL_MODE_SESSION;
}

bool ps_queue_empty(const Server *s)
{
	return !s->ps || s->ps->q_count == 0;
}

bool ps_fakes_due(const Server *s)
{
	const ServerPs *sp = s->ps;
	if (!sp || sp->q_count == 0)
		return false;
	uint8_t a = sp->q[sp->q_head].action;
	return a == RESP_FAKE_PARSE || a == RESP_FAKE_CLOSE;
}

void ps_flush_fakes(Server *s)
{
	Client *c = s->link;
	uint8_t buf[5 * 64];
	size_t n = 0;
	while (ps_fakes_due(s)) {
		uint8_t a = s->ps->q[s->ps->q_head].action;
		if (n + 5 > sizeof(buf)) {
			if (c)
				sbuf_send_gen(&c->sb, buf, n);
			n = 0;
		}
		buf[n++] = a == RESP_FAKE_PARSE ? '1' : '3';
		buf[n++] = 0;
		buf[n++] = 0;
		buf[n++] = 0;
		buf[n++] = 4;
		queue_pop(s);
	}
	if (n && c)
		sbuf_send_gen(&c->sb, buf, n);
}

/* ---- client side ---- */

/* Send a message we built to the server; the client's earlier bytes were flushed already. */
static void send_to_server(Server *s, const PktBuf *pb)
{
	sbuf_send_gen(&s->sb, pb->buf, pb->pos);
}

/* Make sure the server has ps prepared; inject a Parse (and evict) if not. */
static bool ensure_prepared(Client *c, Server *s, PreparedStatement *ps, bool from_client_parse)
{
	ServerPs *sp = s->ps;
	int i = cache_find(sp, ps);
	if (i >= 0) {
		sp->used[i] = ++sp->tick;
		return true;
	}
	int limit = s->w->app->cf->max_prepared_statements;
	if (limit < 1)
		limit = 1;
	if (!cache_reserve(sp, limit))
		return false;
	PktBuf pb;
	pktbuf_init_dynamic(&pb, 64 + ps->body_len);
	/* Evict least recently used statements until this one fits: more than one when the limit
	 * was lowered since they were prepared. */
	while (sp->n >= limit) {
		int lru = 0;
		for (int k = 1; k < sp->n; k++)
			if (sp->used[k] < sp->used[lru])
				lru = k;
		pktbuf_start(&pb, 'C');
		pktbuf_put_byte(&pb, 'S');
		pktbuf_put_string(&pb, sp->items[lru]->server_name);
		pktbuf_finish(&pb);
		queue_push(s, 'C', RESP_SWALLOW, 'S', NULL);
		cache_remove_at(s, lru);
	}
	pktbuf_start(&pb, 'P');
	pktbuf_put_string(&pb, ps->server_name);
	pktbuf_put_bytes(&pb, ps->body, ps->body_len);
	pktbuf_finish(&pb);
	if (pb.failed) {
		pktbuf_free(&pb);
		return false;
	}
	send_to_server(s, &pb);
	pktbuf_free(&pb);
	queue_push(s, 'P', from_client_parse ? RESP_FORWARD : RESP_SWALLOW, 0, ps);
	sp->items[sp->n] = ps;
	sp->used[sp->n] = ++sp->tick;
	sp->n++;
	ps_ref(ps);
	s->pool->db->stats.server_parse_count++;
	return true;
}

/* A reply made here: sent now if nothing is owed before it, else queued in its place. */
static void fake_reply(Client *c, Server *s, RespAction action)
{
	ServerPs *sp = s->ps;
	if (sp->error_skip)
		return;
	queue_push(s, action == RESP_FAKE_PARSE ? 'P' : 'C', action, 'S', NULL);
	if (sp->q_count == 1) {
		if (sbuf_is_empty(&s->sb))
			ps_flush_fakes(s);
		else
			sbuf_want_flush(&s->sb);
	}
}

/* Does this SQL drop every prepared statement of the session? */
static bool sql_clears_statements(const char *q, uint32_t n)
{
	while (n > 0 && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')) {
		q++;
		n--;
	}
	if (n >= 14 && strncasecmp(q, "DEALLOCATE ALL", 14) == 0)
		return true;
	if (n >= 11 && strncasecmp(q, "DISCARD ALL", 11) == 0)
		return true;
	return false;
}

static bool client_error(Client *c, const char *msg)
{
	client_error_close(c, "08P01", msg);
	return false;
}

/* Bind/Describe of a name the client never prepared: the statement cannot be found on any
 * server, so the client is disconnected (as PgBouncer does). */
static bool client_error_unknown(Client *c, const char *name)
{
	log_msg(&c->w->app->log, LOG_LEVEL_ERROR, client_log_prefix(c), "prepared statement '%s' not found",
	        name);
	return client_error(c, "prepared statement did not exist");
}

/* Parse of a name the client already prepared (PostgreSQL refuses it too); disconnects. */
static bool client_error_reused(Client *c, const char *name)
{
	log_msg(&c->w->app->log, LOG_LEVEL_ERROR, client_log_prefix(c),
	        "prepared statement '%s' was already prepared", name);
	return client_error(c, "prepared statement name is already in use");
}

/* How much of a P/B/D/C packet must be buffered to read its names: all of it, but for a Bind
 * (its parameters may be huge) only up to the end of its portal and statement names, which may
 * be longer than pkt_buf: then ask for twice what is here, until they end. */
static uint32_t names_need(const PktHdr *pkt)
{
	if (pkt->type != 'B')
		return pkt->len;
	const uint8_t *p = pkt->data + pkt->hdr_len;
	const uint8_t *end = pkt->data + pkt->avail;
	for (int k = 0; k < 2; k++) {
		const uint8_t *nul = p < end ? memchr(p, 0, (size_t)(end - p)) : NULL;
		if (!nul) {
			uint32_t more = pkt->avail < 512 ? 512 : pkt->avail * 2;
			return more < pkt->len ? more : pkt->len;
		}
		p = nul + 1;
	}
	return (uint32_t)(p - pkt->data);
}

/* The client sent DEALLOCATE ALL / DISCARD ALL: its names and the server's statements go now,
 * so what it sends next is prepared again; the CommandComplete it gets is counted as seen. */
static void clear_at_send(Client *c, Server *s)
{
	client_clear(c);
	ps_server_forget_all(s);
	if (server_ps(s))
		s->ps->clears_sent++;
}

void ps_client_simple_query(Client *c, Server *s, const PktHdr *pkt)
{
	/* The words are at the start: what is buffered of a long query is enough. */
	if (pkt->avail > pkt->hdr_len &&
	    sql_clears_statements((const char *)pkt->data + pkt->hdr_len, pkt->avail - pkt->hdr_len))
		clear_at_send(c, s);
}

bool ps_client_packet(Client *c, Server *s, PktHdr *pkt)
{
	uint8_t t = pkt->type;
	if (t != 'P' && t != 'B' && t != 'D' && t != 'C' && t != 'E' && t != 'S' && t != 'Q' && t != 'F') {
		sbuf_prepare_send(&c->sb, &s->sb, pkt->len);
		return true;
	}
	ServerPs *sp = server_ps(s);
	if (!sp)
		return client_error(c, "out of memory");
	if (sp->q_count == 0 && s->expect_rfq > 0) {
		/* Simple queries still in flight were not queued (they bypass the tracker while
		 * nothing else is owed): hold their places before anything queues behind them. */
		for (int i = 0; i < s->expect_rfq && sp->q_count < PS_QUEUE_SIZE - 8; i++)
			queue_push(s, 'Q', RESP_FORWARD, 0, NULL);
	}
	if (sp->q_count >= PS_QUEUE_SIZE - 4) {
		/* Backpressure: wait until the server has answered some of what is queued. */
		sp->client_blocked = true;
		return false;
	}
	/* Names live at the start of P, B, D and C; make sure they are buffered. */
	uint32_t need = names_need(pkt);
	if ((t == 'P' || t == 'B' || t == 'D' || t == 'C') && pkt->avail < need) {
		if (!sbuf_require(&c->sb, need))
			return client_error(c, "Parse message too large for prepared statement tracking");
		return false;
	}
	PktReader r;
	proto_reader_init(&r, pkt);
	r.err = false; /* big Bind packets are read only at their start */
	switch (t) {
	case 'P': {
		const char *name = proto_get_string(&r);
		if (!name)
			return client_error(c, "invalid Parse message");
		if (!*name) {
			if (sql_clears_statements((const char *)r.p, proto_remaining(&r)))
				clear_at_send(c,
				              s); /* runs right after: the server will have forgotten all */
			queue_push(s, 'P', RESP_FORWARD, 0, NULL);
			break;
		}
		if (!sbuf_flush_pending(&c->sb)) {
			sbuf_retry_after_flush(&c->sb);
			return false;
		}
		if (client_get(c, name))
			return client_error_reused(c, name);
		const uint8_t *body = r.p;
		uint32_t body_len = proto_remaining(&r);
		PreparedStatement *ps = registry_get(c->w, body, body_len);
		if (!ps || !client_put(c, name, ps))
			return client_error(c, "out of memory");
		s->pool->db->stats.client_parse_count++;
		sbuf_prepare_skip(&c->sb, pkt->len);
		if (cache_find(sp, ps) >= 0) {
			sp->used[cache_find(sp, ps)] = ++sp->tick;
			fake_reply(c, s, RESP_FAKE_PARSE);
		} else if (!ensure_prepared(c, s, ps, true)) {
			return client_error(c, "out of memory");
		}
		s->ready = false;
		return true;
	}
	case 'B':
	case 'D': {
		const char *portal = NULL;
		uint8_t sub = 'S';
		if (t == 'B') {
			portal = proto_get_string(&r);
		} else {
			sub = proto_get_byte(&r);
		}
		const char *name = proto_get_string(&r);
		if (!name || r.err)
			return client_error(c,
			                    t == 'B' ? "invalid Bind message" : "invalid Describe message");
		PreparedStatement *ps = (*name && sub == 'S') ? client_get(c, name) : NULL;
		if (!ps && *name && sub == 'S')
			return client_error_unknown(c, name);
		if (!ps) {
			/* Unnamed, or a portal: PostgreSQL answers it as it is. */
			queue_push(s, t, RESP_FORWARD, sub, NULL);
			break;
		}
		if (!sbuf_flush_pending(&c->sb)) {
			sbuf_retry_after_flush(&c->sb);
			return false;
		}
		if (!ensure_prepared(c, s, ps, false))
			return client_error(c, "out of memory");
		uint32_t head = (uint32_t)((const uint8_t *)name + strlen(name) + 1 - pkt->data);
		PktBuf pb;
		uint8_t mem[600];
		size_t portal_len = portal ? strlen(portal) : 0;
		if (portal_len + 64 <= sizeof(mem))
			pktbuf_init_fixed(&pb, mem, sizeof(mem));
		else
			pktbuf_init_dynamic(&pb, portal_len + 64); /* a rare long portal name */
		pktbuf_put_byte(&pb, t);
		uint32_t newlen =
		    pkt->len - 1 - (uint32_t)(strlen(name) + 1) + (uint32_t)strlen(ps->server_name) + 1;
		pktbuf_put_int32(&pb, newlen);
		if (t == 'B')
			pktbuf_put_string(&pb, portal);
		else
			pktbuf_put_byte(&pb, sub);
		pktbuf_put_string(&pb, ps->server_name);
		if (pb.failed) {
			pktbuf_free(&pb);
			return client_error(c, "out of memory");
		}
		send_to_server(s, &pb);
		pktbuf_free(&pb);
		if (head < pkt->len)
			sbuf_prepare_skip_then_send(&c->sb, &s->sb, head, pkt->len - head);
		else
			sbuf_prepare_skip(&c->sb, pkt->len);
		if (t == 'B')
			s->pool->db->stats.bind_count++;
		queue_push(s, t, RESP_FORWARD, sub, NULL);
		s->ready = false;
		if (t == 'B' && ps->clears_all)
			clear_at_send(c, s); /* the statement being bound empties the session */
		return true;
	}
	case 'C': {
		uint8_t sub = proto_get_byte(&r);
		const char *name = proto_get_string(&r);
		if (!name || r.err)
			return client_error(c, "invalid Close message");
		if (sub != 'S' || !*name || !client_get(c, name)) {
			queue_push(s, 'C', RESP_FORWARD, sub, NULL);
			break;
		}
		/* The statement stays on the servers (cached); only the client's name goes. */
		client_del(c, name);
		if (!sbuf_flush_pending(&c->sb)) {
			sbuf_retry_after_flush(&c->sb);
			return false;
		}
		sbuf_prepare_skip(&c->sb, pkt->len);
		fake_reply(c, s, RESP_FAKE_CLOSE);
		s->ready = false;
		return true;
	}
	case 'Q':
		ps_client_simple_query(c, s, pkt);
		queue_push(s, t, RESP_FORWARD, 0, NULL);
		break;
	default:
		queue_push(s, t, RESP_FORWARD, 0, NULL);
		break;
	}
	sbuf_prepare_send(&c->sb, &s->sb, pkt->len);
	return true;
}

bool ps_client_prepare_local(Client *c, PktHdr *pkt)
{
	const Config *cf = c->w->app->cf;
	if (pkt->type != 'P' || cf->max_prepared_statements <= 0 || !c->pool ||
	    pool_mode_of(c->pool, cf) == POOL_MODE_SESSION || pkt->avail < pkt->len)
		return false;
	/* Only when the Sync is already here: then nothing else can depend on a server. */
	if (c->sb.recv_pos - c->sb.pkt_pos < pkt->len + 5)
		return false;
	static const uint8_t sync[5] = {'S', 0, 0, 0, 4};
	if (memcmp(pkt->data + pkt->len, sync, 5) != 0)
		return false;
	PktReader r;
	proto_reader_init(&r, pkt);
	const char *name = proto_get_string(&r);
	if (!name || !*name)
		return false;
	if (client_get(c, name)) {
		client_error_reused(c, name);
		return true;
	}
	PreparedStatement *ps = registry_get(c->w, r.p, proto_remaining(&r));
	if (!ps || !client_put(c, name, ps))
		return false;
	c->db->stats.client_parse_count++;
	static const uint8_t reply[11] = {'1', 0, 0, 0, 4, 'Z', 0, 0, 0, 5, 'I'};
	sbuf_prepare_skip(&c->sb, pkt->len + 5);
	sbuf_send_gen(&c->sb, reply, sizeof(reply));
	return true;
}

/* ---- server side ---- */

/* Is ps prepared by a Parse still owed a reply (sent after what is being answered now)? */
static bool parse_queued(const ServerPs *sp, const PreparedStatement *ps)
{
	for (uint32_t k = 0; k < sp->q_count; k++) {
		const PendingResp *r = &sp->q[(sp->q_head + k) % PS_QUEUE_SIZE];
		if (r->msg == 'P' && r->ps == ps)
			return true;
	}
	return false;
}

static bool tag_is(const PktHdr *pkt, const char *tag)
{
	size_t n = strlen(tag) + 1;
	return pkt->avail == pkt->len && pkt->len - pkt->hdr_len == n &&
	       memcmp(pkt->data + pkt->hdr_len, tag, n) == 0;
}

void ps_server_command_complete(Server *s, const PktHdr *pkt)
{
	if (!tag_is(pkt, "DEALLOCATE ALL") && !tag_is(pkt, "DISCARD ALL"))
		return;
	ServerPs *sp = s->ps;
	if (sp) {
		/* The server keeps only what was parsed after the command: statements whose Parse
		 * is still queued. Downwards, as cache_remove_at() moves the last item into i. */
		for (int i = sp->n - 1; i >= 0; i--)
			if (!parse_queued(sp, sp->items[i]))
				cache_remove_at(s, i);
		if (sp->clears_sent > 0) {
			sp->clears_sent--; /* seen when sent: the client's names were cleared then */
			return;
		}
	}
	/* Not recognised when sent (several statements in one query, odd spacing). Names the
	 * client parsed after it (anything else owed) are kept: they run again if used. */
	if (s->link && (!sp || sp->q_count <= 1))
		client_clear(s->link);
}

static bool completes(const PendingResp *r, uint8_t resp)
{
	switch (r->msg) {
	case 'P':
		return resp == '1';
	case 'B':
		return resp == '2';
	case 'D':
		return resp == 'T' || resp == 'n';
	case 'E':
		return resp == 'C' || resp == 'I' || resp == 's';
	case 'C':
		return resp == '3';
	case 'S':
	case 'Q':
	case 'F':
		return resp == 'Z';
	default:
		return false;
	}
}

/* A Parse that failed leaves nothing on the server. */
static void forget_failed(Server *s, PendingResp *r)
{
	if (r->msg == 'P' && r->ps)
		cache_remove(s, r->ps);
}

bool ps_server_reply(Server *s, const PktHdr *pkt)
{
	ServerPs *sp = s->ps;
	uint8_t t = pkt->type;
	if (sp && t == 'Z' && sp->q_count <= 1)
		sp->clears_sent = 0; /* nothing more owed: a clear that failed is not coming */
	if (!sp || sp->q_count == 0 || t == 'N' || t == 'A' || t == 'S')
		return true;
	PendingResp *head = &sp->q[sp->q_head];
	if (t == 'E') {
		if (head->msg == 'Q' || head->msg == 'F')
			return true; /* simple query errors end at ReadyForQuery */
		bool forward = head->action != RESP_SWALLOW || head->msg == 'P';
		forget_failed(s, head);
		queue_pop(s);
		/* Everything up to the Sync is skipped by the server: no replies, no fakes. */
		while (sp->q_count > 0 && sp->q[sp->q_head].msg != 'S') {
			forget_failed(s, &sp->q[sp->q_head]);
			queue_pop(s);
		}
		if (sp->q_count == 0)
			sp->error_skip = true;
		return forward;
	}
	if (!completes(head, t))
		return head->action != RESP_SWALLOW;
	bool forward = head->action != RESP_SWALLOW;
	queue_pop(s);
	if (ps_fakes_due(s))
		sbuf_want_flush(&s->sb);
	return forward;
}
