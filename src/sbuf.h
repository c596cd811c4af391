/* sbuf.h: non-blocking stream buffer: reads packets into a fixed per-connection buffer and
 * forwards them to a peer socket without copying, with backpressure. */
#ifndef TIDEPOOL_SBUF_H
#define TIDEPOOL_SBUF_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "proto.h"

typedef struct SBuf SBuf;

/* Free buffers of one size, shared by a worker's connections: a connection holds a buffer
 * only while bytes are in it, so idle connections cost no buffer memory, and taking or
 * returning one is a pointer move, not a malloc. Owned by the worker. */
typedef struct BufPool {
	uint8_t **items;
	int n;
	int cap;
	uint32_t size;
} BufPool;

void bufpool_init(BufPool *bp, uint32_t size);
void bufpool_free(BufPool *bp);

typedef enum {
	SBUF_EV_READ,        /* a packet header is available (whole packet if it fits the buffer) */
	SBUF_EV_RECV_FAILED, /* EOF or read error on this socket */
	SBUF_EV_SEND_FAILED, /* forwarding to the peer failed */
	SBUF_EV_BAD_PACKET,  /* unparsable header (length out of range) */
	SBUF_EV_CONNECT_OK,
	SBUF_EV_CONNECT_FAILED, /* errno-like code in sb->last_errno */
	SBUF_EV_FLUSH,          /* everything forwarded so far was written (after sbuf_want_flush) */
} SBufEvent;

/* The owner's reaction to an event. For SBUF_EV_READ it must call sbuf_prepare_send() or
 * sbuf_prepare_skip() and return true, or return false to leave the packet in the buffer and
 * pause reading until sbuf_continue(). A callback that closed the socket returns false. */
typedef bool (*SBufCallback)(SBuf *sb, SBufEvent ev, PktHdr *pkt);

/* TCP options applied to every socket (0 = leave the OS default). */
typedef struct SockOpts {
	int keepalive;
	int keepcnt;
	int keepidle;
	int keepintvl;
	int user_timeout_ms;
} SockOpts;

/* I/O functions; TLS swaps these and nothing above sbuf notices. recv/send behave like the
 * socket calls (-1 with errno EAGAIN when they would block, 0 from recv at EOF). */
typedef struct SBufIO {
	ssize_t (*recv)(SBuf *sb, void *buf, size_t len);
	ssize_t (*send)(SBuf *sb, const void *buf, size_t len);
	/* Optional: bytes already read from the socket but not yet returned by recv (a TLS
	 * record larger than the read); the socket will not signal them, so sbuf reads again. */
	bool (*pending)(const SBuf *sb);
	/* Optional: release io_ctx; called by sbuf_close before the socket is closed, after
	 * which the raw socket functions are back. */
	void (*close)(SBuf *sb);
} SBufIO;

/* Bytes the pooler itself generated for this socket (errors, login replies, SET queries),
 * written before anything forwarded from the peer. Rarely used, so heap-grown. */
typedef struct SBufOut {
	uint8_t *data;
	size_t len;
	size_t off;
	size_t cap;
} SBufOut;

/* Owned by the Client or Server it is embedded in; the buffer is allocated by sbuf_init and
 * freed by sbuf_free. */
