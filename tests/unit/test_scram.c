/* test_scram.c: md5 hashing, base64, the SCRAM-SHA-256 client against RFC 7677, secrets. */
#include "scram.h"
#include "unit.h"

#include <stdint.h>

/* RFC 7677 section 3 example exchange */
#define RFC_NONCE        "rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE       RFC_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SALT         "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_SERVER_FIRST "r=" RFC_SNONCE ",s=" RFC_SALT ",i=4096"
#define RFC_CLIENT_FINAL "c=biws,r=" RFC_SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

/* The RFC vector's salt/iterations for "pencil" as a pg_authid secret, computed outside
 * this code with `openssl kdf PBKDF2` and `openssl dgst -mac HMAC`. */
#define RFC_SECRET                                                                                           \
	"SCRAM-SHA-256$4096:" RFC_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"                      \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

static const uint8_t salt4[4] = {1, 2, 3, 4};

static void test_md5(void)
{
	char hex[33], pw[36], r1[36], r2[36], r3[36];

	pg_md5_hex("abc", 3, hex);
	CHECK_STR(hex, "900150983cd24fb0d6963f7d28e17f72");

	/* printf '%s' secretapp | md5sum */
	pg_md5_password("secret", "app", pw);
	CHECK_STR(pw, "md56a422f785c9e20873908ce25d1736ae2");
	CHECK(pg_md5_is_hash(pw));
	CHECK(!pg_md5_is_hash("secret"));
	CHECK(!pg_md5_is_hash("md56a422f785c9e20873908ce25d1736ae")); /* 31 hex */
	CHECK(!pg_md5_is_hash("md56a422f785c9e20873908ce25d1736aeg"));

	/* printf '%s\x01\x02\x03\x04' 6a42...6ae2 | md5sum */
	pg_md5_response("secret", "app", salt4, r1);
	pg_md5_response(pw, "app", salt4, r2);
	pg_md5_response("md56A422F785C9E20873908CE25D1736AE2", "app", salt4, r3);
	CHECK_STR(r1, "md5911f527656472583a006e7727877b33e");
	CHECK_STR(r1, r2);
	CHECK_STR(r1, r3);

	CHECK(pg_md5_check("secret", "app", salt4, r1) == 1);
	CHECK(pg_md5_check(pw, "app", salt4, r1) == 1);
	CHECK(pg_md5_check("Secret", "app", salt4, r1) == 0);
	CHECK(pg_md5_check(pw, "other", salt4, r1) == 1); /* stored hash already has the user */
	CHECK(pg_md5_check("secret", "other", salt4, r1) == 0);
	CHECK(pg_md5_check("secret", "app", (const uint8_t[4]){1, 2, 3, 5}, r1) == 0);
	CHECK(pg_md5_check("secret", "app", salt4, "md5911f527656472583a006e7727877b33") == 0);
	CHECK(pg_md5_check("secret", "app", salt4, "md5911f527656472583a006e7727877b33ee") == 0);
	CHECK(pg_md5_check("secret", "app", salt4, "") == 0);
	CHECK(pg_md5_check(RFC_SECRET, "user", salt4, r1) == 0);
}

