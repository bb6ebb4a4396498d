/* config_test.c - unit tests for environment configuration and redaction. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libs/obs/config.h"
#include "libs/obs/log.h"

static const cfg_entry table[] = {
    {.name = "T_DB_URL",
     .kind = CFG_URL,
     .required = true,
     .description = "PostgreSQL connection string"},
    {.name = "T_WORKERS", .kind = CFG_INT, .def = "16", .min = 1, .max = 1024},
    {.name = "T_OFFSET", .kind = CFG_INT, .def = "-5"},
    {.name = "T_DRAIN", .kind = CFG_DURATION_MS, .def = "20s"},
    {.name = "T_DEBUG", .kind = CFG_BOOL, .def = "false"},
    {.name = "T_KEY", .kind = CFG_STRING, .secret = true},
    {.name = "T_NAME", .kind = CFG_STRING, .def = "orders"},
    {.name = "T_OPTIONAL", .kind = CFG_STRING},
};
static const size_t ntable = sizeof table / sizeof table[0];

static void clear_env(void) {
  for (size_t i = 0; i < ntable; i++) unsetenv(table[i].name);
}

START_TEST(defaults_apply_when_variables_are_unset) {
  clear_env();
  setenv("T_DB_URL", "postgres://db/orders", 1);
  cfg *c = NULL;
  char err[512];
  ck_assert_int_eq(cfg_load(table, ntable, &c, err, sizeof err), ERR_OK);
  ck_assert_ptr_nonnull(c);
  ck_assert_str_eq(err, "");
  ck_assert_str_eq(cfg_str(c, "T_DB_URL"), "postgres://db/orders");
  ck_assert(cfg_is_set(c, "T_DB_URL"));
  ck_assert_int_eq(cfg_int(c, "T_WORKERS"), 16);
  ck_assert_str_eq(cfg_str(c, "T_WORKERS"), "16");
  ck_assert(!cfg_is_set(c, "T_WORKERS"));
  ck_assert_int_eq(cfg_int(c, "T_OFFSET"), -5);
  ck_assert_int_eq(cfg_duration_ms(c, "T_DRAIN"), 20000);
  ck_assert(!cfg_bool(c, "T_DEBUG"));
  ck_assert_ptr_null(cfg_str(c, "T_KEY"));
  ck_assert_str_eq(cfg_str(c, "T_NAME"), "orders");
  ck_assert_ptr_null(cfg_str(c, "T_OPTIONAL"));
  cfg_free(c);
}
END_TEST

START_TEST(environment_values_override_and_parse_per_kind) {
  clear_env();
  setenv("T_DB_URL", "host=db dbname=orders", 1);
  setenv("T_WORKERS", "1024", 1);
  setenv("T_OFFSET", "+7", 1);
  setenv("T_DEBUG", "YES", 1);
  setenv("T_KEY", "s3cr3t", 1);
  setenv("T_NAME", "kitchen", 1);
  struct {
    const char *text;
    long long ms;
  } durations[] = {{"250", 250},   {"250ms", 250},  {"5s", 5000},
                   {"2m", 120000}, {"1h", 3600000}, {"0", 0}};
  for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
    setenv("T_DRAIN", durations[i].text, 1);
    cfg *c = NULL;
    char err[512];
    ck_assert_int_eq(cfg_load(table, ntable, &c, err, sizeof err), ERR_OK);
    ck_assert_int_eq(cfg_duration_ms(c, "T_DRAIN"), durations[i].ms);
    ck_assert_str_eq(cfg_str(c, "T_DB_URL"), "host=db dbname=orders");
    ck_assert_int_eq(cfg_int(c, "T_WORKERS"), 1024);
    ck_assert_int_eq(cfg_int(c, "T_OFFSET"), 7);
    ck_assert(cfg_bool(c, "T_DEBUG"));
    ck_assert_str_eq(cfg_str(c, "T_KEY"), "s3cr3t");
    ck_assert_str_eq(cfg_str(c, "T_NAME"), "kitchen");
    cfg_free(c);
  }
  const char *truthy[] = {"true", "1", "on", "Yes", "TRUE"};
  const char *falsy[] = {"false", "0", "off", "no", "False"};
  for (size_t i = 0; i < 5; i++) {
    cfg *c = NULL;
    setenv("T_DEBUG", truthy[i], 1);
    ck_assert_int_eq(cfg_load(table, ntable, &c, NULL, 0), ERR_OK);
    ck_assert(cfg_bool(c, "T_DEBUG"));
    cfg_free(c);
    setenv("T_DEBUG", falsy[i], 1);
    ck_assert_int_eq(cfg_load(table, ntable, &c, NULL, 0), ERR_OK);
    ck_assert(!cfg_bool(c, "T_DEBUG"));
    cfg_free(c);
  }
}
END_TEST

START_TEST(every_error_is_reported_naming_its_variable) {
  clear_env();
  setenv("T_WORKERS", "12abc", 1);
  setenv("T_OFFSET", "99999999999999999999", 1);
  setenv("T_DRAIN", "5 s", 1);
  setenv("T_DEBUG", "maybe", 1);
  cfg *c = (cfg *)1;
  char err[1024];
  ck_assert_int_eq(cfg_load(table, ntable, &c, err, sizeof err), ERR_INVAL);
  ck_assert_ptr_null(c);
  ck_assert_msg(strstr(err, "T_DB_URL: required but not set (PostgreSQL "
                            "connection string)") != NULL,
                "%s", err);
  ck_assert_msg(strstr(err, "T_WORKERS: not an integer: \"12abc\""), "%s", err);
  ck_assert_msg(strstr(err, "T_OFFSET: not an integer"), "%s", err);
  ck_assert_msg(strstr(err, "T_DRAIN: not a duration"), "%s", err);
  ck_assert_msg(strstr(err, "T_DEBUG: not a boolean"), "%s", err);
  ck_assert_msg(strstr(err, "; "), "%s", err);
}
END_TEST

START_TEST(out_of_range_and_malformed_values_are_rejected) {
  struct {
    const char *var, *value, *expect;
  } cases[] = {
      {"T_WORKERS", "0", "T_WORKERS: 0 out of range [1, 1024]"},
      {"T_WORKERS", "1025", "T_WORKERS: 1025 out of range [1, 1024]"},
      {"T_WORKERS", " 5", "T_WORKERS: not an integer"},
      {"T_WORKERS", "0x10", "T_WORKERS: not an integer"},
      {"T_WORKERS", "5 ", "T_WORKERS: not an integer"},
      {"T_DRAIN", "-5s", "T_DRAIN: not a duration"},
      {"T_DRAIN", "5d", "T_DRAIN: not a duration"},
      {"T_DRAIN", "ms", "T_DRAIN: not a duration"},
      {"T_DRAIN", "9999999999999999h", "T_DRAIN: not a duration"},
      {"T_DB_URL", "just words", "T_DB_URL: not a URL"},
      {"T_DB_URL", "://host", "T_DB_URL: not a URL"},
      {"T_DB_URL", "postgres://", "T_DB_URL: not a URL"},
      {"T_NAME", "two\nlines", "T_NAME: value contains control characters"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    clear_env();
    setenv("T_DB_URL", "postgres://db/x", 1);
    setenv(cases[i].var, cases[i].value, 1);
    cfg *c = NULL;
    char err[512];
    ck_assert_int_eq(cfg_load(table, ntable, &c, err, sizeof err), ERR_INVAL);
    ck_assert_msg(strstr(err, cases[i].expect) != NULL, "case %zu: %s", i, err);
    ck_assert_ptr_null(c);
  }
}
END_TEST

START_TEST(long_values_are_rejected) {
  clear_env();
  setenv("T_DB_URL", "postgres://db/x", 1);
  char *big = malloc(CFG_MAX_VALUE + 2);
  memset(big, 'a', CFG_MAX_VALUE + 1);
  big[CFG_MAX_VALUE + 1] = '\0';
  setenv("T_NAME", big, 1);
  cfg *c = NULL;
  char err[512];
  ck_assert_int_eq(cfg_load(table, ntable, &c, err, sizeof err), ERR_INVAL);
  ck_assert_ptr_nonnull(strstr(err, "T_NAME: value too long"));
  big[CFG_MAX_VALUE] = '\0'; /* exactly at the bound is fine */
  setenv("T_NAME", big, 1);
  ck_assert_int_eq(cfg_load(table, ntable, &c, err, sizeof err), ERR_OK);
  ck_assert_uint_eq(strlen(cfg_str(c, "T_NAME")), CFG_MAX_VALUE);
  cfg_free(c);
  free(big);
}
END_TEST