struct SBuf {
	int fd;
	struct event_base *base;
	struct event ev_read;
	/* Made on the first write that would block (or connect), then kept: most clients never
	 * block, and an event is 128 bytes of every idle connection. Freed by sbuf_free. */
	struct event *ev_write;
	bool read_added;
	bool write_added;
	bool connecting;
	bool paused;     /* callback asked to stop until sbuf_continue */
	bool startup;    /* next packet has no type byte */
	bool want_flush; /* deliver SBUF_EV_FLUSH once pending bytes are written */
	bool closed;
	bool in_process;       /* re-entrancy guard */
	bool resume_requested; /* sbuf_continue() called from inside a callback */
	bool retry_requested;  /* sbuf_retry_after_flush(): flush, then re-deliver the packet */
	uint32_t need_bytes;   /* sbuf_require(): deliver the packet once this much of it is here */
	uint32_t then_send;    /* after skipping pkt_remain bytes, forward this many */
	uint32_t base_size;    /* the configured buffer size; the buffer shrinks back to it */
	uint32_t max_grow;     /* largest size sbuf_require() may grow the buffer to */
	BufPool *bufpool;      /* NULL: buf is ours for life */
	int last_errno;
	SBufCallback cb;
	void *owner;
	const SBufIO *io;
	void *io_ctx;      /* the TLS connection (tls.c) when io is TLS's */
	SBuf *dst;         /* where forwarded bytes go */
	SBuf *blocked_src; /* a peer waiting for this socket to become writable */
	uint8_t *buf;
	uint32_t size;
	uint32_t recv_pos;   /* end of received bytes */
	uint32_t pkt_pos;    /* start of bytes not yet handled */
	uint32_t send_pos;   /* start of handled bytes still to be written to dst */
	uint32_t pkt_remain; /* bytes of the current packet beyond pkt_pos still to handle */
	bool pkt_skip;       /* current packet is being skipped, not sent */
	uint32_t max_packet;
	uint64_t bytes_recv;
	uint64_t bytes_sent;
	SBufOut out;
};

/* bp: where the buffer comes from while bytes are in it (NULL: a buffer of its own, for life). */
int sbuf_init(SBuf *sb, struct event_base *base, BufPool *bp, uint32_t bufsize, SBufCallback cb, void *owner);
void sbuf_free(SBuf *sb);

/* Take an accepted socket (made non-blocking here) and start reading. */
int sbuf_accept(SBuf *sb, int fd, bool is_unix, const SockOpts *opts);
/* Start a non-blocking connect; result comes as CONNECT_OK / CONNECT_FAILED. */
int sbuf_connect(SBuf *sb, const struct sockaddr *sa, socklen_t salen, int64_t timeout_usec,
                 const SockOpts *opts);
/* Close the socket now (idempotent); events are removed, pending bytes dropped. */
void sbuf_close(SBuf *sb);

/* Moving an idle connection between workers: leave this loop, join that one. */
void sbuf_detach(SBuf *sb);
void sbuf_attach(SBuf *sb, struct event_base *base, BufPool *bp);

void sbuf_prepare_send(SBuf *sb, SBuf *dst, uint32_t len);
void sbuf_prepare_skip(SBuf *sb, uint32_t len);
/* Skip the first skip_len bytes of the packet, then forward send_len bytes to dst (used to
 * replace a packet's head with a rewritten one while streaming its tail). */
void sbuf_prepare_skip_then_send(SBuf *sb, SBuf *dst, uint32_t skip_len, uint32_t send_len);
/* From a callback: re-deliver this packet once n of its bytes are buffered (the buffer grows
 * up to max_grow if needed). Returns false if n is beyond that; the callback returns false. */
bool sbuf_require(SBuf *sb, uint32_t n);
/* From a callback: write pending bytes first, then re-deliver this packet. Return false after. */
void sbuf_retry_after_flush(SBuf *sb);
/* Ask for SBUF_EV_FLUSH once all prepared bytes are written; stops packet processing until. */
void sbuf_want_flush(SBuf *sb);
/* Resume after the callback returned false. */
void sbuf_continue(SBuf *sb);
/* Stop reading (e.g. while the peer is being replaced) without a packet pending. */
void sbuf_pause(SBuf *sb);
/* Try to write prepared-but-unsent bytes now; true when nothing remains. */
bool sbuf_flush_pending(SBuf *sb);
/* True when no prepared bytes wait to be written. */
bool sbuf_is_empty(const SBuf *sb);
/* Bytes received but not handled yet (a client that pipelined past a packet boundary). */
uint32_t sbuf_unhandled(const SBuf *sb);

/* Queue pooler-generated bytes for this socket and try to write them. Returns 0, -1 on error. */
int sbuf_send_gen(SBuf *sb, const void *data, size_t len);
bool sbuf_gen_empty(const SBuf *sb);

#endif
