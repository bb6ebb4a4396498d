/*
 * idemcheck.c - the Idempotency-Key contract as one reusable check (see
 * idemcheck.h). The race fires both requests from their own threads
 * behind a barrier, each on its own curl handle, so they reach the
 * gateway together; which one wins is left to the race, and the check
 * accepts exactly the two answers the contract allows.
 */
#include "tests/harness/idemcheck.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "tests/harness/http.h"

typedef struct shot {
  pthread_barrier_t *bar;
  const harness_idem_case *c;
  const char *body, *key_header;
  harness_http_resp *r;
} shot;

static harness_http_resp *post(const harness_idem_case *c, const char *body,
                               const char *key_header) {
  const char *h[] = {key_header, c->header, NULL};
  return harness_http_request("POST", c->port, c->path, body, c->token, h);
}

static void *fire(void *arg) {
  shot *s = arg;
  pthread_barrier_wait(s->bar);
  s->r = post(s->c, s->body, s->key_header);
  return NULL;
}

static long long rows(const harness_idem_case *c, const char *arg) {
  return harness_pg_count(c->pg, c->count_sql, arg);
}

static void fresh_key(const harness_idem_case *c, char *h, size_t cap) {
  char key[96];
  harness_unique(key, sizeof key, c->key_prefix);
  snprintf(h, cap, "Idempotency-Key: %s", key);
}

/* Same key, same body: the first answer again, one row; another body
 * under that key: 400, no row. */
static void replay_and_reuse(const harness_idem_case *c) {
  char h[160];
  fresh_key(c, h, sizeof h);
  harness_http_resp *r1 = post(c, c->body, h);
  CK_HTTP_STATUS(r1, c->status);
  harness_http_resp *r2 = post(c, c->body, h);
  CK_HTTP_STATUS(r2, c->status);
  ck_assert_str_eq(r2->body, r1->body);
  ck_assert_int_eq(rows(c, c->count_arg), 1);
  harness_http_resp *r3 = post(c, c->other_body, h);
  CK_HTTP_ERROR(r3, 400, "INVALID_ARGUMENT");
  ck_assert(harness_http_has_detail(r3, "idempotency_key"));
  ck_assert_int_eq(rows(c, c->count_other_arg), 0);
  ck_assert_int_eq(rows(c, c->count_arg), 1);
  harness_http_free(r1);
  harness_http_free(r2);
  harness_http_free(r3);
}

/* Two at once with one fresh key: one row; answers the create's or 409;
 * a later retry replays the winner. */
static void race_round(const harness_idem_case *c, const char *body,
                       const char *arg) {
  char h[160];
  fresh_key(c, h, sizeof h);
  pthread_barrier_t bar;
  pthread_barrier_init(&bar, NULL, 2);
  shot s[2] = {{.bar = &bar, .c = c, .body = body, .key_header = h},
               {.bar = &bar, .c = c, .body = body, .key_header = h}};
  pthread_t th[2];
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(pthread_create(&th[i], NULL, fire, &s[i]), 0);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  pthread_barrier_destroy(&bar);
  const char *won = NULL;
  for (int i = 0; i < 2; i++) {
    if (s[i].r->status == c->status) {
      if (won != NULL) ck_assert_str_eq(s[i].r->body, won);
      won = s[i].r->body;
    } else {
      CK_HTTP_ERROR(s[i].r, 409, "ABORTED");
    }
  }
  ck_assert_msg(won != NULL, "neither concurrent request created");
  ck_assert_int_eq(rows(c, arg), 1);
  harness_http_resp *again = post(c, body, h);
  CK_HTTP_STATUS(again, c->status);
  ck_assert_str_eq(again->body, won);
  ck_assert_int_eq(rows(c, arg), 1);
  harness_http_free(again);
  harness_http_free(s[0].r);
  harness_http_free(s[1].r);
}

void harness_idem_check(const harness_idem_case *c) {
  replay_and_reuse(c);
  for (int i = 0; i < 3 && c->race_body[i] != NULL; i++)
    race_round(c, c->race_body[i], c->race_arg[i]);
}
