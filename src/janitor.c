/* janitor.c: timers: login, wait, idle, transaction and query timeouts; server lifetime and
 * idle timeout; min_pool_size and relaunching after failed logins. */
#include "janitor.h"

#include <stdio.h>

#include "app.h"
#include "client.h"
#include "listener.h"
#include "server.h"
#include "worker.h"

#define JANITOR_PERIOD_USEC 250000

static usec_t user_or(usec_t user_value, usec_t global)
{
	return user_value >= 0 ? user_value : global;
}

static void check_login_clients(Worker *w, usec_t now)
{
	const Config *cf = w->app->cf;
	List *item, *tmp;
	LIST_FOREACH_SAFE (item, tmp, &w->login_clients) {
		Client *c = LIST_CONTAINER(item, Client, head);
		if (cf->client_login_timeout > 0 && now - c->connect_time > cf->client_login_timeout)
			client_error_close(c, "08P01", "client_login_timeout");
	}
}

static void check_pool_clients(Pool *p, usec_t now)
{
	App *app = p->w->app;
	const Config *cf = app->cf;
	char msg[256];
	List *item, *tmp;
	LIST_FOREACH_SAFE (item, tmp, &p->waiting_clients) {
		Client *c = LIST_CONTAINER(item, Client, head);
		usec_t waited = now - c->wait_start;
		if (app->shutdown == SHUTDOWN_WAIT_FOR_SERVERS) {
			/* SHUTDOWN WAIT_FOR_SERVERS: no server will come for a waiting client */
			client_error_close(c, "08P01", "server shutting down");
			continue;
		}
		/* query_timeout counts the wait for a server too (a server that cannot be reached) */
		usec_t qt = user_or(c->user ? c->user->query_timeout : -1, cf->query_timeout);
		if (qt > 0 && waited > qt) {
			client_error_close(c, "08P01", "query_timeout");
			continue;
		}
		if (cf->query_wait_timeout > 0 && waited > cf->query_wait_timeout) {
			if (c->state == CL_WAITING_LOGIN && cf->client_login_timeout > 0 &&
			    now - c->connect_time > cf->client_login_timeout)
				client_error_close(c, "08P01", "client_login_timeout (server down)");
			else
				client_error_close(c, "08P01", "query_wait_timeout");
			continue;
		}
		if (c->state == CL_WAITING_LOGIN && cf->client_login_timeout > 0 &&
		    now - c->connect_time > cf->client_login_timeout) {
			client_error_close(c, "08P01", "client_login_timeout (server down)");
			continue;
		}
		if (c->state == CL_WAITING && cf->query_wait_notify > 0 && !c->wait_notified &&
		    waited >= (usec_t)cf->query_wait_notify * USEC_PER_SEC) {
			c->wait_notified = true;
			snprintf(msg, sizeof(msg),
			         "No server connection available in postgres backend, client being queued");
			client_send_notice(c, msg);
		}
	}
	LIST_FOREACH_SAFE (item, tmp, &p->active_clients) {
		Client *c = LIST_CONTAINER(item, Client, head);
		Server *s = c->link;
		User *u = c->user;
		if (!s) {
			usec_t idle = user_or(u ? u->client_idle_timeout : -1, cf->client_idle_timeout);
			if (idle > 0 && now - c->request_time > idle)
				client_error_close(c, "08P01", "client_idle_timeout");
			continue;
		}
		usec_t qt = user_or(u ? u->query_timeout : -1, cf->query_timeout);
		if (qt > 0 && !s->ready && s->query_start && now - s->query_start > qt) {
			client_error_close(c, "08P01", "query timeout");
			continue;
		}
		usec_t it = user_or(u ? u->idle_transaction_timeout : -1, cf->idle_transaction_timeout);
		if (it > 0 && s->ready && s->ready_status != 'I' && now - s->request_time > it) {
			client_error_close(c, "08P01", "idle transaction timeout");
			continue;
		}
		usec_t tt = user_or(u ? u->transaction_timeout : -1, cf->transaction_timeout);
		if (tt > 0 && s->xact_start && now - s->xact_start > tt) {
			client_error_close(c, "08P01", "transaction timeout");
			continue;
		}
	}
}

