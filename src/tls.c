/* tls.c: TLS contexts, the non-blocking handshake and the TLS SBufIO (see tls.h).
 *
 * A connection that starts TLS gets a TlsConn in sb->io_ctx and, during the handshake, an io
 * that reads nothing and drops writes (the sbuf is paused meanwhile; a pooler error cannot be
 * delivered mid-handshake anyway). The handshake runs on its own event on the socket; when it
 * completes, sb->io becomes the TLS io and the owner's callback resumes the sbuf. sbuf_close()
 * calls the io's close hook, which frees everything, so a stalled handshake is ended by
 * whatever closes the connection (client_login_timeout, server_connect_timeout). */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "proto.h"

static const char *const mode_names[] = {"disable",   "allow",       "prefer", "require",
                                         "verify-ca", "verify-full", NULL};

static struct {
	SSL_CTX *accept_ctx;  /* towards clients: we are the TLS server */
	SSL_CTX *connect_ctx; /* towards PostgreSQL: we are the TLS client */
	int client_mode;
	int server_mode;
	char *server_sig; /* server-side settings, to notice changes on reload */
} g;

typedef enum {
	PH_SEND_S,      /* client: write the 'S' answer to SSLRequest */
	PH_SEND_REQ,    /* server: write SSLRequest */
	PH_READ_ANSWER, /* server: read its one-byte answer */
	PH_HANDSHAKE,
	PH_DONE,
} Phase;

typedef struct TlsConn {
	SSL *ssl;
	SBuf *sb;
	const SBufIO *raw_io;
	struct event ev;
	bool ev_added;
	bool connecting; /* we are the TLS client */
	int mode;
	Phase phase;
	size_t sent;
	TlsDoneFn done;
	/* An SSL_write that would block must be retried with the same bytes (sbuf does: the
	 * same start, possibly more behind). Their head is kept to refuse anything else rather
	 * than let OpenSSL send the old record in place of different data. */
	size_t pend_len;
	uint8_t pend_head[32];
} TlsConn;

int tls_mode_from_name(const char *sslmode)
{
	for (int i = 0; sslmode && mode_names[i]; i++)
		if (strcasecmp(sslmode, mode_names[i]) == 0)
			return i;
	return TLS_MODE_DISABLE;
}

int tls_client_mode(void)
{
	return g.accept_ctx ? g.client_mode : TLS_MODE_DISABLE;
}

int tls_server_mode(void)
{
	return g.connect_ctx ? g.server_mode : TLS_MODE_DISABLE;
}

/* ---------------------------------------------------------------- configuration */

static int set_err(char *err, size_t errlen, const char *what, const char *arg)
{
	char ssl_err[256] = "";
	unsigned long e = ERR_peek_last_error();
	if (e)
		ERR_error_string_n(e, ssl_err, sizeof(ssl_err));
	ERR_clear_error();
	snprintf(err, errlen, "TLS setup failed: %s%s%s%s%s", what, arg ? " " : "", arg ? arg : "",
	         ssl_err[0] ? ": " : "", ssl_err);
	return -1;
}

