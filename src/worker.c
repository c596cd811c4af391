/* worker.c: event-loop threads, their inboxes, the stop-the-world pause of the control plane,
 * and the shared counters that hold pool limits across workers.
 *
 * Each worker owns its connections and its copies of databases, users and pools; nothing a
 * packet touches is shared, so the per-packet path takes no lock. Workers meet only where a
 * limit is decided (atomic counters in Shared, at login and when a server is launched or
 * closed), when a server changes hands (a message), and when the control plane stops the world
 * to read or change every worker's objects (console commands, reload, signals, stats). */
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "admin.h"
#include "app.h"
#include "authquery.h"
#include "dns.h"
#include "janitor.h"
#include "client.h"
#include "server.h"

/* A message between workers. Allocated by the sender, freed by the receiver. */
typedef enum {
	MSG_CALL = 0, /* run fn(worker, arg) */
	MSG_SERVER,   /* adopt this server */
	MSG_WANT,     /* hand over an idle server of this pool key if one is spare */
	MSG_EXIT,     /* leave the event loop */
} MsgType;

typedef struct Msg {
	List head;
	MsgType type;
	void (*fn)(Worker *, void *);
	void *arg;
	Server *server;
	Shared *key;
} Msg;

/* ------------------------------------------------------------------ shared counters */

Shared *shared_get(App *app, SharedKind kind, const char *name, const char *name2)
{
	List *item;
	if (!name2)
		name2 = "";
	pthread_mutex_lock(&app->shared_lock);
	LIST_FOREACH (item, &app->shared) {
		Shared *sh = LIST_CONTAINER(item, Shared, head);
		if (sh->kind == kind && strcmp(sh->name, name) == 0 && strcmp(sh->name2, name2) == 0) {
			pthread_mutex_unlock(&app->shared_lock);
			return sh;
		}
	}
	Shared *sh = calloc(1, sizeof(*sh));
	if (!sh)
		abort();
	sh->kind = kind;
	snprintf(sh->name, sizeof(sh->name), "%s", name);
	snprintf(sh->name2, sizeof(sh->name2), "%s", name2);
	if (kind == SHARED_POOL || kind == SHARED_AUTHPOOL) {
		sh->lanes = calloc((size_t)WORKERS_MAX, sizeof(PoolLane));
		if (!sh->lanes)
			abort();
	}
	list_append(&app->shared, &sh->head);
	pthread_mutex_unlock(&app->shared_lock);
	return sh;
}

bool shared_take(atomic_int *n, int limit)
{
	int cur = atomic_load_explicit(n, memory_order_relaxed);
	do {
		if (limit > 0 && cur >= limit)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(n, &cur, cur + 1, memory_order_acq_rel,
	                                                memory_order_relaxed));
	return true;
}

void shared_put(atomic_int *n)
{
	atomic_fetch_sub_explicit(n, 1, memory_order_acq_rel);
}

static void welcome_clear(Welcome *w)
{
	for (int i = 0; i < w->n; i++) {
		free(w->names[i]);
		free(w->values[i]);
	}
	memset(w, 0, sizeof(*w));
}

static void welcome_copy(Welcome *dst, const Welcome *src)
{
	welcome_clear(dst);
	for (int i = 0; i < src->n; i++) {
		dst->names[i] = strdup(src->names[i]);
		dst->values[i] = strdup(src->values[i]);
		if (!dst->names[i] || !dst->values[i])
			abort();
	}
	dst->n = src->n;
	dst->ready = src->ready;
}

static Pool *pool_by_key(Worker *w, Shared *key);

/* On each other worker: clients of the pool that wait for their login to finish go on now. */
static void welcome_arrived(Worker *w, void *arg)
{
	Pool *p = pool_by_key(w, arg);
	if (p)
		worker_check_welcome(p);
}

bool worker_random(Worker *w, void *out, size_t n)
{
	if (n > 64)
		return false;
	if (w->rand_left < n) {
		if (RAND_bytes(w->rand_buf, sizeof(w->rand_buf)) != 1)
			return false;
		w->rand_left = sizeof(w->rand_buf);
	}
	/* take from the end, and wipe what was handed out */
	w->rand_left -= (uint32_t)n;
	memcpy(out, w->rand_buf + w->rand_left, n);
	OPENSSL_cleanse(w->rand_buf + w->rand_left, n);
	return true;
}

