/* auth.h: client authentication against auth_file (trust, plain, md5, any). */
#ifndef TIDEPOOL_AUTH_H
#define TIDEPOOL_AUTH_H

#include <stdbool.h>

#include "pool.h"

/* Start authenticating a client whose startup packet was accepted. Sends the password
 * request or finishes at once (trust/any). Returns false if the client was closed. */
bool auth_start(Client *c);

/* Handle a PasswordMessage. Returns false if the client was closed. */
bool auth_handle_password(Client *c, const PktHdr *pkt);

/* Pure check of a cleartext password against a stored secret (plain or md5 form). */
bool auth_check_plain(const char *secret, const char *user, const char *given);

#endif
