/* fuzz_server: what a (hostile or broken) PostgreSQL server sends to the pooler, in every
 * server state: during login (authentication requests incl. md5 and the SCRAM exchange,
 * ParameterStatus, BackendKeyData, errors, ReadyForQuery), while linked to a client
 * (results, COPY, notices, async messages, ReadyForQuery with any status), while running the
 * pooler's own queries (SET for parameter sync, reset and check queries), and while idle.
 *
 * Prologue: a client logs in as "app" (the password answered when asked) and queues
 * "SELECT 1"; the pooler connects to the fake PostgreSQL, whose replies are the fuzzer's
 * (auto mode off). The database is appdb (a Unix socket: no SSLRequest), or tcpdb when variant
 * byte 0 bit 7 is set (TCP: unless server_tls_sslmode is disable, the pooler first sends an
 * SSLRequest, so the first reply byte answers it: 'N', or 'S' and a TLS handshake). Input: NS_VARIANT_BYTES of configuration variant, then netsim's op stream;
 * bytes >= 0xf0 introduce raw server data. */
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
	ns_begin(&v, false);
	int c = ns_client_new(true);
	ns_client_login(c, "app", (v.b[0] & 0x80) ? "tcpdb" : "appdb", NULL);
	ns_pump(48);
	ns_client_answer_auth(c, "apppass");
	ns_pump(48);
	ns_client_query_marked(c, "SELECT 1");
	ns_pump(48);
	ns_run_ops(data + NS_VARIANT_BYTES, size - NS_VARIANT_BYTES, NS_DEFAULT_SERVER);
	ns_end();
	return 0;
}
