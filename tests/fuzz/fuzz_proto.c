/* fuzz_proto: the pure protocol parsers (proto.c) on arbitrary bytes, walked the way sbuf.c
 * walks a receive buffer: header after header, each packet read field by field, and every
 * packet also parsed as an ErrorResponse and as an authentication request.
 *
 * Input: one mode byte, then the stream. Mode bit 0: the first packet is a startup packet
 * (no type byte); bits 1-2 pick max_len (2^31-1, PROTO_MAX_STARTUP, a small bound); the high
 * bits seed the order of reader calls. */
#include <stdbool.h>

#include "fuzz_common.h"
#include "proto.h"

static void check_string_in(const char *s, const uint8_t *lo, const uint8_t *hi)
{
	if (!s)
		return;
	FUZZ_CHECK((const uint8_t *)s >= lo && (const uint8_t *)s < hi);
	const uint8_t *nul = memchr(s, 0, (size_t)(hi - (const uint8_t *)s));
	FUZZ_CHECK(nul != NULL);
}

static void read_fields(const PktHdr *h, uint8_t seed)
{
	PktReader r;
	proto_reader_init(&r, h);
	const uint8_t *lo = h->data + h->hdr_len, *hi = h->data + h->avail;
	FUZZ_CHECK(r.p == lo && r.end == hi);
	for (int i = 0; i < 64 && !r.err; i++) {
		uint32_t before = proto_remaining(&r);
		switch ((seed + i * 7) % 5) {
		case 0:
			(void)proto_get_byte(&r);
			break;
		case 1:
			(void)proto_get_int16(&r);
			break;
		case 2:
			(void)proto_get_int32(&r);
			break;
		case 3:
			check_string_in(proto_get_string(&r), lo, hi);
			break;
		case 4: {
			uint32_t n = r.p < r.end ? *r.p : 0;
			const uint8_t *b = proto_get_bytes(&r, n);
			if (b) {
				FUZZ_CHECK(b >= lo && b + n <= hi);
				volatile uint8_t sink = 0;
				for (uint32_t k = 0; k < n; k++)
					sink ^= b[k];
				(void)sink;
			}
			break;
		}
		}
		FUZZ_CHECK(r.p >= lo && r.p <= r.end);
		FUZZ_CHECK(proto_remaining(&r) <= before);
	}
	/* Reading on after an error keeps returning zeros and never moves past the end. */
	(void)proto_get_int32(&r);
	(void)proto_get_string(&r);
	FUZZ_CHECK(r.p <= r.end);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	size--;
	uint8_t *buf = fuzz_dup(data + 1, size);
	bool startup = mode & 1;
	uint32_t max_len;
	switch ((mode >> 1) & 3) {
	case 0:
		max_len = 0x7fffffff;
		break;
	case 1:
		max_len = PROTO_MAX_STARTUP;
		break;
	case 2:
		max_len = 5 + (mode >> 3);
		break;
	default:
		max_len = 0xffffffffu;
		break;
	}
	size_t off = 0;
	for (int n = 0; n < 256 && off <= size; n++) {
		PktHdr h;
		memset(&h, 0xAA, sizeof(h));
		uint32_t limit = startup ? PROTO_MAX_STARTUP : max_len;
		ProtoResult r = proto_parse_header(buf + off, size - off, startup, limit, &h);
		FUZZ_CHECK(r == PROTO_OK || r == PROTO_NEED_MORE || r == PROTO_ERROR);
		if (r == PROTO_NEED_MORE) {
			FUZZ_CHECK(size - off < (startup ? 4u : 5u));
			break;
		}
		if (r == PROTO_ERROR)
			break;
		FUZZ_CHECK(h.hdr_len == (startup ? 4u : 5u));
		FUZZ_CHECK(h.len >= h.hdr_len);
		FUZZ_CHECK(h.len - (h.hdr_len - 4) <= limit);
		FUZZ_CHECK(h.data == buf + off);
		FUZZ_CHECK(h.avail <= h.len && h.avail <= size - off);
		FUZZ_CHECK(h.avail == h.len || h.avail == size - off);
		if (startup)
			FUZZ_CHECK(h.type == 0 && h.len >= 8);
		else
			FUZZ_CHECK(h.type == buf[off]);
		read_fields(&h, (uint8_t)(mode >> 3));

		ErrorFields ef;
		ProtoResult er = proto_parse_error(&h, &ef);
		if (er == PROTO_OK) {
			const uint8_t *lo = h.data + h.hdr_len, *hi = h.data + h.avail;
			check_string_in(ef.severity, lo, hi);
			check_string_in(ef.sqlstate, lo, hi);
			check_string_in(ef.message, lo, hi);
			check_string_in(ef.detail, lo, hi);
		}
		AuthRequest ar;
		if (proto_parse_auth_request(&h, &ar) == PROTO_OK) {
			FUZZ_CHECK(ar.payload >= h.data + h.hdr_len);
			FUZZ_CHECK(ar.payload + ar.payload_len == h.data + h.avail);
		}
		if (h.avail < h.len)
			break;
		off += h.len;
		startup = false;
	}
	free(buf);
	return 0;
}
