/* replication.c: replication connections. A client whose startup packet asks for replication
 * (physical: a boolean true, logical: "database") is paired with a server connection launched
 * for it alone, with the same replication parameter. The pair lives and dies together: the
 * server is never idle, never reset and never handed to another client. It counts against the
 * pool, database and user limits like any server; idle normal servers make way for it. */
#include "replication.h"

#include <string.h>
#include <strings.h>

#include "app.h"
#include "client.h"
#include "server.h"

bool repl_parse_value(const char *value, ReplicationType *out)
{
	/* PostgreSQL's boolean spellings (case-insensitive), plus "database" */
	static const char *const yes[] = {"true", "on", "yes", "1"};
	static const char *const no[] = {"false", "off", "no", "0"};
	if (strcasecmp(value, "database") == 0) {
		*out = REPLICATION_LOGICAL;
		return true;
	}
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(value, yes[i]) == 0) {
			*out = REPLICATION_PHYSICAL;
			return true;
		}
		if (strcasecmp(value, no[i]) == 0) {
			*out = REPLICATION_NONE;
			return true;
		}
	}
	return false;
}

const char *repl_type_name(ReplicationType t)
{
	switch (t) {
	case REPLICATION_PHYSICAL:
		return "physical";
	case REPLICATION_LOGICAL:
		return "logical";
	case REPLICATION_NONE:
		break;
	}
	return "none";
}

const char *repl_log_name(ReplicationType t)
{
	switch (t) {
	case REPLICATION_PHYSICAL:
		return "yes";
	case REPLICATION_LOGICAL:
		return "database";
	case REPLICATION_NONE:
		break;
	}
	return "no";
}

bool repl_client_login(Client *c)
{
	c->wait_start = now_usec();
	client_set_state(c, CL_WAITING_LOGIN);
	repl_launch_waiting(c->pool);
	return false;
}

/* An idle normal server that shares a limit with the pool: its own first, then one of a pool
 * with the same database or the same user. */
static Server *find_evictable(Pool *p)
{
	List *pi;
	if (!list_empty(&p->idle_servers))
		return LIST_CONTAINER(list_first(&p->idle_servers), Server, head);
	LIST_FOREACH (pi, &p->w->pools) {
		Pool *q = LIST_CONTAINER(pi, Pool, head);
		if (q != p && (q->db == p->db || q->user == p->user) && !list_empty(&q->idle_servers))
			return LIST_CONTAINER(list_first(&q->idle_servers), Server, head);
	}
	return NULL;
}

/* Take a server slot for a replication server (no reserve pool), evicting idle servers while
 * a limit is reached. */
static bool take_slots(Pool *p)
{
	const Config *cf = p->w->app->cf;
	int db_max = p->db->max_db_connections >= 0 ? p->db->max_db_connections : cf->max_db_connections;
	int user_max =
	    p->user->max_user_connections >= 0 ? p->user->max_user_connections : cf->max_user_connections;
	for (;;) {
		if (pool_take_slots(p, pool_size_of(p), db_max, user_max))
			return true;
		Server *victim = find_evictable(p);
		if (!victim)
			return false;
		server_close(victim, "evicted");
	}
}

void repl_launch_waiting(Pool *p)
{
	App *app = p->w->app;
	if (p->repl_launching || p->repl_waiting == 0)
		return;
	if (app->shutdown != SHUTDOWN_NONE || p->db->removed || app->paused || p->db->paused)
		return;
	p->repl_launching = true;
	bool again = true;
	while (again) {
		List *item;
		again = false;
		LIST_FOREACH (item, &p->waiting_clients) {
			Client *c = LIST_CONTAINER(item, Client, head);
			if (!c->replication || c->link)
				continue;
			if (!take_slots(p))
				break;
			/* may fail at once and close c: scan again from the head */
			server_launch_linked(p, c);
			again = true;
			break;
		}
	}
	p->repl_launching = false;
}

void repl_put_startup_params(const Server *s, PktBuf *pb)
{
	const Client *c = s->link;
	pktbuf_put_string(pb, "replication");
	pktbuf_put_string(pb, s->replication == REPLICATION_LOGICAL ? "database" : "true");
	if (!c)
		return;
	if (c->repl_options) {
		pktbuf_put_string(pb, "options");
		pktbuf_put_string(pb, c->repl_options);
	}
	/* SET is not possible on a physical replication connection: the client's values go here */
	for (int i = 0; c->vars && i < s->w->var_count; i++) {
		if (!c->vars->value[i])
			continue;
		pktbuf_put_string(pb, s->w->var_names[i]);
		pktbuf_put_string(pb, c->vars->value[i]);
	}
}

void repl_server_login_ok(Server *s)
{
	Client *c = s->link;
	if (!c) {
		server_close(s, "replication client was closed");
		return;
	}
	PktBuf pb;
	pktbuf_init_dynamic(&pb, 1024);
	pktbuf_write_auth(&pb, 0);
	for (int i = 0; i < s->welcome_tmp_n; i++)
		if (s->welcome_tmp_names[i] && s->welcome_tmp_values[i])
			pktbuf_write_param_status(&pb, s->welcome_tmp_names[i], s->welcome_tmp_values[i]);
	pktbuf_write_backend_key(&pb, c->cancel_pid, c->cancel_key);
	pktbuf_write_ready(&pb, s->ready_status ? s->ready_status : 'I');
	int rc = pb.failed ? -1 : sbuf_send_gen(&c->sb, pb.buf, pb.pos);
	pktbuf_free(&pb);
	if (rc < 0) {
		client_close(c, "client send failed");
		return;
	}
	usec_t now = now_usec();
	Stats *st = &s->pool->db->stats;
	st->server_assignment_count++;
	if (c->wait_start) {
		st->wait_time += (uint64_t)(now - c->wait_start);
		c->wait_start = 0;
	}
	s->sb.dst = &c->sb;
	c->sb.dst = &s->sb;
	s->request_time = c->request_time = now;
	server_set_state(s, SV_ACTIVE);
	client_set_state(c, CL_ACTIVE);
	sbuf_continue(&c->sb);
}

bool repl_forward_packet(SBuf *from, SBuf *to, PktHdr *pkt)
{
	sbuf_prepare_send(from, to, pkt->len);
	return true;
}
