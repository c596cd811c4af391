/* scram.c: md5 password hashing and SCRAM-SHA-256 (RFC 5802/7677), client and server side;
 * pure, no I/O. */
#include "scram.h"

#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <pthread.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define SCRAM_SECRET_PREFIX "SCRAM-SHA-256$"
/* base64("n,,"): the gs2 header echoed in client-final, no channel binding */
#define SCRAM_GS2_B64 "biws"

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

__attribute__((format(printf, 3, 4))) static void scram_set_err(char *err, size_t errlen, const char *fmt,
                                                                ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Base64 -------------------------------------------------------------------------------- */

int scram_b64_encode(const uint8_t *in, size_t len, char *out, size_t outlen)
{
	size_t need = (len + 2) / 3 * 4;
	size_t i, o = 0;

	if (need + 1 > outlen || need > (size_t)INT32_MAX)
		return -1;
	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64_alphabet[v >> 18 & 63];
		out[o++] = b64_alphabet[v >> 12 & 63];
		out[o++] = b64_alphabet[v >> 6 & 63];
		out[o++] = b64_alphabet[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = b64_alphabet[v >> 18 & 63];
		out[o++] = b64_alphabet[v >> 12 & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64_alphabet[v >> 18 & 63];
		out[o++] = b64_alphabet[v >> 12 & 63];
		out[o++] = b64_alphabet[v >> 6 & 63];
		out[o++] = '=';
	}
	out[o] = '\0';
	return (int)o;
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int scram_b64_decode(const char *in, size_t len, uint8_t *out, size_t outlen)
{
	size_t i, o = 0;

	if (len % 4 != 0 || len / 4 * 3 > (size_t)INT32_MAX)
		return -1;
	for (i = 0; i < len; i += 4) {
		int last = i + 4 == len;
		int pad = 0, k;
		uint32_t v = 0;

		/* '=' may only end the final quantum, as "x=" or "xx=="-style tails */
		if (last && in[i + 3] == '=')
			pad = in[i + 2] == '=' ? 2 : 1;
		for (k = 0; k < 4 - pad; k++) {
			int d = b64_value(in[i + k]);
			if (d < 0)
				return -1;
			v = v << 6 | (uint32_t)d;
		}
		v <<= 6 * pad;
		/* strict: the bits below the last real byte must be zero, so each byte string
		 * has exactly one encoding */
		if ((pad == 1 && (v & 0xff) != 0) || (pad == 2 && (v & 0xffff) != 0))
			return -1;
		if (o + (size_t)(3 - pad) > outlen)
			return -1;
		out[o++] = (uint8_t)(v >> 16);
		if (pad < 2)
			out[o++] = (uint8_t)(v >> 8);
		if (pad < 1)
			out[o++] = (uint8_t)v;
	}
	return (int)o;
}

/* md5 ----------------------------------------------------------------------------------- */

static const char hex_digits[] = "0123456789abcdef";

/* hex(md5(a || b)) into out; 0, or -1 with out = "" when md5 is unavailable (FIPS). */
static int md5_hex_parts(const void *a, size_t alen, const void *b, size_t blen, char out[33])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int ok;

	ok = ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 && EVP_DigestUpdate(ctx, a, alen) == 1 &&
	     EVP_DigestUpdate(ctx, b, blen) == 1 && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 16;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		out[0] = '\0';
		return -1;
	}
	for (unsigned int i = 0; i < 16; i++) {
		out[2 * i] = hex_digits[md[i] >> 4];
		out[2 * i + 1] = hex_digits[md[i] & 15];
	}
	out[32] = '\0';
	OPENSSL_cleanse(md, sizeof(md));
	return 0;
}

void pg_md5_hex(const void *data, size_t len, char out[33])
{
	md5_hex_parts(data, len, "", 0, out);
}

void pg_md5_password(const char *password, const char *user, char out[36])
{
	memcpy(out, "md5", 3);
	if (md5_hex_parts(password, strlen(password), user, strlen(user), out + 3) < 0)
		out[0] = '\0';
}

int pg_md5_is_hash(const char *secret)
{
	if (strncmp(secret, "md5", 3) != 0 || strlen(secret) != 35)
		return 0;
	for (int i = 3; i < 35; i++) {
		char c = secret[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			return 0;
	}
	return 1;
}

void pg_md5_response(const char *secret, const char *user, const uint8_t salt[4], char out[36])
{
	char inner[33];

	if (pg_md5_is_hash(secret)) {
		/* the stored hash is what the client hashes with the salt; PostgreSQL writes it
		 * in lower case, so fold any upper-case copy to match what clients compute */
		for (int i = 0; i < 32; i++) {
			char c = secret[3 + i];
			inner[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
		}
		inner[32] = '\0';
	} else if (md5_hex_parts(secret, strlen(secret), user, strlen(user), inner) < 0) {
		out[0] = '\0';
		return;
	}
	memcpy(out, "md5", 3);
	if (md5_hex_parts(inner, 32, salt, 4, out + 3) < 0)
		out[0] = '\0';
	OPENSSL_cleanse(inner, sizeof(inner));
}

int pg_md5_check(const char *secret, const char *user, const uint8_t salt[4], const char *client_response)
{
	ScramSecret scram;
	char expected[36];
	int ok;

	if (!secret || !user || !client_response)
		return 0;
	/* a SCRAM verifier cannot be turned back into the md5 hash the answer needs */
	if (scram_parse_secret(secret, &scram) == 0) {
		OPENSSL_cleanse(&scram, sizeof(scram));
		return 0;
	}
	pg_md5_response(secret, user, salt, expected);
	/* lengths are public; only the content comparison must not leak timing */
	ok = strlen(expected) == 35 && strlen(client_response) == 35 &&
	     CRYPTO_memcmp(expected, client_response, 35) == 0;
	OPENSSL_cleanse(expected, sizeof(expected));
	return ok;
}

/* SCRAM key derivation ------------------------------------------------------------------ */

static int hmac_sha256(const uint8_t *key, size_t keylen, const void *data, size_t len,
                       uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int outlen = 0;

	if (!HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &outlen) || outlen != SCRAM_KEY_LEN)
		return -1;
	return 0;
}

static int sha256(const void *data, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int outlen = 0;

	if (EVP_Digest(data, len, out, &outlen, EVP_sha256(), NULL) != 1 || outlen != SCRAM_KEY_LEN)
		return -1;
	return 0;
}

/* SaltedPassword = Hi(password, salt, i), then ClientKey, StoredKey and ServerKey.
 *
 * Password normalisation: PostgreSQL runs the password through SASLprep (RFC 4013) and, if
 * that fails (invalid UTF-8, prohibited characters), uses the raw bytes. For pure ASCII
 * SASLprep is either the identity (printable) or fails on a control character, so the raw
 * bytes are always right there. We do not implement SASLprep and always use the raw bytes;
 * a non-ASCII password only agrees with PostgreSQL if it is already in SASLprep (NFKC) form,
 * which is how keyboards normally produce it. */
static int scram_derive_keys(const char *password, size_t password_len, const uint8_t *salt, size_t salt_len,
                             int iterations, uint8_t client_key[SCRAM_KEY_LEN],
                             uint8_t stored_key[SCRAM_KEY_LEN], uint8_t server_key[SCRAM_KEY_LEN])
{
	uint8_t salted[SCRAM_KEY_LEN];
	int rc = -1;

	if (password_len > SCRAM_MAX_PASSWORD || salt_len > SCRAM_MAX_SALT)
		return -1;
	if (PKCS5_PBKDF2_HMAC(password, (int)password_len, salt, (int)salt_len, iterations, EVP_sha256(),
	                      SCRAM_KEY_LEN, salted) != 1)
		goto out;
	if (hmac_sha256(salted, sizeof(salted), "Client Key", 10, client_key) < 0 ||
	    sha256(client_key, SCRAM_KEY_LEN, stored_key) < 0 ||
	    hmac_sha256(salted, sizeof(salted), "Server Key", 10, server_key) < 0)
		goto out;
	rc = 0;
out:
	OPENSSL_cleanse(salted, sizeof(salted));
	return rc;
}

/* SCRAM client -------------------------------------------------------------------------- */

/* RFC 5802 "printable": %x21-7E except ','. */
static int scram_nonce_valid(const char *s, size_t len)
{
	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e || s[i] == ',')
			return 0;
	return 1;
}

/* Wipe and free the password copy, if any. */
static void scram_client_drop_password(ScramClient *sc)
{
	if (sc->password) {
		OPENSSL_cleanse(sc->password, sc->password_len);
		free(sc->password);
		sc->password = NULL;
	}
	sc->password_len = 0;
}

void scram_client_wipe(ScramClient *sc)
{
	scram_client_drop_password(sc);
	OPENSSL_cleanse(sc, sizeof(*sc));
	sc->state = SCRAM_STATE_INIT;
}

static void scram_client_fail(ScramClient *sc)
{
	scram_client_wipe(sc);
	sc->state = SCRAM_STATE_FAILED;
}

int scram_client_start_with_nonce(ScramClient *sc, const char *password, const char *user, const char *nonce,
                                  char *out, size_t outlen, size_t *outlen_used)
{
	size_t plen = strlen(password), nlen = strlen(nonce), ulen = user ? strlen(user) : 0;
	size_t o = 0;
	char *bare = sc->client_first_bare;
	int n;

	/* start may see an uninitialised struct, so it clears without freeing */
	OPENSSL_cleanse(sc, sizeof(*sc));
	if (plen > SCRAM_MAX_PASSWORD || nlen > SCRAM_MAX_NONCE || ulen > SCRAM_MAX_USER ||
	    !scram_nonce_valid(nonce, nlen))
		goto fail;
	if (!(sc->password = malloc(plen + 1)))
		goto fail;
	memcpy(sc->password, password, plen + 1);
	sc->password_len = plen;
	memcpy(sc->client_nonce, nonce, nlen + 1);

	/* client-first-message-bare: "n=" saslname ",r=" nonce; saslname escapes ',' and '=' */
	bare[o++] = 'n';
	bare[o++] = '=';
	for (size_t i = 0; i < ulen; i++) {
		if (user[i] == ',' || user[i] == '=') {
			memcpy(bare + o, user[i] == ',' ? "=2C" : "=3D", 3);
			o += 3;
		} else {
			bare[o++] = user[i];
		}
	}
	memcpy(bare + o, ",r=", 3);
	o += 3;
	memcpy(bare + o, nonce, nlen);
	o += nlen;
	bare[o] = '\0';
	sc->client_first_bare_len = o;

	n = snprintf(out, outlen, "n,,%s", bare);
	if (n < 0 || (size_t)n >= outlen)
		goto fail;
	if (outlen_used)
		*outlen_used = (size_t)n;
	sc->state = SCRAM_STATE_SENT_FIRST;
	return 0;
fail:
	scram_client_fail(sc);
	return -1;
}

int scram_client_start(ScramClient *sc, const char *password, char *out, size_t outlen, size_t *outlen_used)
{
	uint8_t raw[SCRAM_RAW_NONCE_LEN];
	char nonce[(SCRAM_RAW_NONCE_LEN + 2) / 3 * 4 + 1];

	if (RAND_bytes(raw, sizeof(raw)) != 1 ||
	    scram_b64_encode(raw, sizeof(raw), nonce, sizeof(nonce)) < 0) {
		scram_client_fail(sc);
		return -1;
	}
	/* PostgreSQL takes the user from the startup packet and expects an empty n= here */
	return scram_client_start_with_nonce(sc, password, NULL, nonce, out, outlen, outlen_used);
}

/* Copy printable server text into buf for an error message, so a hostile server cannot put
 * control characters into our logs. */
static const char *scram_sanitize(const char *s, size_t len, char *buf, size_t buflen)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 1 < buflen; i++)
		buf[o++] = ((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f) ? s[i] : '?';
	buf[o] = '\0';
	return buf;
}

