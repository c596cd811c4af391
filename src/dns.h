/* dns.h: asynchronous host name resolution on the worker's event loop (libevent's evdns,
 * which reads /etc/hosts and /etc/resolv.conf and never blocks). */
#ifndef TIDEPOOL_DNS_H
#define TIDEPOOL_DNS_H

#include <event2/dns.h>
#include <sys/socket.h>

typedef void (*DnsCallback)(void *arg, int err, const struct sockaddr *sa, socklen_t salen);

/* Create the resolver for a worker; resolv_conf NULL or empty uses /etc/resolv.conf. */
struct evdns_base *dns_create(struct event_base *base, const char *resolv_conf);

/* Resolve host:port (TCP). The callback may run before this returns (numeric addresses,
 * /etc/hosts). Returns the request handle to cancel with dns_cancel(), or NULL if it already
 * completed. */
struct evdns_getaddrinfo_request *dns_resolve(struct evdns_base *dns, const char *host, int port,
                                              DnsCallback cb, void *arg);
void dns_cancel(struct evdns_getaddrinfo_request *req);
const char *dns_strerror(int err);

#endif
