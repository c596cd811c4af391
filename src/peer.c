/* peer.c: peering: cancel keys that name their issuing process (peer_id), and forwarding a
 * CancelRequest that names another process of the [peers] section over a short connection. */
#include "peer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "dns.h"
#include "proto.h"

typedef enum {
	FWD_WAITING,    /* for a pool_size slot of its peer */
	FWD_RESOLVING,  /* the peer's host name */
	FWD_CONNECTING, /* and then sending the 16 bytes */
	FWD_SENT,       /* waiting for the peer to close, as a server would */
} ForwardState;

/* One CancelRequest on its way to a peer. Owned by Worker.peer_forwards. */
typedef struct PeerForward {
	List head;
	Worker *w;
	int peer_id;
	ForwardState state;
	int fd;
	uint8_t pkt[16];
	size_t sent;
	usec_t start;
	struct event ev;
	bool ev_set;
	struct evdns_getaddrinfo_request *dns_req;
	bool in_resolve; /* dns_resolve() has not returned yet: its callback only records */
	bool resolved_now;
	int dns_err;
	struct sockaddr_storage sa;
	socklen_t salen;
} PeerForward;

void peer_key_stamp(uint32_t *pid, uint32_t *key, int peer_id)
{
	*pid &= 0x7fffffffu;
	if (peer_id <= 0)
		return;
	*pid = (*pid & 0xff0000ffu) | ((uint32_t)(peer_id & 0xff) << 16) |
	       ((uint32_t)((peer_id >> 8) & 0xff) << 8);
	*key |= PEER_TTL_MASK;
}

int peer_key_id(uint32_t pid)
{
	return (int)(((pid >> 16) & 0xff) | (((pid >> 8) & 0xff) << 8));
}

bool peer_key_match(uint32_t given, uint32_t requested)
{
	return ((given ^ requested) & ~PEER_TTL_MASK) == 0;
}

const char *peer_host_of(const Config *cf, const PeerDef *pd)
{
	return pd->host ? pd->host : "";
}

int peer_port_of(const Config *cf, const PeerDef *pd)
{
	return pd->port > 0 ? pd->port : 6432; /* PgBouncer's default, not our listen_port */
}

int peer_pool_size_of(const Config *cf, const PeerDef *pd)
{
	return pd->pool_size >= 0 ? pd->pool_size : cf->default_pool_size;
}

void peer_count_forwards(const Worker *w, int peer_id, int *active, int *waiting)
{
	const List *item;
	*active = *waiting = 0;
	LIST_FOREACH (item, &w->peer_forwards) {
		const PeerForward *f = LIST_CONTAINER(item, PeerForward, head);
		if (f->peer_id != peer_id)
			continue;
		if (f->state == FWD_WAITING)
			(*waiting)++;
		else
			(*active)++;
	}
}

static void forward_free(PeerForward *f)
{
	if (f->ev_set)
		event_del(&f->ev);
	if (f->dns_req) {
		struct evdns_getaddrinfo_request *r = f->dns_req;
		f->dns_req = NULL;
		dns_cancel(r);
	}
	if (f->fd >= 0)
		close(f->fd);
	list_del(&f->head);
	free(f);
}

static void forward_kick(Worker *w, int peer_id);

/* Finished (sent and closed by the peer) or given up: make room for the next one. */
static void forward_end(PeerForward *f)
{
	Worker *w = f->w;
	int peer_id = f->peer_id;
	forward_free(f);
	forward_kick(w, peer_id);
}

static void on_forward_event(evutil_socket_t fd, short what, void *arg);

