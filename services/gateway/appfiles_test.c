/*
 * appfiles_test.c - the console's static files: what is loaded and what
 * is refused (symlinks in and out of the directory, subdirectories,
 * hidden files, unknown extensions, oversized files), lookups that try to
 * leave the directory, the generated config.json, the CSP, and bad
 * realtime URLs (header injection).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "services/gateway/appfiles.h"

static char g_dir[64];
static char g_outside[96];

static void put(const char *name, const char *text) {
  char p[256];
  snprintf(p, sizeof p, "%s/%s", g_dir, name);
  FILE *f = fopen(p, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
}

static void setup(void) {
  snprintf(g_dir, sizeof g_dir, "%s", "/tmp/appfiles_test.XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(g_dir));
  snprintf(g_outside, sizeof g_outside, "%s.secret.txt", g_dir);
  FILE *f = fopen(g_outside, "w");
  fputs("top secret", f);
  fclose(f);
  put("index.html", "<!doctype html><title>x</title>");
  put("app.js", "export const x = 1;");
  put("style.css", "body{}");
  put(".hidden.js", "nope");
  put("notes.exe", "nope");
  put("config.json", "{\"realtime_url\":\"ws://evil\"}");
  char p[256], q[256];
  snprintf(p, sizeof p, "%s/leak.txt", g_dir);
  ck_assert_int_eq(symlink(g_outside, p), 0);
  snprintf(p, sizeof p, "%s/alias.js", g_dir);
  snprintf(q, sizeof q, "%s/app.js", g_dir);
  ck_assert_int_eq(symlink(q, p), 0);
  snprintf(p, sizeof p, "%s/sub", g_dir);
  ck_assert_int_eq(mkdir(p, 0700), 0);
  put("sub/inner.js", "nope");
  /* one byte over the per-file cap */
  char *big = malloc(APPFILES_MAX_FILE + 2);
  memset(big, 'a', APPFILES_MAX_FILE + 1);
  big[APPFILES_MAX_FILE + 1] = '\0';
  put("big.js", big);
  free(big);
}

static void teardown(void) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", g_dir, g_outside);
  ck_assert_int_eq(system(cmd), 0);
}

static const appfile *find(const appfiles *a, const char *path) {
  return appfiles_find(a, path, strlen(path));
}

START_TEST(loads_plain_files_with_their_types) {
  appfiles *a;
  ck_assert_int_eq(appfiles_load(g_dir, "ws://127.0.0.1:8081/v1/realtime", &a),
                   ERR_OK);
  const appfile *f = find(a, "/app/app.js");
  ck_assert_ptr_nonnull(f);
  ck_assert_str_eq(f->type, "text/javascript; charset=utf-8");
  ck_assert_uint_eq(f->len, strlen("export const x = 1;"));
  ck_assert_int_eq(memcmp(f->data, "export const x = 1;", f->len), 0);
  ck_assert_int_eq(f->etag[0], '"');
  ck_assert_str_eq(find(a, "/app/style.css")->type, "text/css; charset=utf-8");
  ck_assert_str_eq(find(a, "/app/")->name, "index.html");
  ck_assert_str_eq(find(a, "/app")->name, "index.html");
  ck_assert_str_eq(find(a, "/app/index.html")->type,
                   "text/html; charset=utf-8");
  /* index.html, app.js, style.css + the generated config.json */
  ck_assert_uint_eq(appfiles_count(a), 4);
  appfiles_free(a);
}
END_TEST

START_TEST(refuses_symlinks_hidden_unknown_big_and_nested_files) {
  appfiles *a;
  ck_assert_int_eq(appfiles_load(g_dir, NULL, &a), ERR_OK);
  ck_assert_ptr_null(find(a, "/app/leak.txt")); /* symlink out */
  ck_assert_ptr_null(find(a, "/app/alias.js")); /* symlink in */
  ck_assert_ptr_null(find(a, "/app/.hidden.js"));
  ck_assert_ptr_null(find(a, "/app/notes.exe"));
  ck_assert_ptr_null(find(a, "/app/big.js"));
  ck_assert_ptr_null(find(a, "/app/sub/inner.js"));
  ck_assert_ptr_null(find(a, "/app/sub"));
  appfiles_free(a);
}
END_TEST

