/* test_proto.c: protocol header/reader/error parsers and the packet builder, incl. hostile input. */
#include "pktbuf.h"
#include "proto.h"
#include "unit.h"

#include <stdint.h>
#include <stdlib.h>

static void test_header(void)
{
	PktHdr h;
	uint8_t q[] = {'Q', 0, 0, 0, 9, 's', 'e', 'l', '1', 0};
	CHECK(proto_parse_header(q, 0, false, 1000, &h) == PROTO_NEED_MORE);
	CHECK(proto_parse_header(q, 4, false, 1000, &h) == PROTO_NEED_MORE);
	CHECK(proto_parse_header(q, 5, false, 1000, &h) == PROTO_OK);
	CHECK(h.type == 'Q' && h.len == 10 && h.avail == 5 && h.hdr_len == 5);
	CHECK(proto_parse_header(q, sizeof(q), false, 1000, &h) == PROTO_OK);
	CHECK(h.avail == 10);
	/* Lengths below 4 are impossible; above max_len refused. */
	uint8_t bad0[] = {'Q', 0, 0, 0, 0};
	uint8_t bad3[] = {'Q', 0, 0, 0, 3};
	uint8_t huge[] = {'Q', 0x80, 0, 0, 0};
	uint8_t big[] = {'D', 0, 0, 4, 0};
	CHECK(proto_parse_header(bad0, 5, false, 1000, &h) == PROTO_ERROR);
	CHECK(proto_parse_header(bad3, 5, false, 1000, &h) == PROTO_ERROR);
	CHECK(proto_parse_header(huge, 5, false, 0x7fffffff, &h) == PROTO_ERROR);
	CHECK(proto_parse_header(big, 5, false, 1000, &h) == PROTO_ERROR);
	CHECK(proto_parse_header(big, 5, false, 2000, &h) == PROTO_OK);
	/* Startup packets: no type byte, at least 8 bytes, bounded. */
	uint8_t ssl[] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
	CHECK(proto_parse_header(ssl, 8, true, PROTO_MAX_STARTUP, &h) == PROTO_OK);
	CHECK(h.type == 0 && h.len == 8 && h.hdr_len == 4);
	PktReader r;
	proto_reader_init(&r, &h);
	CHECK(proto_get_int32(&r) == PROTO_SSL_REQUEST && !r.err);
	uint8_t short_startup[] = {0, 0, 0, 7, 0, 0, 0};
	CHECK(proto_parse_header(short_startup, 7, true, PROTO_MAX_STARTUP, &h) == PROTO_ERROR);
	uint8_t huge_startup[] = {0, 0, 0x40, 0, 0, 3, 0, 0};
	CHECK(proto_parse_header(huge_startup, 8, true, PROTO_MAX_STARTUP, &h) == PROTO_ERROR);
}

static void test_reader(void)
{
	PktHdr h;
	uint8_t p[] = {'S', 0, 0, 0, 13, 'a', 'b', 0, 'c', 'd', 'e', 0, 1, 2};
	CHECK(proto_parse_header(p, sizeof(p), false, 1000, &h) == PROTO_OK);
	PktReader r;
	proto_reader_init(&r, &h);
	CHECK_STR(proto_get_string(&r), "ab");
	CHECK_STR(proto_get_string(&r), "cde");
	CHECK(proto_get_int16(&r) == 0x0102);
	CHECK(!r.err);
	CHECK(proto_get_byte(&r) == 0 && r.err);
	/* A string without NUL inside the packet is an error, not an overrun. */
	uint8_t nonul[] = {'S', 0, 0, 0, 7, 'a', 'b', 'c'};
	CHECK(proto_parse_header(nonul, sizeof(nonul), false, 1000, &h) == PROTO_OK);
	proto_reader_init(&r, &h);
	CHECK(proto_get_string(&r) == NULL && r.err);
	CHECK(proto_get_bytes(&r, 100) == NULL);
	/* An incomplete packet reads as an error from the start. */
	CHECK(proto_parse_header(p, 8, false, 1000, &h) == PROTO_OK);
	proto_reader_init(&r, &h);
	CHECK(r.err);
}

