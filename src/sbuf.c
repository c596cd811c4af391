/* sbuf.c: non-blocking stream buffer with zero-copy forwarding and backpressure.
 *
 * Bytes from a socket land in a fixed buffer. Each packet is shown to the owner's callback,
 * which decides to forward it to the peer (dst) or to skip it. Forwarded bytes stay where
 * they were read and are written straight from there, in one send() per batch of packets.
 * When the peer cannot take more, reading stops until the peer's socket is writable again:
 * memory per connection stays bounded by the buffer size. */
#include "sbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ssize_t raw_recv(SBuf *sb, void *buf, size_t len)
{
	return recv(sb->fd, buf, len, 0);
}

static ssize_t raw_send(SBuf *sb, const void *buf, size_t len)
{
	return send(sb->fd, buf, len, MSG_NOSIGNAL);
}

static const SBufIO raw_io = {raw_recv, raw_send, NULL, NULL};

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void process(SBuf *sb);

void bufpool_init(BufPool *bp, uint32_t size)
{
	memset(bp, 0, sizeof(*bp));
	bp->size = size;
}

void bufpool_free(BufPool *bp)
{
	for (int i = 0; i < bp->n; i++)
		free(bp->items[i]);
	free(bp->items);
	memset(bp, 0, sizeof(*bp));
}

static uint8_t *bufpool_get(BufPool *bp)
{
	if (bp->n > 0)
		return bp->items[--bp->n];
	return malloc(bp->size);
}

/* Keep up to 1024 spare buffers; beyond that give memory back. */
static void bufpool_put(BufPool *bp, uint8_t *buf)
{
	if (bp->n == bp->cap && bp->cap < 1024) {
		int ncap = bp->cap ? bp->cap * 2 : 64;
		uint8_t **ni = realloc(bp->items, (size_t)ncap * sizeof(*ni));
		if (ni) {
			bp->items = ni;
			bp->cap = ncap;
		}
	}
	if (bp->n < bp->cap)
		bp->items[bp->n++] = buf;
	else
		free(buf);
}

/* A pooled buffer goes back once nothing is in it (and it has its normal size). */
static void maybe_release_buf(SBuf *sb)
{
	if (sb->bufpool && sb->buf && sb->recv_pos == 0 && sb->pkt_remain == 0 && !sb->then_send &&
	    !sb->need_bytes && sb->size == sb->bufpool->size) {
		bufpool_put(sb->bufpool, sb->buf);
		sb->buf = NULL;
	}
}

int sbuf_init(SBuf *sb, struct event_base *base, BufPool *bp, uint32_t bufsize, SBufCallback cb, void *owner)
{
	memset(sb, 0, sizeof(*sb));
	sb->fd = -1;
	sb->base = base;
	sb->cb = cb;
	sb->owner = owner;
	sb->io = &raw_io;
	sb->size = bufsize;
	sb->base_size = bufsize;
	sb->max_grow = 16u << 20;
	sb->max_packet = 0x7fffffff;
	if (bp && bp->size == bufsize) {
		sb->bufpool = bp;
		return 0;
	}
	sb->buf = malloc(bufsize);
	return sb->buf ? 0 : -1;
}

void sbuf_free(SBuf *sb)
{
	sbuf_close(sb);
	if (sb->bufpool && sb->buf && sb->size == sb->bufpool->size)
		bufpool_put(sb->bufpool, sb->buf);
	else
		free(sb->buf);
	sb->buf = NULL;
	free(sb->out.data);
	sb->out.data = NULL;
	if (sb->ev_write)
		event_free(sb->ev_write);
	sb->ev_write = NULL;
}

static void read_enable(SBuf *sb)
{
	if (!sb->read_added && !sb->closed && sb->fd >= 0) {
		event_add(&sb->ev_read, NULL);
		sb->read_added = true;
	}
	/* bytes buffered inside the io layer (TLS) will not make the socket readable */
	if (sb->read_added && !sb->paused && sb->io->pending && sb->io->pending(sb))
		event_active(&sb->ev_read, EV_READ, 0);
}

static void read_disable(SBuf *sb)
{
	if (sb->read_added) {
		event_del(&sb->ev_read);
		sb->read_added = false;
	}
}