START_TEST(empty_variables_count_as_unset) {
  clear_env();
  setenv("T_DB_URL", "", 1);
  setenv("T_WORKERS", "", 1);
  cfg *c = NULL;
  char err[512];
  ck_assert_int_eq(cfg_load(table, ntable, &c, err, sizeof err), ERR_INVAL);
  ck_assert_ptr_nonnull(strstr(err, "T_DB_URL: required but not set"));
  ck_assert_ptr_null(strstr(err, "T_WORKERS"));
  setenv("T_DB_URL", "redis://cache:6379/0", 1);
  ck_assert_int_eq(cfg_load(table, ntable, &c, err, sizeof err), ERR_OK);
  ck_assert_int_eq(cfg_int(c, "T_WORKERS"), 16);
  ck_assert(!cfg_is_set(c, "T_WORKERS"));
  cfg_free(c);
}
END_TEST

START_TEST(secret_values_never_appear_in_errors) {
  static const cfg_entry t[] = {
      {.name = "T_PIN", .kind = CFG_INT, .secret = true},
      {.name = "T_DSN", .kind = CFG_URL},
  };
  unsetenv("T_DSN");
  setenv("T_PIN", "hunter2", 1);
  setenv("T_DSN", "postgres user:pa55word@db", 1);
  cfg *c = NULL;
  char err[512];
  ck_assert_int_eq(cfg_load(t, 2, &c, err, sizeof err), ERR_INVAL);
  ck_assert_msg(strstr(err, "T_PIN: not an integer: \"***\""), "%s", err);
  ck_assert_msg(strstr(err, "T_DSN: not a URL"), "%s", err);
  ck_assert_msg(!strstr(err, "hunter2"), "%s", err);
  ck_assert_msg(!strstr(err, "pa55word"), "%s", err);
}
END_TEST