static void test_error_parse(void)
{
	uint8_t mem[256];
	PktBuf pb;
	pktbuf_init_fixed(&pb, mem, sizeof(mem));
	pktbuf_write_error(&pb, "FATAL", "3D000", "database \"x\" does not exist");
	CHECK(!pb.failed);
	PktHdr h;
	CHECK(proto_parse_header(pb.buf, pb.pos, false, 1000, &h) == PROTO_OK);
	CHECK(h.type == 'E' && h.len == pb.pos);
	ErrorFields ef;
	CHECK(proto_parse_error(&h, &ef) == PROTO_OK);
	CHECK_STR(ef.severity, "FATAL");
	CHECK_STR(ef.sqlstate, "3D000");
	CHECK_STR(ef.message, "database \"x\" does not exist");
	CHECK(ef.detail == NULL);
	/* A hostile server: fields without SQLSTATE, or a field missing its NUL. */
	uint8_t nocode[] = {'E', 0, 0, 0, 9, 'M', 'h', 'i', 0, 0};
	CHECK(proto_parse_header(nocode, sizeof(nocode), false, 1000, &h) == PROTO_OK);
	CHECK(proto_parse_error(&h, &ef) == PROTO_OK);
	CHECK(ef.sqlstate == NULL);
	CHECK_STR(ef.message, "hi");
	uint8_t broken[] = {'E', 0, 0, 0, 7, 'M', 'h', 'i'};
	CHECK(proto_parse_header(broken, sizeof(broken), false, 1000, &h) == PROTO_OK);
	CHECK(proto_parse_error(&h, &ef) == PROTO_ERROR);
}

static void test_auth_request(void)
{
	uint8_t mem[64];
	PktBuf pb;
	uint8_t salt[4] = {1, 2, 3, 4};
	pktbuf_init_fixed(&pb, mem, sizeof(mem));
	pktbuf_write_auth_md5(&pb, salt);
	PktHdr h;
	AuthRequest ar;
	CHECK(proto_parse_header(pb.buf, pb.pos, false, 1000, &h) == PROTO_OK);
	CHECK(proto_parse_auth_request(&h, &ar) == PROTO_OK);
	CHECK(ar.code == 5 && memcmp(ar.salt, salt, 4) == 0);
	uint8_t trunc_md5[] = {'R', 0, 0, 0, 10, 0, 0, 0, 5, 1, 2};
	CHECK(proto_parse_header(trunc_md5, sizeof(trunc_md5), false, 1000, &h) == PROTO_OK);
	CHECK(proto_parse_auth_request(&h, &ar) == PROTO_ERROR);
	uint8_t empty[] = {'R', 0, 0, 0, 4};
	CHECK(proto_parse_header(empty, sizeof(empty), false, 1000, &h) == PROTO_OK);
	CHECK(proto_parse_auth_request(&h, &ar) == PROTO_ERROR);
	uint8_t sasl[] = {'R', 0,   0,   0,   23,  0,   0,   0,   10,  'S', 'C', 'R',
	                  'A', 'M', '-', 'S', 'H', 'A', '-', '2', '5', '6', 0,   0};
	CHECK(proto_parse_header(sasl, sizeof(sasl), false, 1000, &h) == PROTO_OK);
	CHECK(proto_parse_auth_request(&h, &ar) == PROTO_OK);
	CHECK(ar.code == 10 && ar.payload_len == 15);
}

