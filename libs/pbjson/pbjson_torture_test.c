/* pbjson_torture_test.c - makes every allocation of a decode, encode or
 * parameter merge fail in turn (curl's "torture" idea) and checks the call
 * reports ERR_NOMEM, returns nothing, and frees everything it had built
 * (run under --config=asan for LeakSanitizer to check the last part).
 *
 * pbjson.c is included here with malloc/calloc redirected so its own
 * allocations can be failed; jansson's go through json_set_alloc_funcs. */
#include <float.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long alloc_count;
static long fail_at = -1; /* index of the allocation to fail; -1 = none */

static bool inject(void) { return alloc_count++ == fail_at; }

static void *torture_malloc(size_t n) { return inject() ? NULL : malloc(n); }

static void *torture_calloc(size_t n, size_t size) {
  return inject() ? NULL : calloc(n, size);
}

/* jansson 2.14's parser mishandles allocation failures (it ignores them
 * while buffering a token and then reads past its buffer or asserts:
 * akheron/jansson#362), so nothing is failed while it parses; allocations
 * jansson makes for pbjson's encoder are failed like any other. */
static json_t *torture_json_loadb(const char *b, size_t n, size_t flags,
                                  json_error_t *e) {
  long saved = fail_at, count = alloc_count;
  fail_at = -1;
  json_t *j = json_loadb(b, n, flags, e);
  fail_at = saved;
  alloc_count = count;
  return j;
}

#define json_loadb(b, n, flags, e) torture_json_loadb(b, n, flags, e)
#define malloc(n) torture_malloc(n)
#define calloc(n, size) torture_calloc(n, size)
#include "libs/pbjson/pbjson.c"
#undef malloc
#undef calloc
#undef json_loadb

#include <check.h> /* after pbjson.c: check.h defines a fail() macro */

#include "libs/pbjson/testdata/pbjson_test.pb-c.h"

#define EVERYTHING (&pbjson__test__everything__descriptor)

static const char *DOC =
    "{\"scalars\":{\"i32\":-1,\"u64\":\"18446744073709551615\",\"fl\":0.5,"
    "\"b\":true,\"color\":\"COLOR_RED\",\"str\":\"s\",\"by\":\"AAEC\"},"
    "\"owner\":{\"email\":\"o@x\"},"
    "\"items\":[{\"product_id\":\"p\",\"quantity\":3,\"tags\":[\"t1\"]},{}],"
    "\"r_i32\":[1],\"r_str\":[\"x\",\"y\"],\"r_by\":[\"/w==\"],"
    "\"choice_contact\":{\"email\":\"c\"},\"counts\":{\"k\":1,\"l\":2},"
    "\"by_flag\":{\"true\":{\"name\":\"f\"}},"
    "\"node\":{\"name\":\"a\",\"child\":{\"name\":\"b\"}}}";

/* Same shape with errors at several depths. */
static const char *BAD_DOC =
    "{\"owner\":{\"email\":1},\"items\":[{\"quantity\":\"x\"},{\"bogus\":1}],"
    "\"counts\":{\"k\":\"v\"},\"choice_contact\":{\"bogus\":2},"
    "\"choice_str\":\"s\",\"r_by\":[\"!!\"]}";

static void setup(void) {
  json_set_alloc_funcs(torture_malloc, free);
  fail_at = -1;
}

/* Runs op with allocation i failed, for every i until op no longer
 * allocates that many times; each failed run must give ERR_NOMEM (or, for
 * a document with errors, `bad_rc` when the failure came after them). */
typedef int (*op_fn)(void);

static void torture(op_fn op, int good_rc, int bad_rc) {
  fail_at = -1;
  alloc_count = 0;
  ck_assert_int_eq(op(), good_rc);
  long total = alloc_count;
  ck_assert_int_gt(total, 0);
  for (long i = 0; i < total; i++) {
    alloc_count = 0;
    fail_at = i;
    int rc = op();
    fail_at = -1;
    ck_assert_msg(rc == ERR_NOMEM || rc == bad_rc,
                  "allocation %ld of %ld failed, got %s", i, total,
                  err_str(rc));
  }
}

static int op_decode(void) {
  ProtobufCMessage *m = (ProtobufCMessage *)1;
  pbjson_error e;
  int rc = pbjson_decode(EVERYTHING, DOC, strlen(DOC), NULL, &m, &e);
  ck_assert_int_eq(e.code, rc);
  if (rc == ERR_OK)
    pbjson_free(m);
  else
    ck_assert_ptr_null(m);
  return rc;
}

static int op_decode_bad(void) {
  ProtobufCMessage *m = (ProtobufCMessage *)1;
  pbjson_error e;
  int rc = pbjson_decode(EVERYTHING, BAD_DOC, strlen(BAD_DOC), NULL, &m, &e);
  ck_assert_ptr_null(m);
  return rc;
}

static ProtobufCMessage *decoded; /* built with injection off */

static int op_encode_string(void) {
  char *s = (char *)1;
  int rc = pbjson_encode_string(decoded, NULL, &s, NULL, NULL);
  if (rc == ERR_OK)
    free(s);
  else
    ck_assert_ptr_null(s);
  return rc;
}

/* The body object is made and freed outside the counted allocations. */
static json_t *uncounted_body(void) {
  long saved = fail_at, count = alloc_count;
  fail_at = -1;
  json_t *body = json_pack("{s:[i]}", "r_i32", 1);
  ck_assert_ptr_nonnull(body);
  fail_at = saved;
  alloc_count = count;
  return body;
}

static int op_param_set(void) {
  json_t *body = uncounted_body();
  int rc = pbjson_param_set(body, EVERYTHING, "r_str", "a", 1, NULL);
  if (rc == ERR_OK)
    rc = pbjson_param_set(body, EVERYTHING, "r_i32", "2", 1, NULL);
  if (rc == ERR_OK)
    rc = pbjson_param_set(body, EVERYTHING, "choice_num", "3", 1, NULL);
  json_decref(body);
  return rc;
}

START_TEST(decode_frees_everything_when_any_allocation_fails) {
  torture(op_decode, ERR_OK, ERR_NOMEM);
}
END_TEST

START_TEST(decode_with_field_errors_frees_everything_when_allocation_fails) {
  torture(op_decode_bad, ERR_INVAL, ERR_INVAL);
}
END_TEST

START_TEST(encode_frees_everything_when_any_allocation_fails) {
  pbjson_error e;
  ck_assert_int_eq(
      pbjson_decode(EVERYTHING, DOC, strlen(DOC), NULL, &decoded, &e), ERR_OK);
  torture(op_encode_string, ERR_OK, ERR_NOMEM);
  pbjson_free(decoded);
}
END_TEST

START_TEST(param_set_frees_everything_when_any_allocation_fails) {
  torture(op_param_set, ERR_OK, ERR_NOMEM);
}
END_TEST

int main(void) {
  Suite *s = suite_create("pbjson_torture");
  TCase *tc = tcase_create("allocation failures");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_add_test(tc, decode_frees_everything_when_any_allocation_fails);
  tcase_add_test(
      tc, decode_with_field_errors_frees_everything_when_allocation_fails);
  tcase_add_test(tc, encode_frees_everything_when_any_allocation_fails);
  tcase_add_test(tc, param_set_frees_everything_when_any_allocation_fails);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