/* Every way a pool's welcome becomes ready must also release its CL_WAITING_LOGIN clients
 * (client_welcome_ready): nothing else wakes them, and the checks here and in server_login_ok
 * skip a pool whose welcome is ready. */
void worker_check_welcome(Pool *p)
{
	if (p->welcome.ready || p->is_auth_pool)
		return;
	if (shared_copy_welcome(p->w->app, p->sh, &p->welcome)) {
		p->welcome.ready = true;
		client_welcome_ready(p);
	}
}

void shared_publish_welcome(App *app, Shared *sh, const Welcome *w)
{
	bool published = false;
	if (!sh || atomic_load(&sh->welcome_ready))
		return;
	pthread_mutex_lock(&app->shared_lock);
	if (!atomic_load(&sh->welcome_ready)) {
		welcome_copy(&sh->welcome, w);
		atomic_store(&sh->welcome_ready, true);
		published = true;
	}
	pthread_mutex_unlock(&app->shared_lock);
	for (int i = 0; published && i < app->n_workers; i++)
		worker_call(app->workers[i], welcome_arrived, sh);
}

bool shared_copy_welcome(App *app, Shared *sh, Welcome *out)
{
	if (!sh || !atomic_load(&sh->welcome_ready))
		return false;
	pthread_mutex_lock(&app->shared_lock);
	welcome_copy(out, &sh->welcome);
	pthread_mutex_unlock(&app->shared_lock);
	return true;
}

void shared_free_all(App *app)
{
	List *item;
	while ((item = list_first(&app->shared)) != NULL) {
		Shared *sh = LIST_CONTAINER(item, Shared, head);
		list_del(&sh->head);
		welcome_clear(&sh->welcome);
		free(sh->lanes);
		free(sh);
	}
}

/* ------------------------------------------------------------------ inbox */

/* Make the worker's loop run on_wake(). The write only fails if the counter would overflow,
 * and then the worker wakes anyway. */
