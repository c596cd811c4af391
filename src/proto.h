/* proto.h: pure parsers of PostgreSQL protocol v3 bytes: consumed / need more / error, no allocation. */
#ifndef TIDEPOOL_PROTO_H
#define TIDEPOOL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_V3             196608u
#define PROTO_CANCEL_REQUEST 80877102u
#define PROTO_SSL_REQUEST    80877103u
#define PROTO_GSSENC_REQUEST 80877104u

/* Largest startup packet accepted (PostgreSQL uses 10000). */
#define PROTO_MAX_STARTUP 10000u

typedef enum {
	PROTO_ERROR = -1,
	PROTO_NEED_MORE = 0,
	PROTO_OK = 1,
} ProtoResult;

/* A packet header as seen in a buffer. The packet bytes are not copied: data points into
 * the buffer the header was parsed from and is valid while that buffer is untouched. */
typedef struct PktHdr {
	uint8_t type;        /* 0 for startup-style packets, which have no type byte */
	uint32_t len;        /* whole packet: type byte (if any) + length field + body */
	uint32_t hdr_len;    /* 5, or 4 for startup-style packets */
	const uint8_t *data; /* first byte of the packet */
	uint32_t avail;      /* bytes of the packet present at data (<= len) */
} PktHdr;

/* Parse the header at buf. startup: the packet has no type byte. max_len bounds len.
 * Returns PROTO_OK with hdr filled, PROTO_NEED_MORE, or PROTO_ERROR (length out of range). */
ProtoResult proto_parse_header(const uint8_t *buf, size_t buflen, bool startup, uint32_t max_len,
                               PktHdr *hdr);

/* Sequential reader over a complete packet body. Any overrun sets err and returns zeros. */
typedef struct PktReader {
	const uint8_t *p;
	const uint8_t *end;
	bool err;
} PktReader;

void proto_reader_init(PktReader *r, const PktHdr *hdr);
uint8_t proto_get_byte(PktReader *r);
uint16_t proto_get_int16(PktReader *r);
uint32_t proto_get_int32(PktReader *r);
/* A NUL-terminated string inside the packet; NULL (and err) if no NUL before the end. */
const char *proto_get_string(PktReader *r);
const uint8_t *proto_get_bytes(PktReader *r, uint32_t n);
static inline uint32_t proto_remaining(const PktReader *r)
{
	return (uint32_t)(r->end - r->p);
}

/* The fields of an ErrorResponse / NoticeResponse that the pooler looks at. */
typedef struct ErrorFields {
	const char *severity; /* S (localized) */
	const char *sqlstate; /* C */
	const char *message;  /* M */
	const char *detail;   /* D */
} ErrorFields;

/* Parse a complete 'E' or 'N' packet. Missing fields are NULL (never crash on a hostile server). */
ProtoResult proto_parse_error(const PktHdr *hdr, ErrorFields *ef);

/* Authentication request ('R'): code and, for md5, the salt; for SASL, the payload. */
typedef struct AuthRequest {
	uint32_t code;
	uint8_t salt[4];
	const uint8_t *payload; /* SASL mechanisms list / SASLContinue / SASLFinal data */
	uint32_t payload_len;
} AuthRequest;

ProtoResult proto_parse_auth_request(const PktHdr *hdr, AuthRequest *ar);

/* A complete ParameterStatus ('S'): name and value point into the packet. */
ProtoResult proto_parse_param_status(const PktHdr *hdr, const char **name, const char **value);

#endif
