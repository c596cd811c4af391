/* proto.c: pure parsers of PostgreSQL protocol v3 bytes (no allocation, no I/O). */
#include "proto.h"

#include <string.h>

static uint32_t be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

ProtoResult proto_parse_header(const uint8_t *buf, size_t buflen, bool startup, uint32_t max_len, PktHdr *hdr)
{
	uint32_t hdr_len = startup ? 4 : 5;
	if (buflen < hdr_len)
		return PROTO_NEED_MORE;
	uint32_t len = be32(buf + hdr_len - 4);
	/* The length field counts itself but not the type byte. */
	if (len < 4 || len > max_len - (hdr_len - 4))
		return PROTO_ERROR;
	if (startup && len < 8)
		return PROTO_ERROR;
	hdr->type = startup ? 0 : buf[0];
	hdr->len = len + (hdr_len - 4);
	hdr->hdr_len = hdr_len;
	hdr->data = buf;
	hdr->avail = buflen < hdr->len ? (uint32_t)buflen : hdr->len;
	return PROTO_OK;
}

void proto_reader_init(PktReader *r, const PktHdr *hdr)
{
	r->p = hdr->data + hdr->hdr_len;
	r->end = hdr->data + hdr->avail;
	r->err = hdr->avail < hdr->len;
}

uint8_t proto_get_byte(PktReader *r)
{
	if (r->end - r->p < 1) {
		r->err = true;
		return 0;
	}
	return *r->p++;
}

uint16_t proto_get_int16(PktReader *r)
{
	if (r->end - r->p < 2) {
		r->err = true;
		return 0;
	}
	uint16_t v = (uint16_t)((r->p[0] << 8) | r->p[1]);
	r->p += 2;
	return v;
}

uint32_t proto_get_int32(PktReader *r)
{
	if (r->end - r->p < 4) {
		r->err = true;
		return 0;
	}
	uint32_t v = be32(r->p);
	r->p += 4;
	return v;
}

const char *proto_get_string(PktReader *r)
{
	const uint8_t *nul = memchr(r->p, 0, (size_t)(r->end - r->p));
	if (!nul) {
		r->err = true;
		return NULL;
	}
	const char *s = (const char *)r->p;
	r->p = nul + 1;
	return s;
}

const uint8_t *proto_get_bytes(PktReader *r, uint32_t n)
{
	if ((uint32_t)(r->end - r->p) < n) {
		r->err = true;
		return NULL;
	}
	const uint8_t *b = r->p;
	r->p += n;
	return b;
}

ProtoResult proto_parse_error(const PktHdr *hdr, ErrorFields *ef)
{
	PktReader r;
	memset(ef, 0, sizeof(*ef));
	proto_reader_init(&r, hdr);
	if (r.err)
		return PROTO_NEED_MORE;
	while (proto_remaining(&r) > 0) {
		uint8_t code = proto_get_byte(&r);
		if (code == 0)
			return PROTO_OK;
		const char *val = proto_get_string(&r);
		if (!val)
			return PROTO_ERROR;
		switch (code) {
		case 'S':
			ef->severity = val;
			break;
		case 'C':
			ef->sqlstate = val;
			break;
		case 'M':
			ef->message = val;
			break;
		case 'D':
			ef->detail = val;
			break;
		default:
			break;
		}
	}
	/* A missing terminator is tolerated: the fields read so far are still useful. */
	return PROTO_OK;
}

ProtoResult proto_parse_auth_request(const PktHdr *hdr, AuthRequest *ar)
{
	PktReader r;
	memset(ar, 0, sizeof(*ar));
	proto_reader_init(&r, hdr);
	if (r.err)
		return PROTO_NEED_MORE;
	ar->code = proto_get_int32(&r);
	if (r.err)
		return PROTO_ERROR;
	if (ar->code == 5) {
		const uint8_t *salt = proto_get_bytes(&r, 4);
		if (!salt)
			return PROTO_ERROR;
		memcpy(ar->salt, salt, 4);
	}
	ar->payload = r.p;
	ar->payload_len = proto_remaining(&r);
	return PROTO_OK;
}

ProtoResult proto_parse_param_status(const PktHdr *hdr, const char **name, const char **value)
{
	PktReader r;
	*name = *value = NULL;
	proto_reader_init(&r, hdr);
	if (r.err)
		return PROTO_NEED_MORE;
	*name = proto_get_string(&r);
	*value = proto_get_string(&r);
	if (!*name || !*value)
		return PROTO_ERROR;
	return PROTO_OK;
}
