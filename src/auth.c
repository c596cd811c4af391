/* auth.c: client authentication: trust, plain, md5, SCRAM-SHA-256 (SASL), cert, any, and hba
 * (a method per auth_hba_file rule, including peer), against the auth_file. */
#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>

#include "app.h"
#include "authquery.h"
#include "client.h"
#include "hba.h"
#include "tls.h"
#include "userlist.h"
#include "worker.h"

/* A failed login: the log says why, the client only learns that it failed, so user names
 * cannot be probed (docs/compatibility.md). */
static void auth_fail(Client *c, const char *client_msg, const char *log_reason)
{
	App *app = c->w->app;
	log_msg(&app->log, LOG_LEVEL_LOG, client_log_prefix(c), "%s", log_reason);
	client_error_close(c, "08P01", client_msg);
}

bool auth_check_plain(const char *secret, const char *user, const char *given)
{
	if (!secret || !given)
		return false;
	if (userlist_secret_kind(secret) == USERLIST_SECRET_SCRAM) {
		ScramSecret ss;
		bool ok = scram_parse_secret(secret, &ss) == 0 && scram_secret_check_password(&ss, given);
		OPENSSL_cleanse(&ss, sizeof(ss));
		return ok;
	}
	if (userlist_secret_kind(secret) == USERLIST_SECRET_MD5) {
		char md5[36];
		pg_md5_password(given, user, md5);
		return strlen(secret) == 35 && CRYPTO_memcmp(md5, secret, 35) == 0;
	}
	size_t a = strlen(secret), b = strlen(given);
	/* Compare the same number of bytes whatever the lengths, to keep timing flat. */
	return a == b && CRYPTO_memcmp(secret, given, a) == 0;
}

static const char *failed_message(int auth_type)
{
	return "password authentication failed";
}

#define SASL_FAILED "SASL authentication failed"

/* tls-server-end-point data for SCRAM-SHA-256-PLUS when the client is on TLS. */
static void auth_channel_binding(Client *c, uint8_t *out, size_t *len)
{
	if (tls_channel_binding(&c->sb, out, SCRAM_MAX_CBIND, len) < 0)
		*len = 0;
}

void auth_client_free(Client *c)
{
	authquery_forget(c);
	if (c->sasl) {
		scram_server_wipe(c->sasl);
		free(c->sasl);
		c->sasl = NULL;
	}
	if (c->password) {
		OPENSSL_cleanse(c->password, strlen(c->password));
		free(c->password);
		c->password = NULL;
	}
}

bool auth_expects_packet(const Client *c)
{
	return c->auth_step == AUTH_STEP_PASSWORD || c->auth_step == AUTH_STEP_SASL_INITIAL ||
	       c->auth_step == AUTH_STEP_SASL_FINAL;
}

/* An 'R' packet with a code and a payload (SASL messages). */
static bool send_auth_payload(Client *c, uint32_t code, const void *data, size_t len)
{
	PktBuf pb;
	pktbuf_init_fixed(&pb, c->w->scratch, sizeof(c->w->scratch));
	pktbuf_start(&pb, 'R');
	pktbuf_put_int32(&pb, code);
	pktbuf_put_bytes(&pb, data, len);
	pktbuf_finish(&pb);
	if (pb.failed || sbuf_send_gen(&c->sb, pb.buf, pb.pos) < 0) {
		client_close(c, "client send failed");
		return false;
	}
	return true;
}

/* Fail a SCRAM exchange: wipe it, log why, tell the client only that SASL failed. */
static void sasl_fail(Client *c, const char *why)
{
	char msg[300];
	bool unknown = !c->user || !c->user->secret;
	auth_client_free(c);
	if (unknown)
		snprintf(msg, sizeof(msg), "no such user: %s", c->username);
	else
		snprintf(msg, sizeof(msg), "SASL authentication failed: %s", why);
	auth_fail(c, SASL_FAILED, msg);
}

/* SCRAM secrets made from plain auth_file passwords, so that PBKDF2 runs once per password
 * and not at every login: a login's cost then does not tell a plain-password user from an
 * unknown one (whose mock exchange does no PBKDF2 either). Keyed by user name and a hash of
 * the password, so a changed password makes a new secret. */
