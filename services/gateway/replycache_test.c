/*
 * replycache_test.c - remembered JSON is only ever given back for the
 * exact bytes and route it was made from: another route, other bytes of
 * the same length, or bytes one differing at the end all miss; small and
 * huge replies are not kept; a full table replaces, never mixes.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/gateway/replycache.h"

static int route_a, route_b; /* two distinct "routes" */

static uint8_t *bytes(size_t n, uint8_t seed) {
  uint8_t *b = malloc(n);
  for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(seed + i * 7);
  return b;
}

START_TEST(the_same_bytes_and_route_get_the_json_back) {
  replycache *c = NULL;
  ck_assert_int_eq(replycache_new(&c), ERR_OK);
  uint8_t *p = bytes(5000, 1);
  char *j = NULL;
  size_t jl = 0;
  ck_assert(!replycache_get(c, &route_a, p, 5000, &j, &jl));
  replycache_put(c, &route_a, p, 5000, "{\"products\":[]}", 15);
  ck_assert(replycache_get(c, &route_a, p, 5000, &j, &jl));
  ck_assert_uint_eq(jl, 15);
  ck_assert_str_eq(j, "{\"products\":[]}");
  free(j);
  /* Another route with the same bytes: a miss. */
  ck_assert(!replycache_get(c, &route_b, p, 5000, &j, &jl));
  ck_assert_ptr_null(j);
  /* The same length, one byte different (at the end: a tenant's last
   * product): a miss. */
  uint8_t *q = bytes(5000, 1);
  q[4999] ^= 1;
  ck_assert(!replycache_get(c, &route_a, q, 5000, &j, &jl));
  /* A prefix: a miss. */
  ck_assert(!replycache_get(c, &route_a, p, 4999, &j, &jl));
  free(p);
  free(q);
  replycache_free(c);
  replycache_free(NULL);
}
END_TEST

START_TEST(small_and_huge_replies_are_not_kept) {
  replycache *c = NULL;
  ck_assert_int_eq(replycache_new(&c), ERR_OK);
  ck_assert(!replycache_wants(REPLYCACHE_MIN - 1));
  ck_assert(replycache_wants(REPLYCACHE_MIN));
  ck_assert(!replycache_wants(REPLYCACHE_MAX + 1));
  uint8_t *p = bytes(100, 3);
  char *j = NULL;
  size_t jl = 0;
  replycache_put(c, &route_a, p, 100, "{}", 2);
  ck_assert(!replycache_get(c, &route_a, p, 100, &j, &jl));
  free(p);
  ck_assert(!replycache_get(NULL, &route_a, (const uint8_t *)"x", 1, &j, &jl));
  replycache_free(c);
}
END_TEST

START_TEST(a_full_table_replaces_and_never_mixes) {
  replycache *c = NULL;
  ck_assert_int_eq(replycache_new(&c), ERR_OK);
  enum { N = REPLYCACHE_SLOTS * 3 };
  uint8_t *ps[N];
  char json[32];
  for (int i = 0; i < N; i++) {
    ps[i] = bytes(REPLYCACHE_MIN + (size_t)(i % 5), (uint8_t)i);
    int n = snprintf(json, sizeof json, "{\"i\":%d}", i);
    replycache_put(c, &route_a, ps[i], REPLYCACHE_MIN + (size_t)(i % 5), json,
                   (size_t)n);
  }
  int hits = 0;
  for (int i = 0; i < N; i++) {
    char *j = NULL;
    size_t jl = 0;
    if (replycache_get(c, &route_a, ps[i], REPLYCACHE_MIN + (size_t)(i % 5), &j,
                       &jl)) {
      snprintf(json, sizeof json, "{\"i\":%d}", i);
      ck_assert_str_eq(j, json); /* its own JSON, whatever the slot */
      free(j);
      hits++;
    }
    free(ps[i]);
  }
  ck_assert_int_gt(hits, 0);
  ck_assert_int_le(hits, REPLYCACHE_SLOTS);
  replycache_free(c);
}
END_TEST

int main(void) {
  Suite *s = suite_create("replycache");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, the_same_bytes_and_route_get_the_json_back);
  tcase_add_test(tc, small_and_huge_replies_are_not_kept);
  tcase_add_test(tc, a_full_table_replaces_and_never_mixes);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