/* Wait for the socket to become writable (timeout 0: none). False only when the event
 * could not be allocated; the caller then treats the send as failed. */
static bool write_enable_timeout(SBuf *sb, int64_t timeout_usec)
{
	if (sb->write_added || sb->closed || sb->fd < 0)
		return true;
	if (!sb->ev_write) {
		sb->ev_write = event_new(sb->base, sb->fd, EV_WRITE | EV_PERSIST, on_write, sb);
		if (!sb->ev_write)
			return false;
	}
	struct timeval tv = {(time_t)(timeout_usec / 1000000), (suseconds_t)(timeout_usec % 1000000)};
	event_add(sb->ev_write, timeout_usec > 0 ? &tv : NULL);
	sb->write_added = true;
	return true;
}

static bool write_enable(SBuf *sb)
{
	return write_enable_timeout(sb, 0);
}

static void write_disable(SBuf *sb)
{
	if (sb->write_added) {
		event_del(sb->ev_write);
		sb->write_added = false;
	}
}

static void tune_socket(int fd, bool is_unix, const SockOpts *o)
{
	int on = 1;
	if (is_unix)
		return;
	/* Packets are batched by the buffer already; Nagle would only add latency. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	if (!o)
		return;
	if (o->keepalive) {
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
		if (o->keepcnt > 0)
			setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &o->keepcnt, sizeof(o->keepcnt));
		if (o->keepidle > 0)
			setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &o->keepidle, sizeof(o->keepidle));
		if (o->keepintvl > 0)
			setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &o->keepintvl, sizeof(o->keepintvl));
	}
	if (o->user_timeout_ms > 0)
		setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &o->user_timeout_ms,
		           sizeof(o->user_timeout_ms));
}

static void assign_events(SBuf *sb)
{
	event_assign(&sb->ev_read, sb->base, sb->fd, EV_READ | EV_PERSIST, on_read, sb);
	if (sb->ev_write) /* not pending here: re-aimed at this fd and loop */
		event_assign(sb->ev_write, sb->base, sb->fd, EV_WRITE | EV_PERSIST, on_write, sb);
}

int sbuf_accept(SBuf *sb, int fd, bool is_unix, const SockOpts *opts)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	tune_socket(fd, is_unix, opts);
	sb->fd = fd;
	sb->closed = false;
	assign_events(sb);
	read_enable(sb);
	return 0;
}

int sbuf_connect(SBuf *sb, const struct sockaddr *sa, socklen_t salen, int64_t timeout_usec,
                 const SockOpts *opts)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		sb->last_errno = errno;
		return -1;
	}
	tune_socket(fd, sa->sa_family == AF_UNIX, opts);
	sb->fd = fd;
	sb->closed = false;
	assign_events(sb);
	if (connect(fd, sa, salen) < 0 && errno != EINPROGRESS) {
		sb->last_errno = errno;
		close(fd);
		sb->fd = -1;
		return -1;
	}
	if (!write_enable_timeout(sb, timeout_usec)) {
		sb->last_errno = ENOMEM;
		close(fd);
		sb->fd = -1;
		return -1;
	}
	/* Even an immediate success is reported from the loop, so callers see one code path. */
	sb->connecting = true;
	return 0;
}

void sbuf_close(SBuf *sb)
{
	if (sb->io->close) {
		sb->io->close(sb);
		sb->io = &raw_io;
		sb->io_ctx = NULL;
	}
	if (sb->fd < 0) {
		sb->closed = true;
		return;
	}
	read_disable(sb);
	write_disable(sb);
	close(sb->fd);
	sb->fd = -1;
	sb->closed = true;
	sb->connecting = false;
	sb->blocked_src = NULL;
}

/* Before the connection moves to another worker: no events in this loop, no buffer of its
 * pool. Only for an idle connection (nothing buffered). */
void sbuf_detach(SBuf *sb)
{
	read_disable(sb);
	write_disable(sb);
	maybe_release_buf(sb);
	sb->dst = NULL;
	sb->blocked_src = NULL;
	sb->base = NULL;
}

/* ... and in its new worker: that loop's events and buffers, reading again. */
void sbuf_attach(SBuf *sb, struct event_base *base, BufPool *bp)
{
	sb->base = base;
	if (sb->bufpool)
		sb->bufpool = bp;
	if (sb->fd < 0)
		return;
	assign_events(sb);
	read_enable(sb);
}

