/* test_scram_server.c: the SCRAM-SHA-256 server side (RFC 7677 vector, our own client against
 * it, channel binding, malformed messages, mock exchanges) and pass-through keys. */
#include "scram.h"
#include "unit.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdlib.h>

#define RFC_NONCE        "rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE_PART  "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SALT         "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_CLIENT_FIRST "n,,n=user,r=" RFC_NONCE
#define RFC_SERVER_FIRST "r=" RFC_NONCE RFC_SNONCE_PART ",s=" RFC_SALT ",i=4096"
#define RFC_CLIENT_FINAL                                                                                     \
	"c=biws,r=" RFC_NONCE RFC_SNONCE_PART ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
#define RFC_SECRET                                                                                           \
	"SCRAM-SHA-256$4096:" RFC_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"                      \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

static ScramServer ss, ss2;
static ScramClient sc;
static char out[2048], err[256];
static size_t used;

static int first(ScramServer *s, const char *mech, const char *msg)
{
	return scram_server_first(s, mech, msg, strlen(msg), out, sizeof(out), &used, err, sizeof(err));
}

static int final(ScramServer *s, const char *msg)
{
	return scram_server_final(s, msg, strlen(msg), out, sizeof(out), &used, err, sizeof(err));
}

static void test_rfc7677(void)
{
	ScramSecret sec;
	CHECK(scram_parse_secret(RFC_SECRET, &sec) == 0);
	scram_server_init(&ss, &sec, NULL, 0);
	CHECK(scram_server_first_with_nonce(&ss, "SCRAM-SHA-256", RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST),
	                                    RFC_SNONCE_PART, out, sizeof(out), &used, err, sizeof(err)) == 0);
	CHECK_STR(out, RFC_SERVER_FIRST);
	CHECK(used == strlen(RFC_SERVER_FIRST));
	CHECK(final(&ss, RFC_CLIENT_FINAL) == 0);
	CHECK_STR(out, RFC_SERVER_FINAL);
	CHECK(ss.state == SCRAM_SRV_DONE);
	CHECK(scram_client_key_matches(&sec, ss.client_key));
	/* a second final is out of order */
	CHECK(final(&ss, RFC_CLIENT_FINAL) < 0);

	/* the same exchange with one proof bit flipped fails */
	scram_server_init(&ss, &sec, NULL, 0);
	CHECK(scram_server_first_with_nonce(&ss, "SCRAM-SHA-256", RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST),
	                                    RFC_SNONCE_PART, out, sizeof(out), &used, err, sizeof(err)) == 0);
	CHECK(final(&ss, "c=biws,r=" RFC_NONCE RFC_SNONCE_PART
	                 ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVU=") < 0);
	CHECK(strstr(err, "wrong password") != NULL);
	CHECK(ss.state == SCRAM_SRV_FAILED);
}

/* Our client against our server: returns 0 when both sides accept. */
static int roundtrip(const char *secret_text, const char *password, ScramServer *s, const uint8_t *cbind,
                     size_t cbind_len)
{
	ScramSecret sec;
	char cfirst[512], sfirst[2048], cfinal[512];
	size_t n;
	if (scram_parse_secret(secret_text, &sec) < 0)
		return -10;
	scram_server_init(s, &sec, cbind, cbind_len);
	if (scram_client_start(&sc, password, cfirst, sizeof(cfirst), &n) < 0)
		return -1;
	if (first(s, "SCRAM-SHA-256", cfirst) < 0)
		return -2;
	memcpy(sfirst, out, used + 1);
	if (scram_client_continue(&sc, sfirst, strlen(sfirst), cfinal, sizeof(cfinal), &n, err, sizeof(err)) <
	    0)
		return -3;
	if (final(s, cfinal) < 0)
		return -4;
	if (scram_client_finish(&sc, out, used, err, sizeof(err)) < 0)
		return -5;
	return 0;
}

static void test_roundtrip(void)
{
	char secret[256], other[256];
	CHECK(scram_make_secret("s3cret pw", 4096, secret, sizeof(secret)) == 0);
	CHECK(scram_make_secret("s3cret pw", 4096, other, sizeof(other)) == 0);
	CHECK(roundtrip(secret, "s3cret pw", &ss, NULL, 0) == 0);
	CHECK(roundtrip(secret, "s3cret pX", &ss, NULL, 0) == -4);
	CHECK(roundtrip(secret, "", &ss, NULL, 0) == -4);
	/* a client on TLS that does not use channel binding still works ("n" flag) */
	uint8_t cb[32];
	memset(cb, 7, sizeof(cb));
	CHECK(roundtrip(secret, "s3cret pw", &ss, cb, sizeof(cb)) == 0);

	/* pass-through: the recovered ClientKey logs in to a server with the identical secret */
	ScramSecret sec, osec;
	uint8_t key[SCRAM_KEY_LEN];
	char cfirst[512], sfirst[2048], cfinal[512];
	size_t n;
	CHECK(roundtrip(secret, "s3cret pw", &ss, NULL, 0) == 0);
	memcpy(key, ss.client_key, sizeof(key));
	CHECK(scram_parse_secret(secret, &sec) == 0);
	CHECK(scram_parse_secret(other, &osec) == 0);
	CHECK(scram_client_key_matches(&sec, key));
	CHECK(!scram_client_key_matches(&osec, key));

	scram_server_init(&ss2, &sec, NULL, 0);
	CHECK(scram_client_start_with_keys(&sc, &sec, key, cfirst, sizeof(cfirst), &n) == 0);
	CHECK(strncmp(cfirst, "n,,n=,r=", 8) == 0);
	CHECK(first(&ss2, "SCRAM-SHA-256", cfirst) == 0);
	memcpy(sfirst, out, used + 1);
	CHECK(scram_client_continue(&sc, sfirst, strlen(sfirst), cfinal, sizeof(cfinal), &n, err,
	                            sizeof(err)) == 0);
	CHECK(final(&ss2, cfinal) == 0);
	CHECK(scram_client_finish(&sc, out, used, err, sizeof(err)) == 0);

	/* a forged server signature is caught in pass-through mode too */
	scram_server_init(&ss2, &sec, NULL, 0);
	CHECK(scram_client_start_with_keys(&sc, &sec, key, cfirst, sizeof(cfirst), &n) == 0);
	CHECK(first(&ss2, "SCRAM-SHA-256", cfirst) == 0);
	memcpy(sfirst, out, used + 1);
	CHECK(scram_client_continue(&sc, sfirst, strlen(sfirst), cfinal, sizeof(cfinal), &n, err,
	                            sizeof(err)) == 0);
	CHECK(scram_client_finish(&sc, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", 46, err,
	                          sizeof(err)) < 0);

	/* the same password stored with another salt: pass-through is refused, not attempted */
	scram_server_init(&ss2, &osec, NULL, 0);
	CHECK(scram_client_start_with_keys(&sc, &sec, key, cfirst, sizeof(cfirst), &n) == 0);
	CHECK(first(&ss2, "SCRAM-SHA-256", cfirst) == 0);
	memcpy(sfirst, out, used + 1);
	CHECK(scram_client_continue(&sc, sfirst, strlen(sfirst), cfinal, sizeof(cfinal), &n, err,
	                            sizeof(err)) < 0);
	CHECK(strstr(err, "pass-through") != NULL);
	scram_client_wipe(&sc);
}

/* A SCRAM client computed here with OpenSSL, with optional channel binding. */
static void client_final_for(const char *password, const char *client_first_bare, const char *server_first,
                             const char *cbind_b64, char *outbuf, size_t outlen)
{
	ScramSecret dummy;
	uint8_t salt[64], salted[32], ck[32], stk[32], sig[32], proof[32];
	char without[900], auth[4096], pb64[64];
	unsigned int l = 0;
	const char *r = strstr(server_first, "r="), *s = strstr(server_first, ",s="),
	           *i = strstr(server_first, ",i=");
	int saltlen = scram_b64_decode(s + 3, (size_t)(i - s - 3), salt, sizeof(salt));
	(void)dummy;
	PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, saltlen, atoi(i + 3), EVP_sha256(), 32,
	                  salted);
	HMAC(EVP_sha256(), salted, 32, (const uint8_t *)"Client Key", 10, ck, &l);
	EVP_Digest(ck, 32, stk, &l, EVP_sha256(), NULL);
	snprintf(without, sizeof(without), "c=%s,r=%.*s", cbind_b64, (int)(s - r - 2), r + 2);
	snprintf(auth, sizeof(auth), "%s,%s,%s", client_first_bare, server_first, without);
	HMAC(EVP_sha256(), stk, 32, (const uint8_t *)auth, strlen(auth), sig, &l);
	for (int k = 0; k < 32; k++)
		proof[k] = ck[k] ^ sig[k];
	scram_b64_encode(proof, 32, pb64, sizeof(pb64));
	snprintf(outbuf, outlen, "%s,p=%s", without, pb64);
}

