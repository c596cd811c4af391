/* netsim.c: an in-process tidepool driven by the fuzzer; see netsim.h.
 *
 * Op stream (ns_run_ops): each op is one byte; op % 16 picks:
 *   0 CDATA   u16 len + bytes: raw bytes from the current client
 *   1 SDATA   u16 len + bytes: raw bytes from the current server (PostgreSQL side)
 *   2 NEWCLI  flags: a new client connection (bit 0: TCP-style address instead of Unix)
 *   3 LOGIN   b: startup packet from the current client (user b&7, database (b>>3)&7,
 *             bit 6: tracked parameters, bit 7: an unsupported and an ignored parameter;
 *             both: a replication connection, logical if bit 3 else physical, with options)
 *   4 AUTH    b: answer the pending authentication request (cleartext, md5 or a whole
 *             SCRAM exchange; bit 0: right password, else wrong)
 *   5 QUERY   b: a simple query from a table of 16 (BEGIN, COPY, big result, error, ...)
 *   6 EXT     b: an extended-protocol sequence from a table of 8
 *   7 CLOSEC  b: the client goes away (bit 0: Terminate first, bit 1: half-close only)
 *   8 CLOSES  b: the server goes away (bit 0: FATAL 57P01 first, like pg_terminate_backend)
 *   9 SELECT  b: current client = b % clients, current server = (b >> 3) % servers
 *  10 AUTO    b: the fake PostgreSQL answers by itself (bit 0), how it authenticates the
 *             pooler (bits 1-2: trust, cleartext, md5, SCRAM-SHA-256)
 *  11 DRAIN   b: bit 0: the current client stops reading its results (backpressure)
 *  12 PUMP    b: more loop rounds; bit 7: run the janitor (timeouts fire when tiny); bit 6:
 *             let (b & 63) + 1 ms of real time pass on the loop (timers: auth_query, console)
 *  13 RELOAD  b: rewrite the ini (variant byte 0 xor b; bit 7 of b: drop appdb) and RELOAD
 *  14 CANCEL  b: a CancelRequest for the current client's key (bit 0: a wrong key)
 *  15 COPY    u16 len + bytes as CopyData, then b: 1 CopyDone, 2 CopyFail
 * An op byte >= 16 * 15 is taken as data for the default side (client or server), so that
 * plain protocol bytes are meaningful input too. */
#include "netsim.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "admin.h"
#include "worker.h"
#include "app.h"
#include "auth.h"
#include "client.h"
#include "dns.h"
#include "fuzz_common.h"
#include "janitor.h"
#include "pool.h"
#include "scram.h"
#include "server.h"
#include "tls.h"

#define RX_CAP (1u << 20)
#define PUMP_ROUNDS 48

typedef struct NsConn {
	int fd;
	bool used;
	uint8_t *rx;
	size_t rxlen, rxcap;
	uint8_t *tx;
	size_t txlen, txoff;
	size_t total_rx;
	bool drain;
	/* client side: what the pooler told us */
	uint32_t auth_code;
	uint8_t salt[4];
	uint32_t key_pid, key_key;
	bool have_key;
	const char *user;
	bool expect_ssl_byte;
	ScramClient *scram; /* a SCRAM exchange the harness runs as the client */
	bool auth_pending;  /* an authentication request not answered yet */
	int slot;           /* index in ns.cli: the owner mark in its queries */
	/* server side (fake PostgreSQL) */
	bool startup_done;
	bool auth_wait;
	char status;
	bool copy_in;
	bool is_cancel;
	bool authq;                /* the unnamed statement is the pooler's auth_query */
	char authq_user[64];
	int scram_step;            /* fake server SCRAM: 1 waiting first, 2 waiting final */
	char scram_first_bare[512];
	char scram_server_first[512];
} NsConn;

static struct {
	bool inited;
	char dir[128];
	char ini_path[192];
	char userlist_path[192];
	char sock_path[192];
	char hba_path[192];
	char resolv_path[192];
	char cert_path[192];
	char key_path[192];
	ScramSecret pg_secret; /* the fake server's SCRAM secret for "apppass" */
	int pg_fd;
	int pg_tcp_fd; /* the same fake server on 127.0.0.1 (TCP: the pooler asks for TLS first) */
	int pg_tcp_port;
	App app;
	bool active;
	NsVariant v;
	bool auto_pg;
	int pg_auth;
	NsConn cli[NS_MAX_CLI];
	int ncli, cur_cli;
	NsConn srv[NS_MAX_SRV];
	int nsrv, cur_srv;
	int fds_at_begin;
	long inputs;
	int debug;
	char mark[24]; /* "tpmk<random>c": queries end in " -- <mark><slot>", echoed by the server */
} ns;

/* ------------------------------------------------------------------ helpers */

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory stream itself */
}

static void list_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		char p[300], t[256];
		snprintf(p, sizeof(p), "/proc/self/fd/%s", e->d_name);
		ssize_t n = readlink(p, t, sizeof(t) - 1);
		if (n > 0) {
			t[n] = 0;
			fprintf(stderr, "  fd %s -> %s\n", e->d_name, t);
		}
	}
	closedir(d);
}

