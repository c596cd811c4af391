/* test_peer.c: the cancel key layout of peering (peer_id in the key, TTL bits) as PgBouncer lays it out. */
#include "peer.h"
#include "unit.h"

/* The 8 key bytes in wire order: pid then key, each big-endian. */
static void wire(uint32_t pid, uint32_t key, uint8_t out[8])
{
	for (int i = 0; i < 4; i++) {
		out[i] = (uint8_t)(pid >> (24 - 8 * i));
		out[4 + i] = (uint8_t)(key >> (24 - 8 * i));
	}
}

static void test_stamp(void)
{
	static const int ids[] = {1, 5, 255, 256, 16383};
	static const uint32_t randoms[][2] = {
	    {0xffffffffu, 0xfffffffcu}, {0x00000000u, 0x00000000u}, {0x9abcdef1u, 0x12345678u}};
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		for (size_t r = 0; r < sizeof(randoms) / sizeof(randoms[0]); r++) {
			uint32_t pid = randoms[r][0], key = randoms[r][1];
			uint8_t b[8], orig[8];
			wire(pid, key, orig);
			peer_key_stamp(&pid, &key, ids[i]);
			wire(pid, key, b);
			CHECK((b[0] & 0x80) == 0);                /* positive, as a PID */
			CHECK(b[0] == (orig[0] & 0x7f));          /* otherwise random */
			CHECK(b[1] == (ids[i] & 0xff));           /* peer_id, low byte */
			CHECK(b[2] == (ids[i] >> 8));             /* peer_id, high byte */
			CHECK(b[3] == orig[3]);                   /* the worker's byte is untouched */
			CHECK(memcmp(b + 4, orig + 4, 3) == 0);   /* random */
			CHECK((b[7] & 3) == 3);                   /* a fresh key may make 3 hops */
			CHECK((b[7] & 0xfc) == (orig[7] & 0xfc)); /* the rest of it random */
			CHECK(peer_key_id(pid) == ids[i]);
		}
	}
}

static void test_no_peering(void)
{
	uint32_t pid = 0xfedcba98u, key = 0x76543210u;
	peer_key_stamp(&pid, &key, 0);
	CHECK(pid == 0x7edcba98u); /* only the sign bit cleared */
	CHECK(key == 0x76543210u);
}

static void test_id_and_match(void)
{
	/* bytes 1 and 2 of the pid half, low byte first */
	CHECK(peer_key_id(0x00010000u) == 1);
	CHECK(peer_key_id(0x12050034u) == 5);
	CHECK(peer_key_id(0x00ff3f00u) == 16383);
	CHECK(peer_key_id(0x7f0000ffu) == 0);
	/* each hop takes one off the TTL; the key still names the same client */
	CHECK(peer_key_match(0xabcdef03u, 0xabcdef03u));
	CHECK(peer_key_match(0xabcdef03u, 0xabcdef02u));
	CHECK(peer_key_match(0xabcdef03u, 0xabcdef00u));
	CHECK(!peer_key_match(0xabcdef03u, 0xabcdef07u));
	CHECK(!peer_key_match(0xabcdef03u, 0xbbcdef03u));
}

int main(void)
{
	test_stamp();
	test_no_peering();
	test_id_and_match();
	UNIT_DONE();
}
