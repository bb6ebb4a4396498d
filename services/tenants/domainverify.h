/*
 * domainverify.h - proving control of a custom domain over HTTP.
 *
 * A tenant that claims a host (AddDomain) gets a random token; it serves
 * the token as the body of
 *
 *   http://<host>/.well-known/restaurant-domain-verification/<token>
 *
 * and asks VerifyDomain. This module fetches that URL and compares. The
 * choices, each against a way to abuse a fetch that a tenant triggers:
 *
 *   - plain http on port 80 only (CURLOPT_PROTOCOLS_STR "http"): a domain
 *     being set up has no certificate for us yet, and the proof is the
 *     random token, not the channel (as ACME's HTTP-01);
 *   - no redirects: the answer must come from the host itself, and a
 *     redirect cannot steer the fetch elsewhere;
 *   - a short total timeout and a body cap (DOMAINVERIFY_BODY_MAX bytes;
 *     more is a failure): a slow or huge answer costs us nothing;
 *   - the address the name resolves to must be public (no loopback,
 *     private, link-local, CGNAT, multicast or unspecified address, IPv4
 *     or IPv6): the fetch cannot be used to probe the cluster network.
 *     The answer's body never reaches the caller; only a fixed reason
 *     does.
 *
 * connect_to ("host:port", TENANTS_DOMAIN_VERIFY_CONNECT_TO) makes every
 * fetch connect there instead of the domain's address (CURLOPT_CONNECT_TO;
 * the request still names the domain in Host): for an egress proxy that
 * forwards port 80, and for tests, which cannot use real DNS. The operator
 * chose that address, so the public-address rule does not apply to it.
 */
#ifndef TENANTS_DOMAINVERIFY_H
#define TENANTS_DOMAINVERIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "libs/base/err.h"

#define DOMAINVERIFY_PATH "/.well-known/restaurant-domain-verification/"
#define DOMAINVERIFY_BODY_MAX 256
#define DOMAINVERIFY_URL_MAX 512

typedef struct domainverify_options {
  const char *connect_to; /* "host:port" or NULL/"": the domain itself */
  int64_t timeout_ms;     /* whole fetch; 0 -> 5000 */
} domainverify_options;

/* Checks a "host:port" for connect_to (host a name, IPv4 or [IPv6];
 * port 1..65535). NULL and "" are fine (unset). */
bool domainverify_connect_to_valid(const char *connect_to);

/* The verification URL of host and token into out[DOMAINVERIFY_URL_MAX].
 * ERR_TOOBIG if it does not fit. */
int domainverify_url(const char *host, const char *token,
                     char out[DOMAINVERIFY_URL_MAX]) WARN_UNUSED;

/* Fetches host's verification URL for token and compares the body (with
 * trailing whitespace removed) with token. ERR_OK: equal. Otherwise
 * *why is a static reason for the caller ("could not connect", "answered
 * HTTP 404", "the body is not the token", ...) and the result is
 * ERR_UNAVAILABLE (could not fetch) or ERR_INVAL (fetched, wrong). */
int domainverify_check(const domainverify_options *o, const char *host,
                       const char *token, const char **why) WARN_UNUSED;

/* True when the address (AF_INET / AF_INET6 sockaddr) is one a fetch may
 * connect to without connect_to: a public unicast address. */
struct sockaddr;
bool domainverify_address_public(const struct sockaddr *sa);

#endif
