/* dns.c: asynchronous name resolution through libevent's evdns (hosts file + resolv.conf). */
#include "dns.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct evdns_base *dns_create(struct event_base *base, const char *resolv_conf)
{
	struct evdns_base *dns = evdns_base_new(base, 0);
	if (!dns)
		return NULL;
	const char *path = resolv_conf && *resolv_conf ? resolv_conf : "/etc/resolv.conf";
	/* A container may have no resolv.conf; /etc/hosts (extra_hosts) must still work. */
	evdns_base_resolv_conf_parse(dns, DNS_OPTIONS_ALL, path);
	evdns_base_load_hosts(dns, NULL);
	return dns;
}

typedef struct DnsReq {
	DnsCallback cb;
	void *arg;
} DnsReq;

static void on_resolved(int err, struct evutil_addrinfo *res, void *arg)
{
	DnsReq *r = arg;
	if (err == EVUTIL_EAI_CANCEL) {
		free(r);
		return;
	}
	if (err || !res)
		r->cb(r->arg, err ? err : EVUTIL_EAI_FAIL, NULL, 0);
	else
		r->cb(r->arg, 0, res->ai_addr, (socklen_t)res->ai_addrlen);
	if (res)
		evutil_freeaddrinfo(res);
	free(r);
}

struct evdns_getaddrinfo_request *dns_resolve(struct evdns_base *dns, const char *host, int port,
                                              DnsCallback cb, void *arg)
{
	struct evutil_addrinfo hints;
	char portstr[16];
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	snprintf(portstr, sizeof(portstr), "%d", port);
	DnsReq *r = malloc(sizeof(*r));
	if (!r) {
		cb(arg, EVUTIL_EAI_MEMORY, NULL, 0);
		return NULL;
	}
	r->cb = cb;
	r->arg = arg;
	return evdns_getaddrinfo(dns, host, portstr, &hints, on_resolved, r);
}

void dns_cancel(struct evdns_getaddrinfo_request *req)
{
	if (req)
		evdns_getaddrinfo_cancel(req);
}

const char *dns_strerror(int err)
{
	return evutil_gai_strerror(err);
}
