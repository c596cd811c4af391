/* auth.c: client authentication: trust, plain, md5 and any, against the auth_file. */
#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "client.h"
#include "userlist.h"

/* A failed login: the log says why, the client only learns that it failed, so user names
 * cannot be probed (compat.md §4). */
static void auth_fail(Client *c, const char *client_msg, const char *log_reason)
{
	App *app = c->w->app;
	log_msg(&app->log, LOG_LEVEL_LOG, c->log_prefix, "%s", log_reason);
	client_error_close(c, "08P01", client_msg);
}

bool auth_check_plain(const char *secret, const char *user, const char *given)
{
	if (!secret || !given)
		return false;
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

bool auth_start(Client *c)
{
	App *app = c->w->app;
	int at = app->cf->auth_type;
	PktBuf pb;
	pktbuf_init_fixed(&pb, c->w->scratch, sizeof(c->w->scratch));

	switch (at) {
	case AUTH_TYPE_ANY:
		c->auth_step = AUTH_STEP_DONE;
		return client_login_done(c);
	case AUTH_TYPE_TRUST:
		if (!c->user || !c->user->secret) {
			char why[128];
			snprintf(why, sizeof(why), "no such user: %s", c->username);
			auth_fail(c, "\"trust\" authentication failed", why);
			return false;
		}
		c->auth_step = AUTH_STEP_DONE;
		return client_login_done(c);
	case AUTH_TYPE_PLAIN:
		pktbuf_write_auth(&pb, 3);
		break;
	case AUTH_TYPE_MD5:
	default:
		RAND_bytes(c->salt, 4);
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
	proto_reader_init(&r, pkt);
	const char *given = proto_get_string(&r);
	if (!given || r.err) {
		client_error_close(c, "08P01", "invalid password packet");
		return false;
	}
	const char *user = c->username;
	const char *secret = c->user ? c->user->secret : NULL;
	bool ok = false;
	int at = app->cf->auth_type;
	if (secret && userlist_secret_kind(secret) == USERLIST_SECRET_SCRAM) {
		auth_fail(c, failed_message(at),
			  "SCRAM secret in auth_file needs auth_type scram-sha-256, not supported yet");
		return false;
	}
	if (at == AUTH_TYPE_PLAIN) {
		ok = auth_check_plain(secret, user, given);
	} else {
		/* An unknown user still costs the same hashing work as a known one. */
		ok = pg_md5_check(secret ? secret : "md5-no-such-user-placeholder-xxxxxxxxx", user,
				  c->salt, given) &&
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