static void conn_reset(NsConn *c)
{
	if (c->fd >= 0 && c->used)
		close(c->fd);
	free(c->rx);
	free(c->tx);
	if (c->scram) {
		scram_client_wipe(c->scram);
		free(c->scram);
	}
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

static void conn_close(NsConn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static void conn_queue(NsConn *c, const void *data, size_t len)
{
	if (c->fd < 0 || len == 0)
		return;
	if (c->txoff > 0 && c->txoff == c->txlen)
		c->txoff = c->txlen = 0;
	if (c->txlen + len > (8u << 20))
		return; /* bounded: a harness that queues more than 8 MiB just drops */
	c->tx = realloc(c->tx, c->txlen + len);
	memcpy(c->tx + c->txlen, data, len);
	c->txlen += len;
}

/* Write queued bytes; true if any were written. */
static bool conn_flush(NsConn *c)
{
	bool progress = false;
	while (c->fd >= 0 && c->txoff < c->txlen) {
		ssize_t n = send(c->fd, c->tx + c->txoff, c->txlen - c->txoff, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			c->txoff += (size_t)n;
			progress = true;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		conn_close(c); /* the pooler closed it */
		progress = true;
		break;
	}
	return progress;
}

/* Read what is there into the (growing, bounded) receive buffer; true if anything happened. */
static bool conn_read(NsConn *c)
{
	bool progress = false;
	uint8_t tmp[16384];
	for (int i = 0; i < 64 && c->fd >= 0; i++) {
		size_t room = RX_CAP - c->rxlen;
		if (room == 0)
			break;
		ssize_t n = recv(c->fd, tmp, room < sizeof(tmp) ? room : sizeof(tmp), MSG_DONTWAIT);
		if (n > 0) {
			if (c->rxlen + (size_t)n > c->rxcap) {
				size_t ncap = c->rxcap ? c->rxcap : 4096;
				while (ncap < c->rxlen + (size_t)n)
					ncap *= 2;
				c->rx = realloc(c->rx, ncap);
				c->rxcap = ncap;
			}
			memcpy(c->rx + c->rxlen, tmp, (size_t)n);
			c->rxlen += (size_t)n;
			c->total_rx += (size_t)n;
			progress = true;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		conn_close(c); /* EOF or error */
		progress = true;
		break;
	}
	return progress;
}

static void consume(NsConn *c, size_t n)
{
	memmove(c->rx, c->rx + n, c->rxlen - n);
	c->rxlen -= n;
}

/* ------------------------------------------------------------------ client side */

static void send_typed(NsConn *c, uint8_t type, const void *body, size_t len);
void ns_pump(int rounds);

/* The SCRAM exchange the harness started (AUTH op on an AuthenticationSASL request) goes on by
 * itself: SASLContinue gets the client-final-message, SASLFinal is checked. */
static void client_scram_step(NsConn *c, uint32_t code, const uint8_t *payload, size_t plen)
{
	char out[1024], err[256];
	size_t used = 0;
	if (!c->scram)
		return;
	if (code == 11 && c->scram->state == SCRAM_STATE_SENT_FIRST) {
		if (scram_client_continue(c->scram, (const char *)payload, plen, out, sizeof(out), &used, err,
					  sizeof(err)) == 0)
			send_typed(c, 'p', out, used);
	} else if (code == 12 && c->scram->state == SCRAM_STATE_SENT_FINAL) {
		(void)scram_client_finish(c->scram, (const char *)payload, plen, err, sizeof(err));
	}
}

/* Learn the authentication request and the cancel key from what the pooler sent. */
static void client_parse(NsConn *c)
{
	for (;;) {
		if (c->expect_ssl_byte && c->rxlen >= 1) {
			consume(c, 1);
			c->expect_ssl_byte = false;
			continue;
		}
		if (c->rxlen < 5)
			return;
		uint8_t t = c->rx[0];
		uint32_t len = get32(c->rx + 1);
		if (!t || !strchr("RSKZEINCDTAGHWdcn123stVv", t) || len < 4 || len > RX_CAP / 2) {
			c->rxlen = 0; /* lost framing (raw fuzz bytes); start over */
			return;
		}
		if (c->rxlen < len + 1) {
			if (c->rxlen >= RX_CAP)
				c->rxlen = 0;
			return;
		}
		if (t == 'R' && len >= 8) {
			c->auth_code = get32(c->rx + 5);
			c->auth_pending = c->auth_code == 3 || c->auth_code == 5 || c->auth_code == 10;
			if (c->auth_code == 5 && len >= 12)
				memcpy(c->salt, c->rx + 9, 4);
			if (c->auth_code == 11 || c->auth_code == 12)
				client_scram_step(c, c->auth_code, c->rx + 9, len - 8);
		} else if (t == 'D' && ns.mark[0]) {
			/* a row echoing some client's query: it must be this client's */
			size_t ml = strlen(ns.mark);
			const uint8_t *body = c->rx + 5, *end = c->rx + 1 + len;
			for (const uint8_t *p = body; p + ml < end; p++) {
				if (*p != ns.mark[0] || memcmp(p, ns.mark, ml) != 0)
					continue;
				int owner = p[ml] - '0';
				if (owner != c->slot) {
					fprintf(stderr, "netsim: client %d received a row of client %d's query\n", c->slot,
						owner);
					FUZZ_CHECK(owner == c->slot);
				}
				if (ns.debug >= 3)
					fprintf(stderr, "netsim: client %d got a row of its own query\n", c->slot);
				break;
			}
		} else if (t == 'K' && len >= 12) {
			c->key_pid = get32(c->rx + 5);
			c->key_key = get32(c->rx + 9);
			c->have_key = true;
		}
		consume(c, len + 1);
	}
}

int ns_client_new(bool is_unix)
{
	int slot = -1;
	for (int i = 0; i < NS_MAX_CLI; i++)
		if (!ns.cli[i].used || ns.cli[i].fd < 0) {
			slot = i;
			break;
		}
	if (slot < 0)
		return -1;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	int small = 4096;
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	NsConn *c = &ns.cli[slot];
	conn_reset(c);
	c->used = true;
	c->fd = sv[0];
	c->drain = true;
	c->slot = slot;
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)(40000 + slot));
	sin.sin_addr.s_addr = htonl(0x7f000001);
	Client *cl = client_new(ns.app.workers[0], sv[1], (struct sockaddr *)&sin, sizeof(sin), is_unix);
	if (!cl) {
		/* client_new closed the fd on its failure paths that got as far as sbuf_accept */
		(void)0;
	}
	if (slot >= ns.ncli)
		ns.ncli = slot + 1;
	ns.cur_cli = slot;
	return slot;
}

static NsConn *cur_client(void)
{
	if (ns.ncli == 0 || !ns.cli[ns.cur_cli].used)
		ns_client_new(true);
	if (ns.ncli == 0)
		return NULL;
	return &ns.cli[ns.cur_cli];
}

void ns_client_write(int ci, const void *data, size_t len)
{
	if (ci < 0 || ci >= NS_MAX_CLI || !ns.cli[ci].used)
		return;
	conn_queue(&ns.cli[ci], data, len);
}

void ns_client_drain(int ci, bool on)
{
	if (ci >= 0 && ci < NS_MAX_CLI)
		ns.cli[ci].drain = on;
}

size_t ns_client_received(int ci)
{
	return ci >= 0 && ci < NS_MAX_CLI ? ns.cli[ci].total_rx : 0;
}

static void send_typed(NsConn *c, uint8_t type, const void *body, size_t len)
{
	uint8_t hdr[5];
	hdr[0] = type;
	put32(hdr + 1, (uint32_t)len + 4);
	conn_queue(c, hdr, 5);
	conn_queue(c, body, len);
}

void ns_client_login(int ci, const char *user, const char *db, const char *const *params)
{
	if (ci < 0 || ci >= NS_MAX_CLI || !ns.cli[ci].used)
		return;
	NsConn *c = &ns.cli[ci];
	uint8_t buf[1024];
	size_t n = 8;
	put32(buf + 4, 196608);
#define ADD(s)                                                                                        \
	do {                                                                                          \
		size_t l_ = strlen(s) + 1;                                                            \
		if (n + l_ < sizeof(buf) - 1) {                                                       \
			memcpy(buf + n, s, l_);                                                       \
			n += l_;                                                                      \
		}                                                                                     \
	} while (0)
	if (user) {
		ADD("user");
		ADD(user);
	}
	if (db) {
		ADD("database");
		ADD(db);
	}
	for (int i = 0; params && params[i] && params[i + 1]; i += 2) {
		ADD(params[i]);
		ADD(params[i + 1]);
	}
#undef ADD
	buf[n++] = 0;
	put32(buf, (uint32_t)n);
	c->user = user;
	conn_queue(c, buf, n);
}

void ns_client_query(int ci, const char *sql)
{
	if (ci < 0 || ci >= NS_MAX_CLI || !ns.cli[ci].used)
		return;
	send_typed(&ns.cli[ci], 'Q', sql, strlen(sql) + 1);
}

/* A query that carries its client's mark: the fake server echoes the query text in its row, so
 * a row reaching another client shows up in client_parse(). */
void ns_client_query_marked(int ci, const char *sql)
{
	char q[600];
	if (ci < 0 || ci >= NS_MAX_CLI || !ns.cli[ci].used)
		return;
	if (!*sql) {
		ns_client_query(ci, sql);
		return;
	}
	snprintf(q, sizeof(q), "%s -- %s%d", sql, ns.mark, ci);
	send_typed(&ns.cli[ci], 'Q', q, strlen(q) + 1);
}

static const char *password_of(const char *user)
{
	if (!user)
		return "";
	if (strcmp(user, "app") == 0)
		return "apppass";
	if (strcmp(user, "md5user") == 0)
		return "md5pass";
	if (strcmp(user, "pgbouncer") == 0)
		return "adminpass";
	if (strcmp(user, "statsuser") == 0)
		return "statspass";
	if (strcmp(user, "scramuser") == 0)
		return "scrampass";
	return "x";
}

void ns_client_answer_auth(int ci, const char *password)
{
	if (ci < 0 || ci >= NS_MAX_CLI || !ns.cli[ci].used)
		return;
	NsConn *c = &ns.cli[ci];
	client_parse(c);
	/* answer the request when it has come (an auth_query lookup or a slow server may delay it) */
	for (int i = 0; i < 3 && !c->auth_pending && c->fd >= 0; i++)
		ns_pump(PUMP_ROUNDS);
	for (int i = 0; i < 3 && !c->auth_pending && c->fd >= 0; i++)
		ns_wait_ms(12); /* an auth_query lookup runs on a 10 ms poll */
	if (!c->auth_pending)
		return;
	c->auth_pending = false;
	char resp[64];
	if (c->auth_code == 5) {
		pg_md5_response(password, c->user ? c->user : "", c->salt, resp);
		send_typed(c, 'p', resp, strlen(resp) + 1);
	} else if (c->auth_code == 10) {
		char first[512];
		size_t used = 0;
		if (!c->scram)
			c->scram = calloc(1, sizeof(*c->scram));
		if (scram_client_start(c->scram, password, first, sizeof(first), &used) < 0)
			return;
		uint8_t body[600];
		size_t n = 0;
		memcpy(body, "SCRAM-SHA-256", 14);
		n = 14;
		put32(body + n, (uint32_t)used);
		n += 4;
		memcpy(body + n, first, used);
		n += used;
		send_typed(c, 'p', body, n);
	} else {
		send_typed(c, 'p', password, strlen(password) + 1);
	}
}

/* ------------------------------------------------------------------ fake PostgreSQL */

static void srv_send(NsConn *s, uint8_t type, const void *body, size_t len)
{
	send_typed(s, type, body, len);
}

static void srv_param(NsConn *s, const char *k, const char *v)
{
	uint8_t b[256];
	size_t kl = strlen(k) + 1, vl = strlen(v) + 1;
	if (kl + vl > sizeof(b))
		return;
	memcpy(b, k, kl);
	memcpy(b + kl, v, vl);
	srv_send(s, 'S', b, kl + vl);
}

static void srv_error(NsConn *s, const char *sev, const char *code, const char *msg)
{
	uint8_t b[512];
	int n = snprintf((char *)b, sizeof(b), "S%s%cV%s%cC%s%cM%s%c", sev, 0, sev, 0, code, 0, msg, 0);
	if (n < 0 || (size_t)n + 1 > sizeof(b))
		return;
	b[n] = 0;
	srv_send(s, 'E', b, (size_t)n + 1);
}

static void srv_ready(NsConn *s)
{
	uint8_t st = (uint8_t)s->status;
	srv_send(s, 'Z', &st, 1);
}

static void srv_complete(NsConn *s, const char *tag)
{
	srv_send(s, 'C', tag, strlen(tag) + 1);
}

static void srv_login_ok(NsConn *s)
{
	uint8_t b[8];
	put32(b, 0);
	srv_send(s, 'R', b, 4);
	srv_param(s, "server_version", "15.0");
	srv_param(s, "client_encoding", "UTF8");
	srv_param(s, "DateStyle", "ISO, MDY");
	srv_param(s, "TimeZone", "UTC");
	srv_param(s, "standard_conforming_strings", "on");
	srv_param(s, "application_name", "");
	srv_param(s, "IntervalStyle", "postgres");
	put32(b, 4242);
	put32(b + 4, 0x5eed);
	srv_send(s, 'K', b, 8);
	s->status = 'I';
	srv_ready(s);
}

static void srv_row(NsConn *s, const char *val, size_t vlen)
{
	static const uint8_t desc[] = {0, 1, 'c', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 25, 0xff, 0xff, 0xff, 0xff, 0, 0};
	srv_send(s, 'T', desc, sizeof(desc));
	uint8_t *b = malloc(6 + vlen);
	b[0] = 0;
	b[1] = 1;
	put32(b + 2, (uint32_t)vlen);
	memcpy(b + 6, val, vlen);
	srv_send(s, 'D', b, 6 + vlen);
	free(b);
}

static void srv_row2(NsConn *s, const char *a, const char *b)
{
	uint8_t buf[512];
	size_t n = 0;
	buf[n++] = 0;
	buf[n++] = 2;
	const char *names[2] = {"usename", "passwd"};
	for (int i = 0; i < 2; i++) {
		size_t l = strlen(names[i]) + 1;
		memcpy(buf + n, names[i], l);
		n += l;
		memset(buf + n, 0, 6);
		n += 6;
		put32(buf + n, 25);
		n += 4;
		buf[n++] = 0xff;
		buf[n++] = 0xff;
		put32(buf + n, 0xffffffff);
		n += 4;
		buf[n++] = 0;
		buf[n++] = 0;
	}
	(void)n; /* an Execute gets no RowDescription (that needs a Describe) */
	n = 0;
	buf[n++] = 0;
	buf[n++] = 2;
	size_t al = strlen(a), bl = strlen(b);
	put32(buf + n, (uint32_t)al);
	memcpy(buf + n + 4, a, al);
	n += 4 + al;
	put32(buf + n, (uint32_t)bl);
	memcpy(buf + n + 4, b, bl);
	n += 4 + bl;
	srv_send(s, 'D', buf, n);
}

static const char *password_of(const char *user);

/* SET a=b; SET c='d' ... as the pooler sends them: report each as a ParameterStatus. */
static void srv_handle_set(NsConn *s, const char *q)
{
	char buf[2048];
	snprintf(buf, sizeof(buf), "%s", q);
	char *save = NULL;
	for (char *stmt = strtok_r(buf, ";", &save); stmt; stmt = strtok_r(NULL, ";", &save)) {
		while (*stmt == ' ')
			stmt++;
		if (strncasecmp(stmt, "set ", 4) != 0)
			continue;
		char *name = stmt + 4;
		while (*name == ' ')
			name++;
		char *eq = strpbrk(name, "= ");
		if (!eq)
			continue;
		char *val = eq;
		*eq = 0;
		val++;
		while (*val == ' ' || *val == '=' || strncasecmp(val, "to ", 3) == 0)
			val += (*val == ' ' || *val == '=') ? 1 : 3;
		if (*val == '\'') {
			val++;
			char *e = strrchr(val, '\'');
			if (e)
				*e = 0;
		}
		srv_param(s, name, val);
	}
	srv_complete(s, "SET");
}

static void srv_query(NsConn *s, const char *q, size_t qlen)
{
	while (qlen && (*q == ' ' || *q == '\n')) {
		q++;
		qlen--;
	}
	if (qlen == 0) {
		srv_send(s, 'I', NULL, 0);
	} else if (strncasecmp(q, "begin", 5) == 0 || strncasecmp(q, "start", 5) == 0) {
		s->status = 'T';
		srv_complete(s, "BEGIN");
	} else if (strncasecmp(q, "commit", 6) == 0 || strncasecmp(q, "end", 3) == 0 ||
		   strncasecmp(q, "rollback", 8) == 0 || strncasecmp(q, "abort", 5) == 0) {
		s->status = 'I';
		srv_complete(s, "COMMIT");
	} else if (strncasecmp(q, "set ", 4) == 0) {
		srv_handle_set(s, q);
	} else if (strncasecmp(q, "copy", 4) == 0 && strcasestr(q, "from stdin")) {
		static const uint8_t g[] = {0, 0, 0};
		srv_send(s, 'G', g, sizeof(g));
		s->copy_in = true;
		return; /* ReadyForQuery after CopyDone/CopyFail */
	} else if (strncasecmp(q, "copy", 4) == 0) {
		static const uint8_t h[] = {0, 0, 0};
		srv_send(s, 'H', h, sizeof(h));
		for (int i = 0; i < 3; i++)
			srv_send(s, 'd', "1\tdata\n", 7);
		srv_send(s, 'c', NULL, 0);
		srv_complete(s, "COPY 3");
	} else if (strncasecmp(q, "error", 5) == 0) {
		srv_error(s, "ERROR", "42601", "syntax error at or near \"error\"");
		if (s->status == 'T')
			s->status = 'E';
	} else if (strncasecmp(q, "fatal", 5) == 0) {
		srv_error(s, "FATAL", "57P01", "terminating connection due to administrator command");
		conn_flush(s);
		conn_close(s);
		return;
	} else if (strncasecmp(q, "notify", 6) == 0) {
		srv_complete(s, "NOTIFY");
		srv_send(s, 'A', "\0\0\x10\x92" "chan\0payload\0", 17);
	} else if (strncasecmp(q, "select big", 10) == 0) {
		size_t n = 200000;
		char *big = malloc(n);
		memset(big, 'b', n);
		srv_row(s, big, n);
		free(big);
		srv_complete(s, "SELECT 1");
	} else {
		/* echo the query: a client that gets another client's text would notice */
		srv_row(s, q, qlen > 600 ? 600 : qlen);
		srv_complete(s, "SELECT 1");
	}
	srv_ready(s);
}

static int b64(const uint8_t *in, size_t len, char *out, size_t outlen)
{
	return scram_b64_encode(in, len, out, outlen);
}

/* The fake server's side of SCRAM-SHA-256: it does not check the client's proof, but its
 * server-final-message carries the right signature, so the pooler's login goes through. */
static void srv_scram(NsConn *s, const char *body, size_t blen)
{
	if (s->scram_step == 1) {
		/* SASLInitialResponse: mechanism\0 int32 len client-first */
		size_t ml = strnlen(body, blen);
		if (ml + 5 > blen) {
			srv_error(s, "FATAL", "08P01", "malformed SASLInitialResponse");
			return;
		}
		const char *cf = body + ml + 5;
		size_t cfl = blen - ml - 5;
		/* gs2 header "n,," then the bare message */
		const char *bare = (cfl > 3 && strncmp(cf, "n,,", 3) == 0) ? cf + 3 : NULL;
		const char *r = bare ? strstr(bare, "r=") : NULL;
		if (!bare || !r || (size_t)(cf + cfl - bare) >= sizeof(s->scram_first_bare)) {
			srv_error(s, "FATAL", "08P01", "malformed client-first-message");
			return;
		}
		snprintf(s->scram_first_bare, sizeof(s->scram_first_bare), "%.*s", (int)(cf + cfl - bare), bare);
		char salt[128];
		b64(ns.pg_secret.salt, ns.pg_secret.salt_len, salt, sizeof(salt));
		const char *rr = strstr(s->scram_first_bare, "r=") + 2;
		snprintf(s->scram_server_first, sizeof(s->scram_server_first), "r=%.*sFAKESERVERNONCE,s=%s,i=%d",
			 (int)strcspn(rr, ","), rr, salt, ns.pg_secret.iterations);
		uint8_t out[600];
		put32(out, 11);
		size_t n = strlen(s->scram_server_first);
		memcpy(out + 4, s->scram_server_first, n);
		srv_send(s, 'R', out, 4 + n);
		s->scram_step = 2;
		return;
	}
	/* SASLResponse: client-final-message; AuthMessage uses it without ",p=..." */
	char final[1024];
	snprintf(final, sizeof(final), "%.*s", (int)(blen < sizeof(final) - 1 ? blen : sizeof(final) - 1), body);
	char *p = strstr(final, ",p=");
	if (p)
		*p = 0;
	char auth[2048];
	int an = snprintf(auth, sizeof(auth), "%s,%s,%s", s->scram_first_bare, s->scram_server_first, final);
	uint8_t sig[32];
	unsigned int siglen = 0;
	HMAC(EVP_sha256(), ns.pg_secret.server_key, 32, (const uint8_t *)auth, (size_t)an, sig, &siglen);
	char v[80];
	int vl = b64(sig, 32, v, sizeof(v));
	uint8_t out[128];
	put32(out, 12);
	out[4] = 'v';
	out[5] = '=';
	memcpy(out + 6, v, (size_t)vl);
	srv_send(s, 'R', out, 6 + (size_t)vl);
	s->scram_step = 0;
	s->auth_wait = false;
	srv_login_ok(s);
}

/* Answer complete messages in s->rx (auto mode) or just consume them. */
static bool srv_process(NsConn *s, bool answer)
{
	bool progress = false;
	for (int guard = 0; guard < 1024 && s->fd >= 0; guard++) {
		if (!s->startup_done) {
			if (s->rxlen < 8)
				break;
			uint32_t len = get32(s->rx), code = get32(s->rx + 4);
			if (len < 8 || len > 10000) {
				conn_close(s);
				break;
			}
			if (s->rxlen < len)
				break;
			consume(s, len);
			progress = true;
			if (code == 80877102) { /* CancelRequest: nothing to answer */
				s->is_cancel = true;
				conn_close(s);
				break;
			}
			if (code == 80877103) {
				if (answer)
					conn_queue(s, "N", 1);
				continue;
			}
			s->startup_done = true;
			if (!answer)
				continue;
			uint8_t b[8];
			if (ns.pg_auth == 1) {
				put32(b, 3);
				srv_send(s, 'R', b, 4);
				s->auth_wait = true;
			} else if (ns.pg_auth == 2) {
				put32(b, 5);
				memcpy(b + 4, "salt", 4);
				srv_send(s, 'R', b, 8);
				s->auth_wait = true;
			} else if (ns.pg_auth == 3) {
				uint8_t m[32];
				put32(m, 10);
				memcpy(m + 4, "SCRAM-SHA-256\0\0", 15);
				srv_send(s, 'R', m, 19);
				s->auth_wait = true;
				s->scram_step = 1;
			} else {
				srv_login_ok(s);
			}
			continue;
		}
		if (s->rxlen < 5)
			break;
		uint8_t t = s->rx[0];
		uint32_t len = get32(s->rx + 1);
		/* The pooler parses every client frame before forwarding it and refuses lengths below
		 * 4: a shorter frame reaching the server means its framing broke (a desync would let
		 * a client smuggle bytes into another message or another client's stream). */
		if (len < 4) {
			fprintf(stderr, "netsim: the pooler sent the server a frame '%c' with length %u\n", t, len);
			FUZZ_CHECK(len >= 4);
		}
		/* Only frontend message types may reach PostgreSQL: PgBouncer disconnects a client that
		 * sends anything else ("unknown pkt"); forwarding it lets any client make the server
		 * kill a pooled backend (FATAL "invalid frontend message type"). */
		if (!t || !strchr("QFSHcfPECBDdXp", t)) {
			fprintf(stderr, "netsim: the pooler forwarded a message of unknown type 0x%02x to the server\n", t);
			if (!getenv("FUZZ_SKIP_KNOWN"))
				FUZZ_CHECK(t && strchr("QFSHcfPECBDdXp", t));
		}
		if (len > RX_CAP - 1) {
			conn_close(s);
			break;
		}
		if (s->rxlen < (size_t)len + 1)
			break;
		const char *body = (const char *)s->rx + 5;
		size_t blen = len - 4;
		progress = true;
		if (ns.debug >= 3)
			fprintf(stderr, "netsim: fake server got '%c' (%u bytes)%s\n", t, len + 1, answer ? "" : " (not answering)");
		if (answer) {
			if (s->auth_wait) {
				if (t == 'p' && s->scram_step) {
					srv_scram(s, body, blen);
				} else if (t == 'p') {
					s->auth_wait = false;
					srv_login_ok(s);
				}
			} else if (s->copy_in && (t == 'd' || t == 'c' || t == 'f' || t == 'H' || t == 'S')) {
				if (t == 'c') {
					s->copy_in = false;
					srv_complete(s, "COPY 1");
					srv_ready(s);
				} else if (t == 'f') {
					s->copy_in = false;
					srv_error(s, "ERROR", "57014", "COPY from stdin failed");
					srv_ready(s);
				}
			} else {
				switch (t) {
				case 'Q':
					srv_query(s, body, blen ? strnlen(body, blen) : 0);
					break;
				case 'P': {
					/* the unnamed statement of an auth_query lookup gets a user row on Execute */
					size_t nl = strnlen(body, blen);
					const char *q = nl + 1 < blen ? body + nl + 1 : "";
					s->authq = nl == 0 && (strstr(q, "passw") || strstr(q, "pg_shadow") || strstr(q, "pg_authid"));
					srv_send(s, '1', NULL, 0);
					break;
				}
				case 'B':
					if (s->authq && blen > 8) {
						/* "" "" int16 0 int16 1 int32 len user */
						const uint8_t *b = (const uint8_t *)body + 2;
						size_t left = blen - 2;
						if (left >= 8) {
							uint32_t ul = get32(b + 4);
							if (ul < sizeof(s->authq_user) && ul <= left - 8) {
								memcpy(s->authq_user, b + 8, ul);
								s->authq_user[ul] = 0;
							}
						}
					}
					srv_send(s, '2', NULL, 0);
					break;
				case 'D':
					srv_send(s, 'n', NULL, 0);
					break;
				case 'E':
					if (s->authq) {
						char md5[36];
						pg_md5_password(password_of(s->authq_user), s->authq_user, md5);
						srv_row2(s, s->authq_user, md5);
						srv_complete(s, "SELECT 1");
						s->authq = false;
						break;
					}
					{
						static const uint8_t d[] = {0, 1, 0, 0, 0, 1, 'x'};
						srv_send(s, 'D', d, sizeof(d));
					}
					srv_complete(s, "SELECT 1");
					break;
				case 'C':
					srv_send(s, '3', NULL, 0);
					break;
				case 'S':
					srv_ready(s);
					break;
				case 'F': {
					static const uint8_t v[] = {0xff, 0xff, 0xff, 0xff};
					srv_send(s, 'V', v, 4);
					srv_ready(s);
					break;
				}
				case 'H':
				case 'd':
				case 'c':
				case 'f':
				case 'p':
					break;
				case 'X':
					consume(s, (size_t)len + 1);
					conn_close(s);
					return true;
				default:
					srv_error(s, "FATAL", "08P01", "invalid frontend message type");
					conn_flush(s);
					conn_close(s);
					return true;
				}
			}
		}
		consume(s, (size_t)len + 1);
	}
	return progress;
}

static bool accept_servers(void)
{
	bool progress = false;
	for (int i = 0; i < 32; i++) {
		int fd = accept4((i & 1) ? ns.pg_tcp_fd : ns.pg_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			int fd2 = accept4((i & 1) ? ns.pg_fd : ns.pg_tcp_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (fd2 < 0)
				break;
			fd = fd2;
		}
		progress = true;
		int slot = -1;
		for (int k = 0; k < NS_MAX_SRV; k++)
			if (!ns.srv[k].used || ns.srv[k].fd < 0) {
				slot = k;
				break;
			}
		if (slot < 0) {
			close(fd); /* "too many connections" */
			continue;
		}
		NsConn *s = &ns.srv[slot];
		conn_reset(s);
		s->used = true;
		s->fd = fd;
		s->drain = true;
		s->status = 'I';
		if (slot >= ns.nsrv)
			ns.nsrv = slot + 1;
		ns.cur_srv = slot;
	}
	return progress;
}

void ns_server_write(int si, const void *data, size_t len)
{
	if (si < 0 || si >= NS_MAX_SRV || !ns.srv[si].used)
		return;
	conn_queue(&ns.srv[si], data, len);
}

int ns_server_count(void)
{
	int n = 0;
	for (int i = 0; i < ns.nsrv; i++)
		n += ns.srv[i].used && ns.srv[i].fd >= 0;
	return n;
}

/* ------------------------------------------------------------------ the loop */

/* Let real time pass on the pooler's loop (its timers: auth_query polling, the console's
 * tick for PAUSE/WAIT_CLOSE replies), then answer whatever that produced. */
void ns_wait_ms(int ms)
{
	struct timeval tv = {0, ms * 1000};
	event_base_loopexit(ns.app.workers[0]->base, &tv);
	event_base_dispatch(ns.app.workers[0]->base);
	ns_pump(PUMP_ROUNDS);
}

void ns_pump(int rounds)
{
	int idle = 0;
	for (int r = 0; r < rounds && idle < 3; r++) {
		bool progress = false;
		event_base_loop(ns.app.workers[0]->base, EVLOOP_NONBLOCK);
		progress |= accept_servers();
		for (int i = 0; i < ns.ncli; i++) {
			NsConn *c = &ns.cli[i];
			if (!c->used || c->fd < 0)
				continue;
			progress |= conn_flush(c);
			if (c->drain && conn_read(c)) {
				progress = true;
				client_parse(c);
			}
		}
		for (int i = 0; i < ns.nsrv; i++) {
			NsConn *s = &ns.srv[i];
			if (!s->used || s->fd < 0)
				continue;
			progress |= conn_flush(s);
			if (conn_read(s))
				progress = true;
			progress |= srv_process(s, ns.auto_pg);
			progress |= conn_flush(s);
		}
		idle = progress ? 0 : idle + 1;
	}
}

/* ------------------------------------------------------------------ setup and teardown */

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		perror(path);
		abort();
	}
	fputs(text, f);
	fclose(f);
}

/* A self-signed EC certificate for the client TLS variant. */
static void make_cert(void)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	if (!key || !x) {
		fprintf(stderr, "netsim: cannot make a TLS key\n");
		abort();
	}
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 365);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509_sign(x, key, EVP_sha256());
	FILE *f = fopen(ns.cert_path, "w");
	PEM_write_X509(f, x);
	fclose(f);
	f = fopen(ns.key_path, "w");
	PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(key);
}

