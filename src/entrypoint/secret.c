/* secret.c: userlist secrets for the entrypoint: PostgreSQL's md5 and SCRAM-SHA-256 forms,
 * computed with OpenSSL's hashing only. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envconf.h"

void ep_md5_secret(const char *user, const char *password, char out[36])
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	size_t plen = strlen(password), ulen = strlen(user);
	char *buf = malloc(plen + ulen + 1);
	if (!buf)
		abort();
	memcpy(buf, password, plen);
	memcpy(buf + plen, user, ulen);
	if (!EVP_Digest(buf, plen + ulen, digest, &dlen, EVP_md5(), NULL) || dlen != 16)
		abort();
	memset(buf, 0, plen + ulen);
	free(buf);
	memcpy(out, "md5", 3);
	for (unsigned i = 0; i < 16; i++)
		snprintf(out + 3 + 2 * i, 3, "%02x", digest[i]);
}

static void b64(const unsigned char *in, size_t len, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

/* RFC 5802 / 7677 as PostgreSQL stores it (src/common/scram-common.c). The password is used as
 * given: PostgreSQL runs SASLprep first, which leaves ASCII passwords unchanged. */
char *ep_scram_secret(const char *password, const unsigned char *salt, size_t saltlen, int iterations)
{
	unsigned char salted[32], client_key[32], stored_key[32], server_key[32];
	unsigned int len = 0;
	char salt64[4 * ((64 + 2) / 3) + 1], stored64[45], server64[45];
	char *out;
	size_t outlen;

	if (saltlen > 64 || iterations < 1)
		return NULL;
	if (!PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)saltlen, iterations, EVP_sha256(),
			       (int)sizeof(salted), salted))
		return NULL;
	if (!HMAC(EVP_sha256(), salted, sizeof(salted), (const unsigned char *)"Client Key", 10, client_key,
		  &len) ||
	    !EVP_Digest(client_key, sizeof(client_key), stored_key, &len, EVP_sha256(), NULL) ||
	    !HMAC(EVP_sha256(), salted, sizeof(salted), (const unsigned char *)"Server Key", 10, server_key,
		  &len))
		return NULL;
	b64(salt, saltlen, salt64);
	b64(stored_key, sizeof(stored_key), stored64);
	b64(server_key, sizeof(server_key), server64);
	memset(salted, 0, sizeof(salted));
	memset(client_key, 0, sizeof(client_key));
	outlen = strlen(salt64) + strlen(stored64) + strlen(server64) + 40;
	out = malloc(outlen);
	if (!out)
		abort();
	snprintf(out, outlen, "SCRAM-SHA-256$%d:%s$%s:%s", iterations, salt64, stored64, server64);
	return out;
}