static void test_base64(void)
{
	uint8_t buf[16];
	char enc[32];

	CHECK(scram_b64_encode((const uint8_t *)"", 0, enc, sizeof(enc)) == 0);
	CHECK_STR(enc, "");
	CHECK(scram_b64_encode((const uint8_t *)"a", 1, enc, sizeof(enc)) == 4);
	CHECK_STR(enc, "YQ==");
	CHECK(scram_b64_encode((const uint8_t *)"ab", 2, enc, sizeof(enc)) == 4);
	CHECK_STR(enc, "YWI=");
	CHECK(scram_b64_encode((const uint8_t *)"n,,", 3, enc, sizeof(enc)) == 4);
	CHECK_STR(enc, "biws");
	CHECK(scram_b64_encode((const uint8_t *)"abc", 3, enc, 4) == -1); /* no room for NUL */

	CHECK(scram_b64_decode("", 0, buf, sizeof(buf)) == 0);
	CHECK(scram_b64_decode("YQ==", 4, buf, sizeof(buf)) == 1 && buf[0] == 'a');
	CHECK(scram_b64_decode("YWI=", 4, buf, sizeof(buf)) == 2 && memcmp(buf, "ab", 2) == 0);
	CHECK(scram_b64_decode("biws", 4, buf, sizeof(buf)) == 3 && memcmp(buf, "n,,", 3) == 0);
	CHECK(scram_b64_decode("YQ=", 3, buf, sizeof(buf)) == -1);      /* length */
	CHECK(scram_b64_decode("YR==", 4, buf, sizeof(buf)) == -1);     /* stray bits */
	CHECK(scram_b64_decode("YWJ=", 4, buf, sizeof(buf)) == -1);     /* stray bits */
	CHECK(scram_b64_decode("Y===", 4, buf, sizeof(buf)) == -1);     /* too much padding */
	CHECK(scram_b64_decode("YQ=a", 4, buf, sizeof(buf)) == -1);     /* pad in the middle */
	CHECK(scram_b64_decode("YQ==YQ==", 8, buf, sizeof(buf)) == -1); /* pad not at end */
	CHECK(scram_b64_decode("YW I", 4, buf, sizeof(buf)) == -1);     /* bad character */
	CHECK(scram_b64_decode("biwsbiws", 8, buf, 5) == -1);           /* out too small */
}

/* Start an exchange with the RFC's nonce and user, for the failure tests. */
static void rfc_start(ScramClient *sc)
{
	char out[256];
	size_t used = 0;

	scram_client_start_with_nonce(sc, "pencil", "user", RFC_NONCE, out, sizeof(out), &used);
}

static void test_rfc7677(void)
{
	ScramClient sc;
	char out[512], err[256];
	size_t used = 0;

	/* The RFC sends n=user; PostgreSQL sends an empty n= (the user is in the startup
	 * packet), so the user is injectable only for this vector. */
	CHECK(scram_client_start_with_nonce(&sc, "pencil", "user", RFC_NONCE, out, sizeof(out), &used) == 0);
	CHECK_STR(out, "n,,n=user,r=" RFC_NONCE);
	CHECK(used == strlen(out));

	CHECK(scram_client_continue(&sc, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), out, sizeof(out), &used,
	                            err, sizeof(err)) == 0);
	CHECK_STR(out, RFC_CLIENT_FINAL);
	CHECK(used == strlen(RFC_CLIENT_FINAL));
	/* the password is not needed after the proof, so it is already gone */
	CHECK(sc.password == NULL && sc.password_len == 0);

	err[0] = '\0';
	CHECK(scram_client_finish(&sc, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), err, sizeof(err)) == 0);
	CHECK_STR(err, "");
	CHECK(sc.state == SCRAM_STATE_DONE);
	scram_client_wipe(&sc);

	/* the server-first message need not be NUL-terminated */
	{
		char buf[sizeof(RFC_SERVER_FIRST) + 8];
		memcpy(buf, RFC_SERVER_FIRST "GARBAGE", sizeof(RFC_SERVER_FIRST) + 7);
		rfc_start(&sc);
		CHECK(scram_client_continue(&sc, buf, strlen(RFC_SERVER_FIRST), out, sizeof(out), &used, err,
		                            sizeof(err)) == 0);
		CHECK_STR(out, RFC_CLIENT_FINAL);
		scram_client_wipe(&sc);
	}

	/* extensions after i= are ignored, but are part of AuthMessage so the proof changes */
	rfc_start(&sc);
	CHECK(scram_client_continue(&sc, RFC_SERVER_FIRST ",x=ext", strlen(RFC_SERVER_FIRST) + 6, out,
	                            sizeof(out), &used, err, sizeof(err)) == 0);
	CHECK(strncmp(out, "c=biws,r=" RFC_SNONCE ",p=", strlen("c=biws,r=" RFC_SNONCE ",p=")) == 0);
	CHECK(strcmp(out, RFC_CLIENT_FINAL) != 0);
	scram_client_wipe(&sc);

	/* out too small for client-final */
	rfc_start(&sc);
	CHECK(scram_client_continue(&sc, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), out, 40, &used, err,
	                            sizeof(err)) == -1);
	scram_client_wipe(&sc);
}

