/* tls.h: TLS for client and server connections (OpenSSL): the contexts built from the
 * configuration, a non-blocking handshake inside the event loop, and an SBufIO that sbuf uses
 * instead of the raw socket afterwards, so nothing above sbuf notices TLS. */
#ifndef TIDEPOOL_TLS_H
#define TIDEPOOL_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "sbuf.h"

/* The sslmode values of client_tls_sslmode / server_tls_sslmode, in their order. */
typedef enum {
	TLS_MODE_DISABLE = 0,
	TLS_MODE_ALLOW,
	TLS_MODE_PREFER,
	TLS_MODE_REQUIRE,
	TLS_MODE_VERIFY_CA,
	TLS_MODE_VERIFY_FULL,
} TlsMode;

/* Handshake outcome. ok with plaintext is possible towards a server that answered 'N' when the
 * mode allows it. err (on failure) is only valid during the call. The callback may close sb. */
typedef void (*TlsDoneFn)(SBuf *sb, bool ok, const char *err);

/* Build both contexts from cf (certificate and key files, CA, protocols, ciphers...). On
 * success they replace the current ones (connections keep theirs) and *server_changed says
 * whether the server-side settings differ from before; -1 with err otherwise. */
int tls_configure(const Config *cf, bool *server_changed, char *err, size_t errlen);
void tls_cleanup(void);

int tls_mode_from_name(const char *sslmode);
/* The modes of the configuration tls_configure last accepted. */
int tls_client_mode(void);
int tls_server_mode(void);

/* A client's SSLRequest was just read (and nothing after it): answer 'S' and run the
 * handshake. sb is paused until done is called. 0, or -1 (nothing started). */
int tls_accept_start(SBuf *sb, TlsDoneFn done);

/* A server socket just connected: send SSLRequest, read the answer, handshake as the mode
 * says. host is the name or address connected to (SNI, verify-full). sb is paused until
 * done. 0, or -1 (nothing started). */
int tls_connect_start(SBuf *sb, const char *host, TlsDoneFn done);

/* True once the connection runs over TLS. */
bool tls_active(const SBuf *sb);

/* "TLSv1.3/TLS_AES_256_GCM_SHA384[/ECDH=X25519]" as PgBouncer shows it; "" without TLS. */
void tls_describe(const SBuf *sb, char *buf, size_t buflen);

/* tls-server-end-point channel binding data (RFC 5929) of our certificate on a client
 * connection: 0 with *len set, or -1. */
int tls_channel_binding(const SBuf *sb, uint8_t *out, size_t outlen, size_t *len);

/* The common name of the client certificate, if one was presented and verified: 0, or -1. */
int tls_peer_common_name(const SBuf *sb, char *out, size_t outlen);

/* Parse a protocols setting ("secure", "all", "legacy", "tlsv1.2,tlsv1.3", "-tlsv1.0"...)
 * into OpenSSL's min/max versions. 0, or -1 (unknown word, or an empty range). */
int tls_parse_protocols(const char *text, int *min_version, int *max_version);

#endif
