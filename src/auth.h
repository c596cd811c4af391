/* auth.h: client authentication against auth_file (trust, plain, md5, scram-sha-256, any). */
#ifndef TIDEPOOL_AUTH_H
#define TIDEPOOL_AUTH_H

#include <stdbool.h>

#include "pool.h"

#include "config.h"

/* A method beyond auth_type's values: peer, which only HBA rules can select. */
#define AUTH_METHOD_PEER 100

/* Load what authentication needs from cf (the auth_hba_file with auth_type = hba), at start
 * and on reload: auth_prepare() reads it (-1 with err on error, nothing changes), then
 * auth_commit() puts it in force or auth_abort() drops it. */
int auth_prepare(const Config *cf, char *err, size_t errlen);
void auth_commit(void);
void auth_abort(void);
void auth_cleanup(void);

/* Start authenticating a client whose startup packet was accepted. Sends the password
 * request or finishes at once (trust/any). Returns false if the client was closed. */
bool auth_start(Client *c);

/* Go on with the method auth_start() chose, once the user's secret is known (after an
 * auth_query lookup). Returns false if the client was closed. */
bool auth_continue(Client *c);

/* Handle a PasswordMessage, SASLInitialResponse or SASLResponse ('p' packets). Returns false
 * if the client was closed. */
bool auth_handle_password(Client *c, const PktHdr *pkt);

/* True while the login waits for a 'p' packet (password or SASL message). */
bool auth_expects_packet(const Client *c);

/* Wipe and free what authentication left on the client (SCRAM state, password). */
void auth_client_free(Client *c);

/* Pure check of a cleartext password against a stored secret (plain, md5 or SCRAM form). */
bool auth_check_plain(const char *secret, const char *user, const char *given);

/* SCRAM pass-through towards a server: start sc with the ClientKey a client proved for u when
 * it still belongs to secret (u's SCRAM secret). 0, or -1 when there is no such key. */
int auth_scram_passthrough_start(const User *u, const char *secret, ScramClient *sc, char *out, size_t outlen,
                                 size_t *outlen_used);

#endif