static void check_pool_servers(Pool *p, usec_t now)
{
	const Config *cf = p->w->app->cf;
	List *item, *tmp;
	LIST_FOREACH_SAFE (item, tmp, &p->idle_servers) {
		Server *s = LIST_CONTAINER(item, Server, head);
		usec_t lifetime = p->db->server_lifetime >= 0 ? (usec_t)p->db->server_lifetime * USEC_PER_SEC
		                                              : cf->server_lifetime;
		int min_size = p->db->min_pool_size >= 0 ? p->db->min_pool_size : cf->min_pool_size;
		if (s->close_needed)
			server_close(s, "obsolete connection");
		else if (cf->server_idle_timeout > 0 && now - s->idle_since > cf->server_idle_timeout &&
		         pool_server_count(p) > min_size)
			server_close(s, "server idle timeout");
		else if (lifetime > 0 && now - s->connect_time > lifetime)
			server_close(s, "server lifetime over");
	}
	/* server_fast_close: in session pooling a server marked for closing (RECONNECT, a changed
	 * database) goes as soon as its client is between transactions, client and all */
	if (cf->server_fast_close && pool_mode_of(p, cf) == POOL_MODE_SESSION)
		LIST_FOREACH_SAFE (item, tmp, &p->active_servers) {
			Server *s = LIST_CONTAINER(item, Server, head);
			if (s->close_needed && s->link && s->ready && s->ready_status == 'I' &&
			    s->expect_rfq == 0 && !s->setting_vars && !s->running_internal &&
			    sbuf_is_empty(&s->sb))
				server_close(s, "database configuration changed");
		}
	LIST_FOREACH_SAFE (item, tmp, &p->new_servers) {
		Server *s = LIST_CONTAINER(item, Server, head);
		if (cf->server_connect_timeout > 0 && now - s->connect_time > cf->server_connect_timeout) {
			/* Waiting login clients stay queued; query_wait_timeout decides for them. */
			snprintf(p->last_login_error, sizeof(p->last_login_error), "connect timeout");
			p->last_login_fail = now;
			server_close(s, "connect timeout");
		}
	}
}

/* Cancel requests that the server does not answer in time are dropped. */
static void check_cancel_servers(Worker *w, usec_t now)
{
	const Config *cf = w->app->cf;
	List *item, *tmp;
	LIST_FOREACH_SAFE (item, tmp, &w->cancel_servers) {
		Server *s = LIST_CONTAINER(item, Server, head);
		if (cf->cancel_wait_timeout > 0 && now - s->connect_time > cf->cancel_wait_timeout)
			server_close(s, "cancel_wait_timeout");
	}
}

/* A database with a forced user and min_pool_size keeps servers even before any client comes
 * (also after a RELOAD adds it): make its pool exist so the launch below fills it. Worker 0
 * only; the pool's server count is shared, so one worker's servers satisfy the minimum. */
static void ensure_forced_pools(Worker *w)
{
	const Config *cf = w->app->cf;
	List *item;
	if (w->idx != 0)
		return;
	LIST_FOREACH (item, &w->databases) {
		Database *db = LIST_CONTAINER(item, Database, head);
		int min_size = db->min_pool_size >= 0 ? db->min_pool_size : cf->min_pool_size;
		User *u = db->forced_user && min_size > 0 && !db->removed ? pool_get_user(w, db->forced_user)
		                                                          : NULL;
		if (u)
			pool_get(w, db, u);
	}
}

void janitor_run(Worker *w)
{
	usec_t now = now_usec();
	check_login_clients(w, now);
	check_cancel_servers(w, now);
	ensure_forced_pools(w);
	List *item, *tmp;
	LIST_FOREACH_SAFE (item, tmp, &w->pools) {
		Pool *p = LIST_CONTAINER(item, Pool, head);
		check_pool_clients(p, now);
		check_pool_servers(p, now);
		worker_check_welcome(p);
		pool_launch_if_needed(p);
	}
	listener_resume_if_needed(w);
}

static void on_janitor(evutil_socket_t fd, short what, void *arg)
{
	janitor_run(arg);
}

void janitor_start(Worker *w)
{
	struct timeval tv = {0, JANITOR_PERIOD_USEC};
	event_assign(&w->janitor_ev, w->base, -1, EV_PERSIST, on_janitor, w);
	event_add(&w->janitor_ev, &tv);
}

void janitor_stop(Worker *w)
{
	if (event_initialized(&w->janitor_ev))
		event_del(&w->janitor_ev);
}