int tls_parse_protocols(const char *text, int *min_version, int *max_version)
{
	static const struct {
		const char *name;
		int bits;
	} words[] = {{"tlsv1.0", 1},  {"tlsv1", 1},   {"tlsv1.1", 2}, {"tlsv1.2", 4},
	             {"tlsv1.3", 8},  {"all", 15},    {"legacy", 15}, {"secure", 12},
	             {"default", 12}, {"normal", 12}, {NULL, 0}};
	static const int versions[] = {TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION, TLS1_3_VERSION};
	int bits = 0, any = 0;
	const char *p = text ? text : "";
	while (*p) {
		char word[32];
		size_t n;
		int neg = 0, i;
		while (*p == ',' || *p == ':' || *p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		if (*p == '-' || *p == '!') {
			neg = 1;
			p++;
		} else if (*p == '+') {
			p++;
		}
		n = strcspn(p, ",: \t");
		if (n == 0 || n >= sizeof(word))
			return -1;
		memcpy(word, p, n);
		word[n] = 0;
		p += n;
		for (i = 0; words[i].name && strcasecmp(words[i].name, word) != 0; i++)
			;
		if (!words[i].name)
			return -1;
		if (neg && !any)
			bits = 12; /* "-tlsv1.2" alone: from the secure default */
		bits = neg ? bits & ~words[i].bits : bits | words[i].bits;
		any = 1;
	}
	if (!any)
		bits = 12;
	if (!bits)
		return -1;
	int lo = 0, hi = 3;
	while (!(bits & (1 << lo)))
		lo++;
	while (!(bits & (1 << hi)))
		hi--;
	*min_version = versions[lo];
	*max_version = versions[hi];
	return 0;
}

static const char *cipher_preset(const char *name)
{
	if (!name || !*name || strcasecmp(name, "default") == 0 || strcasecmp(name, "secure") == 0 ||
	    strcasecmp(name, "normal") == 0 || strcasecmp(name, "fast") == 0)
		return "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL";
	if (strcasecmp(name, "compat") == 0 || strcasecmp(name, "legacy") == 0)
		return "HIGH:!aNULL";
	if (strcasecmp(name, "insecure") == 0 || strcasecmp(name, "all") == 0)
		return "ALL:!aNULL:!eNULL";
	return name;
}

/* Settings both directions share: protocols, ciphers, TLS 1.3 suites, I/O modes. */
static int ctx_common(SSL_CTX *ctx, const char *protocols, const char *ciphers, const char *tls13,
                      const char *prefix, char *err, size_t errlen)
{
	int lo, hi;
	char what[96];
	if (tls_parse_protocols(protocols, &lo, &hi) < 0) {
		snprintf(what, sizeof(what), "invalid %s_tls_protocols", prefix);
		return set_err(err, errlen, what, protocols);
	}
	if (!SSL_CTX_set_min_proto_version(ctx, lo) || !SSL_CTX_set_max_proto_version(ctx, hi))
		return set_err(err, errlen, "cannot set the protocol versions", protocols);
	if (!SSL_CTX_set_cipher_list(ctx, cipher_preset(ciphers))) {
		snprintf(what, sizeof(what), "failed to set the cipher list from %s_tls_ciphers", prefix);
		return set_err(err, errlen, what, ciphers);
	}
	if (tls13 && *tls13 && !SSL_CTX_set_ciphersuites(ctx, tls13)) {
		snprintf(what, sizeof(what), "failed to set the TLSv1.3 cipher suites from %s_tls13_ciphers",
		         prefix);
		return set_err(err, errlen, what, tls13);
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	/* sbuf retries a write with the same bytes from a possibly moved or longer buffer */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return 0;
}

static SSL_CTX *build_accept_ctx(const Config *cf, int mode, char *err, size_t errlen)
{
	SSL_CTX *ctx;
	if (!cf->client_tls_cert_file || !*cf->client_tls_cert_file || !cf->client_tls_key_file ||
	    !*cf->client_tls_key_file) {
		snprintf(err, errlen,
		         "TLS setup failed: client_tls_sslmode = %s needs client_tls_cert_file "
		         "and client_tls_key_file",
		         mode_names[mode]);
		return NULL;
	}
	if (mode >= TLS_MODE_VERIFY_CA && (!cf->client_tls_ca_file || !*cf->client_tls_ca_file)) {
		snprintf(err, errlen, "TLS setup failed: client_tls_sslmode = %s needs client_tls_ca_file",
		         mode_names[mode]);
		return NULL;
	}
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		set_err(err, errlen, "cannot create a context", NULL);
		return NULL;
	}
	if (ctx_common(ctx, cf->client_tls_protocols, cf->client_tls_ciphers, cf->client_tls13_ciphers,
	               "client", err, errlen) < 0)
		goto fail;
	if (SSL_CTX_use_certificate_chain_file(ctx, cf->client_tls_cert_file) != 1) {
		set_err(err, errlen, "cannot load client_tls_cert_file", cf->client_tls_cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cf->client_tls_key_file, SSL_FILETYPE_PEM) != 1) {
		set_err(err, errlen, "cannot load client_tls_key_file", cf->client_tls_key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		set_err(err, errlen, "client_tls_key_file does not match client_tls_cert_file", NULL);
		goto fail;
	}
	if (cf->client_tls_ca_file && *cf->client_tls_ca_file) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cf->client_tls_ca_file);
		if (SSL_CTX_load_verify_locations(ctx, cf->client_tls_ca_file, NULL) != 1 || !names) {
			sk_X509_NAME_pop_free(names, X509_NAME_free);
			set_err(err, errlen, "cannot load client_tls_ca_file", cf->client_tls_ca_file);
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		/* a certificate is asked for (cert auth); required in the verify modes */
		SSL_CTX_set_verify(
		    ctx, SSL_VERIFY_PEER | (mode >= TLS_MODE_VERIFY_CA ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
		    NULL);
	}
	if (cf->client_tls_ecdhcurve && *cf->client_tls_ecdhcurve &&
	    strcasecmp(cf->client_tls_ecdhcurve, "auto") != 0 &&
	    strcasecmp(cf->client_tls_ecdhcurve, "none") != 0 &&
	    SSL_CTX_set1_groups_list(ctx, cf->client_tls_ecdhcurve) != 1) {
		set_err(err, errlen, "invalid client_tls_ecdhcurve", cf->client_tls_ecdhcurve);
		goto fail;
	}
	const char *dh = cf->client_tls_dheparams ? cf->client_tls_dheparams : "auto";
	if (strcasecmp(dh, "auto") == 0 || strcasecmp(dh, "legacy") == 0) {
		SSL_CTX_set_dh_auto(ctx, 1);
	} else if (strcasecmp(dh, "none") != 0) {
		set_err(err, errlen, "invalid client_tls_dheparams (none, auto or legacy)", dh);
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

static SSL_CTX *build_connect_ctx(const Config *cf, int mode, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		set_err(err, errlen, "cannot create a context", NULL);
		return NULL;
	}
	if (ctx_common(ctx, cf->server_tls_protocols, cf->server_tls_ciphers, cf->server_tls13_ciphers,
	               "server", err, errlen) < 0)
		goto fail;
	if (cf->server_tls_cert_file && *cf->server_tls_cert_file) {
		if (SSL_CTX_use_certificate_chain_file(ctx, cf->server_tls_cert_file) != 1) {
			set_err(err, errlen, "cannot load server_tls_cert_file", cf->server_tls_cert_file);
			goto fail;
		}
		const char *key = cf->server_tls_key_file && *cf->server_tls_key_file
		                      ? cf->server_tls_key_file
		                      : cf->server_tls_cert_file;
		if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			set_err(err, errlen, "cannot load server_tls_key_file", key);
			goto fail;
		}
	}
	if (cf->server_tls_ca_file && *cf->server_tls_ca_file) {
		if (SSL_CTX_load_verify_locations(ctx, cf->server_tls_ca_file, NULL) != 1) {
			set_err(err, errlen, "cannot load server_tls_ca_file", cf->server_tls_ca_file);
			goto fail;
		}
	} else if (mode >= TLS_MODE_VERIFY_CA) {
		SSL_CTX_set_default_verify_paths(ctx);
	}
	SSL_CTX_set_verify(ctx, mode >= TLS_MODE_VERIFY_CA ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

static char *server_signature(const Config *cf)
{
	const char *v[] = {cf->server_tls_sslmode,   cf->server_tls_ca_file,   cf->server_tls_key_file,
	                   cf->server_tls_cert_file, cf->server_tls_protocols, cf->server_tls_ciphers,
	                   cf->server_tls13_ciphers};
	size_t len = 1;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		len += (v[i] ? strlen(v[i]) : 0) + 1;
	char *s = malloc(len), *o = s;
	if (!s)
		return NULL;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		o += sprintf(o, "%s\n", v[i] ? v[i] : "");
	return s;
}

int tls_configure(const Config *cf, bool *server_changed, char *err, size_t errlen)
{
	int cmode = tls_mode_from_name(cf->client_tls_sslmode);
	int smode = tls_mode_from_name(cf->server_tls_sslmode);
	SSL_CTX *actx = NULL, *cctx = NULL;
	if (cmode != TLS_MODE_DISABLE && !(actx = build_accept_ctx(cf, cmode, err, errlen)))
		return -1;
	if (smode != TLS_MODE_DISABLE && !(cctx = build_connect_ctx(cf, smode, err, errlen))) {
		SSL_CTX_free(actx);
		return -1;
	}
	char *sig = server_signature(cf);
	if (server_changed)
		*server_changed = !g.server_sig || !sig || strcmp(g.server_sig, sig) != 0;
	/* connections hold a reference to the context they were made with */
	SSL_CTX_free(g.accept_ctx);
	SSL_CTX_free(g.connect_ctx);
	free(g.server_sig);
	g.accept_ctx = actx;
	g.connect_ctx = cctx;
	g.client_mode = cmode;
	g.server_mode = smode;
	g.server_sig = sig;
	return 0;
}

void tls_cleanup(void)
{
	SSL_CTX_free(g.accept_ctx);
	SSL_CTX_free(g.connect_ctx);
	free(g.server_sig);
	memset(&g, 0, sizeof(g));
}

/* ---------------------------------------------------------------- I/O */

static void conn_free(TlsConn *t)
{
	if (t->ev_added)
		event_del(&t->ev);
	SSL_free(t->ssl);
	free(t);
}

static ssize_t hs_recv(SBuf *sb, void *buf, size_t len)
{
	errno = EAGAIN;
	return -1;
}

static ssize_t hs_send(SBuf *sb, const void *buf, size_t len)
{
	return (ssize_t)len; /* mid-handshake nothing can be delivered: drop it */
}

static void hs_close(SBuf *sb)
{
	conn_free(sb->io_ctx);
}

static const SBufIO hs_io = {hs_recv, hs_send, NULL, hs_close};

/* errno for an SSL_read/SSL_write result that is not progress. */
static ssize_t io_result(TlsConn *t, int r)
{
	int e = SSL_get_error(t->ssl, r);
	ERR_clear_error();
	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (errno == 0 || errno == EAGAIN)
			errno = ECONNRESET;
		return -1;
	default:
		errno = EPROTO;
		return -1;
	}
}

static ssize_t tls_recv(SBuf *sb, void *buf, size_t len)
{
	TlsConn *t = sb->io_ctx;
	int n = SSL_read(t->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	return n > 0 ? n : io_result(t, n);
}

static ssize_t tls_send(SBuf *sb, const void *buf, size_t len)
{
	TlsConn *t = sb->io_ctx;
	size_t head = len < sizeof(t->pend_head) ? len : sizeof(t->pend_head);
	if (len == 0)
		return 0;
	if (t->pend_len && (len < t->pend_len || memcmp(buf, t->pend_head, head) != 0)) {
		errno = EPROTO; /* not the retry OpenSSL needs: fail instead of corrupting */
		return -1;
	}
	int n = SSL_write(t->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	if (n > 0) {
		t->pend_len = 0;
		return n;
	}
	if (SSL_get_error(t->ssl, n) == SSL_ERROR_WANT_WRITE && !t->pend_len) {
		t->pend_len = len < sizeof(t->pend_head) ? len : sizeof(t->pend_head);
		memcpy(t->pend_head, buf, t->pend_len);
	}
	n = (int)io_result(t, n);
	if (n == 0) {
		errno = EPIPE;
		return -1;
	}
	return n;
}

static bool tls_pending(const SBuf *sb)
{
	TlsConn *t = sb->io_ctx;
	return t && SSL_has_pending(t->ssl);
}

static void tls_close(SBuf *sb)
{
	TlsConn *t = sb->io_ctx;
	/* a polite close_notify if the socket takes it right away; never wait for the peer's */
	if (sb->fd >= 0 && !(SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN))
		SSL_shutdown(t->ssl);
	ERR_clear_error();
	conn_free(t);
}

static const SBufIO tls_io = {tls_recv, tls_send, tls_pending, tls_close};

bool tls_active(const SBuf *sb)
{
	return sb->io == &tls_io;
}

/* ---------------------------------------------------------------- handshake */

static void hs_step(TlsConn *t);

static void on_hs_event(evutil_socket_t fd, short what, void *arg)
{
	TlsConn *t = arg;
	t->ev_added = false;
	hs_step(t);
}

static void hs_wait(TlsConn *t, short what)
{
	if (t->ev_added)
		event_del(&t->ev);
	event_assign(&t->ev, t->sb->base, t->sb->fd, what, on_hs_event, t);
	event_add(&t->ev, NULL);
	t->ev_added = true;
}

static void hs_fail(TlsConn *t, const char *why)
{
	char msg[320];
	unsigned long e = ERR_peek_last_error();
	char ssl_err[200] = "";
	if (e)
		ERR_error_string_n(e, ssl_err, sizeof(ssl_err));
	ERR_clear_error();
	if (t->phase == PH_HANDSHAKE && SSL_get_verify_result(t->ssl) != X509_V_OK)
		snprintf(msg, sizeof(msg), "%s: certificate verify failed: %s", why,
		         X509_verify_cert_error_string(SSL_get_verify_result(t->ssl)));
	else
		snprintf(msg, sizeof(msg), "%s%s%s", why, ssl_err[0] ? ": " : "", ssl_err);
	t->phase = PH_DONE;
	t->done(t->sb, false, msg); /* may free t through sbuf_close */
}

static void hs_step(TlsConn *t)
{
	SBuf *sb = t->sb;
	for (;;) {
		switch (t->phase) {
		case PH_SEND_S:
		case PH_SEND_REQ: {
			uint8_t req[8] = {0,
			                  0,
			                  0,
			                  8,
			                  PROTO_SSL_REQUEST >> 24,
			                  (PROTO_SSL_REQUEST >> 16) & 0xff,
			                  (PROTO_SSL_REQUEST >> 8) & 0xff,
			                  PROTO_SSL_REQUEST & 0xff};
			const uint8_t *p = t->phase == PH_SEND_S ? (const uint8_t *)"S" : req;
			size_t len = t->phase == PH_SEND_S ? 1 : sizeof(req);
			ssize_t n = send(sb->fd, p + t->sent, len - t->sent, MSG_NOSIGNAL);
			if (n > 0) {
				t->sent += (size_t)n;
				if (t->sent == len)
					t->phase = t->phase == PH_SEND_S ? PH_HANDSHAKE : PH_READ_ANSWER;
				continue;
			}
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
				hs_wait(t, EV_WRITE);
				return;
			}
			hs_fail(t, "send failed");
			return;
		}
		case PH_READ_ANSWER: {
			/* exactly one byte: anything after it belongs to the TLS handshake */
			uint8_t b;
			ssize_t n = recv(sb->fd, &b, 1, 0);
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
				hs_wait(t, EV_READ);
				return;
			}
			if (n <= 0) {
				hs_fail(t, "server closed the connection during the TLS request");
				return;
			}
			if (b == 'S') {
				t->phase = PH_HANDSHAKE;
				continue;
			}
			if (b == 'N' && t->mode < TLS_MODE_REQUIRE) {
				/* plaintext is allowed: back to the raw socket */
				TlsDoneFn done = t->done;
				sb->io = t->raw_io;
				sb->io_ctx = NULL;
				conn_free(t);
				done(sb, true, NULL);
				return;
			}
			hs_fail(t, b == 'N' ? "server does not support TLS (server_tls_sslmode requires it)"
			                    : "bad answer to the TLS request");
			return;
		}
		case PH_HANDSHAKE: {
			ERR_clear_error();
			int r = t->connecting ? SSL_connect(t->ssl) : SSL_accept(t->ssl);
			if (r == 1) {
				TlsDoneFn done = t->done;
				t->phase = PH_DONE;
				sb->io = &tls_io;
				done(sb, true, NULL);
				return;
			}
			int e = SSL_get_error(t->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				hs_wait(t, e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE);
				return;
			}
			hs_fail(t, e == SSL_ERROR_SYSCALL && ERR_peek_last_error() == 0
			               ? "TLS handshake: peer went away"
			               : "TLS handshake failed");
			return;
		}
		case PH_DONE:
			return;
		}
	}
}

static TlsConn *conn_new(SBuf *sb, SSL_CTX *ctx, TlsDoneFn done)
{
	TlsConn *t;
	if (!ctx || sb->fd < 0 || sb->io_ctx)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->ssl = SSL_new(ctx);
	if (!t->ssl || SSL_set_fd(t->ssl, sb->fd) != 1) {
		SSL_free(t->ssl);
		free(t);
		ERR_clear_error();
		return NULL;
	}
	t->sb = sb;
	t->done = done;
	t->raw_io = sb->io;
	return t;
}

/* Hand the socket to the handshake: the sbuf stops reading and its writes are dropped. */
static void conn_attach(TlsConn *t)
{
	sbuf_pause(t->sb);
	t->sb->io = &hs_io;
	t->sb->io_ctx = t;
	hs_step(t);
}

int tls_accept_start(SBuf *sb, TlsDoneFn done)
{
	TlsConn *t = conn_new(sb, g.accept_ctx, done);
	if (!t)
		return -1;
	t->mode = g.client_mode;
	t->phase = PH_SEND_S;
	SSL_set_accept_state(t->ssl);
	conn_attach(t);
	return 0;
}

int tls_connect_start(SBuf *sb, const char *host, TlsDoneFn done)
{
	TlsConn *t = conn_new(sb, g.connect_ctx, done);
	unsigned char addr[16];
	if (!t)
		return -1;
	t->mode = g.server_mode;
	t->connecting = true;
	t->phase = PH_SEND_REQ;
	SSL_set_connect_state(t->ssl);
	bool is_ip = host && (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1);
	if (host && *host && !is_ip)
		SSL_set_tlsext_host_name(t->ssl, host);
	if (t->mode == TLS_MODE_VERIFY_FULL && host && *host) {
		if (is_ip)
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host);
		else
			SSL_set1_host(t->ssl, host);
	}
	conn_attach(t);
	return 0;
}

/* ---------------------------------------------------------------- information */

void tls_describe(const SBuf *sb, char *buf, size_t buflen)
{
	TlsConn *t = sb->io_ctx;
	if (!buflen)
		return;
	buf[0] = 0;
	if (!tls_active(sb) || !t)
		return;
	const SSL_CIPHER *c = SSL_get_current_cipher(t->ssl);
	int group = SSL_get_negotiated_group(t->ssl);
	const char *gname = group > 0 ? OBJ_nid2sn(group & ~TLSEXT_nid_unknown) : NULL;
	snprintf(buf, buflen, "%s/%s%s%s", SSL_get_version(t->ssl), c ? SSL_CIPHER_get_name(c) : "-",
	         gname && !(group & TLSEXT_nid_unknown) ? "/ECDH=" : "",
	         gname && !(group & TLSEXT_nid_unknown) ? gname : "");
}

int tls_channel_binding(const SBuf *sb, uint8_t *out, size_t outlen, size_t *len)
{
	TlsConn *t = sb->io_ctx;
	X509 *cert;
	const EVP_MD *md;
	int algo = NID_undef;
	unsigned int n = 0;
	*len = 0;
	if (!tls_active(sb) || !t || t->connecting || !(cert = SSL_get_certificate(t->ssl)))
		return -1;
	/* RFC 5929: the certificate's signature hash, SHA-256 instead of MD5 or SHA-1 */
	if (!OBJ_find_sigid_algs(X509_get_signature_nid(cert), &algo, NULL))
		return -1;
	if (algo == NID_md5 || algo == NID_sha1)
		algo = NID_sha256;
	md = EVP_get_digestbynid(algo);
	if (!md || (size_t)EVP_MD_get_size(md) > outlen || X509_digest(cert, md, out, &n) != 1)
		return -1;
	*len = n;
	return 0;
}

int tls_peer_common_name(const SBuf *sb, char *out, size_t outlen)
{
	TlsConn *t = sb->io_ctx;
	X509 *peer;
	int rc = -1;
	if (!tls_active(sb) || !t || outlen == 0)
		return -1;
	peer = SSL_get1_peer_certificate(t->ssl);
	if (!peer)
		return -1;
	if (SSL_get_verify_result(t->ssl) == X509_V_OK) {
		int n =
		    X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, out, (int)outlen);
		/* a name with an embedded NUL is not a name */
		rc = n > 0 && (size_t)n < outlen && strlen(out) == (size_t)n ? 0 : -1;
	}
	X509_free(peer);
	return rc;
}