void sbuf_prepare_send(SBuf *sb, SBuf *dst, uint32_t len)
{
	sb->dst = dst;
	sb->pkt_remain = len;
	sb->pkt_skip = false;
}

void sbuf_prepare_skip(SBuf *sb, uint32_t len)
{
	sb->pkt_remain = len;
	sb->pkt_skip = true;
}

void sbuf_prepare_skip_then_send(SBuf *sb, SBuf *dst, uint32_t skip_len, uint32_t send_len)
{
	sb->dst = dst;
	sb->pkt_remain = skip_len;
	sb->pkt_skip = true;
	sb->then_send = send_len;
}

bool sbuf_require(SBuf *sb, uint32_t n)
{
	if (n > sb->size && n > sb->max_grow)
		return false;
	sb->need_bytes = n;
	return true;
}

void sbuf_retry_after_flush(SBuf *sb)
{
	sb->retry_requested = true;
}

/* Make the buffer hold at least n bytes from pkt_pos on: compact, then grow if needed. */
static bool make_room(SBuf *sb, uint32_t n)
{
	if (sb->pkt_pos + n <= sb->size)
		return true;
	if (sb->send_pos == sb->pkt_pos && sb->pkt_pos > 0) {
		uint32_t keep = sb->recv_pos - sb->pkt_pos;
		memmove(sb->buf, sb->buf + sb->pkt_pos, keep);
		sb->recv_pos = keep;
		sb->pkt_pos = sb->send_pos = 0;
	}
	if (sb->pkt_pos + n <= sb->size)
		return true;
	uint32_t nsize = sb->pkt_pos + n;
	uint8_t *nb = realloc(sb->buf, nsize);
	if (!nb)
		return false;
	sb->buf = nb;
	sb->size = nsize;
	return true;
}

void sbuf_want_flush(SBuf *sb)
{
	sb->want_flush = true;
}

bool sbuf_is_empty(const SBuf *sb)
{
	/* The rest of a packet being skipped will never reach the peer, so it does not count. */
	return sb->send_pos == sb->pkt_pos && (sb->pkt_remain == 0 || sb->pkt_skip);
}

uint32_t sbuf_unhandled(const SBuf *sb)
{
	return sb->recv_pos - sb->pkt_pos;
}

bool sbuf_gen_empty(const SBuf *sb)
{
	return sb->out.off >= sb->out.len;
}

static void report(SBuf *sb, SBufEvent ev, int err)
{
	sb->last_errno = err;
	sb->cb(sb, ev, NULL);
}