START_TEST(bad_defaults_and_bad_tables_are_caught) {
  static const cfg_entry bad_default[] = {
      {.name = "T_BD", .kind = CFG_INT, .def = "ten"},
  };
  unsetenv("T_BD");
  cfg *c = NULL;
  char err[512];
  ck_assert_int_eq(cfg_load(bad_default, 1, &c, err, sizeof err), ERR_INVAL);
  ck_assert_msg(strstr(err, "T_BD: not an integer: \"ten\" (default)"), "%s",
                err);
  static const cfg_entry dup[] = {
      {.name = "T_A", .kind = CFG_STRING},
      {.name = "T_A", .kind = CFG_INT},
  };
  ck_assert_int_eq(cfg_load(dup, 2, &c, err, sizeof err), ERR_INVAL);
  ck_assert_ptr_nonnull(strstr(err, "T_A: declared twice"));
  static const cfg_entry noname[] = {{.kind = CFG_STRING}};
  ck_assert_int_eq(cfg_load(noname, 1, &c, err, sizeof err), ERR_INVAL);
  ck_assert_int_eq(cfg_load(table, CFG_MAX_ENTRIES + 1, &c, err, sizeof err),
                   ERR_INVAL);
  ck_assert_int_eq(cfg_load(NULL, 1, &c, err, sizeof err), ERR_INVAL);
  ck_assert_int_eq(cfg_load(table, ntable, NULL, err, sizeof err), ERR_INVAL);
  /* A tiny error buffer is still terminated. */
  char small[8];
  ck_assert_int_eq(cfg_load(bad_default, 1, &c, small, sizeof small),
                   ERR_INVAL);
  ck_assert_uint_lt(strlen(small), sizeof small);
  /* An empty table is valid. */
  ck_assert_int_eq(cfg_load(NULL, 0, &c, err, sizeof err), ERR_OK);
  cfg_free(c);
}
END_TEST