static void test_client_start(void)
{
	ScramClient sc, sc2;
	char out[128], out2[128];
	size_t used = 0;
	char longpw[SCRAM_MAX_PASSWORD + 2];

	CHECK(scram_client_start(&sc, "pw", out, sizeof(out), &used) == 0);
	CHECK(strncmp(out, "n,,n=,r=", 8) == 0);
	CHECK(used == 8 + 24); /* 18 random bytes in base64 */
	CHECK(strlen(sc.client_nonce) == 24);
	CHECK(scram_client_start(&sc2, "pw", out2, sizeof(out2), &used) == 0);
	CHECK(strcmp(out, out2) != 0);
	scram_client_wipe(&sc2);

	scram_client_wipe(&sc);
	CHECK(sc.password == NULL && sc.client_nonce[0] == '\0');
	CHECK(sc.state == SCRAM_STATE_INIT);

	CHECK(scram_client_start(&sc, "pw", out, 20, &used) == -1);
	memset(longpw, 'x', sizeof(longpw) - 1);
	longpw[sizeof(longpw) - 1] = '\0';
	CHECK(scram_client_start(&sc, longpw, out, sizeof(out), &used) == -1);
	CHECK(scram_client_start_with_nonce(&sc, "pw", NULL, "bad,nonce", out, sizeof(out), &used) == -1);
	CHECK(scram_client_start_with_nonce(&sc, "pw", NULL, "", out, sizeof(out), &used) == -1);
	/* saslname escaping of ',' and '=' */
	CHECK(scram_client_start_with_nonce(&sc, "pw", "a,b=c", "abc", out, sizeof(out), &used) == 0);
	CHECK_STR(out, "n,,n=a=2Cb=3Dc,r=abc");
	scram_client_wipe(&sc);
}

/* Feed one malformed server-first-message; it must fail with a message containing want. */
static void check_bad_first(const char *msg, size_t len, const char *want)
{
	ScramClient sc;
	char out[512], err[256];
	size_t used = 0;
	int rc;

	rfc_start(&sc);
	err[0] = '\0';
	rc = scram_client_continue(&sc, msg, len, out, sizeof(out), &used, err, sizeof(err));
	CHECK(rc == -1);
	CHECK(sc.state == SCRAM_STATE_FAILED);
	CHECK(sc.password == NULL);
	if (!strstr(err, want)) {
		unit_failed++;
		fprintf(stderr, "FAIL %s:%d: server-first \"%.*s\": error \"%s\" lacks \"%s\"\n", __FILE__,
		        __LINE__, (int)len, msg, err, want);
	} else {
		unit_passed++;
	}
	scram_client_wipe(&sc);
}

#define BAD_FIRST(lit, want) check_bad_first(lit, strlen(lit), want)

