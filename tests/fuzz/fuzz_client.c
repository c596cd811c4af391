/* fuzz_client: what a (hostile or broken) client sends, in every connection state, through
 * the daemon's real code: sbuf reading and framing, the startup packet, authentication
 * (trust/any/md5/plain), login to a pool, simple and extended queries, COPY, Terminate,
 * cancel requests, the admin console, slow readers, timeouts and RELOAD with live clients.
 * PostgreSQL is netsim's well-behaved fake server (auto mode on).
 *
 * Input: NS_VARIANT_BYTES of configuration variant, then netsim's op stream; bytes >= 0xf0
 * introduce raw client data. See netsim.c for the ops. */
#include "fuzz_common.h"
#include "netsim.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	ns_global_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < NS_VARIANT_BYTES || size > 16384)
		return 0;
	NsVariant v;
	memcpy(v.b, data, NS_VARIANT_BYTES);
	ns_begin(&v, true);
	ns_run_ops(data + NS_VARIANT_BYTES, size - NS_VARIANT_BYTES, NS_DEFAULT_CLIENT);
	ns_end();
	return 0;
}