/* Length of the attribute value starting at p, up to ',' or the end. */
static size_t scram_attr_len(const char *p)
{
	const char *c = strchr(p, ',');
	return c ? (size_t)(c - p) : strlen(p);
}

int scram_client_continue(ScramClient *sc, const char *server_first, size_t len, char *out, size_t outlen,
                          size_t *outlen_used, char *err, size_t errlen)
{
	/* client-first-bare "," server-first "," "c=biws,r=" nonce */
	char authmsg[SCRAM_MAX_FIRST_BARE + 1 + SCRAM_MAX_SERVER_MSG + 1 + 9 + SCRAM_MAX_SERVER_MSG + 1];
	char msg[SCRAM_MAX_SERVER_MSG + 1];
	char shown[128];
	uint8_t salt[SCRAM_MAX_SALT];
	uint8_t client_key[SCRAM_KEY_LEN], stored_key[SCRAM_KEY_LEN];
	uint8_t client_sig[SCRAM_KEY_LEN], proof[SCRAM_KEY_LEN];
	char proof_b64[SCRAM_KEY_LEN / 3 * 4 + 5];
	const char *p, *nonce;
	size_t nonce_len, salt_b64_len, iter_len, clen = strlen(sc->client_nonce);
	int salt_len, n, authlen;
	long iterations = 0;
	int rc = -1;

	if (sc->state != SCRAM_STATE_SENT_FIRST) {
		scram_set_err(err, errlen, "SCRAM: server-first-message out of order");
		goto fail;
	}
	if (len > SCRAM_MAX_SERVER_MSG) {
		scram_set_err(err, errlen, "SCRAM: server-first-message too long (%zu bytes)", len);
		goto fail;
	}
	if (memchr(server_first, '\0', len)) {
		scram_set_err(err, errlen, "SCRAM: server-first-message contains a NUL byte");
		goto fail;
	}
	memcpy(msg, server_first, len);
	msg[len] = '\0';
	p = msg;

	if (strncmp(p, "e=", 2) == 0) {
		scram_set_err(err, errlen, "SCRAM: server error: %s",
		              scram_sanitize(p + 2, scram_attr_len(p + 2), shown, sizeof(shown)));
		goto fail;
	}
	if (strncmp(p, "m=", 2) == 0) {
		scram_set_err(err, errlen, "SCRAM: server requires an unsupported extension (m=)");
		goto fail;
	}

	/* r=<client nonce><server part> */
	if (strncmp(p, "r=", 2) != 0) {
		scram_set_err(err, errlen, "SCRAM: server-first-message lacks the nonce (r=)");
		goto fail;
	}
	nonce = p + 2;
	nonce_len = scram_attr_len(nonce);
	if (!scram_nonce_valid(nonce, nonce_len)) {
		scram_set_err(err, errlen, "SCRAM: server nonce is empty or not printable");
		goto fail;
	}
	if (nonce_len <= clen || memcmp(nonce, sc->client_nonce, clen) != 0) {
		scram_set_err(err, errlen, "SCRAM: server nonce does not extend the client nonce");
		goto fail;
	}
	p = nonce + nonce_len;

	/* ,s=<base64 salt> */
	if (strncmp(p, ",s=", 3) != 0) {
		scram_set_err(err, errlen, "SCRAM: server-first-message lacks the salt (s=)");
		goto fail;
	}
	p += 3;
	salt_b64_len = scram_attr_len(p);
	salt_len = scram_b64_decode(p, salt_b64_len, salt, sizeof(salt));
	if (salt_len < 0) {
		scram_set_err(err, errlen, "SCRAM: salt is not valid base64 or longer than %d bytes",
		              SCRAM_MAX_SALT);
		goto fail;
	}
	if (salt_len == 0) {
		scram_set_err(err, errlen, "SCRAM: salt is empty");
		goto fail;
	}
	p += salt_b64_len;

	/* ,i=<iterations>, then optional extensions we ignore */
	if (strncmp(p, ",i=", 3) != 0) {
		scram_set_err(err, errlen, "SCRAM: server-first-message lacks the iteration count (i=)");
		goto fail;
	}
	p += 3;
	iter_len = scram_attr_len(p);
	for (size_t i = 0; i < iter_len; i++) {
		if (p[i] < '0' || p[i] > '9') {
			iterations = -1;
			break;
		}
		/* stop accumulating once past the limit so huge values cannot overflow */
		if (iterations <= SCRAM_MAX_ITERATIONS)
			iterations = iterations * 10 + (p[i] - '0');
	}
	if (iter_len == 0 || iterations < 0) {
		scram_set_err(err, errlen, "SCRAM: iteration count \"%s\" is not a number",
		              scram_sanitize(p, iter_len, shown, sizeof(shown)));
		goto fail;
	}
	if (iterations < 1 || iterations > SCRAM_MAX_ITERATIONS) {
		scram_set_err(err, errlen, "SCRAM: iteration count %s out of range 1..%d",
		              scram_sanitize(p, iter_len, shown, sizeof(shown)), SCRAM_MAX_ITERATIONS);
		goto fail;
	}

	if (sc->use_keys) {
		/* pass-through: only the very secret the keys were recovered against works */
		if ((size_t)salt_len != sc->key_salt_len || iterations != sc->key_iterations ||
		    CRYPTO_memcmp(salt, sc->key_salt, sc->key_salt_len) != 0) {
			scram_set_err(err, errlen,
			              "SCRAM: the server's secret differs from the one in auth_file "
			              "(salt or iterations), pass-through impossible");
			goto fail;
		}
		memcpy(client_key, sc->client_key, SCRAM_KEY_LEN);
		if (sha256(client_key, SCRAM_KEY_LEN, stored_key) < 0) {
			scram_set_err(err, errlen, "SCRAM: hashing failed");
			goto fail;
		}
	} else if (scram_derive_keys(sc->password, sc->password_len, salt, (size_t)salt_len, (int)iterations,
	                             client_key, stored_key, sc->server_key) < 0) {
		scram_set_err(err, errlen, "SCRAM: key derivation failed");
		goto fail;
	}
	scram_client_drop_password(sc);

	/* AuthMessage = client-first-bare "," server-first "," client-final-without-proof */
	authlen = snprintf(authmsg, sizeof(authmsg), "%s,%s,c=" SCRAM_GS2_B64 ",r=%.*s",
	                   sc->client_first_bare, msg, (int)nonce_len, nonce);
	if (authlen < 0 || (size_t)authlen >= sizeof(authmsg)) {
		scram_set_err(err, errlen, "SCRAM: internal error building AuthMessage");
		goto fail;
	}
	if (hmac_sha256(stored_key, sizeof(stored_key), authmsg, (size_t)authlen, client_sig) < 0 ||
	    hmac_sha256(sc->server_key, sizeof(sc->server_key), authmsg, (size_t)authlen,
	                sc->server_signature) < 0) {
		scram_set_err(err, errlen, "SCRAM: HMAC failed");
		goto fail;
	}
	for (int i = 0; i < SCRAM_KEY_LEN; i++)
		proof[i] = client_key[i] ^ client_sig[i];
	if (scram_b64_encode(proof, sizeof(proof), proof_b64, sizeof(proof_b64)) < 0) {
		scram_set_err(err, errlen, "SCRAM: internal error encoding the proof");
		goto fail;
	}

	n = snprintf(out, outlen, "c=" SCRAM_GS2_B64 ",r=%.*s,p=%s", (int)nonce_len, nonce, proof_b64);
	if (n < 0 || (size_t)n >= outlen) {
		scram_set_err(err, errlen, "SCRAM: output buffer too small for client-final-message");
		goto fail;
	}
	if (outlen_used)
		*outlen_used = (size_t)n;
	sc->state = SCRAM_STATE_SENT_FINAL;
	rc = 0;
	goto out;
fail:
	scram_client_fail(sc);
out:
	OPENSSL_cleanse(client_key, sizeof(client_key));
	OPENSSL_cleanse(stored_key, sizeof(stored_key));
	OPENSSL_cleanse(client_sig, sizeof(client_sig));
	OPENSSL_cleanse(proof, sizeof(proof));
	OPENSSL_cleanse(proof_b64, sizeof(proof_b64));
	OPENSSL_cleanse(authmsg, sizeof(authmsg));
	return rc;
}

