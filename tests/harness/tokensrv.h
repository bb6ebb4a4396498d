/*
 * tokensrv.h - a tiny HTTP server standing in for tenants' web sites in
 * custom-domain verification tests (libmicrohttpd, on 127.0.0.1 and a free
 * port, in the test process).
 *
 * Tests cannot use real DNS, so the tenants service is started with
 * TENANTS_DOMAIN_VERIFY_CONNECT_TO=127.0.0.1:<port>: every verification
 * fetch connects here, whatever the domain. The server answers
 *
 *   GET /.well-known/restaurant-domain-verification/<token>
 *
 * with the body the test set for that token (200), or 404. Bodies are
 * files in a directory of their own, read at each request, so a test
 * case that Check forked sets them for the server its parent started.
 */
#ifndef TESTS_HARNESS_TOKENSRV_H
#define TESTS_HARNESS_TOKENSRV_H

typedef struct harness_tokensrv harness_tokensrv;

/* Starts one; NULL on failure (printed). */
harness_tokensrv *harness_tokensrv_start(void);

/* "TENANTS_DOMAIN_VERIFY_CONNECT_TO=127.0.0.1:<port>" into out[cap]. */
const char *harness_tokensrv_env(const harness_tokensrv *s, char *out, int cap);

/* Serves body for token (NULL: 404 again). token is [A-Za-z0-9_-]+. */
void harness_tokensrv_set(const harness_tokensrv *s, const char *token,
                          const char *body);

void harness_tokensrv_stop(harness_tokensrv *s); /* NULL-safe */

#endif
