/*
 * idemcheck.h - one Check test of HTTP-API.md's Idempotency-Key promise
 * for a create endpoint, over the gateway: the same key with the same body
 * answers the first answer again (same status, same body) and creates one
 * row; the same key with another body is 400 and creates nothing; two
 * requests sent at once with one fresh key create one row, and each
 * answer is either that create's answer or 409 (the first still running);
 * a retry after both answered replays.
 *
 * Rows are counted straight in PostgreSQL (harness_pg_count, superuser,
 * so row-level security hides nothing), with SQL the test gives.
 */
#ifndef TESTS_HARNESS_IDEMCHECK_H
#define TESTS_HARNESS_IDEMCHECK_H

#include "tests/harness/harness.h"

typedef struct harness_idem_case {
  int port;               /* the gateway's HTTP port */
  const char *path;       /* POST target: "/v1/products" */
  const char *token;      /* NULL: anonymous */
  const char *header;     /* one extra header line or NULL ("Host: x") */
  const char *key_prefix; /* keys are harness_unique(key_prefix) */
  long status;            /* the create's status: 201 */
  const harness_pg *pg;
  /* SQL counting the rows a body creates, its $1 the body's count arg. */
  const char *count_sql;
  /* First part: body and count_arg; other_body is a different request
   * (its count must stay 0: count_other_arg). */
  const char *body, *count_arg;
  const char *other_body, *count_other_arg;
  /* Race part: race_body[i] with race_arg[i], one fresh key per round. */
  const char *race_body[3], *race_arg[3];
} harness_idem_case;

/* Runs every check above; fails the Check test on the first miss. */
void harness_idem_check(const harness_idem_case *c);

#endif