int scram_client_finish(ScramClient *sc, const char *server_final, size_t len, char *err, size_t errlen)
{
	char msg[SCRAM_MAX_SERVER_MSG + 1];
	char shown[128];
	uint8_t sig[SCRAM_KEY_LEN + 3];
	size_t vlen;
	int siglen;

	if (sc->state != SCRAM_STATE_SENT_FINAL) {
		scram_set_err(err, errlen, "SCRAM: server-final-message out of order");
		goto fail;
	}
	if (len > SCRAM_MAX_SERVER_MSG || memchr(server_final, '\0', len)) {
		scram_set_err(err, errlen, "SCRAM: server-final-message is malformed");
		goto fail;
	}
	memcpy(msg, server_final, len);
	msg[len] = '\0';

	if (strncmp(msg, "e=", 2) == 0) {
		scram_set_err(err, errlen, "SCRAM: server error: %s",
		              scram_sanitize(msg + 2, scram_attr_len(msg + 2), shown, sizeof(shown)));
		goto fail;
	}
	if (strncmp(msg, "v=", 2) != 0) {
		scram_set_err(err, errlen, "SCRAM: server-final-message lacks the signature (v=)");
		goto fail;
	}
	vlen = scram_attr_len(msg + 2);
	siglen = scram_b64_decode(msg + 2, vlen, sig, sizeof(sig));
	if (siglen != SCRAM_KEY_LEN) {
		scram_set_err(err, errlen, "SCRAM: server signature is not a valid base64 SHA-256");
		goto fail;
	}
	if (CRYPTO_memcmp(sig, sc->server_signature, SCRAM_KEY_LEN) != 0) {
		scram_set_err(err, errlen,
		              "SCRAM: server signature does not match (server does not know the "
		              "password)");
		goto fail;
	}
	scram_client_wipe(sc);
	sc->state = SCRAM_STATE_DONE;
	return 0;
fail:
	scram_client_fail(sc);
	return -1;
}