#define PLAIN_CACHE_SIZE 256
static struct {
	char user[64];
	uint8_t fp[32];
	int iterations;
	ScramSecret secret;
	bool used;
} plain_cache[PLAIN_CACHE_SIZE];
static unsigned plain_cache_next;
/* Logins run on every worker: the cache is looked up and filled under this lock (not the
 * PBKDF2 itself, which runs outside it). */
static pthread_mutex_t plain_cache_lock = PTHREAD_MUTEX_INITIALIZER;

static int plain_secret(const char *user, const char *password, int iterations, ScramSecret *out)
{
	uint8_t fp[32];
	unsigned int fplen = 0;
	char made[512];
	int rc;
	if (iterations <= 0)
		iterations = SCRAM_DEFAULT_ITERATIONS;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, user, strlen(user) + 1) != 1 ||
	    EVP_DigestUpdate(md, password, strlen(password)) != 1 || EVP_DigestFinal_ex(md, fp, &fplen) != 1)
		fplen = 0;
	EVP_MD_CTX_free(md);
	pthread_mutex_lock(&plain_cache_lock);
	for (int i = 0; fplen == 32 && i < PLAIN_CACHE_SIZE; i++)
		if (plain_cache[i].used && plain_cache[i].iterations == iterations &&
		    strcmp(plain_cache[i].user, user) == 0 && CRYPTO_memcmp(plain_cache[i].fp, fp, 32) == 0) {
			*out = plain_cache[i].secret;
			pthread_mutex_unlock(&plain_cache_lock);
			return 0;
		}
	pthread_mutex_unlock(&plain_cache_lock);
	rc = scram_make_secret(password, iterations, made, sizeof(made)) == 0 &&
	             scram_parse_secret(made, out) == 0
	         ? 0
	         : -1;
	OPENSSL_cleanse(made, sizeof(made));
	if (rc == 0 && fplen == 32 && strlen(user) < sizeof(plain_cache[0].user)) {
		pthread_mutex_lock(&plain_cache_lock);
		unsigned k = plain_cache_next++ % PLAIN_CACHE_SIZE;
		/* a new entry for this user replaces its old one, if any */
		for (int i = 0; i < PLAIN_CACHE_SIZE; i++)
			if (plain_cache[i].used && strcmp(plain_cache[i].user, user) == 0)
				k = (unsigned)i;
		plain_cache[k].used = true;
		snprintf(plain_cache[k].user, sizeof(plain_cache[k].user), "%s", user);
		memcpy(plain_cache[k].fp, fp, 32);
		plain_cache[k].iterations = iterations;
		plain_cache[k].secret = *out;
		pthread_mutex_unlock(&plain_cache_lock);
	}
	OPENSSL_cleanse(fp, sizeof(fp));
	return rc;
}

/* Begin SCRAM-SHA-256 (RFC 7677): AuthenticationSASL with our mechanisms. A user we have no
 * usable secret for (unknown, or only an md5 hash) gets a mock exchange that looks the same
 * from outside and fails at the end. */
static bool start_sasl(Client *c)
{
	App *app = c->w->app;
	const char *secret = c->user ? c->user->secret : NULL;
	uint8_t cbind[SCRAM_MAX_CBIND];
	size_t cbind_len = 0;
	ScramSecret sec;
	char mechs[64];
	int kind = secret ? userlist_secret_kind(secret) : -1, n, rc = -1;

	c->sasl = calloc(1, sizeof(*c->sasl));
	if (!c->sasl) {
		client_error_close(c, "08P01", "out of memory");
		return false;
	}
	auth_channel_binding(c, cbind, &cbind_len);
	if (kind == USERLIST_SECRET_SCRAM && scram_parse_secret(secret, &sec) == 0) {
		rc = 0;
	} else if (kind == USERLIST_SECRET_PLAIN) {
		rc = plain_secret(c->username, secret, app->cf->scram_iterations, &sec);
	}
	if (rc == 0)
		scram_server_init(c->sasl, &sec, cbind, cbind_len);
	else if (scram_server_init_mock(c->sasl, c->username, app->cf->scram_iterations, cbind, cbind_len) <
	         0) {
		OPENSSL_cleanse(&sec, sizeof(sec));
		client_error_close(c, "08P01", "out of memory");
		return false;
	}
	OPENSSL_cleanse(&sec, sizeof(sec));
	n = scram_server_mechanisms(c->sasl, mechs, sizeof(mechs));
	c->auth_step = AUTH_STEP_SASL_INITIAL;
	return send_auth_payload(c, 10, mechs, (size_t)n);
}