START_TEST(getters_for_unknown_names_or_wrong_kinds_give_zero_values) {
  clear_env();
  setenv("T_DB_URL", "postgres://db/x", 1);
  cfg *c = NULL;
  ck_assert_int_eq(cfg_load(table, ntable, &c, NULL, 0), ERR_OK);
  ck_assert_ptr_null(cfg_str(c, "NOPE"));
  ck_assert_int_eq(cfg_int(c, "NOPE"), 0);
  ck_assert_int_eq(cfg_duration_ms(c, "NOPE"), 0);
  ck_assert(!cfg_bool(c, "NOPE"));
  ck_assert(!cfg_is_set(c, "NOPE"));
  ck_assert_int_eq(cfg_int(c, "T_DRAIN"), 0);
  ck_assert_int_eq(cfg_duration_ms(c, "T_WORKERS"), 0);
  ck_assert_ptr_null(cfg_str(NULL, "T_DB_URL"));
  cfg_free(c);
  cfg_free(NULL);
}
END_TEST

static void assert_redacts(const char *in, const char *want) {
  char out[512];
  ck_assert_int_eq(cfg_redact(in, out, sizeof out), ERR_OK);
  ck_assert_msg(strcmp(out, want) == 0, "redact(%s) = %s, want %s", in, out,
                want);
}

START_TEST(passwords_in_urls_and_keyword_strings_are_redacted) {
  assert_redacts("postgres://user:secret@host:5432/db",
                 "postgres://user:***@host:5432/db");
  assert_redacts("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0");
  assert_redacts("postgresql://u:p%40ss@h/db?sslmode=require",
                 "postgresql://u:***@h/db?sslmode=require");
  /* A raw '@', '/' or '?' in the password is still hidden. */
  assert_redacts("postgres://u:p@ss/w?rd@h/db", "postgres://u:***@h/db");
  assert_redacts("postgres://user@host/db", "postgres://user@host/db");
  assert_redacts("postgres://host:5432/db", "postgres://host:5432/db");
  assert_redacts("tcp://a:1,tcp://u:x@b:2", "tcp://a:1,tcp://u:***@b:2");
  assert_redacts("host=db user=app password=hunter2 dbname=orders",
                 "host=db user=app password=*** dbname=orders");
  assert_redacts("host=db password = 'x y' dbname=x",
                 "host=db password = *** dbname=x");
  assert_redacts("host=db password='a b\\'c' dbname=x",
                 "host=db password=*** dbname=x");
  assert_redacts("PASSWORD=x", "PASSWORD=***");
  assert_redacts("postgres://h/db?user=a&password=pw&x=1",
                 "postgres://h/db?user=a&password=***&x=1");
  assert_redacts("https://api?token=abc", "https://api?token=***");
  assert_redacts("mypassword=visible", "mypassword=visible");
  assert_redacts("plain text", "plain text");
  assert_redacts("", "");
}
END_TEST