/* (Re)arm the forward's one event: fd for what, bounded by cancel_wait_timeout from its start. */
static void forward_arm(PeerForward *f, short what)
{
	const Config *cf = f->w->app->cf;
	if (f->ev_set)
		event_del(&f->ev);
	event_assign(&f->ev, f->w->base, what ? f->fd : -1, what, on_forward_event, f);
	f->ev_set = true;
	if (cf->cancel_wait_timeout <= 0) {
		if (what)
			event_add(&f->ev, NULL);
		return;
	}
	usec_t left = f->start + cf->cancel_wait_timeout - now_usec();
	if (left < 1)
		left = 1;
	struct timeval tv = {(time_t)(left / USEC_PER_SEC), (suseconds_t)(left % USEC_PER_SEC)};
	event_add(&f->ev, &tv);
}

/* Open the connection to the resolved address; false if that failed (f is freed then). */
static bool forward_connect(PeerForward *f)
{
	App *app = f->w->app;
	f->fd = socket(f->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (f->fd < 0 || (connect(f->fd, (struct sockaddr *)&f->sa, f->salen) < 0 && errno != EINPROGRESS)) {
		log_msg(&app->log, LOG_LEVEL_WARNING, NULL, "peer %d: cannot forward cancel request: %s",
		        f->peer_id, strerror(errno));
		forward_free(f);
		return false;
	}
	f->state = FWD_CONNECTING;
	forward_arm(f, EV_WRITE | EV_PERSIST);
	return true;
}

static void on_forward_dns(void *arg, int err, const struct sockaddr *sa, socklen_t salen)
{
	PeerForward *f = arg;
	f->dns_req = NULL;
	f->dns_err = err;
	if (!err && salen <= sizeof(f->sa)) {
		memcpy(&f->sa, sa, salen);
		f->salen = salen;
	} else if (!err) {
		f->dns_err = EVUTIL_EAI_FAIL;
	}
	if (f->in_resolve) {
		f->resolved_now = true;
		return;
	}
	Worker *w = f->w;
	int peer_id = f->peer_id;
	if (f->dns_err) {
		log_msg(&w->app->log, LOG_LEVEL_WARNING, NULL, "peer %d: DNS lookup failed: %s", peer_id,
		        dns_strerror(f->dns_err));
		forward_end(f);
	} else if (!forward_connect(f)) {
		forward_kick(w, peer_id);
	}
}

/* Take a pool_size slot: find the peer in the running [peers] and connect. False if it could
 * not start (f is freed then). */
static bool forward_start(PeerForward *f)
{
	App *app = f->w->app;
	const Config *cf = app->cf;
	const PeerDef *pd = config_find_peer(cf, f->peer_id);
	if (!pd) {
		log_msg(&app->log, LOG_LEVEL_LOG, NULL,
		        "peer %d is no longer configured: cancel request dropped", f->peer_id);
		forward_free(f);
		return false;
	}
	const char *host = peer_host_of(cf, pd);
	int port = peer_port_of(cf, pd);
	log_msg(&app->log, LOG_LEVEL_DEBUG, NULL, "forwarding cancel request to peer %d", f->peer_id);
	if (host[0] == '/') {
		struct sockaddr_un *un = (struct sockaddr_un *)&f->sa;
		memset(un, 0, sizeof(*un));
		un->sun_family = AF_UNIX;
		if (snprintf(un->sun_path, sizeof(un->sun_path), "%s/.s.PGSQL.%d", host, port) >=
		    (int)sizeof(un->sun_path)) {
			log_msg(&app->log, LOG_LEVEL_WARNING, NULL, "peer %d: Unix socket path too long",
			        f->peer_id);
			forward_free(f);
			return false;
		}
		f->salen = sizeof(*un);
		return forward_connect(f);
	}
	f->state = FWD_RESOLVING;
	forward_arm(f, 0);
	f->in_resolve = true;
	struct evdns_getaddrinfo_request *r = dns_resolve(f->w->dns, host, port, on_forward_dns, f);
	f->in_resolve = false;
	if (!f->resolved_now) {
		f->dns_req = r;
		return true;
	}
	if (f->dns_err) {
		log_msg(&app->log, LOG_LEVEL_WARNING, NULL, "peer %d: DNS lookup failed: %s", f->peer_id,
		        dns_strerror(f->dns_err));
		forward_free(f);
		return false;
	}
	return forward_connect(f);
}

/* Start waiting forwards to peer_id while its pool_size allows, oldest first. */
static void forward_kick(Worker *w, int peer_id)
{
	const Config *cf = w->app->cf;
	for (;;) {
		const PeerDef *pd = config_find_peer(cf, peer_id);
		int limit = pd ? peer_pool_size_of(cf, pd) : 1;
		int active, waiting;
		peer_count_forwards(w, peer_id, &active, &waiting);
		if (!waiting || active >= (limit > 0 ? limit : 1))
			return;
		List *item;
		LIST_FOREACH (item, &w->peer_forwards) {
			PeerForward *f = LIST_CONTAINER(item, PeerForward, head);
			if (f->peer_id == peer_id && f->state == FWD_WAITING) {
				forward_start(f);
				break;
			}
		}
	}
}

/* Connected: send the request. Sent: read until the peer closes. Or cancel_wait_timeout. */
static void on_forward_event(evutil_socket_t fd, short what, void *arg)
{
	PeerForward *f = arg;
	App *app = f->w->app;
	if (what & EV_TIMEOUT) {
		log_msg(&app->log, LOG_LEVEL_WARNING, NULL,
		        "peer %d: cancel request not forwarded within cancel_wait_timeout", f->peer_id);
		forward_end(f);
		return;
	}
	if (f->state == FWD_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(f->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		ssize_t n = err ? -1 : write(f->fd, f->pkt + f->sent, sizeof(f->pkt) - f->sent);
		if (n < 0 && !err && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0) {
			log_msg(&app->log, LOG_LEVEL_WARNING, NULL,
			        "peer %d: cannot forward cancel request: %s", f->peer_id,
			        strerror(err ? err : errno));
			forward_end(f);
			return;
		}
		f->sent += (size_t)n;
		if (f->sent < sizeof(f->pkt))
			return;
		f->state = FWD_SENT;
		forward_arm(f, EV_READ | EV_PERSIST);
		return;
	}
	char buf[64];
	ssize_t n = read(f->fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0)
		forward_end(f);
}

bool peer_route_cancel(Worker *w, const char *log_prefix, uint32_t pid, uint32_t key)
{
	App *app = w->app;
	const Config *cf = app->cf;
	int id = peer_key_id(pid);
	if (cf->peer_id <= 0 || id == 0 || id == cf->peer_id)
		return false;
	if ((key & PEER_TTL_MASK) == 0) {
		log_msg(&app->log, LOG_LEVEL_LOG, log_prefix,
		        "cancel request for peer %d not forwarded: its TTL is exhausted", id);
		return true;
	}
	if (!config_find_peer(cf, id)) {
		log_msg(&app->log, LOG_LEVEL_LOG, log_prefix,
		        "cancel request for peer %d not forwarded: no such peer in [peers]", id);
		return true;
	}
	PeerForward *f = calloc(1, sizeof(*f));
	if (!f) {
		log_msg(&app->log, LOG_LEVEL_WARNING, log_prefix,
		        "out of memory forwarding a cancel request");
		return true;
	}
	f->w = w;
	f->peer_id = id;
	f->fd = -1;
	f->state = FWD_WAITING;
	f->start = now_usec();
	PktBuf pb;
	pktbuf_init_fixed(&pb, f->pkt, sizeof(f->pkt));
	pktbuf_write_cancel(&pb, pid, key - 1); /* one hop fewer left */
	list_append(&w->peer_forwards, &f->head);
	forward_arm(f, 0);
	forward_kick(w, id);
	return true;
}

void peer_free_all(Worker *w)
{
	List *item;
	while ((item = list_first(&w->peer_forwards)) != NULL)
		forward_free(LIST_CONTAINER(item, PeerForward, head));
}