/* Secrets ------------------------------------------------------------------------------- */

int scram_parse_secret(const char *secret, ScramSecret *out)
{
	const char *p, *colon, *dollar;
	long iterations = 0;
	int n;

	memset(out, 0, sizeof(*out));
	if (strncmp(secret, SCRAM_SECRET_PREFIX, strlen(SCRAM_SECRET_PREFIX)) != 0)
		return -1;
	p = secret + strlen(SCRAM_SECRET_PREFIX);

	/* <iterations>: */
	if (*p < '0' || *p > '9')
		goto bad;
	for (; *p >= '0' && *p <= '9'; p++) {
		iterations = iterations * 10 + (*p - '0');
		if (iterations > SCRAM_MAX_ITERATIONS)
			goto bad;
	}
	if (iterations < 1 || *p != ':')
		goto bad;
	p++;

	/* <salt>$ */
	dollar = strchr(p, '$');
	if (!dollar)
		goto bad;
	n = scram_b64_decode(p, (size_t)(dollar - p), out->salt, sizeof(out->salt));
	if (n < 1)
		goto bad;
	out->salt_len = (size_t)n;
	p = dollar + 1;

	/* <StoredKey>:<ServerKey> and nothing after */
	colon = strchr(p, ':');
	if (!colon)
		goto bad;
	if (scram_b64_decode(p, (size_t)(colon - p), out->stored_key, sizeof(out->stored_key)) !=
	    SCRAM_KEY_LEN)
		goto bad;
	p = colon + 1;
	if (scram_b64_decode(p, strlen(p), out->server_key, sizeof(out->server_key)) != SCRAM_KEY_LEN)
		goto bad;
	out->iterations = (int)iterations;
	return 0;
bad:
	OPENSSL_cleanse(out, sizeof(*out));
	return -1;
}