static void test_bad_server_first(void)
{
	char big[SCRAM_MAX_SERVER_MSG + 10];

	BAD_FIRST("s=" RFC_SALT ",i=4096", "nonce (r=)");
	BAD_FIRST("", "nonce (r=)");
	BAD_FIRST("r=XXXXNGfwEbeRWgbNEkqO%hvYD,s=" RFC_SALT ",i=4096", "does not extend");
	BAD_FIRST("r=" RFC_NONCE ",s=" RFC_SALT ",i=4096", "does not extend"); /* nothing added */
	BAD_FIRST("r=rOprNG,s=" RFC_SALT ",i=4096", "does not extend");
	BAD_FIRST("r=,s=" RFC_SALT ",i=4096", "nonce is empty");
	BAD_FIRST("r=" RFC_SNONCE "\x01,s=" RFC_SALT ",i=4096", "not printable");
	BAD_FIRST("r=" RFC_SNONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096", "base64");
	BAD_FIRST("r=" RFC_SNONCE ",s=W22ZaJ0S*Y7soEsUEjb6gQ==,i=4096", "base64");
	BAD_FIRST("r=" RFC_SNONCE ",s=,i=4096", "salt is empty");
	BAD_FIRST("r=" RFC_SNONCE ",i=4096", "salt (s=)");
	BAD_FIRST("r=" RFC_SNONCE ",s=" RFC_SALT ",i=0", "out of range");
	BAD_FIRST("r=" RFC_SNONCE ",s=" RFC_SALT ",i=abc", "not a number");
	BAD_FIRST("r=" RFC_SNONCE ",s=" RFC_SALT ",i=-1", "not a number");
	BAD_FIRST("r=" RFC_SNONCE ",s=" RFC_SALT ",i=4096x", "not a number");
	BAD_FIRST("r=" RFC_SNONCE ",s=" RFC_SALT ",i=", "not a number");
	BAD_FIRST("r=" RFC_SNONCE ",s=" RFC_SALT ",i=10000001", "out of range");
	BAD_FIRST("r=" RFC_SNONCE ",s=" RFC_SALT ",i=99999999999999999999999999", "out of range");
	BAD_FIRST("r=" RFC_SNONCE ",s=" RFC_SALT, "iteration count (i=)");
	BAD_FIRST("r=" RFC_SNONCE ",s=W22ZaJ0SN", "base64");              /* truncated in the salt */
	BAD_FIRST("r=" RFC_SNONCE ",s=W22ZaJ0S", "iteration count (i=)"); /* at a quantum */
	BAD_FIRST("r=" RFC_SNONCE, "salt (s=)");                          /* truncated after the nonce */
	BAD_FIRST("r=" RFC_SNONCE ",i=4096,s=" RFC_SALT, "salt (s=)");    /* wrong order */
	BAD_FIRST("m=ext,r=" RFC_SNONCE ",s=" RFC_SALT ",i=4096", "extension");
	BAD_FIRST("e=other-error", "server error: other-error");
	check_bad_first("r=" RFC_SNONCE "\0,s=" RFC_SALT ",i=4096",
	                strlen("r=" RFC_SNONCE ",s=" RFC_SALT ",i=4096") + 1, "NUL");
	memset(big, 'a', sizeof(big));
	check_bad_first(big, sizeof(big), "too long");

	/* continue before start */
	{
		ScramClient sc;
		char out[256], err[128];
		size_t used;

		memset(&sc, 0, sizeof(sc));
		CHECK(scram_client_continue(&sc, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), out, sizeof(out),
		                            &used, err, sizeof(err)) == -1);
		CHECK(strstr(err, "out of order") != NULL);
	}
}

/* Run the RFC exchange up to server-final, then feed final; return finish's result. */
static int rfc_finish(const char *final, char *err, size_t errlen)
{
	ScramClient sc;
	char out[512];
	size_t used = 0;
	int rc;

	rfc_start(&sc);
	if (scram_client_continue(&sc, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), out, sizeof(out), &used,
	                          err, errlen) != 0)
		return -2;
	err[0] = '\0';
	rc = scram_client_finish(&sc, final, strlen(final), err, errlen);
	CHECK(sc.state == (rc == 0 ? SCRAM_STATE_DONE : SCRAM_STATE_FAILED));
	scram_client_wipe(&sc);
	return rc;
}

static void test_server_final(void)
{
	char err[256];

	CHECK(rfc_finish(RFC_SERVER_FINAL, err, sizeof(err)) == 0);
	CHECK(rfc_finish(RFC_SERVER_FINAL ",x=ext", err, sizeof(err)) == 0);

	CHECK(rfc_finish("v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", err, sizeof(err)) == -1);
	CHECK(strstr(err, "does not match") != NULL);
	CHECK(rfc_finish("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4", err, sizeof(err)) == -1);
	CHECK(strstr(err, "base64") != NULL);
	CHECK(rfc_finish("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl9", err, sizeof(err)) == -1);
	CHECK(rfc_finish("v=", err, sizeof(err)) == -1);
	CHECK(rfc_finish("", err, sizeof(err)) == -1);
	CHECK(strstr(err, "(v=)") != NULL);

	CHECK(rfc_finish("e=invalid-proof", err, sizeof(err)) == -1);
	CHECK_STR(err, "SCRAM: server error: invalid-proof");
	CHECK(rfc_finish("e=bad\x1b[31m,x=y", err, sizeof(err)) == -1);
	CHECK_STR(err, "SCRAM: server error: bad?[31m");

	/* finish without continue */
	{
		ScramClient sc;
		char out[256];
		size_t used;

		scram_client_start(&sc, "pencil", out, sizeof(out), &used);
		CHECK(scram_client_finish(&sc, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), err,
		                          sizeof(err)) == -1);
		CHECK(strstr(err, "out of order") != NULL);
		scram_client_wipe(&sc);
	}
}