/* SASLInitialResponse: mechanism, length, client-first-message. */
static bool handle_sasl_initial(Client *c, const PktHdr *pkt)
{
	PktReader r;
	char out[SCRAM_MAX_CLIENT_MSG + 128], err[200];
	size_t used = 0;
	proto_reader_init(&r, pkt);
	const char *mech = proto_get_string(&r);
	uint32_t len = proto_get_int32(&r);
	const uint8_t *data = r.err || len == 0xffffffffu ? NULL : proto_get_bytes(&r, len);
	if (!mech || !data || r.err || proto_remaining(&r) != 0) {
		sasl_fail(c, "malformed SASLInitialResponse");
		return false;
	}
	if (scram_server_first(c->sasl, mech, (const char *)data, len, out, sizeof(out), &used, err,
	                       sizeof(err)) < 0) {
		sasl_fail(c, err);
		return false;
	}
	c->auth_step = AUTH_STEP_SASL_FINAL;
	return send_auth_payload(c, 11, out, used);
}

/* SASLResponse: client-final-message with the proof. */
static bool handle_sasl_final(Client *c, const PktHdr *pkt)
{
	PktReader r;
	char out[128], err[200];
	size_t used = 0;
	proto_reader_init(&r, pkt);
	uint32_t len = proto_remaining(&r);
	const uint8_t *data = r.err ? NULL : proto_get_bytes(&r, len);
	if (!data) {
		sasl_fail(c, "malformed SASLResponse");
		return false;
	}
	if (scram_server_final(c->sasl, (const char *)data, len, out, sizeof(out), &used, err, sizeof(err)) <
	    0) {
		sasl_fail(c, err);
		return false;
	}
	/* Pass-through: with the secret stored in SCRAM form, the ClientKey just proven lets us
	 * log in to a PostgreSQL that stores the identical secret. */
	if (c->user && c->user->secret && userlist_secret_kind(c->user->secret) == USERLIST_SECRET_SCRAM) {
		memcpy(c->user->scram_client_key, c->sasl->client_key, SCRAM_KEY_LEN);
		c->user->has_scram_key = true;
	}
	auth_client_free(c);
	if (!send_auth_payload(c, 12, out, used))
		return false;
	c->auth_step = AUTH_STEP_DONE;
	return client_login_done(c);
}

/* auth_type cert: a verified client certificate whose common name is the user name. */
static bool login_via_cert(Client *c)
{
	char cn[256];
	const char *why = NULL;
	if (!tls_active(&c->sb))
		why = "TLS connection required";
	else if (tls_peer_common_name(&c->sb, cn, sizeof(cn)) < 0)
		why = "TLS client certificate required";
	else if (!c->user)
		why = "no such user";
	else if (!c->ident_mapped && strcmp(cn, c->username) != 0)
		why = "TLS certificate name mismatch";
	if (why) {
		char msg[300];
		snprintf(msg, sizeof(msg), "certificate authentication failed: %s", why);
		auth_fail(c, "certificate authentication failed", msg);
		return false;
	}
	c->auth_step = AUTH_STEP_DONE;
	return client_login_done(c);
}

/* The operating-system user name of a Unix socket peer into out: 0, or -1. */
static int peer_os_user(Client *c, char *out, size_t outlen)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct passwd pw, *res = NULL;
	char buf[4096];
	if (!c->is_unix || c->sb.fd < 0 || getsockopt(c->sb.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    getpwuid_r(cred.uid, &pw, buf, sizeof(buf), &res) != 0 || !res)
		return -1;
	snprintf(out, outlen, "%s", res->pw_name);
	return 0;
}

/* peer (HBA): the Unix socket peer's operating-system user name is the user name, or an
 * ident map allowed it (checked by hba_method). */
static bool login_as_peer(Client *c)
{
	char os_user[256];
	if (peer_os_user(c, os_user, sizeof(os_user)) < 0 || !c->user ||
	    (!c->ident_mapped && strcmp(os_user, c->username) != 0)) {
		auth_fail(c, "unix socket login rejected", "peer authentication failed");
		return false;
	}
	c->auth_step = AUTH_STEP_DONE;
	return client_login_done(c);
}

/* The rules of auth_hba_file (auth_type = hba) and the maps of auth_ident_file: loaded by
 * auth_prepare(), in force after auth_commit(). */
static Hba *current_hba, *pending_hba;
static HbaIdent *current_ident, *pending_ident;