static void test_channel_binding(void)
{
	char secret[256], cfinal[1024], sfirst[2048], cbb64[256], mechs[64];
	uint8_t cb[32], cbin[128];
	ScramSecret sec;
	const char *gs2 = "p=tls-server-end-point,,";
	memset(cb, 0xab, sizeof(cb));
	CHECK(scram_make_secret("pw", 4096, secret, sizeof(secret)) == 0);
	CHECK(scram_parse_secret(secret, &sec) == 0);

	/* mechanisms: -PLUS only when there is binding data */
	scram_server_init(&ss, &sec, NULL, 0);
	int n = scram_server_mechanisms(&ss, mechs, sizeof(mechs));
	CHECK(n == 15 && memcmp(mechs, "SCRAM-SHA-256\0\0", 15) == 0);
	scram_server_init(&ss, &sec, cb, sizeof(cb));
	n = scram_server_mechanisms(&ss, mechs, sizeof(mechs));
	CHECK(n == 34 && memcmp(mechs, "SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0", 34) == 0);
	CHECK(scram_server_mechanisms(&ss, mechs, 10) < 0);

	/* a correct -PLUS exchange */
	memcpy(cbin, gs2, strlen(gs2));
	memcpy(cbin + strlen(gs2), cb, sizeof(cb));
	scram_b64_encode(cbin, strlen(gs2) + sizeof(cb), cbb64, sizeof(cbb64));
	CHECK(first(&ss, "SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,n=,r=abcdef") == 0);
	CHECK(ss.plus_used);
	memcpy(sfirst, out, used + 1);
	client_final_for("pw", "n=,r=abcdef", sfirst, cbb64, cfinal, sizeof(cfinal));
	CHECK(final(&ss, cfinal) == 0);

	/* binding data of another certificate (a man in the middle) fails */
	scram_server_init(&ss, &sec, cb, sizeof(cb));
	CHECK(first(&ss, "SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,n=,r=abcdef") == 0);
	memcpy(sfirst, out, used + 1);
	cbin[strlen(gs2)] ^= 1;
	scram_b64_encode(cbin, strlen(gs2) + sizeof(cb), cbb64, sizeof(cbb64));
	client_final_for("pw", "n=,r=abcdef", sfirst, cbb64, cfinal, sizeof(cfinal));
	CHECK(final(&ss, cfinal) < 0);
	CHECK(strstr(err, "channel binding") != NULL);

	/* "c=biws" while the header said p=...: fails */
	scram_server_init(&ss, &sec, cb, sizeof(cb));
	CHECK(first(&ss, "SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,n=,r=abcdef") == 0);
	memcpy(sfirst, out, used + 1);
	client_final_for("pw", "n=,r=abcdef", sfirst, "biws", cfinal, sizeof(cfinal));
	CHECK(final(&ss, cfinal) < 0);

	/* -PLUS selected but not offered; wrong binding type; PLUS with flag n */
	scram_server_init(&ss, &sec, NULL, 0);
	CHECK(first(&ss, "SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,n=,r=abc") < 0);
	scram_server_init(&ss, &sec, cb, sizeof(cb));
	CHECK(first(&ss, "SCRAM-SHA-256-PLUS", "p=tls-unique,,n=,r=abc") < 0);
	scram_server_init(&ss, &sec, cb, sizeof(cb));
	CHECK(first(&ss, "SCRAM-SHA-256-PLUS", "n,,n=,r=abc") < 0);
	/* "y": fine when we offered no binding, a downgrade when we did */
	scram_server_init(&ss, &sec, NULL, 0);
	CHECK(first(&ss, "SCRAM-SHA-256", "y,,n=,r=abc") == 0);
	memcpy(sfirst, out, used + 1);
	client_final_for("pw", "n=,r=abc", sfirst, "eSws", cfinal, sizeof(cfinal));
	CHECK(final(&ss, cfinal) == 0);
	scram_server_init(&ss, &sec, cb, sizeof(cb));
	CHECK(first(&ss, "SCRAM-SHA-256", "y,,n=,r=abc") < 0);
	CHECK(strstr(err, "negotiation") != NULL);
}