static void test_builder(void)
{
	uint8_t small[8];
	PktBuf pb;
	pktbuf_init_fixed(&pb, small, sizeof(small));
	pktbuf_write_query(&pb, "SELECT 1");
	CHECK(pb.failed); /* fixed buffers fail instead of overflowing */
	pktbuf_init_dynamic(&pb, 4);
	for (int i = 0; i < 100; i++)
		pktbuf_write_param_status(&pb, "TimeZone", "Europe/Amsterdam");
	CHECK(!pb.failed);
	size_t off = 0;
	int n = 0;
	while (off < pb.pos) {
		PktHdr h;
		if (proto_parse_header(pb.buf + off, pb.pos - off, false, 1000, &h) != PROTO_OK)
			break;
		PktReader r;
		proto_reader_init(&r, &h);
		const char *name = proto_get_string(&r);
		const char *val = proto_get_string(&r);
		if (h.type == 'S' && name && val && strcmp(name, "TimeZone") == 0 &&
		    strcmp(val, "Europe/Amsterdam") == 0)
			n++;
		off += h.len;
	}
	CHECK(n == 100 && off == pb.pos);
	pktbuf_free(&pb);
	uint8_t mem[64];
	pktbuf_init_fixed(&pb, mem, sizeof(mem));
	pktbuf_write_cancel(&pb, 0x01020304, 0x05060708);
	CHECK(pb.pos == 16);
	PktHdr h;
	CHECK(proto_parse_header(pb.buf, pb.pos, true, PROTO_MAX_STARTUP, &h) == PROTO_OK);
	PktReader r;
	proto_reader_init(&r, &h);
	CHECK(proto_get_int32(&r) == PROTO_CANCEL_REQUEST);
	CHECK(proto_get_int32(&r) == 0x01020304);
	CHECK(proto_get_int32(&r) == 0x05060708);
	pktbuf_reset(&pb);
	pktbuf_write_ready(&pb, 'T');
	CHECK(pb.pos == 6 && pb.buf[0] == 'Z' && pb.buf[5] == 'T');
}

static void test_param_status(void)
{
	uint8_t mem[128];
	PktBuf pb;
	PktHdr h;
	const char *name, *value;
	pktbuf_init_fixed(&pb, mem, sizeof(mem));
	pktbuf_write_param_status(&pb, "TimeZone", "UTC");
	CHECK(proto_parse_header(pb.buf, pb.pos, false, 1000, &h) == PROTO_OK);
	CHECK(proto_parse_param_status(&h, &name, &value) == PROTO_OK);
	CHECK_STR(name, "TimeZone");
	CHECK_STR(value, "UTC");
	uint8_t novalue[] = {'S', 0, 0, 0, 7, 'a', 'b', 0};
	CHECK(proto_parse_header(novalue, sizeof(novalue), false, 1000, &h) == PROTO_OK);
	CHECK(proto_parse_param_status(&h, &name, &value) == PROTO_ERROR);
	CHECK(proto_parse_header(mem, 6, false, 1000, &h) == PROTO_OK);
	CHECK(proto_parse_param_status(&h, &name, &value) == PROTO_NEED_MORE);
}

/* Random bytes through every parser must never crash or read out of bounds (run under ASan). */
static void test_random_bytes(void)
{
	uint8_t buf[64];
	unsigned seed = 12345;
	for (int i = 0; i < 20000; i++) {
		size_t len = (size_t)(rand_r(&seed) % sizeof(buf));
		for (size_t j = 0; j < len; j++)
			buf[j] = (uint8_t)rand_r(&seed);
		PktHdr h;
		bool startup = i & 1;
		if (proto_parse_header(buf, len, startup, 64, &h) == PROTO_OK && h.avail == h.len) {
			ErrorFields ef;
			AuthRequest ar;
			PktReader r;
			proto_parse_error(&h, &ef);
			proto_parse_auth_request(&h, &ar);
			const char *n, *v;
			proto_parse_param_status(&h, &n, &v);
			proto_reader_init(&r, &h);
			while (!r.err)
				proto_get_string(&r);
		}
	}
	CHECK(1);
}

int main(void)
{
	test_header();
	test_reader();
	test_error_parse();
	test_auth_request();
	test_builder();
	test_param_status();
	test_random_bytes();
	UNIT_DONE();
}
