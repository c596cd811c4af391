/* scram.h: md5 password hashing and SCRAM-SHA-256 (RFC 5802/7677), client and server side;
 * pure, no I/O. */
#ifndef TIDEPOOL_SCRAM_H
#define TIDEPOOL_SCRAM_H

#include <stddef.h>
#include <stdint.h>

#define SCRAM_KEY_LEN            32       /* SHA-256 output */
#define SCRAM_RAW_NONCE_LEN      18       /* random bytes behind our nonce, as PostgreSQL uses */
#define SCRAM_SALT_LEN           16       /* salt length scram_make_secret() generates */
#define SCRAM_DEFAULT_ITERATIONS 4096     /* PostgreSQL's default scram_iterations */
#define SCRAM_MAX_ITERATIONS     10000000 /* refuse more: a hostile server could stall us in PBKDF2 */
#define SCRAM_MAX_PASSWORD       65536    /* longest password we hold, in bytes (cloud IAM tokens) */
#define SCRAM_MAX_NONCE          128      /* longest client nonce (only injected ones are long) */
#define SCRAM_MAX_USER           63       /* longest user name in client-first (NAMEDATALEN - 1) */
#define SCRAM_MAX_SALT           64       /* longest salt we accept, decoded */
#define SCRAM_MAX_SERVER_MSG     2048     /* longest server-first/-final message we accept */
/* "n=" + user with every byte escaped as "=2C" + ",r=" + nonce */
#define SCRAM_MAX_FIRST_BARE (2 + 3 * SCRAM_MAX_USER + 3 + SCRAM_MAX_NONCE)

typedef enum {
	SCRAM_STATE_INIT = 0,
	SCRAM_STATE_SENT_FIRST, /* client-first sent, waiting for server-first */
	SCRAM_STATE_SENT_FINAL, /* client-final sent, waiting for server-final */
	SCRAM_STATE_DONE,       /* server proved it knows the password */
	SCRAM_STATE_FAILED,
} ScramState;

/* One SCRAM-SHA-256 client exchange. Fixed size so a server connection can embed it;
 * zero-initialise or let scram_client_start() do it. Holds a heap copy of the password
 * between start and continue (owned here, freed by continue or wipe), so always call
 * scram_client_wipe() when done, whatever the outcome. */
typedef struct ScramClient {
	ScramState state;
	size_t password_len;
	char *password; /* NULL once keys are derived */
	char client_nonce[SCRAM_MAX_NONCE + 1];
	size_t client_first_bare_len;
	char client_first_bare[SCRAM_MAX_FIRST_BARE + 1];
	uint8_t server_key[SCRAM_KEY_LEN];
	uint8_t server_signature[SCRAM_KEY_LEN]; /* what server-final's v= must carry */
	/* Pass-through (scram_client_start_with_keys): ClientKey instead of the password, valid
	 * only for the salt and iteration count of the secret it was recovered against. */
	int use_keys;
	uint8_t client_key[SCRAM_KEY_LEN];
	int key_iterations;
	size_t key_salt_len;
	uint8_t key_salt[SCRAM_MAX_SALT];
} ScramClient;

/* A parsed "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>" secret (pg_authid form). */
typedef struct ScramSecret {
	int iterations;
	size_t salt_len;
	uint8_t salt[SCRAM_MAX_SALT];
	uint8_t stored_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
} ScramSecret;

/* md5 ----------------------------------------------------------------------------------- */

/* Lower-case hex md5 of data. out is "" if the md5 digest is unavailable (FIPS mode). */
void pg_md5_hex(const void *data, size_t len, char out[33]);

/* "md5" + hex(md5(password || user)): the stored form in userlist.txt and pg_authid. */
void pg_md5_password(const char *password, const char *user, char out[36]);

/* The AuthenticationMD5Password answer "md5" + hex(md5(hex(md5(password || user)) || salt)).
 * secret may be the plain password or its stored "md5..." form. */
