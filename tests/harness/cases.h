/*
 * cases.h - one Check tcase per test, so that CK_RUN_CASE=<test name>
 * runs a single case of a suite. Check selects by tcase name only (there
 * is no per-test filter), and the suites that share one system under
 * CK_NOFORK start it in main(), not in a tcase fixture, so a tcase per
 * test costs nothing. Each case must then set up what it needs itself
 * (or through setup below): none may rely on an earlier one.
 */
#ifndef TESTS_HARNESS_CASES_H
#define TESTS_HARNESS_CASES_H

#include <check.h>

/* Adds t to s as its own tcase named name (borrowed: a string literal),
 * with timeout_s seconds and, when setup is not NULL, setup as a checked
 * fixture (it runs before the case, also under CK_NOFORK). */
void harness_add_case(Suite *s, const char *name, const TTest *t, int timeout_s,
                      void (*setup)(void));

/* harness_add_case named after the test itself. */
#define HARNESS_ADD_CASE(s, t, timeout_s, setup)                               \
  harness_add_case((s), #t, (t), (timeout_s), (setup))

/* Runs s without forking - the cases share the system main() started -
 * and frees its runner; the number of failed cases. */
int harness_run_shared(Suite *s);

#endif
