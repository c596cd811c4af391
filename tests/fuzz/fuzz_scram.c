/* fuzz_scram: the messages a (hostile) server sends during SCRAM-SHA-256 login, parsed by the
 * client side the pooler uses to log in to PostgreSQL (scram_client_continue/finish), plus the
 * base64 codec and the stored-secret parser that read the same kind of text.
 *
 * Input: flags byte, then server-first-message, a 0x00 separator, server-final-message.
 * flags bit 0: user "user" and the RFC 7677 nonce (so the RFC's messages are valid seeds),
 *              else PostgreSQL's empty user and a 128-byte nonce;
 * flags bit 1: replace server-final by the correct "v=<signature>" followed by the fuzzed
 *              bytes (reaches the success path and what follows the signature);
 * flags bit 2: call continue/finish out of order.
 * Iteration counts above 4096 are skipped: PBKDF2 time, not parsing (bounds are unit-tested). */
#include "fuzz_common.h"
#include "scram.h"

#define RFC_NONCE "rOprNGfwEbeRWgbNEkqO"

static void b64_roundtrip(const uint8_t *data, size_t size)
{
	size_t cap = size / 4 * 3 + 3;
	uint8_t *out = malloc(cap);
	const char *in = (const char *)fuzz_dup(data, size);
	int n = scram_b64_decode(in, size, out, cap);
	if (n >= 0) {
		FUZZ_CHECK((size_t)n <= cap);
		/* The decoder is strict (canonical padding, zero leftover bits): encoding gives back
		 * exactly the input. */
		size_t elen = (size_t)n / 3 * 4 + 5;
		char *enc = malloc(elen);
		int m = scram_b64_encode(out, (size_t)n, enc, elen);
		FUZZ_CHECK(m >= 0 && (size_t)m == size && memcmp(enc, in, size) == 0);
		free(enc);
		/* An exactly-sized output buffer is enough... */
		uint8_t *exact = malloc(n ? (size_t)n : 1);
		FUZZ_CHECK(scram_b64_decode(in, size, exact, (size_t)n) == n);
		free(exact);
	}
	/* ...and a too-small one is refused, never overrun. */
	uint8_t small[4];
	int s = scram_b64_decode(in, size, small, sizeof(small));
	FUZZ_CHECK(s <= 4);
	free((void *)in);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 8192)
		return 0;
	uint8_t flags = data[0];
	data++;
	size--;
	if (fuzz_big_iterations((const char *)data, size, 4096))
		return -1;
	const uint8_t *sep = memchr(data, 0, size);
	size_t first_len = sep ? (size_t)(sep - data) : size;
	const uint8_t *final = sep ? sep + 1 : data + size;
	size_t final_len = sep ? size - first_len - 1 : 0;

	b64_roundtrip(data, first_len);
	char *as_secret = fuzz_strdup(data, first_len, ' ');
	ScramSecret secret;
	if (scram_parse_secret(as_secret, &secret) == 0)
		FUZZ_CHECK(secret.iterations >= 1 && secret.salt_len <= SCRAM_MAX_SALT);
	free(as_secret);

	ScramClient *sc = calloc(1, sizeof(*sc));
	char out[1024], err[256];
	size_t used = 0;
	int rc;
	if (flags & 1) {
		rc = scram_client_start_with_nonce(sc, "pencil", "user", RFC_NONCE, out, sizeof(out), &used);
	} else {
		char nonce[SCRAM_MAX_NONCE + 1];
		for (int i = 0; i < SCRAM_MAX_NONCE; i++)
			nonce[i] = (char)('A' + i % 26);
		nonce[SCRAM_MAX_NONCE] = 0;
		rc = scram_client_start_with_nonce(sc, "pw", NULL, nonce, out, sizeof(out), &used);
	}
	FUZZ_CHECK(rc == 0 && used == strlen(out));

	if (flags & 4) {
		/* a server-final before server-first is refused */
		FUZZ_CHECK(scram_client_finish(sc, (const char *)final, final_len, err, sizeof(err)) < 0);
		scram_client_wipe(sc);
		free(sc);
		return 0;
	}
	/* exact-size copies: no NUL terminator for the parser to lean on */
	uint8_t *first = fuzz_dup(data, first_len);
	err[0] = 0;
	rc = scram_client_continue(sc, (const char *)first, first_len, out, sizeof(out), &used, err,
				   sizeof(err));
	free(first);
	if (rc < 0) {
		FUZZ_CHECK(err[0] != 0 && memchr(err, 0, sizeof(err)));
		FUZZ_CHECK(sc->state == SCRAM_STATE_FAILED);
	} else {
		FUZZ_CHECK(used == strlen(out) && strncmp(out, "c=biws,r=", 9) == 0);
		FUZZ_CHECK(sc->state == SCRAM_STATE_SENT_FINAL);
		uint8_t *fin;
		size_t flen;
		if (flags & 2) {
			char v[64];
			int vl = scram_b64_encode(sc->server_signature, SCRAM_KEY_LEN, v, sizeof(v));
			FUZZ_CHECK(vl > 0);
			flen = 2 + (size_t)vl + final_len;
			fin = malloc(flen);
			memcpy(fin, "v=", 2);
			memcpy(fin + 2, v, (size_t)vl);
			memcpy(fin + 2 + vl, final, final_len);
		} else {
			flen = final_len;
			fin = fuzz_dup(final, final_len);
		}
		err[0] = 0;
		rc = scram_client_finish(sc, (const char *)fin, flen, err, sizeof(err));
		if (rc == 0)
			FUZZ_CHECK(sc->state == SCRAM_STATE_DONE);
		else
			FUZZ_CHECK(err[0] != 0 && sc->state == SCRAM_STATE_FAILED);
		free(fin);
	}
	/* nothing is accepted after the exchange ended */
	FUZZ_CHECK(scram_client_continue(sc, "r=x,s=AAAA,i=1", 14, out, sizeof(out), &used, err, sizeof(err)) <
		   0);
	scram_client_wipe(sc);
	free(sc);
	return 0;
}