void pg_md5_response(const char *secret, const char *user, const uint8_t salt[4], char out[36]);

/* 1 if client_response is the right md5 answer for secret (plain or md5 form), else 0.
 * A SCRAM secret cannot answer md5 and always gives 0. */
int pg_md5_check(const char *secret, const char *user, const uint8_t salt[4], const char *client_response);

/* 1 if secret is the stored md5 form: "md5" followed by exactly 32 hex digits. */
int pg_md5_is_hash(const char *secret);

/* SCRAM-SHA-256 client ------------------------------------------------------------------ */

/* Begin an exchange: writes client-first-message "n,,n=,r=<nonce>" (NUL-terminated) into out
 * and its length, without the NUL, into *outlen_used. 0, or -1 (password too long, out too
 * small, no randomness). */
int scram_client_start(ScramClient *sc, const char *password, char *out, size_t outlen, size_t *outlen_used);

/* As scram_client_start() but with a given user name (NULL or "" sends "n=", as PostgreSQL
 * expects) and client nonce (printable ASCII without ','); for test vectors. */
int scram_client_start_with_nonce(ScramClient *sc, const char *password, const char *user, const char *nonce,
                                  char *out, size_t outlen, size_t *outlen_used);

/* Take server-first-message (len bytes, need not be NUL-terminated) and write
 * client-final-message into out. 0, or -1 with a message in err. */
int scram_client_continue(ScramClient *sc, const char *server_first, size_t len, char *out, size_t outlen,
                          size_t *outlen_used, char *err, size_t errlen);

/* Check server-final-message: 0 if its v= proves the server knows the password, -1 with a
 * message in err on a mismatch, a server "e=" error or a malformed message. */
int scram_client_finish(ScramClient *sc, const char *server_final, size_t len, char *err, size_t errlen);

/* Erase every secret the exchange holds; sc can be started again afterwards. */
void scram_client_wipe(ScramClient *sc);

/* Pass-through: begin an exchange that proves knowledge of client_key (recovered from a
 * client's SCRAM proof by scram_server_final) instead of a password. The server must answer
 * with exactly secret's salt and iteration count, i.e. store the identical secret; otherwise
 * scram_client_continue() fails. server_key (the secret's) checks the server's signature. */
int scram_client_start_with_keys(ScramClient *sc, const ScramSecret *secret,
                                 const uint8_t client_key[SCRAM_KEY_LEN], char *out, size_t outlen,
                                 size_t *outlen_used);

/* Secrets (server-side building blocks) ------------------------------------------------- */

/* Parse a SCRAM-SHA-256 secret. 0, or -1 if it is not exactly that form. */
int scram_parse_secret(const char *secret, ScramSecret *out);

/* Make a secret for password with a random 16-byte salt. 0, or -1 (iterations out of
 * 1..SCRAM_MAX_ITERATIONS, out too small, no randomness). */
int scram_make_secret(const char *password, int iterations, char *out, size_t outlen);

/* 1 if password produces secret's StoredKey and ServerKey, else 0. */
int scram_secret_check_password(const ScramSecret *secret, const char *password);

/* SCRAM-SHA-256 server (authenticating our clients) ------------------------------------ */

#define SCRAM_MAX_CBIND        64   /* tls-server-end-point data: a hash, at most SHA-512 */
#define SCRAM_MAX_CLIENT_MSG   1024 /* longest client-first/-final message we accept */
#define SCRAM_SERVER_NONCE_LEN 18   /* random bytes behind our part of the nonce */

typedef enum {
	SCRAM_SRV_INIT = 0,
	SCRAM_SRV_SENT_FIRST, /* server-first sent, waiting for client-final */
	SCRAM_SRV_DONE,       /* client proved it knows the password */
	SCRAM_SRV_FAILED,
} ScramServerState;