int scram_make_secret(const char *password, int iterations, char *out, size_t outlen)
{
	uint8_t salt[SCRAM_SALT_LEN];
	uint8_t client_key[SCRAM_KEY_LEN], stored_key[SCRAM_KEY_LEN], server_key[SCRAM_KEY_LEN];
	char salt_b64[SCRAM_SALT_LEN / 3 * 4 + 5];
	char stored_b64[SCRAM_KEY_LEN / 3 * 4 + 5], server_b64[SCRAM_KEY_LEN / 3 * 4 + 5];
	int n, rc = -1;

	if (iterations < 1 || iterations > SCRAM_MAX_ITERATIONS)
		return -1;
	if (RAND_bytes(salt, sizeof(salt)) != 1 ||
	    scram_derive_keys(password, strlen(password), salt, sizeof(salt), iterations, client_key,
	                      stored_key, server_key) < 0)
		goto out;
	if (scram_b64_encode(salt, sizeof(salt), salt_b64, sizeof(salt_b64)) < 0 ||
	    scram_b64_encode(stored_key, sizeof(stored_key), stored_b64, sizeof(stored_b64)) < 0 ||
	    scram_b64_encode(server_key, sizeof(server_key), server_b64, sizeof(server_b64)) < 0)
		goto out;
	n = snprintf(out, outlen, SCRAM_SECRET_PREFIX "%d:%s$%s:%s", iterations, salt_b64, stored_b64,
	             server_b64);
	if (n < 0 || (size_t)n >= outlen) {
		if (outlen)
			OPENSSL_cleanse(out, outlen);
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(client_key, sizeof(client_key));
	OPENSSL_cleanse(stored_key, sizeof(stored_key));
	OPENSSL_cleanse(server_key, sizeof(server_key));
	OPENSSL_cleanse(stored_b64, sizeof(stored_b64));
	OPENSSL_cleanse(server_b64, sizeof(server_b64));
	return rc;
}

int scram_secret_check_password(const ScramSecret *secret, const char *password)
{
	uint8_t client_key[SCRAM_KEY_LEN], stored_key[SCRAM_KEY_LEN], server_key[SCRAM_KEY_LEN];
	int ok;

	ok = scram_derive_keys(password, strlen(password), secret->salt, secret->salt_len, secret->iterations,
	                       client_key, stored_key, server_key) == 0 &&
	     CRYPTO_memcmp(stored_key, secret->stored_key, SCRAM_KEY_LEN) == 0 &&
	     CRYPTO_memcmp(server_key, secret->server_key, SCRAM_KEY_LEN) == 0;
	OPENSSL_cleanse(client_key, sizeof(client_key));
	OPENSSL_cleanse(stored_key, sizeof(stored_key));
	OPENSSL_cleanse(server_key, sizeof(server_key));
	return ok;
}

int scram_client_start_with_keys(ScramClient *sc, const ScramSecret *secret,
                                 const uint8_t client_key[SCRAM_KEY_LEN], char *out, size_t outlen,
                                 size_t *outlen_used)
{
	if (secret->salt_len == 0 || secret->salt_len > sizeof(sc->key_salt) ||
	    scram_client_start(sc, "", out, outlen, outlen_used) < 0) {
		scram_client_fail(sc);
		return -1;
	}
	sc->use_keys = 1;
	memcpy(sc->client_key, client_key, SCRAM_KEY_LEN);
	memcpy(sc->server_key, secret->server_key, SCRAM_KEY_LEN);
	memcpy(sc->key_salt, secret->salt, secret->salt_len);
	sc->key_salt_len = secret->salt_len;
	sc->key_iterations = secret->iterations;
	return 0;
}

/* SCRAM server ---------------------------------------------------------------------------- */

#define SCRAM_MECH       "SCRAM-SHA-256"
#define SCRAM_MECH_PLUS  "SCRAM-SHA-256-PLUS"
#define SCRAM_CBIND_TYPE "tls-server-end-point"

void scram_server_wipe(ScramServer *ss)
{
	OPENSSL_cleanse(ss, sizeof(*ss));
	ss->state = SCRAM_SRV_INIT;
}

static void scram_server_set_cbind(ScramServer *ss, const uint8_t *cbind, size_t cbind_len)
{
	if (cbind && cbind_len > 0 && cbind_len <= sizeof(ss->cbind)) {
		memcpy(ss->cbind, cbind, cbind_len);
		ss->cbind_len = cbind_len;
		ss->plus_offered = 1;
	}
}

void scram_server_init(ScramServer *ss, const ScramSecret *secret, const uint8_t *cbind, size_t cbind_len)
{
	scram_server_wipe(ss);
	ss->secret = *secret;
	scram_server_set_cbind(ss, cbind, cbind_len);
}

/* Written once by pthread_once, read-only after. */
static uint8_t mock_key[SCRAM_KEY_LEN];
static int mock_key_ok;

static void mock_key_init(void)
{
	mock_key_ok = RAND_bytes(mock_key, SCRAM_KEY_LEN) == 1;
}

int scram_server_init_mock(ScramServer *ss, const char *user, int iterations, const uint8_t *cbind,
                           size_t cbind_len)
{
	/* one random key per process: the same user name always gets the same fake salt, as a
	 * real user would, and nothing about it is predictable from outside */
	static pthread_once_t mock_key_once = PTHREAD_ONCE_INIT;
	uint8_t digest[SCRAM_KEY_LEN];

	scram_server_wipe(ss);
	/* set once for the process, whichever worker gets the first unknown user */
	pthread_once(&mock_key_once, mock_key_init);
	if (!mock_key_ok)
		return -1;
	if (iterations < 1 || iterations > SCRAM_MAX_ITERATIONS)
		iterations = SCRAM_DEFAULT_ITERATIONS;
	if (hmac_sha256(mock_key, sizeof(mock_key), user, strlen(user), digest) < 0)
		return -1;
	ss->mock = 1;
	ss->secret.iterations = iterations;
	ss->secret.salt_len = SCRAM_SALT_LEN;
	memcpy(ss->secret.salt, digest, SCRAM_SALT_LEN);
	/* keys nobody knows: the proof check runs as for a real user and fails */
	if (RAND_bytes(ss->secret.stored_key, SCRAM_KEY_LEN) != 1 ||
	    RAND_bytes(ss->secret.server_key, SCRAM_KEY_LEN) != 1)
		return -1;
	scram_server_set_cbind(ss, cbind, cbind_len);
	OPENSSL_cleanse(digest, sizeof(digest));
	return 0;
}

int scram_server_mechanisms(const ScramServer *ss, char *out, size_t outlen)
{
	size_t o = 0;

	if (outlen < sizeof(SCRAM_MECH_PLUS) + sizeof(SCRAM_MECH) + 1)
		return -1;
	if (ss->plus_offered) {
		memcpy(out, SCRAM_MECH_PLUS, sizeof(SCRAM_MECH_PLUS));
		o += sizeof(SCRAM_MECH_PLUS);
	}
	memcpy(out + o, SCRAM_MECH, sizeof(SCRAM_MECH));
	o += sizeof(SCRAM_MECH);
	out[o++] = '\0';
	return (int)o;
}

static void scram_server_fail(ScramServer *ss)
{
	scram_server_wipe(ss);
	ss->state = SCRAM_SRV_FAILED;
}

int scram_server_first_with_nonce(ScramServer *ss, const char *mech, const char *msg, size_t len,
                                  const char *server_nonce, char *out, size_t outlen, size_t *outlen_used,
                                  char *err, size_t errlen)
{
	char buf[SCRAM_MAX_CLIENT_MSG + 1];
	char salt_b64[SCRAM_MAX_SALT / 3 * 4 + 5];
	const char *p, *bare, *cnonce;
	size_t cnonce_len, snonce_len = strlen(server_nonce);
	int plus, n;

	if (err && errlen)
		err[0] = '\0';
	if (ss->state != SCRAM_SRV_INIT) {
		scram_set_err(err, errlen, "SCRAM: client-first-message out of order");
		goto fail;
	}
	if (strcmp(mech, SCRAM_MECH_PLUS) == 0 && ss->plus_offered) {
		plus = 1;
	} else if (strcmp(mech, SCRAM_MECH) == 0) {
		plus = 0;
	} else {
		scram_set_err(err, errlen, "SCRAM: client selected an invalid SASL mechanism");
		goto fail;
	}
	if (len > SCRAM_MAX_CLIENT_MSG || memchr(msg, '\0', len)) {
		scram_set_err(err, errlen, "SCRAM: client-first-message is too long or has a NUL");
		goto fail;
	}
	memcpy(buf, msg, len);
	buf[len] = '\0';
	p = buf;

	/* gs2-cbind-flag: the one matching the mechanism, never "y" when we offered -PLUS
	 * (that would be a downgrade by a man in the middle) */
	if (plus) {
		if (strncmp(p, "p=" SCRAM_CBIND_TYPE ",", 2 + strlen(SCRAM_CBIND_TYPE) + 1) != 0) {
			scram_set_err(err, errlen, "SCRAM: unsupported or missing channel binding type");
			goto fail;
		}
		p += 2 + strlen(SCRAM_CBIND_TYPE);
	} else if (*p == 'y' && p[1] == ',') {
		if (ss->plus_offered) {
			scram_set_err(err, errlen,
			              "SCRAM channel binding negotiation error (client says we do not "
			              "support it)");
			goto fail;
		}
		p++;
	} else if (*p == 'n' && p[1] == ',') {
		p++;
	} else {
		scram_set_err(err, errlen, "SCRAM: malformed gs2 header");
		goto fail;
	}
	/* authzid is not supported (PostgreSQL refuses it too) */
	if (p[1] != ',') {
		scram_set_err(err, errlen, "SCRAM: authorization identity is not supported");
		goto fail;
	}
	p += 2;
	ss->gs2_len = (size_t)(p - buf);
	if (ss->gs2_len >= sizeof(ss->gs2_header))
		goto fail;
	memcpy(ss->gs2_header, buf, ss->gs2_len);
	ss->plus_used = plus;

	/* client-first-message-bare: n=<name>,r=<nonce>[,extensions]; the name is ignored,
	 * the startup packet's user is the one authenticated */
	bare = p;
	if (strncmp(p, "m=", 2) == 0) {
		scram_set_err(err, errlen, "SCRAM: client requires an unsupported extension (m=)");
		goto fail;
	}
	if (strncmp(p, "n=", 2) != 0) {
		scram_set_err(err, errlen, "SCRAM: client-first-message lacks the user name (n=)");
		goto fail;
	}
	p += 2 + scram_attr_len(p + 2);
	if (strncmp(p, ",r=", 3) != 0) {
		scram_set_err(err, errlen, "SCRAM: client-first-message lacks the nonce (r=)");
		goto fail;
	}
	cnonce = p + 3;
	cnonce_len = scram_attr_len(cnonce);
	if (!scram_nonce_valid(cnonce, cnonce_len) || !scram_nonce_valid(server_nonce, snonce_len)) {
		scram_set_err(err, errlen, "SCRAM: client nonce is empty or not printable");
		goto fail;
	}
	/* optional extensions: ",<letter>=<value>" each */
	for (p = cnonce + cnonce_len; *p; p += 3 + scram_attr_len(p + 3)) {
		if (p[0] != ',' || !((p[1] >= 'a' && p[1] <= 'z') || (p[1] >= 'A' && p[1] <= 'Z')) ||
		    p[2] != '=') {
			scram_set_err(err, errlen, "SCRAM: malformed attribute in client-first-message");
			goto fail;
		}
	}
	ss->client_first_bare_len = strlen(bare);
	memcpy(ss->client_first_bare, bare, ss->client_first_bare_len + 1);
	if (cnonce_len + snonce_len >= sizeof(ss->nonce))
		goto fail;
	memcpy(ss->nonce, cnonce, cnonce_len);
	memcpy(ss->nonce + cnonce_len, server_nonce, snonce_len);
	ss->nonce_len = cnonce_len + snonce_len;
	ss->nonce[ss->nonce_len] = '\0';

	if (scram_b64_encode(ss->secret.salt, ss->secret.salt_len, salt_b64, sizeof(salt_b64)) < 0)
		goto fail;
	n = snprintf(ss->server_first, sizeof(ss->server_first), "r=%s,s=%s,i=%d", ss->nonce, salt_b64,
	             ss->secret.iterations);
	if (n < 0 || (size_t)n >= sizeof(ss->server_first) || (size_t)n >= outlen) {
		scram_set_err(err, errlen, "SCRAM: server-first-message does not fit");
		goto fail;
	}
	ss->server_first_len = (size_t)n;
	memcpy(out, ss->server_first, (size_t)n + 1);
	if (outlen_used)
		*outlen_used = (size_t)n;
	ss->state = SCRAM_SRV_SENT_FIRST;
	return 0;
fail:
	if (err && errlen && !err[0])
		scram_set_err(err, errlen, "SCRAM: malformed client-first-message");
	scram_server_fail(ss);
	return -1;
}

int scram_server_first(ScramServer *ss, const char *mech, const char *msg, size_t len, char *out,
                       size_t outlen, size_t *outlen_used, char *err, size_t errlen)
{
	uint8_t raw[SCRAM_SERVER_NONCE_LEN];
	char nonce[(SCRAM_SERVER_NONCE_LEN + 2) / 3 * 4 + 1];

	if (RAND_bytes(raw, sizeof(raw)) != 1 ||
	    scram_b64_encode(raw, sizeof(raw), nonce, sizeof(nonce)) < 0) {
		scram_set_err(err, errlen, "SCRAM: no randomness for the nonce");
		scram_server_fail(ss);
		return -1;
	}
	return scram_server_first_with_nonce(ss, mech, msg, len, nonce, out, outlen, outlen_used, err,
	                                     errlen);
}

int scram_server_final(ScramServer *ss, const char *msg, size_t len, char *out, size_t outlen,
                       size_t *outlen_used, char *err, size_t errlen)
{
	char buf[SCRAM_MAX_CLIENT_MSG + 1];
	/* the channel-binding input: gs2 header + certificate hash */
	uint8_t cb_input[sizeof(((ScramServer *)0)->gs2_header) + SCRAM_MAX_CBIND];
	uint8_t cb_given[sizeof(cb_input) + 3];
	char authmsg[SCRAM_MAX_CLIENT_MSG * 2 + 256 + 2];
	uint8_t proof[SCRAM_KEY_LEN + 3], client_sig[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN];
	uint8_t stored[SCRAM_KEY_LEN], server_sig[SCRAM_KEY_LEN];
	char sig_b64[SCRAM_KEY_LEN / 3 * 4 + 5];
	const char *p, *proof_attr, *c, *r;
	size_t cb_input_len, clen, rlen, without_proof_len;
	int n, cb_given_len, ok = 0, rc = -1;

	if (err && errlen)
		err[0] = '\0';
	if (ss->state != SCRAM_SRV_SENT_FIRST) {
		scram_set_err(err, errlen, "SCRAM: client-final-message out of order");
		goto out;
	}
	if (len > SCRAM_MAX_CLIENT_MSG || memchr(msg, '\0', len)) {
		scram_set_err(err, errlen, "SCRAM: client-final-message is too long or has a NUL");
		goto out;
	}
	memcpy(buf, msg, len);
	buf[len] = '\0';

	/* c=<base64(gs2 header [+ cbind data])> */
	if (strncmp(buf, "c=", 2) != 0) {
		scram_set_err(err, errlen, "SCRAM: client-final-message lacks channel binding (c=)");
		goto out;
	}
	c = buf + 2;
	clen = scram_attr_len(c);
	memcpy(cb_input, ss->gs2_header, ss->gs2_len);
	cb_input_len = ss->gs2_len;
	if (ss->plus_used) {
		memcpy(cb_input + cb_input_len, ss->cbind, ss->cbind_len);
		cb_input_len += ss->cbind_len;
	}
	cb_given_len = scram_b64_decode(c, clen, cb_given, sizeof(cb_given));
	if (cb_given_len < 0 || (size_t)cb_given_len != cb_input_len ||
	    CRYPTO_memcmp(cb_given, cb_input, cb_input_len) != 0) {
		scram_set_err(err, errlen, "SCRAM channel binding check failed");
		goto out;
	}
	p = c + clen;

	/* ,r=<the full nonce> */
	if (strncmp(p, ",r=", 3) != 0) {
		scram_set_err(err, errlen, "SCRAM: client-final-message lacks the nonce (r=)");
		goto out;
	}
	r = p + 3;
	rlen = scram_attr_len(r);
	if (rlen != ss->nonce_len || memcmp(r, ss->nonce, rlen) != 0) {
		scram_set_err(err, errlen, "SCRAM: nonce in client-final-message does not match");
		goto out;
	}
	p = r + rlen;

	/* [,extensions],p=<proof>, the proof last */
	proof_attr = strstr(p, ",p=");
	while (proof_attr && strstr(proof_attr + 1, ",p="))
		proof_attr = strstr(proof_attr + 1, ",p=");
	if (!proof_attr || strchr(proof_attr + 3, ',')) {
		scram_set_err(err, errlen, "SCRAM: client-final-message lacks the proof (p=)");
		goto out;
	}
	without_proof_len = (size_t)(proof_attr - buf);
	if (scram_b64_decode(proof_attr + 3, strlen(proof_attr + 3), proof, sizeof(proof)) != SCRAM_KEY_LEN) {
		scram_set_err(err, errlen, "SCRAM: malformed proof in client-final-message");
		goto out;
	}

	/* AuthMessage = client-first-bare "," server-first "," client-final-without-proof */
	n = snprintf(authmsg, sizeof(authmsg), "%s,%s,%.*s", ss->client_first_bare, ss->server_first,
	             (int)without_proof_len, buf);
	if (n < 0 || (size_t)n >= sizeof(authmsg)) {
		scram_set_err(err, errlen, "SCRAM: internal error building AuthMessage");
		goto out;
	}
	if (hmac_sha256(ss->secret.stored_key, SCRAM_KEY_LEN, authmsg, (size_t)n, client_sig) < 0)
		goto out;
	for (int i = 0; i < SCRAM_KEY_LEN; i++)
		client_key[i] = proof[i] ^ client_sig[i];
	if (sha256(client_key, SCRAM_KEY_LEN, stored) < 0)
		goto out;
	ok = CRYPTO_memcmp(stored, ss->secret.stored_key, SCRAM_KEY_LEN) == 0;
	if (!ok || ss->mock) {
		scram_set_err(err, errlen,
		              ss->mock ? "SCRAM: no usable secret for this user"
		                       : "SCRAM: wrong password (proof does not match)");
		goto out;
	}
	if (hmac_sha256(ss->secret.server_key, SCRAM_KEY_LEN, authmsg, (size_t)n, server_sig) < 0 ||
	    scram_b64_encode(server_sig, sizeof(server_sig), sig_b64, sizeof(sig_b64)) < 0)
		goto out;
	n = snprintf(out, outlen, "v=%s", sig_b64);
	if (n < 0 || (size_t)n >= outlen) {
		scram_set_err(err, errlen, "SCRAM: output buffer too small for server-final-message");
		goto out;
	}
	if (outlen_used)
		*outlen_used = (size_t)n;
	memcpy(ss->client_key, client_key, SCRAM_KEY_LEN);
	ss->state = SCRAM_SRV_DONE;
	rc = 0;
out:
	if (rc < 0) {
		if (err && errlen && !err[0])
			scram_set_err(err, errlen, "SCRAM: malformed client-final-message");
		scram_server_fail(ss);
	}
	OPENSSL_cleanse(client_key, sizeof(client_key));
	OPENSSL_cleanse(client_sig, sizeof(client_sig));
	OPENSSL_cleanse(stored, sizeof(stored));
	OPENSSL_cleanse(proof, sizeof(proof));
	OPENSSL_cleanse(authmsg, sizeof(authmsg));
	return rc;
}

int scram_client_key_matches(const ScramSecret *secret, const uint8_t client_key[SCRAM_KEY_LEN])
{
	uint8_t stored[SCRAM_KEY_LEN];
	int ok = sha256(client_key, SCRAM_KEY_LEN, stored) == 0 &&
	         CRYPTO_memcmp(stored, secret->stored_key, SCRAM_KEY_LEN) == 0;
	OPENSSL_cleanse(stored, sizeof(stored));
	return ok;
}