START_TEST(paths_outside_the_table_are_not_found) {
  appfiles *a;
  ck_assert_int_eq(appfiles_load(g_dir, NULL, &a), ERR_OK);
  const char *bad[] = {"/app/../etc/passwd",
                       "/app/%2e%2e/etc/passwd",
                       "/app/./app.js",
                       "/app//app.js",
                       "/app/app.js/",
                       "/appx/app.js",
                       "/application",
                       "/app/APP.JS",
                       "/app.js",
                       "/app/app.js%00"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(find(a, bad[i]) == NULL, "%s found", bad[i]);
  ck_assert(appfiles_owns("/app", 4));
  ck_assert(appfiles_owns("/app/x", 6));
  ck_assert(!appfiles_owns("/apples", 7));
  ck_assert(!appfiles_owns("/v1/app", 7));
  appfiles_free(a);
}
END_TEST

START_TEST(config_json_is_generated_and_names_the_realtime_url) {
  appfiles *a;
  ck_assert_int_eq(appfiles_load(g_dir, "wss://rt.example.com/v1/realtime", &a),
                   ERR_OK);
  const appfile *f = find(a, "/app/config.json");
  ck_assert_ptr_nonnull(f);
  ck_assert_str_eq(f->type, "application/json");
  ck_assert_ptr_nonnull(
      strstr(f->data, "\"realtime_url\":\"wss://rt.example.com/v1/realtime\""));
  ck_assert_ptr_null(strstr(f->data, "evil")); /* the file on disk is not it */
  const char *csp = appfiles_csp(a);
  ck_assert_ptr_nonnull(strstr(csp, "default-src 'self'"));
  ck_assert_ptr_nonnull(strstr(csp, "script-src 'self';"));
  ck_assert_ptr_nonnull(
      strstr(csp, "connect-src 'self' wss://rt.example.com/v1/realtime;"));
  ck_assert_ptr_null(strstr(csp, "unsafe"));
  appfiles_free(a);

  ck_assert_int_eq(appfiles_load(g_dir, "", &a), ERR_OK);
  f = find(a, "/app/config.json");
  ck_assert_ptr_nonnull(strstr(f->data, "\"realtime_url\":null"));
  ck_assert_ptr_nonnull(strstr(appfiles_csp(a), "connect-src 'self';"));
  appfiles_free(a);
}
END_TEST

START_TEST(bad_urls_and_directories_are_refused) {
  appfiles *a = (appfiles *)1;
  const char *bad[] = {"http://x/v1/realtime", "ws://x/; script-src *",
                       "ws://x/\r\nSet-Cookie: a=b", "ws://x/\"}",
                       "javascript:alert(1)"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_int_eq(appfiles_load(g_dir, bad[i], &a), ERR_INVAL);
    ck_assert_ptr_null(a);
  }
  ck_assert_int_eq(appfiles_load("/nonexistent/dir", NULL, &a), ERR_INVAL);
  ck_assert_int_eq(appfiles_load(g_outside, NULL, &a), ERR_INVAL);
  char p[256];
  snprintf(p, sizeof p, "%s/index.html", g_dir);
  ck_assert_int_eq(unlink(p), 0);
  ck_assert_int_eq(appfiles_load(g_dir, NULL, &a), ERR_INVAL); /* no index */
  appfiles_free(NULL);
}
END_TEST

int main(void) {
  Suite *s = suite_create("appfiles");
  TCase *tc = tcase_create("appfiles");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, loads_plain_files_with_their_types);
  tcase_add_test(tc, refuses_symlinks_hidden_unknown_big_and_nested_files);
  tcase_add_test(tc, paths_outside_the_table_are_not_found);
  tcase_add_test(tc, config_json_is_generated_and_names_the_realtime_url);
  tcase_add_test(tc, bad_urls_and_directories_are_refused);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