/* The temp dir goes away with the process (a crash leaves it for the reproduction). */
static void remove_dir(void)
{
	const char *names[] = {"pgbouncer.ini", "userlist.txt", "hba.conf", "resolv.conf", "server.crt", "server.key",
			       ".s.PGSQL.5432"};
	char path[256];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", ns.dir, names[i]);
		unlink(path);
	}
	rmdir(ns.dir);
}

void ns_global_init(void)
{
	if (ns.inited)
		return;
	ns.inited = true;
	atexit(remove_dir);
	signal(SIGPIPE, SIG_IGN);
	snprintf(ns.dir, sizeof(ns.dir), "/tmp/tidepool-fuzz-net-%d", (int)getpid());
	mkdir(ns.dir, 0700);
	snprintf(ns.ini_path, sizeof(ns.ini_path), "%s/pgbouncer.ini", ns.dir);
	snprintf(ns.userlist_path, sizeof(ns.userlist_path), "%s/userlist.txt", ns.dir);
	snprintf(ns.sock_path, sizeof(ns.sock_path), "%s/.s.PGSQL.5432", ns.dir);
	snprintf(ns.hba_path, sizeof(ns.hba_path), "%s/hba.conf", ns.dir);
	snprintf(ns.resolv_path, sizeof(ns.resolv_path), "%s/resolv.conf", ns.dir);
	write_text(ns.resolv_path, "# no nameservers\n");
	{
		unsigned char rnd[6];
		if (RAND_bytes(rnd, sizeof(rnd)) != 1)
			memset(rnd, 0x5a, sizeof(rnd));
		snprintf(ns.mark, sizeof(ns.mark), "tpmk%02x%02x%02x%02x%02x%02xc", rnd[0], rnd[1], rnd[2], rnd[3],
			 rnd[4], rnd[5]);
	}
	snprintf(ns.cert_path, sizeof(ns.cert_path), "%s/server.crt", ns.dir);
	snprintf(ns.key_path, sizeof(ns.key_path), "%s/server.key", ns.dir);
	make_cert();
	write_text(ns.hba_path, "# netsim\n"
				"local all pgbouncer trust\n"
				"local all md5user md5\n"
				"local all all scram-sha-256\n"
				"host all app 127.0.0.1/32 password\n"
				"host all all 0.0.0.0/0 md5\n"
				"host all all ::/0 reject\n");
	char pg_secret[512];
	if (scram_make_secret("apppass", 16, pg_secret, sizeof(pg_secret)) < 0 ||
	    scram_parse_secret(pg_secret, &ns.pg_secret) < 0) {
		fprintf(stderr, "netsim: cannot make a SCRAM secret\n");
		abort();
	}
	char md5[36], scram[512], ul[2048];
	pg_md5_password("md5pass", "md5user", md5);
	if (scram_make_secret("scrampass", 16, scram, sizeof(scram)) < 0)
		snprintf(scram, sizeof(scram), "scrampass");
	snprintf(ul, sizeof(ul),
		 "\"app\" \"apppass\"\n\"md5user\" \"%s\"\n\"pgbouncer\" \"adminpass\"\n"
		 "\"statsuser\" \"statspass\"\n\"scramuser\" \"%s\"\n",
		 md5, scram);
	write_text(ns.userlist_path, ul);
	unlink(ns.sock_path);
	ns.pg_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_un un;
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	snprintf(un.sun_path, sizeof(un.sun_path), "%s", ns.sock_path);
	if (ns.pg_fd < 0 || bind(ns.pg_fd, (struct sockaddr *)&un, sizeof(un)) < 0 || listen(ns.pg_fd, 64) < 0) {
		perror("netsim: fake PostgreSQL socket");
		abort();
	}
	ns.pg_tcp_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(0x7f000001);
	if (ns.pg_tcp_fd < 0 || bind(ns.pg_tcp_fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(ns.pg_tcp_fd, 64) < 0 || getsockname(ns.pg_tcp_fd, (struct sockaddr *)&sin, &sl) < 0) {
		perror("netsim: fake PostgreSQL TCP socket");
		abort();
	}
	ns.pg_tcp_port = ntohs(sin.sin_port);
	for (int i = 0; i < NS_MAX_CLI; i++)
		ns.cli[i].fd = -1;
	for (int i = 0; i < NS_MAX_SRV; i++)
		ns.srv[i].fd = -1;
}

static const char *const tiny = "0.000001";

/* The ini of a variant; drop_appdb leaves the main database out (RELOAD: "database removed").
 * b0: auth_type (2 bits), pool_mode (2), pkt_buf 256, reset query always, check query, "*"
 * b1: pool size (2 bits), max_client_conn 3, server_login_retry 0, application_name_add_host,
 *     max_packet_size 2000, min_pool_size 1, [users] section
 * b2: tiny timeouts (query, idle transaction, client idle, query wait, server idle+lifetime,
 *     login+cancel+connect, transaction), connect_query + reserve pool
 * b3: max_prepared_statements 0, auth_type hba, auth_type scram-sha-256, client TLS (allow),
 *     auth_user (auth_query lookups), server_tls_sslmode disable, log_* off, verbose 0 */
static char *build_ini(const NsVariant *v, bool drop_appdb)
{
	static const char *const auth[] = {"trust", "any", "md5", "plain"};
	static const char *const modes[] = {"session", "transaction", "statement", "transaction"};
	static const char *const sizes[] = {"1", "2", "5", "20"};
	uint8_t b0 = v->b[0], b1 = v->b[1], b2 = v->b[2], b3 = v->b[3];
	/* NETSIM_VARIANT_MASK=hex, one byte per variant byte, switches configuration features off,
	 * e.g. fff7ffff keeps server_login_retry > 0 so that fuzzing can go on past a known crash. */
	const char *mask = getenv("NETSIM_VARIANT_MASK");
	if (!mask && getenv("FUZZ_SKIP_KNOWN"))
		mask = "fff7ffff"; /* server_login_retry = 0: the known recursion (regressions/) */
	if (mask && strlen(mask) == 2 * NS_VARIANT_BYTES) {
		unsigned long m = strtoul(mask, NULL, 16);
		b0 &= (uint8_t)(m >> 24);
		b1 &= (uint8_t)(m >> 16);
		b2 &= (uint8_t)(m >> 8);
		b3 &= (uint8_t)m;
	}
	size_t cap = 8192;
	char *t = malloc(cap);
	size_t n = 0;
#define P(...) (n += (size_t)snprintf(t + n, cap - n, __VA_ARGS__))
	P("[databases]\n");
	if (!drop_appdb)
		P("appdb = host=%s port=5432 dbname=appdb%s\n", ns.dir,
		  (b2 & 0x80) ? " connect_query='SELECT 1'" : "");
	P("forcedb = host=%s port=5432 dbname=appdb user=app password=apppass pool_size=1\n", ns.dir);
	P("downdb = host=%s/nonexistent port=5432\n", ns.dir);
	P("tcpdown = host=127.0.0.1 port=1\n");
	P("tcpdb = host=127.0.0.1 port=%d dbname=appdb\n", ns.pg_tcp_port);
	if (b0 & 0x80)
		P("* = host=%s port=5432\n", ns.dir);
	P("\n[pgbouncer]\n");
	P("logfile = /dev/null\nlisten_addr = 127.0.0.1\nlisten_port = 6432\nunix_socket_dir =\n");
	const char *at = auth[b0 & 3];
	if (b3 & 2)
		at = "hba";
	else if (b3 & 4)
		at = "scram-sha-256";
	P("auth_type = %s\nauth_file = %s\nauth_hba_file = %s\n", at, ns.userlist_path, ns.hba_path);
	P("admin_users = pgbouncer\nstats_users = statsuser\n");
	P("pool_mode = %s\n", modes[(b0 >> 2) & 3]);
	P("pkt_buf = %s\n", (b0 & 0x10) ? "256" : "4096");
	if (b0 & 0x20)
		P("server_reset_query = DISCARD ALL\nserver_reset_query_always = 1\n");
	if (b0 & 0x40)
		P("server_check_delay = 0\nserver_check_query = select 1\n");
	P("default_pool_size = %s\n", sizes[b1 & 3]);
	P("max_client_conn = %s\n", (b1 & 4) ? "3" : "100");
	P("server_login_retry = %s\n", (b1 & 8) ? "0" : "15");
	if (b1 & 0x10)
		P("application_name_add_host = 1\n");
	if (b1 & 0x20)
		P("max_packet_size = 2000\n");
	if (b1 & 0x40)
		P("min_pool_size = 1\n");
	P("ignore_startup_parameters = extra_float_digits\n");
	P("verbose = %d\n", (b3 & 0x80) ? 0 : 2);
	if (b3 & 0x40)
		P("log_connections = 0\nlog_disconnections = 0\nlog_pooler_errors = 0\n");
	if (b3 & 1)
		P("max_prepared_statements = 0\n");
	if (b3 & 8)
		P("client_tls_sslmode = allow\nclient_tls_cert_file = %s\nclient_tls_key_file = %s\n", ns.cert_path,
		  ns.key_path);
	if (b3 & 0x10)
		P("auth_user = app\n");
	P("server_tls_sslmode = %s\n", (b3 & 0x20) ? "disable" : "prefer");
	if (b2 & 1)
		P("query_timeout = %s\n", tiny);
	if (b2 & 2)
		P("idle_transaction_timeout = %s\n", tiny);
	if (b2 & 4)
		P("client_idle_timeout = %s\n", tiny);
	if (b2 & 8)
		P("query_wait_timeout = %s\n", tiny);
	if (b2 & 0x10)
		P("server_idle_timeout = %s\nserver_lifetime = %s\n", tiny, tiny);
	if (b2 & 0x20)
		P("client_login_timeout = %s\ncancel_wait_timeout = %s\nserver_connect_timeout = %s\n", tiny, tiny,
		  tiny);
	if (b2 & 0x40)
		P("transaction_timeout = %s\n", tiny);
	if (b2 & 0x80)
		P("reserve_pool_size = 1\nreserve_pool_timeout = 0\n");
	if (b1 & 0x80)
		P("\n[users]\nmd5user = pool_mode=session\napp = pool_size=1\n");
#undef P
	return t;
}

void ns_begin(const NsVariant *v, bool auto_pg)
{
	ns_global_init();
	FUZZ_CHECK(!ns.active);
	ns.fds_at_begin = count_fds();
	if (getenv("NETSIM_DEBUG")) {
		fprintf(stderr, "netsim: input %ld begins with %d fds\n", ns.inputs, ns.fds_at_begin);
		list_fds();
	}
	ns.v = *v;
	ns.auto_pg = auto_pg;
	ns.pg_auth = 0;
	ns.ncli = ns.nsrv = ns.cur_cli = ns.cur_srv = 0;
	char *ini = build_ini(v, false);
	write_text(ns.ini_path, ini);
	App *app = &ns.app;
	memset(app, 0, sizeof(*app));
	log_init(&app->log);
	app->log.quiet = 1;
	app->config_path = ns.ini_path;
	char err[1024];
	app->cf = config_load_string(ini, ns.ini_path, app_config_warning, app, err, sizeof(err));
	free(ini);
	if (!app->cf) {
		fprintf(stderr, "netsim: variant %02x%02x%02x%02x does not load: %s\n", v->b[0], v->b[1], v->b[2],
			v->b[3], err);
		abort();
	}
	app->log.verbose = app->cf->verbose;
	log_open_file(&app->log, "/dev/null");
	const char *dbg = getenv("NETSIM_DEBUG");
	ns.debug = dbg ? atoi(dbg) : 0;
	if (dbg && atoi(dbg) >= 2)
		app->log.quiet = 0; /* the pooler's log on stderr */
	if (app_load_userlist(app, app->cf, &app->userlist, err, sizeof(err)) < 0) {
		fprintf(stderr, "netsim: userlist: %s\n", err);
		abort();
	}
	if (auth_prepare(app->cf, err, sizeof(err)) < 0 || tls_configure(app->cf, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "netsim: variant %02x%02x%02x%02x: %s\n", v->b[0], v->b[1], v->b[2], v->b[3], err);
		abort();
	}
	auth_commit();
	/* one worker on this thread, set up as the daemon does (worker.c) */
	app_init_shared(app);
	Worker *w = calloc(1, sizeof(*w));
	FUZZ_CHECK(w != NULL);
	worker_init(app, w, 0);
	app->workers[0] = w;
	app->n_workers = 1;
	/* no nameserver: numeric hosts only */
	FUZZ_CHECK(worker_open(w, ns.resolv_path, err, sizeof(err)) == 0);
	admin_init(app);
	ns.active = true;
}

static void close_client_list(List *l)
{
	List *item;
	for (int guard = 0; guard < 10000 && (item = list_first(l)) != NULL; guard++) {
		Client *c = LIST_CONTAINER(item, Client, head);
		ClientState before = c->state;
		client_close(c, "fuzz input done");
		if (c->state == before) /* not moved off this list: avoid spinning */
			break;
	}
}

void ns_end(void)
{
	FUZZ_CHECK(ns.active);
	App *app = &ns.app;
	Worker *w = app->workers[0];
	/* The harness side goes away first: the pooler sees EOFs the usual way. */
	for (int i = 0; i < ns.ncli; i++)
		conn_close(&ns.cli[i]);
	for (int i = 0; i < ns.nsrv; i++)
		conn_close(&ns.srv[i]);
	ns_pump(PUMP_ROUNDS);
	/* Then whatever is left is closed as at exit. */
	close_client_list(&w->login_clients);
	List *pi;
	LIST_FOREACH(pi, &w->pools)
	{
		Pool *p = LIST_CONTAINER(pi, Pool, head);
		close_client_list(&p->active_clients);
		close_client_list(&p->waiting_clients);
	}
	close_client_list(&admin_pool(w)->active_clients);
	close_client_list(&admin_pool(w)->waiting_clients);
	app_close_all_servers(w, "exit");
	List *item;
	for (int guard = 0; guard < 1000 && (item = list_first(&w->cancel_servers)) != NULL; guard++)
		server_close(LIST_CONTAINER(item, Server, head), "exit");
	if (admin_is_suspended()) {
		/* The console's tick resumes once no admin is left (50 ms timer). */
		struct timeval tv = {0, 200000};
		event_base_loopexit(w->base, &tv);
		event_base_dispatch(w->base);
	}
	pool_reap(w);
	app->exiting = true;
	admin_cleanup(app);
	worker_destroy_all(app); /* frees w */
	shared_free_all(app);
	tls_cleanup();
	auth_cleanup();
	config_free(app->cf);
	app->cf = NULL;
	if (app->userlist)
		userlist_free(app->userlist);
	app->userlist = NULL;
	log_close(&app->log);
	for (int i = 0; i < NS_MAX_CLI; i++)
		conn_reset(&ns.cli[i]);
	for (int i = 0; i < NS_MAX_SRV; i++)
		conn_reset(&ns.srv[i]);
	/* connections the pooler opened that the harness never accepted */
	for (int i = 0; i < 256; i++) {
		int fd = accept4(ns.pg_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			fd = accept4(ns.pg_tcp_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			break;
		close(fd);
	}
	ns.active = false;
	int fds = count_fds();
	/* The first input may open process-wide descriptors lazily (libevent, OpenSSL). */
	if (ns.inputs++ > 0 && fds > ns.fds_at_begin) {
		fprintf(stderr, "netsim: file descriptor leak: %d open before the input, %d after\n",
			ns.fds_at_begin, fds);
		list_fds();
		FUZZ_CHECK(fds <= ns.fds_at_begin);
	}
}

/* ------------------------------------------------------------------ the op interpreter */

typedef struct Cursor {
	const uint8_t *p, *end;
} Cursor;

static uint8_t cur_byte(Cursor *c)
{
	return c->p < c->end ? *c->p++ : 0;
}

static const uint8_t *cur_data(Cursor *c, size_t *len)
{
	size_t want = cur_byte(c);
	want = (want << 8) | cur_byte(c);
	size_t avail = (size_t)(c->end - c->p);
	if (want > avail)
		want = avail;
	const uint8_t *d = c->p;
	c->p += want;
	*len = want;
	return d;
}

static const char *const login_users[8] = {"app", "md5user", "pgbouncer", "statsuser",
					   "nosuch", "scramuser", "app", "app"};
static const char *const login_dbs[8] = {"appdb", "forcedb", "pgbouncer", "nosuchdb",
					 "downdb", "otherdb", "tcpdown", "tcpdb"};

static const char *const queries[16] = {
	"SELECT 1", "BEGIN", "COMMIT", "ROLLBACK", "SELECT big", "COPY t FROM STDIN", "COPY t TO STDOUT",
	"ERROR please", "SET application_name = 'fz'", "", "NOTIFY chan", "DISCARD ALL", "FATAL please",
	"BEGIN; SELECT 1; COMMIT", "SET TimeZone='UTC'", "SELECT 2",
};

static void msg_append(uint8_t *buf, size_t *n, size_t cap, uint8_t type, const void *body, size_t len)
{
	if (*n + 5 + len > cap)
		return;
	buf[*n] = type;
	put32(buf + *n + 1, (uint32_t)len + 4);
	if (len)
		memcpy(buf + *n + 5, body, len);
	*n += 5 + len;
}

static void send_ext(NsConn *c, uint8_t b)
{
	uint8_t buf[512];
	size_t n = 0;
	static const uint8_t parse_unnamed[] = "\0SELECT 1\0\0\0";
	static const uint8_t parse_named[] = "s1\0SELECT $1\0\0\0";
	static const uint8_t bind_unnamed[] = "\0\0\0\0\0\0\0\0\0\0";
	static const uint8_t bind_named[] = "\0s1\0\0\0\0\x01\0\0\0\x01" "7\0\0";
	static const uint8_t exec_unnamed[] = "\0\0\0\0\0";
	static const uint8_t desc_s1[] = "Ss1\0";
	static const uint8_t close_s1[] = "Ss1\0";
	static const uint8_t fcall[] = "\0\0\x04\x00\0\0\0\0\0\x01\0\0\0\x01" "1\0\0";
	switch (b % 8) {
	case 0:
		msg_append(buf, &n, sizeof(buf), 'P', parse_unnamed, sizeof(parse_unnamed) - 1);
		msg_append(buf, &n, sizeof(buf), 'B', bind_unnamed, sizeof(bind_unnamed) - 1);
		msg_append(buf, &n, sizeof(buf), 'E', exec_unnamed, sizeof(exec_unnamed) - 1);
		msg_append(buf, &n, sizeof(buf), 'S', NULL, 0);
		break;
	case 1:
		msg_append(buf, &n, sizeof(buf), 'P', parse_named, sizeof(parse_named) - 1);
		msg_append(buf, &n, sizeof(buf), 'D', desc_s1, sizeof(desc_s1) - 1);
		msg_append(buf, &n, sizeof(buf), 'S', NULL, 0);
		break;
	case 2:
		msg_append(buf, &n, sizeof(buf), 'B', bind_named, sizeof(bind_named) - 1);
		msg_append(buf, &n, sizeof(buf), 'E', exec_unnamed, sizeof(exec_unnamed) - 1);
		msg_append(buf, &n, sizeof(buf), 'S', NULL, 0);
		break;
	case 3:
		msg_append(buf, &n, sizeof(buf), 'H', NULL, 0);
		break;
	case 4:
		msg_append(buf, &n, sizeof(buf), 'S', NULL, 0);
		break;
	case 5:
		msg_append(buf, &n, sizeof(buf), 'P', parse_unnamed, sizeof(parse_unnamed) - 1);
		msg_append(buf, &n, sizeof(buf), 'B', bind_unnamed, sizeof(bind_unnamed) - 1);
		msg_append(buf, &n, sizeof(buf), 'E', exec_unnamed, sizeof(exec_unnamed) - 1);
		break;
	case 6:
		msg_append(buf, &n, sizeof(buf), 'C', close_s1, sizeof(close_s1) - 1);
		msg_append(buf, &n, sizeof(buf), 'S', NULL, 0);
		break;
	default:
		msg_append(buf, &n, sizeof(buf), 'F', fcall, sizeof(fcall) - 1);
		break;
	}
	conn_queue(c, buf, n);
}

static void do_reload(uint8_t b)
{
	NsVariant nv = ns.v;
	nv.b[0] ^= (uint8_t)(b & 0x7f);
	char *ini = build_ini(&nv, (b & 0x80) != 0);
	write_text(ns.ini_path, ini);
	free(ini);
	char err[1024];
	(void)app_reload(&ns.app, err, sizeof(err));
}

static void do_cancel(uint8_t b)
{
	NsConn *src = (ns.ncli > 0 && ns.cli[ns.cur_cli].used) ? &ns.cli[ns.cur_cli] : NULL;
	uint32_t pid = src && src->have_key ? src->key_pid : b;
	uint32_t key = src && src->have_key ? src->key_key : b;
	if (b & 1)
		key ^= 0x55aa;
	int keep = ns.cur_cli;
	int ci = ns_client_new(true);
	if (ci < 0)
		return;
	uint8_t pkt[16];
	put32(pkt, 16);
	put32(pkt + 4, 80877102);
	put32(pkt + 8, pid);
	put32(pkt + 12, key);
	conn_queue(&ns.cli[ci], pkt, sizeof(pkt));
	ns.cur_cli = keep;
}

void ns_run_ops(const uint8_t *data, size_t size, NsDefault dflt)
{
	Cursor c = {data, data + size};
	for (int nops = 0; nops < 256 && c.p < c.end; nops++) {
		uint8_t op = cur_byte(&c);
		if (op >= 0xf0) {
			/* plain data for the default side: op & 0x0f bytes, or the rest if zero */
			size_t len = (op & 0x0f) ? (size_t)(op & 0x0f) : (size_t)(c.end - c.p);
			if (len > (size_t)(c.end - c.p))
				len = (size_t)(c.end - c.p);
			if (dflt == NS_DEFAULT_SERVER) {
				if (ns.nsrv > 0)
					conn_queue(&ns.srv[ns.cur_srv], c.p, len);
			} else {
				NsConn *cl = cur_client();
				if (cl)
					conn_queue(cl, c.p, len);
			}
			c.p += len;
			ns_pump(PUMP_ROUNDS);
			continue;
		}
		NsConn *cl;
		size_t len;
		const uint8_t *d;
		uint8_t b;
		switch (op % 16) {
		case 0:
			d = cur_data(&c, &len);
			if ((cl = cur_client()))
				conn_queue(cl, d, len);
			break;
		case 1:
			d = cur_data(&c, &len);
			if (ns.nsrv > 0)
				conn_queue(&ns.srv[ns.cur_srv], d, len);
			break;
		case 2:
			b = cur_byte(&c);
			ns_client_new(!(b & 1));
			break;
		case 3: {
			b = cur_byte(&c);
			if (!(cl = cur_client()))
				break;
			static const char *const tracked[] = {"application_name", "fuzz", "client_encoding", "UTF8",
							      "DateStyle", "ISO", NULL};
			static const char *const bad[] = {"extra_float_digits", "3", "search_path", "x", NULL};
			static const char *const logical[] = {"replication", "database", "options", "-c geqo=off",
							      "application_name", "fuzz", NULL};
			static const char *const physical[] = {"replication", "yes", "application_name", "fuzz",
							       NULL};
			const char *const *params = (b & 0xc0) == 0xc0 ? ((b & 0x08) ? logical : physical)
						    : (b & 0x80)       ? bad
						    : (b & 0x40)       ? tracked
								       : NULL;
			ns_client_login(ns.cur_cli, login_users[b & 7], login_dbs[(b >> 3) & 7], params);
			break;
		}
		case 4:
			b = cur_byte(&c);
			if ((cl = cur_client()))
				ns_client_answer_auth(ns.cur_cli, (b & 1) ? password_of(cl->user) : "wrong");
			break;
		case 5:
			b = cur_byte(&c);
			if ((cl = cur_client()))
				ns_client_query_marked(ns.cur_cli, queries[b & 15]);
			break;
		case 6:
			b = cur_byte(&c);
			if ((cl = cur_client()))
				send_ext(cl, b);
			break;
		case 7:
			b = cur_byte(&c);
			if (ns.ncli > 0 && (cl = &ns.cli[ns.cur_cli])->fd >= 0) {
				if (b & 1) {
					send_typed(cl, 'X', NULL, 0);
					conn_flush(cl);
				}
				if (b & 2)
					shutdown(cl->fd, SHUT_WR);
				else
					conn_close(cl);
			}
			break;
		case 8:
			b = cur_byte(&c);
			if (ns.nsrv > 0 && ns.srv[ns.cur_srv].fd >= 0) {
				NsConn *s = &ns.srv[ns.cur_srv];
				if (b & 1) {
					srv_error(s, "FATAL", "57P01", "terminating connection due to administrator command");
					conn_flush(s);
				}
				conn_close(s);
			}
			break;
		case 9:
			b = cur_byte(&c);
			if (ns.ncli > 0)
				ns.cur_cli = (b & 7) % ns.ncli;
			if (ns.nsrv > 0)
				ns.cur_srv = (b >> 3) % ns.nsrv;
			break;
		case 10:
			b = cur_byte(&c);
			ns.auto_pg = b & 1;
			ns.pg_auth = (b >> 1) & 3;
			break;
		case 11:
			b = cur_byte(&c);
			if (ns.ncli > 0)
				ns.cli[ns.cur_cli].drain = !(b & 1);
			break;
		case 12:
			b = cur_byte(&c);
			if (b & 0x80)
				janitor_run(ns.app.workers[0]);
			if (b & 0x40)
				ns_wait_ms(1 + (b & 0x3f)); /* timers */
			else
				ns_pump(PUMP_ROUNDS + (b & 0x3f));
			break;
		case 13:
			do_reload(cur_byte(&c));
			break;
		case 14:
			do_cancel(cur_byte(&c));
			break;
		case 15: {
			d = cur_data(&c, &len);
			b = cur_byte(&c);
			if (!(cl = cur_client()))
				break;
			send_typed(cl, 'd', d, len);
			if (b == 1)
				send_typed(cl, 'c', NULL, 0);
			else if (b == 2)
				send_typed(cl, 'f', "stop\0", 5);
			break;
		}
		}
		ns_pump(PUMP_ROUNDS);
	}
}