/* One exchange with a client. Holds the secret's keys: call scram_server_wipe() when done.
 * Sizeable (a few KiB), so connections keep it on the heap only while authenticating. */
typedef struct ScramServer {
	ScramServerState state;
	int mock;         /* no usable secret: looks like a real exchange, always fails */
	int plus_offered; /* client is on TLS: SCRAM-SHA-256-PLUS announced */
	int plus_used;    /* the client chose it (channel binding checked) */
	ScramSecret secret;
	size_t cbind_len;
	uint8_t cbind[SCRAM_MAX_CBIND]; /* tls-server-end-point hash of our certificate */
	size_t gs2_len;
	char gs2_header[64];
	size_t client_first_bare_len;
	char client_first_bare[SCRAM_MAX_CLIENT_MSG + 1];
	size_t server_first_len;
	char server_first[SCRAM_MAX_CLIENT_MSG + 128];
	size_t nonce_len;
	char nonce[SCRAM_MAX_CLIENT_MSG + 1]; /* client nonce + ours: client-final must echo it */
	uint8_t client_key[SCRAM_KEY_LEN];    /* recovered on success (SCRAM pass-through) */
} ScramServer;

/* Start an exchange against secret. cbind/cbind_len: the tls-server-end-point data of our
 * certificate when the client is on TLS (SCRAM-SHA-256-PLUS is then offered), NULL/0 when not. */
void scram_server_init(ScramServer *ss, const ScramSecret *secret, const uint8_t *cbind, size_t cbind_len);

/* The same for a user without a usable secret (unknown user, md5-only secret): a fake secret
 * whose salt is derived from the user name and a per-process random key, so repeated attempts
 * see the same salt as for a real user; scram_server_final() always fails. 0 or -1. */
int scram_server_init_mock(ScramServer *ss, const char *user, int iterations, const uint8_t *cbind,
                           size_t cbind_len);

/* The AuthenticationSASL body: mechanism names, each NUL-terminated, then a final NUL.
 * Bytes written, or -1 if out is too small. */
int scram_server_mechanisms(const ScramServer *ss, char *out, size_t outlen);

/* Take SASLInitialResponse (mechanism and client-first-message) and write server-first into
 * out. 0, or -1 with the reason in err (the client is only told that SASL failed). */
int scram_server_first(ScramServer *ss, const char *mech, const char *msg, size_t len, char *out,
                       size_t outlen, size_t *outlen_used, char *err, size_t errlen);

/* As scram_server_first() with our nonce part given (printable, no ','); for test vectors. */
int scram_server_first_with_nonce(ScramServer *ss, const char *mech, const char *msg, size_t len,
                                  const char *server_nonce, char *out, size_t outlen, size_t *outlen_used,
                                  char *err, size_t errlen);

/* Take client-final-message: verify channel binding, nonce and proof (constant time); on
 * success write server-final ("v=...") into out, keep ClientKey in ss->client_key and
 * return 0. -1 with the reason in err otherwise (always for a mock exchange). */
int scram_server_final(ScramServer *ss, const char *msg, size_t len, char *out, size_t outlen,
                       size_t *outlen_used, char *err, size_t errlen);

void scram_server_wipe(ScramServer *ss);

/* 1 if client_key hashes to secret's StoredKey (keys recovered for that very secret). */
int scram_client_key_matches(const ScramSecret *secret, const uint8_t client_key[SCRAM_KEY_LEN]);

/* Base64 (RFC 4648, with padding) ------------------------------------------------------- */

/* Encode len bytes into out (NUL-terminated). Characters written, or -1 if out is too small. */
int scram_b64_encode(const uint8_t *in, size_t len, char *out, size_t outlen);

/* Decode exactly len characters; rejects bad characters, misplaced or missing padding and
 * non-zero leftover bits. Bytes written, or -1 (also if out is too small). */
int scram_b64_decode(const char *in, size_t len, uint8_t *out, size_t outlen);

#endif
