/* pktbuf.h: builds protocol packets into a fixed or growing buffer (no per-packet malloc when fixed). */
#ifndef TIDEPOOL_PKTBUF_H
#define TIDEPOOL_PKTBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A packet builder. A fixed PktBuf writes into memory the caller owns and sets failed when it
 * runs out; a dynamic one owns a heap buffer (freed by pktbuf_free) and grows. */
typedef struct PktBuf {
	uint8_t *buf;
	size_t size;
	size_t pos;
	size_t pkt_start;
	bool pkt_has_type;
	bool dynamic;
	bool failed;
} PktBuf;

void pktbuf_init_fixed(PktBuf *pb, void *mem, size_t size);
void pktbuf_init_dynamic(PktBuf *pb, size_t initial);
void pktbuf_free(PktBuf *pb);
void pktbuf_reset(PktBuf *pb);

/* Start a packet: type 0 means a startup-style packet without type byte. */
void pktbuf_start(PktBuf *pb, uint8_t type);
void pktbuf_finish(PktBuf *pb);
void pktbuf_put_byte(PktBuf *pb, uint8_t v);
void pktbuf_put_int16(PktBuf *pb, uint16_t v);
void pktbuf_put_int32(PktBuf *pb, uint32_t v);
void pktbuf_put_bytes(PktBuf *pb, const void *data, size_t len);
void pktbuf_put_string(PktBuf *pb, const char *s); /* with its NUL */

/* Whole messages. severity is "FATAL", "ERROR" or "NOTICE"/"WARNING" (notices use 'N'). */
void pktbuf_write_error(PktBuf *pb, const char *severity, const char *sqlstate, const char *msg);
void pktbuf_write_notice(PktBuf *pb, const char *severity, const char *sqlstate, const char *msg);
void pktbuf_write_auth(PktBuf *pb, uint32_t code);
void pktbuf_write_auth_md5(PktBuf *pb, const uint8_t salt[4]);
void pktbuf_write_param_status(PktBuf *pb, const char *name, const char *value);
void pktbuf_write_backend_key(PktBuf *pb, uint32_t pid, uint32_t key);
void pktbuf_write_ready(PktBuf *pb, char status);
void pktbuf_write_query(PktBuf *pb, const char *sql);
void pktbuf_write_password(PktBuf *pb, const char *password);
void pktbuf_write_sasl_initial(PktBuf *pb, const char *mech, const void *data, size_t len);
void pktbuf_write_sasl_response(PktBuf *pb, const void *data, size_t len);
void pktbuf_write_cancel(PktBuf *pb, uint32_t pid, uint32_t key);
void pktbuf_write_command_complete(PktBuf *pb, const char *tag);
void pktbuf_write_empty_query(PktBuf *pb);

#endif