/* Write this socket's own generated bytes: 1 done, 0 would block, -1 failed (reported). */
static int flush_out(SBuf *sb)
{
	while (sb->out.off < sb->out.len) {
		if (sb->closed)
			return -1;
		ssize_t n = sb->io->send(sb, sb->out.data + sb->out.off, sb->out.len - sb->out.off);
		if (n > 0) {
			sb->out.off += (size_t)n;
			sb->bytes_sent += (uint64_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (write_enable(sb))
				return 0;
			errno = ENOMEM;
		}
		report(sb, SBUF_EV_SEND_FAILED, n < 0 ? errno : EPIPE);
		return -1;
	}
	sb->out.off = sb->out.len = 0;
	/* Rarely needed: give the memory back rather than keep it per connection. */
	free(sb->out.data);
	sb->out.data = NULL;
	sb->out.cap = 0;
	return 1;
}

/* Write the handled-but-unsent bytes to dst: 1 done (or dropped), 0 would block. */
static int send_pending(SBuf *sb)
{
	SBuf *dst = sb->dst;
	if (sb->send_pos == sb->pkt_pos)
		return 1;
	if (!dst || dst->closed) {
		/* The peer is gone; its owner already decided what happens to us. */
		sb->send_pos = sb->pkt_pos;
		return 1;
	}
	int r = flush_out(dst);
	if (r == 0) {
		dst->blocked_src = sb;
		return 0;
	}
	if (r < 0) {
		sb->send_pos = sb->pkt_pos;
		return 1;
	}
	while (sb->send_pos < sb->pkt_pos) {
		ssize_t n = dst->io->send(dst, sb->buf + sb->send_pos, sb->pkt_pos - sb->send_pos);
		if (n > 0) {
			sb->send_pos += (uint32_t)n;
			dst->bytes_sent += (uint64_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (write_enable(dst)) {
				dst->blocked_src = sb;
				return 0;
			}
			errno = ENOMEM;
		}
		sb->send_pos = sb->pkt_pos;
		report(dst, SBUF_EV_SEND_FAILED, n < 0 ? errno : EPIPE);
		return 1;
	}
	return 1;
}

bool sbuf_flush_pending(SBuf *sb)
{
	return send_pending(sb) == 1;
}

int sbuf_send_gen(SBuf *sb, const void *data, size_t len)
{
	if (sb->closed)
		return -1;
	SBufOut *o = &sb->out;
	if (o->off > 0 && o->off == o->len)
		o->off = o->len = 0;
	if (o->len == 0 && !sb->connecting && sb->fd >= 0) {
		/* Usually the socket takes it all: no copy, no heap buffer kept per connection. */
		while (len > 0) {
			ssize_t n = sb->io->send(sb, data, len);
			if (n > 0) {
				sb->bytes_sent += (uint64_t)n;
				data = (const uint8_t *)data + n;
				len -= (size_t)n;
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			report(sb, SBUF_EV_SEND_FAILED, n < 0 ? errno : EPIPE);
			return -1;
		}
		if (len == 0)
			return 0;
	}
	if (o->len + len > o->cap) {
		size_t ncap = o->cap ? o->cap : 512;
		while (ncap < o->len + len)
			ncap *= 2;
		uint8_t *nd = realloc(o->data, ncap);
		if (!nd)
			return -1;
		o->data = nd;
		o->cap = ncap;
	}
	memcpy(o->data + o->len, data, len);
	o->len += len;
	return flush_out(sb) < 0 ? -1 : 0;
}

void sbuf_pause(SBuf *sb)
{
	sb->paused = true;
}

void sbuf_continue(SBuf *sb)
{
	if (sb->closed)
		return;
	sb->paused = false;
	if (sb->in_process) {
		/* Called from inside a callback: the running loop re-delivers the packet. */
		sb->resume_requested = true;
		return;
	}
	process(sb);
}

/* Run packets through the callback until the buffer is used up, the callback pauses, or the
 * peer stops taking bytes. */
static void process(SBuf *sb)
{
	sb->in_process = true;
	while (!sb->closed && !sb->paused) {
		if (sb->pkt_remain > 0) {
			uint32_t avail = sb->recv_pos - sb->pkt_pos;
			if (avail == 0)
				break;
			uint32_t n = avail < sb->pkt_remain ? avail : sb->pkt_remain;
			if (sb->pkt_skip) {
				if (send_pending(sb) == 0)
					goto blocked;
				sb->pkt_pos += n;
				sb->send_pos = sb->pkt_pos;
			} else {
				sb->pkt_pos += n;
			}
			sb->pkt_remain -= n;
			if (sb->pkt_remain == 0 && sb->then_send) {
				/* The replaced head is gone; the tail goes through untouched. */
				sb->pkt_remain = sb->then_send;
				sb->then_send = 0;
				sb->pkt_skip = false;
			}
			continue;
		}
		if (sb->want_flush) {
			if (send_pending(sb) == 0)
				goto blocked;
			sb->want_flush = false;
			sb->cb(sb, SBUF_EV_FLUSH, NULL);
			continue;
		}
		if (sb->pkt_pos >= sb->recv_pos)
			break;
		PktHdr hdr;
		ProtoResult r =
		    proto_parse_header(sb->buf + sb->pkt_pos, sb->recv_pos - sb->pkt_pos, sb->startup,
		                       sb->startup ? PROTO_MAX_STARTUP : sb->max_packet, &hdr);
		if (r == PROTO_NEED_MORE)
			break;
		if (r == PROTO_ERROR) {
			send_pending(sb);
			report(sb, SBUF_EV_BAD_PACKET, EPROTO);
			break;
		}
		/* Packets that fit the buffer are shown whole, so callbacks can parse them. */
		if (hdr.avail < hdr.len && hdr.len <= sb->size)
			break;
		if (sb->need_bytes) {
			uint32_t want = sb->need_bytes < hdr.len ? sb->need_bytes : hdr.len;
			if (hdr.avail < want) {
				if (!make_room(sb, want)) {
					report(sb, SBUF_EV_BAD_PACKET, ENOMEM);
					break;
				}
				break; /* read more */
			}
			sb->need_bytes = 0;
		}
		sb->resume_requested = false;
		if (!sb->cb(sb, SBUF_EV_READ, &hdr)) {
			if (sb->resume_requested) {
				sb->resume_requested = false;
				continue;
			}
			if (sb->retry_requested) {
				sb->retry_requested = false;
				if (send_pending(sb) == 0)
					goto blocked;
				continue;
			}
			if (sb->need_bytes && !sb->closed)
				continue; /* re-checked above: wait for the bytes, then re-deliver */
			if (!sb->closed)
				sb->paused = true;
			break;
		}
	}
	if (!sb->closed && send_pending(sb) == 0)
		goto blocked;
	if (!sb->closed && sb->pkt_pos == sb->recv_pos && sb->send_pos == sb->pkt_pos) {
		sb->recv_pos = sb->pkt_pos = sb->send_pos = 0;
		if (sb->size > sb->base_size && sb->pkt_remain == 0) {
			/* A big packet needed a big buffer once; give the memory back. */
			uint8_t *nb = realloc(sb->buf, sb->base_size);
			if (nb) {
				sb->buf = nb;
				sb->size = sb->base_size;
			}
		}
	}
	if (!sb->closed)
		maybe_release_buf(sb);
	/* A paused socket keeps its read event: it is removed only if it fires while paused,
	 * which saves two epoll_ctl calls for every client that waits for a server. */
	if (!sb->closed)
		read_enable(sb);
	else
		read_disable(sb);
	sb->in_process = false;
	return;
blocked:
	read_disable(sb);
	sb->in_process = false;
}

/* Move unsent and unhandled bytes to the front to make room for reading. */
static void compact(SBuf *sb)
{
	if (sb->send_pos == 0)
		return;
	uint32_t keep = sb->recv_pos - sb->send_pos;
	memmove(sb->buf, sb->buf + sb->send_pos, keep);
	sb->pkt_pos -= sb->send_pos;
	sb->recv_pos = keep;
	sb->send_pos = 0;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	SBuf *sb = arg;
	if (sb->paused) {
		read_disable(sb);
		return;
	}
	if (!sb->buf) {
		sb->buf = bufpool_get(sb->bufpool);
		if (!sb->buf) {
			read_disable(sb);
			report(sb, SBUF_EV_RECV_FAILED, ENOMEM);
			return;
		}
		sb->size = sb->bufpool->size;
	}
	if (sb->size - sb->recv_pos < sb->size / 4)
		compact(sb);
	if (sb->recv_pos == sb->size) {
		/* Nothing can be read until the current bytes move on. */
		read_disable(sb);
		return;
	}
	ssize_t n = sb->io->recv(sb, sb->buf + sb->recv_pos, sb->size - sb->recv_pos);
	if (n > 0) {
		sb->recv_pos += (uint32_t)n;
		sb->bytes_recv += (uint64_t)n;
		process(sb);
		if (sb->read_added && !sb->closed && sb->io->pending && sb->io->pending(sb))
			event_active(&sb->ev_read, EV_READ, 0);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	read_disable(sb);
	report(sb, SBUF_EV_RECV_FAILED, n < 0 ? errno : 0);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	SBuf *sb = arg;
	if (sb->connecting) {
		write_disable(sb);
		sb->connecting = false;
		int err = 0;
		socklen_t len = sizeof(err);
		if (what & EV_TIMEOUT)
			err = ETIMEDOUT;
		else if (getsockopt(sb->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			report(sb, SBUF_EV_CONNECT_FAILED, err);
			return;
		}
		read_enable(sb);
		report(sb, SBUF_EV_CONNECT_OK, 0);
		return;
	}
	if (flush_out(sb) != 1)
		return;
	write_disable(sb);
	SBuf *src = sb->blocked_src;
	sb->blocked_src = NULL;
	if (src && !src->closed)
		process(src);
}
