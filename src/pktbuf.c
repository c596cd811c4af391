/* pktbuf.c: protocol packet builder. */
#include "pktbuf.h"

#include <stdlib.h>
#include <string.h>

#include "proto.h"

void pktbuf_init_fixed(PktBuf *pb, void *mem, size_t size)
{
	memset(pb, 0, sizeof(*pb));
	pb->buf = mem;
	pb->size = size;
}

void pktbuf_init_dynamic(PktBuf *pb, size_t initial)
{
	memset(pb, 0, sizeof(*pb));
	pb->dynamic = true;
	pb->buf = malloc(initial);
	pb->size = pb->buf ? initial : 0;
	pb->failed = pb->buf == NULL;
}

void pktbuf_free(PktBuf *pb)
{
	if (pb->dynamic)
		free(pb->buf);
	pb->buf = NULL;
	pb->size = pb->pos = 0;
}

void pktbuf_reset(PktBuf *pb)
{
	pb->pos = 0;
	pb->failed = false;
}

/* Make room for n more bytes; a fixed buffer marks itself failed instead. */
static bool reserve(PktBuf *pb, size_t n)
{
	if (pb->failed)
		return false;
	if (pb->pos + n <= pb->size)
		return true;
	if (!pb->dynamic) {
		pb->failed = true;
		return false;
	}
	size_t nsize = pb->size ? pb->size : 256;
	while (nsize < pb->pos + n)
		nsize *= 2;
	uint8_t *nbuf = realloc(pb->buf, nsize);
	if (!nbuf) {
		pb->failed = true;
		return false;
	}
	pb->buf = nbuf;
	pb->size = nsize;
	return true;
}

void pktbuf_put_bytes(PktBuf *pb, const void *data, size_t len)
{
	if (!reserve(pb, len))
		return;
	if (len)
		memcpy(pb->buf + pb->pos, data, len);
	pb->pos += len;
}

void pktbuf_put_byte(PktBuf *pb, uint8_t v)
{
	pktbuf_put_bytes(pb, &v, 1);
}

void pktbuf_put_int16(PktBuf *pb, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	pktbuf_put_bytes(pb, b, 2);
}

void pktbuf_put_int32(PktBuf *pb, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	pktbuf_put_bytes(pb, b, 4);
}

void pktbuf_put_string(PktBuf *pb, const char *s)
{
	pktbuf_put_bytes(pb, s, strlen(s) + 1);
}

void pktbuf_start(PktBuf *pb, uint8_t type)
{
	pb->pkt_start = pb->pos;
	pb->pkt_has_type = type != 0;
	if (type)
		pktbuf_put_byte(pb, type);
	pktbuf_put_int32(pb, 0); /* patched by pktbuf_finish */
}

void pktbuf_finish(PktBuf *pb)
{
	if (pb->failed)
		return;
	size_t lenpos = pb->pkt_start + (pb->pkt_has_type ? 1 : 0);
	uint32_t len = (uint32_t)(pb->pos - lenpos);
	uint8_t *p = pb->buf + lenpos;
	p[0] = (uint8_t)(len >> 24);
	p[1] = (uint8_t)(len >> 16);
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
}

static void write_error_like(PktBuf *pb, uint8_t type, const char *severity, const char *sqlstate,
                             const char *msg)
{
	pktbuf_start(pb, type);
	pktbuf_put_byte(pb, 'S');
	pktbuf_put_string(pb, severity);
	pktbuf_put_byte(pb, 'V');
	pktbuf_put_string(pb, severity);
	pktbuf_put_byte(pb, 'C');
	pktbuf_put_string(pb, sqlstate);
	pktbuf_put_byte(pb, 'M');
	pktbuf_put_string(pb, msg);
	pktbuf_put_byte(pb, 0);
	pktbuf_finish(pb);
}

void pktbuf_write_error(PktBuf *pb, const char *severity, const char *sqlstate, const char *msg)
{
	write_error_like(pb, 'E', severity, sqlstate, msg);
}

void pktbuf_write_notice(PktBuf *pb, const char *severity, const char *sqlstate, const char *msg)
{
	write_error_like(pb, 'N', severity, sqlstate, msg);
}

void pktbuf_write_auth(PktBuf *pb, uint32_t code)
{
	pktbuf_start(pb, 'R');
	pktbuf_put_int32(pb, code);
	pktbuf_finish(pb);
}

void pktbuf_write_auth_md5(PktBuf *pb, const uint8_t salt[4])
{
	pktbuf_start(pb, 'R');
	pktbuf_put_int32(pb, 5);
	pktbuf_put_bytes(pb, salt, 4);
	pktbuf_finish(pb);
}

void pktbuf_write_param_status(PktBuf *pb, const char *name, const char *value)
{
	pktbuf_start(pb, 'S');
	pktbuf_put_string(pb, name);
	pktbuf_put_string(pb, value);
	pktbuf_finish(pb);
}

void pktbuf_write_backend_key(PktBuf *pb, uint32_t pid, uint32_t key)
{
	pktbuf_start(pb, 'K');
	pktbuf_put_int32(pb, pid);
	pktbuf_put_int32(pb, key);
	pktbuf_finish(pb);
}

void pktbuf_write_ready(PktBuf *pb, char status)
{
	pktbuf_start(pb, 'Z');
	pktbuf_put_byte(pb, (uint8_t)status);
	pktbuf_finish(pb);
}

void pktbuf_write_query(PktBuf *pb, const char *sql)
{
	pktbuf_start(pb, 'Q');
	pktbuf_put_string(pb, sql);
	pktbuf_finish(pb);
}

void pktbuf_write_password(PktBuf *pb, const char *password)
{
	pktbuf_start(pb, 'p');
	pktbuf_put_string(pb, password);
	pktbuf_finish(pb);
}

void pktbuf_write_sasl_initial(PktBuf *pb, const char *mech, const void *data, size_t len)
{
	pktbuf_start(pb, 'p');
	pktbuf_put_string(pb, mech);
	pktbuf_put_int32(pb, (uint32_t)len);
	pktbuf_put_bytes(pb, data, len);
	pktbuf_finish(pb);
}

void pktbuf_write_sasl_response(PktBuf *pb, const void *data, size_t len)
{
	pktbuf_start(pb, 'p');
	pktbuf_put_bytes(pb, data, len);
	pktbuf_finish(pb);
}

void pktbuf_write_cancel(PktBuf *pb, uint32_t pid, uint32_t key)
{
	pktbuf_start(pb, 0);
	pktbuf_put_int32(pb, PROTO_CANCEL_REQUEST);
	pktbuf_put_int32(pb, pid);
	pktbuf_put_int32(pb, key);
	pktbuf_finish(pb);
}

void pktbuf_write_command_complete(PktBuf *pb, const char *tag)
{
	pktbuf_start(pb, 'C');
	pktbuf_put_string(pb, tag);
	pktbuf_finish(pb);
}

void pktbuf_write_empty_query(PktBuf *pb)
{
	pktbuf_start(pb, 'I');
	pktbuf_finish(pb);
}