static void wake(Worker *to)
{
	uint64_t one = 1;
	if (write(to->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_msg(&to->app->log, LOG_LEVEL_WARNING, NULL, "worker wake-up failed: %s", strerror(errno));
}

static void post(Worker *to, Msg *m)
{
	pthread_mutex_lock(&to->inbox_lock);
	list_append(&to->inbox, &m->head);
	pthread_mutex_unlock(&to->inbox_lock);
	wake(to);
}

static Msg *msg_new(MsgType type)
{
	Msg *m = calloc(1, sizeof(*m));
	if (!m)
		abort();
	m->type = type;
	return m;
}

void worker_call(Worker *w, void (*fn)(Worker *, void *), void *arg)
{
	Msg *m = msg_new(MSG_CALL);
	m->fn = fn;
	m->arg = arg;
	post(w, m);
}

void worker_send_server(Worker *to, Server *s)
{
	Msg *m = msg_new(MSG_SERVER);
	m->server = s;
	m->key = s->pool->sh;
	post(to, m);
}

void worker_want_server(Worker *to, Shared *key)
{
	Msg *m = msg_new(MSG_WANT);
	m->key = key;
	post(to, m);
}

static Pool *pool_by_key(Worker *w, Shared *key)
{
	List *item;
	LIST_FOREACH (item, &w->pools) {
		Pool *p = LIST_CONTAINER(item, Pool, head);
		if (p->sh == key)
			return p;
	}
	return NULL;
}

static void park_if_asked(Worker *w);

static void handle_msg(Worker *w, Msg *m)
{
	switch (m->type) {
	case MSG_CALL:
		m->fn(w, m->arg);
		break;
	case MSG_SERVER:
		pool_adopt_server(w, pool_by_key(w, m->key), m->server);
		break;
	case MSG_WANT: {
		Pool *p = pool_by_key(w, m->key);
		if (p)
			pool_give_idle_server(p);
		break;
	}
	case MSG_EXIT:
		event_base_loopbreak(w->base);
		break;
	}
	free(m);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	Worker *w = arg;
	uint64_t n;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_msg(&w->app->log, LOG_LEVEL_WARNING, NULL, "worker wake-up read failed: %s",
		        strerror(errno));
	park_if_asked(w);
	List batch;
	list_init(&batch);
	pthread_mutex_lock(&w->inbox_lock);
	while (!list_empty(&w->inbox)) {
		List *item = list_first(&w->inbox);
		list_del(item);
		list_append(&batch, item);
	}
	pthread_mutex_unlock(&w->inbox_lock);
	List *item;
	while ((item = list_first(&batch)) != NULL) {
		list_del(item);
		handle_msg(w, LIST_CONTAINER(item, Msg, head));
	}
}

/* ------------------------------------------------------------------ stop the world */

/* Called with stw.m held: count ourselves parked until the owner resumes. */
static void park_locked(App *app)
{
	app->stw.parked++;
	pthread_cond_broadcast(&app->stw.cv);
	while (app->stw.requested)
		pthread_cond_wait(&app->stw.cv, &app->stw.m);
	app->stw.parked--;
	pthread_cond_broadcast(&app->stw.cv);
}

static void park_if_asked(Worker *w)
{
	App *app = w->app;
	if (!atomic_load(&app->stw.requested))
		return;
	pthread_mutex_lock(&app->stw.m);
	if (app->stw.requested && app->stw.owner != w)
		park_locked(app);
	pthread_mutex_unlock(&app->stw.m);
}

void worker_stop_world(Worker *self)
{
	App *app = self->app;
	if (app->n_workers <= 1)
		return;
	pthread_mutex_lock(&app->stw.m);
	while (app->stw.requested) /* another worker got there first: be parked for it */
		park_locked(app);
	atomic_store(&app->stw.requested, true);
	app->stw.owner = self;
	for (int i = 0; i < app->n_workers; i++)
		if (app->workers[i] != self)
			wake(app->workers[i]);
	while (app->stw.parked < app->stw.live - 1)
		pthread_cond_wait(&app->stw.cv, &app->stw.m);
	pthread_mutex_unlock(&app->stw.m);
}

void worker_resume_world(Worker *self)
{
	App *app = self->app;
	if (app->n_workers <= 1)
		return;
	pthread_mutex_lock(&app->stw.m);
	atomic_store(&app->stw.requested, false);
	app->stw.owner = NULL;
	pthread_cond_broadcast(&app->stw.cv);
	while (app->stw.parked > 0)
		pthread_cond_wait(&app->stw.cv, &app->stw.m);
	pthread_mutex_unlock(&app->stw.m);
}

/* ------------------------------------------------------------------ lifecycle */

/* 0 means half the online cores, at least one: a pooler usually shares its host with the
 * database or the application, and on 2 shared cores a second worker measured more CPU per
 * transaction and less throughput than one (README, Benchmark). */
int worker_count_for(int setting)
{
	if (setting > 0)
		return setting > WORKERS_MAX ? WORKERS_MAX : setting;
	long n = sysconf(_SC_NPROCESSORS_ONLN) / 2;
	if (n < 1)
		n = 1;
	return n > WORKERS_MAX ? WORKERS_MAX : (int)n;
}

void worker_init(App *app, Worker *w, int idx)
{
	memset(w, 0, sizeof(*w));
	w->app = app;
	w->idx = idx;
	w->next_id = (uint32_t)idx;
	w->id_step = 1;
	w->wake_fd = -1;
	list_init(&w->databases);
	list_init(&w->users);
	list_init(&w->pools);
	list_init(&w->login_clients);
	list_init(&w->justfree_clients);
	list_init(&w->justfree_servers);
	list_init(&w->cancel_servers);
	list_init(&w->peer_forwards);
	list_init(&w->outgoing_servers);
	list_init(&w->inbox);
	list_init(&w->auth_pools);
	list_init(&w->auth_requests);
	pthread_mutex_init(&w->inbox_lock, NULL);
}

void app_init_shared(App *app)
{
	pthread_mutex_init(&app->shared_lock, NULL);
	list_init(&app->shared);
	pthread_mutex_init(&app->stw.m, NULL);
	pthread_cond_init(&app->stw.cv, NULL);
	atomic_store(&app->stw.requested, false);
	app->stw.parked = 0;
	app->stw.live = 0;
	atomic_store(&app->client_total, 0);
}

/* The parts of a worker that need an event base; shared by the daemon and the fuzz harness. */
int worker_open(Worker *w, const char *resolv_conf, char *err, size_t errlen)
{
	App *app = w->app;
	w->base = event_base_new();
	if (!w->base) {
		snprintf(err, errlen, "cannot create event loop");
		return -1;
	}
	w->dns = dns_create(w->base, resolv_conf);
	bufpool_init(&w->bufpool, (uint32_t)app->cf->pkt_buf);
	w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->wake_fd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		return -1;
	}
	event_assign(&w->wake_ev, w->base, w->wake_fd, EV_READ | EV_PERSIST, on_wake, w);
	event_add(&w->wake_ev, NULL);
	pool_sync_config(w, app->cf, true);
	admin_worker_init(w);
	return 0;
}

void worker_close(Worker *w)
{
	/* messages nobody will read: servers in flight are closed by their new owner's exit */
	List *item;
	while ((item = list_first(&w->inbox)) != NULL) {
		Msg *m = LIST_CONTAINER(item, Msg, head);
		list_del(item);
		if (m->type == MSG_SERVER && m->server) {
			Pool *p = pool_by_key(w, m->key);
			pool_adopt_server(w, p, m->server);
		} else if (m->type == MSG_CALL) {
			m->fn(w, m->arg);
		}
		free(m);
	}
	if (event_initialized(&w->wake_ev))
		event_del(&w->wake_ev);
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	w->wake_fd = -1;
}

int worker_create_all(App *app, char *err, size_t errlen)
{
	int n = worker_count_for(app->cf->workers);
	for (int i = 0; i < n; i++) {
		Worker *w = calloc(1, sizeof(*w));
		if (!w) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		worker_init(app, w, i);
		w->id_step = (uint32_t)n;
		app->workers[i] = w;
		app->n_workers = i + 1;
		if (worker_open(w, app->cf->resolv_conf, err, errlen) < 0)
			return -1;
		janitor_start(w);
	}
	return 0;
}

static void *thread_main(void *arg)
{
	Worker *w = arg;
	event_base_dispatch(w->base);
	App *app = w->app;
	pthread_mutex_lock(&app->stw.m);
	app->stw.live--;
	pthread_cond_broadcast(&app->stw.cv);
	pthread_mutex_unlock(&app->stw.m);
	return NULL;
}

void worker_run_all(App *app)
{
	app->stw.live = app->n_workers;
	for (int i = 1; i < app->n_workers; i++) {
		Worker *w = app->workers[i];
		if (pthread_create(&w->thread, NULL, thread_main, w) != 0) {
			log_msg(&app->log, LOG_LEVEL_ERROR, NULL, "cannot start worker thread %d: %s", i,
			        strerror(errno));
			pthread_mutex_lock(&app->stw.m);
			app->stw.live--;
			pthread_mutex_unlock(&app->stw.m);
			continue;
		}
		w->thread_started = true;
	}
	thread_main(app->workers[0]);
	/* The first loop ended (shutdown): end the others and wait for them. */
	worker_stop_all(app);
	for (int i = 1; i < app->n_workers; i++)
		if (app->workers[i]->thread_started)
			pthread_join(app->workers[i]->thread, NULL);
}

void worker_stop_all(App *app)
{
	for (int i = 0; i < app->n_workers; i++)
		post(app->workers[i], msg_new(MSG_EXIT));
}

void worker_destroy_all(App *app)
{
	for (int i = app->n_workers - 1; i >= 0; i--) {
		Worker *w = app->workers[i];
		worker_close(w);
		pool_reap(w);
		janitor_stop(w);
	}
	for (int i = app->n_workers - 1; i >= 0; i--) {
		Worker *w = app->workers[i];
		admin_worker_cleanup(w);
		pool_free_all(w);
		authquery_cleanup(w);
		if (w->dns)
			evdns_base_free(w->dns, 0);
		event_base_free(w->base);
		pthread_mutex_destroy(&w->inbox_lock);
		free(w);
		app->workers[i] = NULL;
	}
	app->n_workers = 0;
}