static void test_malformed(void)
{
	char secret[256], sfirst[2048], cfinal[1024];
	ScramSecret sec;
	CHECK(scram_make_secret("pw", 4096, secret, sizeof(secret)) == 0);
	CHECK(scram_parse_secret(secret, &sec) == 0);
	static const char *const bad_first[] = {
	    "",
	    "n",
	    "n,",
	    "x,,n=,r=abc",
	    "n,a=bob,n=,r=abc",
	    "n,,m=ext,n=,r=abc",
	    "n,,r=abc",
	    "n,,n=,",
	    "n,,n=,r=",
	    "n,,n=,r=a,c",
	    "n,,n=,r=ab\x01",
	    "n,,n=x",
	    "p=,,n=,r=abc",
	    "y,n=,r=abc",
	    "n,,n=,x=abc",
	    NULL,
	};
	for (int i = 0; bad_first[i]; i++) {
		scram_server_init(&ss, &sec, NULL, 0);
		CHECK(first(&ss, "SCRAM-SHA-256", bad_first[i]) < 0);
		CHECK(err[0] != 0);
		CHECK(ss.state == SCRAM_SRV_FAILED);
	}
	/* unknown mechanism, embedded NUL, too long */
	scram_server_init(&ss, &sec, NULL, 0);
	CHECK(first(&ss, "SCRAM-SHA-1", "n,,n=,r=abc") < 0);
	scram_server_init(&ss, &sec, NULL, 0);
	CHECK(scram_server_first(&ss, "SCRAM-SHA-256", "n,,n=,r=a\0b", 11, out, sizeof(out), &used, err,
	                         sizeof(err)) < 0);
	char big[SCRAM_MAX_CLIENT_MSG + 64];
	memset(big, 'a', sizeof(big));
	memcpy(big, "n,,n=,r=", 8);
	big[sizeof(big) - 1] = 0;
	scram_server_init(&ss, &sec, NULL, 0);
	CHECK(first(&ss, "SCRAM-SHA-256", big) < 0);
	/* final before first */
	scram_server_init(&ss, &sec, NULL, 0);
	CHECK(final(&ss, "c=biws,r=abc,p=AAAA") < 0);

	/* bad finals after a good first */
	static const char *const bad_final[] = {
	    "",
	    "c=biws",
	    "c=biws,r=abc",
	    "c=eSws,r=%s,p=%s",
	    "c=biws,r=wrongnonce,p=%s",
	    "c=biws,r=%s",
	    "c=biws,r=%s,p=",
	    "c=biws,r=%s,p=notbase64!",
	    "c=biws,r=%s,p=AAAA",
	    "c=biws,r=%s,p=%s,x=trailing",
	    "r=%s,c=biws,p=%s",
	    NULL,
	};
	for (int i = 0; bad_final[i]; i++) {
		char msg[1024], nonce[512], good[1024];
		scram_server_init(&ss, &sec, NULL, 0);
		CHECK(first(&ss, "SCRAM-SHA-256", "n,,n=,r=abc") == 0);
		memcpy(sfirst, out, used + 1);
		snprintf(nonce, sizeof(nonce), "%.*s", (int)(strstr(sfirst, ",s=") - sfirst - 2), sfirst + 2);
		client_final_for("pw", "n=,r=abc", sfirst, "biws", good, sizeof(good));
		const char *proof = strstr(good, ",p=") + 3;
		if (strstr(bad_final[i], "r=%s,c"))
			snprintf(msg, sizeof(msg), bad_final[i], nonce, proof);
		else if (strstr(bad_final[i], "wrongnonce"))
			snprintf(msg, sizeof(msg), bad_final[i], proof);
		else
			snprintf(msg, sizeof(msg), bad_final[i], nonce, proof);
		CHECK(final(&ss, msg) < 0);
		CHECK(err[0] != 0);
	}
	/* and the good one works (the table above is not failing for a silly reason) */
	scram_server_init(&ss, &sec, NULL, 0);
	CHECK(first(&ss, "SCRAM-SHA-256", "n,,n=someone,r=abc") == 0);
	memcpy(sfirst, out, used + 1);
	client_final_for("pw", "n=someone,r=abc", sfirst, "biws", cfinal, sizeof(cfinal));
	CHECK(final(&ss, cfinal) == 0);
}