static void test_secrets(void)
{
	ScramSecret s;
	char secret[256];
	char b64[64];

	/* an independently computed secret parses and verifies */
	CHECK(scram_parse_secret(RFC_SECRET, &s) == 0);
	CHECK(s.iterations == 4096);
	CHECK(s.salt_len == 16);
	CHECK(scram_b64_encode(s.salt, s.salt_len, b64, sizeof(b64)) == 24);
	CHECK_STR(b64, RFC_SALT);
	CHECK(scram_secret_check_password(&s, "pencil") == 1);
	CHECK(scram_secret_check_password(&s, "pencil ") == 0);

	/* make -> parse -> verify */
	CHECK(scram_make_secret("s3cret", 4096, secret, sizeof(secret)) == 0);
	CHECK(strncmp(secret, "SCRAM-SHA-256$4096:", 19) == 0);
	CHECK(scram_parse_secret(secret, &s) == 0);
	CHECK(s.iterations == 4096 && s.salt_len == SCRAM_SALT_LEN);
	CHECK(scram_secret_check_password(&s, "s3cret") == 1);
	CHECK(scram_secret_check_password(&s, "s3creT") == 0);
	CHECK(scram_make_secret("", 1, secret, sizeof(secret)) == 0);
	CHECK(scram_parse_secret(secret, &s) == 0 && s.iterations == 1);
	CHECK(scram_secret_check_password(&s, "") == 1);
	CHECK(scram_secret_check_password(&s, "x") == 0);
	/* two secrets for one password differ by salt */
	{
		char other[256];
		CHECK(scram_make_secret("", 1, other, sizeof(other)) == 0);
		CHECK(strcmp(secret, other) != 0);
	}

	CHECK(scram_make_secret("pw", 0, secret, sizeof(secret)) == -1);
	CHECK(scram_make_secret("pw", SCRAM_MAX_ITERATIONS + 1, secret, sizeof(secret)) == -1);
	CHECK(scram_make_secret("pw", 1, secret, 50) == -1);

	/* malformed secrets */
	CHECK(scram_parse_secret("", &s) == -1);
	CHECK(scram_parse_secret("pencil", &s) == -1);
	CHECK(scram_parse_secret("md56a422f785c9e20873908ce25d1736ae2", &s) == -1);
	CHECK(scram_parse_secret("SCRAM-SHA-1$4096:" RFC_SALT "$AAAA:AAAA", &s) == -1);
	CHECK(scram_parse_secret("SCRAM-SHA-256$0:" RFC_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	                         "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	                         &s) == -1);
	CHECK(scram_parse_secret("SCRAM-SHA-256$x4096:" RFC_SALT
	                         "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	                         "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	                         &s) == -1);
	CHECK(scram_parse_secret("SCRAM-SHA-256$99999999999999999999:" RFC_SALT
	                         "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	                         "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	                         &s) == -1);
	CHECK(scram_parse_secret("SCRAM-SHA-256$4096:$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	                         "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	                         &s) == -1); /* empty salt */
	CHECK(scram_parse_secret("SCRAM-SHA-256$4096:" RFC_SALT
	                         "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=",
	                         &s) == -1); /* no ServerKey */
	CHECK(scram_parse_secret("SCRAM-SHA-256$4096:" RFC_SALT "$AAAA:"
	                         "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	                         &s) == -1);                 /* short StoredKey */
	CHECK(scram_parse_secret(RFC_SECRET "x", &s) == -1); /* trailing garbage */
	CHECK(scram_parse_secret(RFC_SECRET " ", &s) == -1);
	CHECK(scram_parse_secret("SCRAM-SHA-256$4096:W22Z!J0SNY7soEsUEjb6gQ=="
	                         "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	                         "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	                         &s) == -1); /* bad base64 salt */
	CHECK(s.iterations == 0);            /* a failed parse leaves nothing behind */
}

int main(void)
{
	test_md5();
	test_base64();
	test_rfc7677();
	test_client_start();
	test_bad_server_first();
	test_server_final();
	test_secrets();
	UNIT_DONE();
}
