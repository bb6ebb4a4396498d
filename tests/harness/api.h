/*
 * api.h - the first calls every test of the public HTTP API makes: a
 * tenant with its owner, and a login. Over tests/harness/http.h, against
 * a gateway on 127.0.0.1:<port>.
 *
 * These do not assert: they return the HTTP status, so Check tests assert
 * on it and fixtures that are not tests (tools/bench) can use them too.
 * Any status but the expected one is printed to stderr with the answer's
 * body, so a failed set-up explains itself.
 */
#ifndef TESTS_HARNESS_API_H
#define TESTS_HARNESS_API_H

#include <stddef.h>

#include "libs/base/uuid.h"
#include "libs/paseto/paseto.h"

/* A tenant made through POST /v1/tenants, as its owner sees it. */
typedef struct harness_api_tenant {
  char id[UUID_STR_LEN + 1];
  char slug[48];
  char owner_id[UUID_STR_LEN + 1];
  char owner_email[128];
  char owner_token[PASETO_TOKEN_MAX + 1]; /* access token */
  char refresh[256];                      /* refresh token */
} harness_api_tenant;

/* POST /v1/tenants: slug harness_unique(prefix), name "Cafe <slug>",
 * owner "Owner@<slug>.example.test" (mixed case: the API lowercases it)
 * named "Olga Owner" with password, default currency. On 201 fills t;
 * returns the status (0: no answer). */
long harness_api_create_tenant(int port, const char *prefix,
                               const char *password, harness_api_tenant *t);

/* POST /v1/auth/login in the tenant with this slug (X-Tenant header). On
 * 200 copies the access token into token[cap] and, when refresh is not
 * NULL, the refresh token into refresh[rcap]; returns the status. */
long harness_api_login(int port, const char *slug, const char *email,
                       const char *password, char *token, size_t cap,
                       char *refresh, size_t rcap);

#endif