int auth_prepare(const Config *cf, char *err, size_t errlen)
{
	auth_abort();
	if (cf->auth_type != AUTH_TYPE_HBA)
		return 0;
	if (!cf->auth_hba_file || !*cf->auth_hba_file) {
		snprintf(err, errlen, "auth_type = hba needs auth_hba_file");
		return -1;
	}
	if (!(pending_hba = hba_load(cf->auth_hba_file, err, errlen)))
		return -1;
	if (cf->auth_ident_file && *cf->auth_ident_file &&
	    !(pending_ident = hba_ident_load(cf->auth_ident_file, err, errlen))) {
		auth_abort();
		return -1;
	}
	return 0;
}

void auth_commit(void)
{
	hba_free(current_hba);
	current_hba = pending_hba;
	pending_hba = NULL;
	hba_ident_free(current_ident);
	current_ident = pending_ident;
	pending_ident = NULL;
}

void auth_abort(void)
{
	hba_free(pending_hba);
	pending_hba = NULL;
	hba_ident_free(pending_ident);
	pending_ident = NULL;
}

void auth_cleanup(void)
{
	OPENSSL_cleanse(plain_cache, sizeof(plain_cache));
	auth_abort();
	hba_free(current_hba);
	current_hba = NULL;
	hba_ident_free(current_ident);
	current_ident = NULL;
}

/* A cert or peer rule with map=: the certificate's common name or the peer's OS user must be
 * mapped to the user name. true to go on (c->ident_mapped says whether a map allowed it;
 * without a certificate or peer the method's own check refuses), false if refused. */
static bool check_ident_map(Client *c, const HbaRule *rule)
{
	char sys[256];
	bool cert = rule->method == HBA_CERT;
	c->ident_mapped = false;
	if (!rule->map)
		return true;
	if (cert ? !tls_active(&c->sb) || tls_peer_common_name(&c->sb, sys, sizeof(sys)) < 0
	         : peer_os_user(c, sys, sizeof(sys)) < 0)
		return true;
	if (hba_ident_match(current_ident, rule->map, sys, c->username)) {
		c->ident_mapped = true;
		return true;
	}
	char why[200];
	if (cert) {
		snprintf(why, sizeof(why), "ident map: %s does not have a match", rule->map);
		auth_fail(c, "certificate authentication failed", why);
	} else {
		snprintf(why, sizeof(why), "ident map %s cannot be matched", rule->map);
		auth_fail(c, "unix socket login rejected", why);
	}
	return false;
}

/* auth_type = hba: the method of the first matching rule, or -1 (rejected, client closed). */
static int hba_method(Client *c)
{
	App *app = c->w->app;
	int line = 0;
	HbaRequest req = {c->is_unix, tls_active(&c->sb), c->is_unix ? "" : c->addr,
	                  c->dbname,  c->username,        c->replication == REPLICATION_PHYSICAL};
	const HbaRule *rule = hba_match_rule(current_hba, &req);
	HbaMethod m = rule ? rule->method : HBA_REJECT;
	line = rule ? rule->line : 0;
	if ((m == HBA_CERT || m == HBA_PEER) && !check_ident_map(c, rule))
		return -1;
	if (line)
		log_msg(&app->log, LOG_LEVEL_DEBUG, client_log_prefix(c), "auth_hba_file line %d: %s", line,
		        hba_method_name(m));
	switch (m) {
	case HBA_TRUST:
		return AUTH_TYPE_TRUST;
	case HBA_PASSWORD:
		return AUTH_TYPE_PLAIN;
	case HBA_MD5:
		return AUTH_TYPE_MD5;
	case HBA_SCRAM:
		return AUTH_TYPE_SCRAM_SHA_256;
	case HBA_CERT:
		return AUTH_TYPE_CERT;
	case HBA_PEER:
		return AUTH_METHOD_PEER;
	case HBA_REJECT:
		break;
	}
	char why[160];
	if (line)
		snprintf(why, sizeof(why), "login rejected by auth_hba_file line %d", line);
	else
		snprintf(why, sizeof(why), "login rejected: no auth_hba_file line matches");
	auth_fail(c, "login rejected", why);
	return -1;
}