START_TEST(redaction_truncates_safely) {
  char out[20];
  ck_assert_int_eq(
      cfg_redact("postgres://user:secret@host:5432/db", out, sizeof out),
      ERR_TOOBIG);
  ck_assert_str_eq(out, "postgres://user:***");
  ck_assert_int_eq(cfg_redact("x", out, 0), ERR_INVAL);
  ck_assert_int_eq(cfg_redact(NULL, out, sizeof out), ERR_OK);
  ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(print_logs_effective_config_with_secrets_hidden) {
  clear_env();
  setenv("T_DB_URL", "postgres://app:dbpass@db:5432/orders", 1);
  setenv("T_KEY", "topsecretkey", 1);
  setenv("T_NAME", "host=x password=kwpass", 1);
  cfg *c = NULL;
  ck_assert_int_eq(cfg_load(table, ntable, &c, NULL, 0), ERR_OK);
  log_init("cfgtest", LOG_INFO);
  FILE *f = tmpfile();
  ck_assert_ptr_nonnull(f);
  int saved = dup(STDOUT_FILENO);
  dup2(fileno(f), STDOUT_FILENO);
  cfg_print(c);
  dup2(saved, STDOUT_FILENO);
  close(saved);
  char buf[8192];
  ssize_t n = pread(fileno(f), buf, sizeof buf - 1, 0);
  fclose(f);
  ck_assert_int_gt(n, 0);
  buf[n] = '\0';
  ck_assert_msg(!strstr(buf, "dbpass"), "%s", buf);
  ck_assert_msg(!strstr(buf, "topsecretkey"), "%s", buf);
  ck_assert_msg(!strstr(buf, "kwpass"), "%s", buf);
  /* One JSON line per entry, in table order. */
  const char *p = buf;
  for (size_t i = 0; i < ntable; i++) {
    const char *e = strchr(p, '\n');
    ck_assert_ptr_nonnull(e);
    json_t *j = json_loadb(p, (size_t)(e - p), 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(j, "msg")), "config");
    ck_assert_str_eq(json_string_value(json_object_get(j, "name")),
                     table[i].name);
    const char *v = json_string_value(json_object_get(j, "value"));
    const char *src = json_string_value(json_object_get(j, "source"));
    if (i == 0) {
      ck_assert_str_eq(v, "postgres://app:***@db:5432/orders");
      ck_assert_str_eq(src, "env");
    } else if (i == 1) {
      ck_assert_str_eq(v, "16");
      ck_assert_str_eq(src, "default");
    } else if (i == 5) {
      ck_assert_str_eq(v, "***");
      ck_assert_str_eq(src, "env");
    } else if (i == 6) {
      ck_assert_str_eq(v, "host=x password=***");
    } else if (i == 7) {
      ck_assert_str_eq(v, "");
      ck_assert_str_eq(src, "unset");
    }
    json_decref(j);
    p = e + 1;
  }
  ck_assert_str_eq(p, "");
  cfg_free(c);
}
END_TEST

int main(void) {
  Suite *s = suite_create("config");
  TCase *tc = tcase_create("config");
  tcase_add_test(tc, defaults_apply_when_variables_are_unset);
  tcase_add_test(tc, environment_values_override_and_parse_per_kind);
  tcase_add_test(tc, every_error_is_reported_naming_its_variable);
  tcase_add_test(tc, out_of_range_and_malformed_values_are_rejected);
  tcase_add_test(tc, long_values_are_rejected);
  tcase_add_test(tc, empty_variables_count_as_unset);
  tcase_add_test(tc, secret_values_never_appear_in_errors);
  tcase_add_test(tc, bad_defaults_and_bad_tables_are_caught);
  tcase_add_test(tc, getters_for_unknown_names_or_wrong_kinds_give_zero_values);
  tcase_add_test(tc, passwords_in_urls_and_keyword_strings_are_redacted);
  tcase_add_test(tc, redaction_truncates_safely);
  tcase_add_test(tc, print_logs_effective_config_with_secrets_hidden);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