static void test_mock(void)
{
	char s1[2048], s2[2048], s3[2048], cfinal[1024];
	CHECK(scram_server_init_mock(&ss, "ghost", 4096, NULL, 0) == 0);
	CHECK(first(&ss, "SCRAM-SHA-256", "n,,n=,r=abc") == 0);
	memcpy(s1, out, used + 1);
	CHECK(strstr(s1, ",i=4096") != NULL);
	/* a correct-looking proof for any password still fails */
	client_final_for("", "n=,r=abc", s1, "biws", cfinal, sizeof(cfinal));
	CHECK(final(&ss, cfinal) < 0);
	CHECK(ss.state == SCRAM_SRV_FAILED);

	/* the same name gets the same salt, another name another one */
	CHECK(scram_server_init_mock(&ss, "ghost", 4096, NULL, 0) == 0);
	CHECK(first(&ss, "SCRAM-SHA-256", "n,,n=,r=abc") == 0);
	memcpy(s2, out, used + 1);
	CHECK(scram_server_init_mock(&ss, "ghost2", 4096, NULL, 0) == 0);
	CHECK(first(&ss, "SCRAM-SHA-256", "n,,n=,r=abc") == 0);
	memcpy(s3, out, used + 1);
	CHECK(strcmp(strstr(s1, ",s="), strstr(s2, ",s=")) == 0);
	CHECK(strcmp(strstr(s1, ",s="), strstr(s3, ",s=")) != 0);
	/* a bad iteration count falls back to the default */
	CHECK(scram_server_init_mock(&ss, "ghost", 0, NULL, 0) == 0);
	CHECK(ss.secret.iterations == SCRAM_DEFAULT_ITERATIONS);
	uint8_t cb[32] = {1};
	CHECK(scram_server_init_mock(&ss, "ghost", 4096, cb, sizeof(cb)) == 0);
	CHECK(ss.plus_offered);
	scram_server_wipe(&ss);
	CHECK(ss.state == SCRAM_SRV_INIT && !ss.mock);
}