bool auth_start(Client *c)
{
	App *app = c->w->app;
	int at = app->cf->auth_type;
	if (at == AUTH_TYPE_HBA && (at = hba_method(c)) < 0)
		return false;
	c->auth_method = at;
	/* a user missing from auth_file: look its secret up first (auth_user, auth_query) */
	if (at != AUTH_TYPE_ANY && authquery_needed(c))
		return authquery_start(c);
	return auth_continue(c);
}

bool auth_continue(Client *c)
{
	int at = c->auth_method;
	PktBuf pb;
	pktbuf_init_fixed(&pb, c->w->scratch, sizeof(c->w->scratch));

	switch (at) {
	case AUTH_TYPE_ANY:
		c->auth_step = AUTH_STEP_DONE;
		return client_login_done(c);
	case AUTH_TYPE_TRUST:
		/* trust needs the user to exist, not a password: auth_query may find one without */
		if (!c->user || (!c->user->secret && !c->user->found_by_query)) {
			char why[128];
			snprintf(why, sizeof(why), "no such user: %s", c->username);
			auth_fail(c, "\"trust\" authentication failed", why);
			return false;
		}
		c->auth_step = AUTH_STEP_DONE;
		return client_login_done(c);
	case AUTH_TYPE_CERT:
		return login_via_cert(c);
	case AUTH_METHOD_PEER:
		return login_as_peer(c);
	case AUTH_TYPE_PLAIN:
		pktbuf_write_auth(&pb, 3);
		break;
	case AUTH_TYPE_SCRAM_SHA_256:
		return start_sasl(c);
	case AUTH_TYPE_MD5:
	default:
		/* md5 cannot check a SCRAM secret: use SCRAM for that user, as PgBouncer does */
		if (c->user && c->user->secret &&
		    userlist_secret_kind(c->user->secret) == USERLIST_SECRET_SCRAM)
			return start_sasl(c);
		if (!worker_random(c->w, c->salt, sizeof(c->salt))) {
			client_error_close(c, "08P01", "no random bytes for the md5 salt");
			return false;
		}
		pktbuf_write_auth_md5(&pb, c->salt);
		break;
	}
	c->auth_step = AUTH_STEP_PASSWORD;
	if (sbuf_send_gen(&c->sb, pb.buf, pb.pos) < 0) {
		client_close(c, "client send failed");
		return false;
	}
	return true;
}

bool auth_handle_password(Client *c, const PktHdr *pkt)
{
	App *app = c->w->app;
	PktReader r;
	if (c->auth_step == AUTH_STEP_SASL_INITIAL)
		return handle_sasl_initial(c, pkt);
	if (c->auth_step == AUTH_STEP_SASL_FINAL)
		return handle_sasl_final(c, pkt);
	proto_reader_init(&r, pkt);
	const char *given = proto_get_string(&r);
	if (!given || r.err) {
		client_error_close(c, "08P01", "invalid password packet");
		return false;
	}
	const char *user = c->username;
	const char *secret = c->user ? c->user->secret : NULL;
	bool ok = false;
	int at = c->auth_method;
	(void)app;
	if (at == AUTH_TYPE_PLAIN) {
		ok = auth_check_plain(secret, user, given);
	} else {
		/* An unknown user still costs the same hashing work as a known one. */
		ok = pg_md5_check(secret ? secret : "md5-no-such-user-placeholder-xxxxxxxxx", user, c->salt,
		                  given) &&
		     secret != NULL;
	}
	if (!secret) {
		char why[128];
		snprintf(why, sizeof(why), "no such user: %s", user);
		auth_fail(c, failed_message(at), why);
		return false;
	}
	if (!ok) {
		auth_fail(c, failed_message(at), "password authentication failed");
		return false;
	}
	if (at == AUTH_TYPE_PLAIN && userlist_secret_kind(secret) == USERLIST_SECRET_PLAIN) {
		free(c->password);
		c->password = strdup(given);
	}
	c->auth_step = AUTH_STEP_DONE;
	return client_login_done(c);
}

int auth_scram_passthrough_start(const User *u, const char *secret, ScramClient *sc, char *out, size_t outlen,
                                 size_t *outlen_used)
{
	ScramSecret sec;
	int rc = -1;
	if (u->has_scram_key && scram_parse_secret(secret, &sec) == 0 &&
	    scram_client_key_matches(&sec, u->scram_client_key))
		rc = scram_client_start_with_keys(sc, &sec, u->scram_client_key, out, outlen, outlen_used);
	OPENSSL_cleanse(&sec, sizeof(sec));
	return rc;
}
