/* cases.c - one tcase per test (see cases.h). */
#include "tests/harness/cases.h"

void harness_add_case(Suite *s, const char *name, const TTest *t, int timeout_s,
                      void (*setup)(void)) {
  TCase *tc = tcase_create(name);
  tcase_set_timeout(tc, timeout_s);
  if (setup != NULL) tcase_add_checked_fixture(tc, setup, NULL);
  tcase_add_test(tc, t);
  suite_add_tcase(s, tc);
}

int harness_run_shared(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_set_fork_status(sr, CK_NOFORK);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed;
}