/* Random bytes into both steps: never a crash, never a success. */
static void test_random(void)
{
	char secret[256], msg[600];
	ScramSecret sec;
	uint8_t cb[32] = {3};
	CHECK(scram_make_secret("pw", 4096, secret, sizeof(secret)) == 0);
	CHECK(scram_parse_secret(secret, &sec) == 0);
	int bad = 0;
	for (int i = 0; i < 3000; i++) {
		uint8_t r[600];
		RAND_bytes(r, sizeof(r));
		size_t len = r[0] % 200 + (i & 1 ? 300 : 0);
		for (size_t k = 0; k < len; k++)
			msg[k] = (char)(r[k + 1] % 96 + 32); /* printable-ish */
		if (i % 3 == 0)
			memcpy(msg, "n,,n=,r=", len >= 8 ? 8 : len);
		scram_server_init(&ss, &sec, i & 2 ? cb : NULL, i & 2 ? sizeof(cb) : 0);
		int rc = scram_server_first(&ss, i & 4 ? "SCRAM-SHA-256-PLUS" : "SCRAM-SHA-256", msg, len,
		                            out, sizeof(out), &used, err, sizeof(err));
		if (rc == 0 && final(&ss, "c=biws,r=x,p=AAAA") == 0)
			bad++;
		if (rc == 0) {
			scram_server_init(&ss, &sec, NULL, 0);
			first(&ss, "SCRAM-SHA-256", "n,,n=,r=abc");
			if (scram_server_final(&ss, msg, len, out, sizeof(out), &used, err, sizeof(err)) == 0)
				bad++;
		}
	}
	CHECK(bad == 0);
}

int main(void)
{
	test_rfc7677();
	test_roundtrip();
	test_channel_binding();
	test_malformed();
	test_mock();
	test_random();
	UNIT_DONE();
}
