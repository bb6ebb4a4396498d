/*
 * db_test.c - libs/db logic that needs no server: SQLSTATE mapping, error
 * message scrubbing, parameters, result helpers (on results built
 * client-side with PQmakeEmptyPGresult; db_result is a PGresult inside),
 * migration file listing, schema names, configuration and an unreachable
 * server. Everything against a real PostgreSQL is in tests/db/db_itest.c.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <postgresql/libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libs/base/timeutil.h"
#include "libs/db/db.h"
#include "libs/db/db_internal.h"

START_TEST(sqlstates_map_to_error_codes) {
  ck_assert_int_eq(db_err_from_sqlstate("23505"), ERR_EXISTS);
  ck_assert_int_eq(db_err_from_sqlstate("40001"), ERR_CONFLICT);
  ck_assert_int_eq(db_err_from_sqlstate("40P01"), ERR_CONFLICT);
  ck_assert_int_eq(db_err_from_sqlstate("55P03"), ERR_CONFLICT);
  ck_assert_int_eq(db_err_from_sqlstate("57014"), ERR_TIMEOUT);
  ck_assert_int_eq(db_err_from_sqlstate("08006"), ERR_UNAVAILABLE);
  ck_assert_int_eq(db_err_from_sqlstate("08001"), ERR_UNAVAILABLE);
  ck_assert_int_eq(db_err_from_sqlstate("57P01"), ERR_UNAVAILABLE);
  ck_assert_int_eq(db_err_from_sqlstate("53300"), ERR_UNAVAILABLE);
  ck_assert_int_eq(db_err_from_sqlstate("22P02"), ERR_INVAL);
  ck_assert_int_eq(db_err_from_sqlstate("23503"), ERR_DB);
  ck_assert_int_eq(db_err_from_sqlstate("42P01"), ERR_DB);
  ck_assert_int_eq(db_err_from_sqlstate(NULL), ERR_DB);
  ck_assert_int_eq(db_err_from_sqlstate(""), ERR_DB);
  ck_assert_int_eq(db_err_from_sqlstate("2350"), ERR_DB);
  ck_assert_int_eq(db_err_from_sqlstate("235050"), ERR_DB);
}
END_TEST

START_TEST(server_messages_lose_the_value_part) {
  char out[128];
  db_scrub_message("invalid input syntax for type uuid: \"secret-value\"", true,
                   out, sizeof out);
  ck_assert_str_eq(out, "invalid input syntax for type uuid");
  db_scrub_message(
      "duplicate key value violates unique constraint \"users_email_key\"",
      true, out, sizeof out);
  ck_assert_str_eq(
      out,
      "duplicate key value violates unique constraint \"users_email_key\"");
  db_scrub_message("line one\nDETAIL: Key (email)=(x@y) already exists.", false,
                   out, sizeof out);
  ck_assert_str_eq(out, "line one");
  /* Client messages keep their reason after the colon. */
  db_scrub_message("connection to server failed: Connection refused\n", false,
                   out, sizeof out);
  ck_assert_str_eq(out, "connection to server failed: Connection refused");
  db_scrub_message("bad\x01\x7f byte", false, out, sizeof out);
  ck_assert_str_eq(out, "bad?? byte");
  db_scrub_message(NULL, false, out, sizeof out);
  ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(param_constructors_keep_values) {
  db_param t = db_text("it's");
  ck_assert_int_eq(t.kind, DB_P_TEXT);
  ck_assert_str_eq(t.data, "it's");
  ck_assert_int_eq(db_text(NULL).kind, DB_P_NULL);
  ck_assert_int_eq(db_null().kind, DB_P_NULL);
  db_param b = db_bytes("a\0b", 3);
  ck_assert_int_eq(b.kind, DB_P_BINARY);
  ck_assert_int_eq(b.len, 3);
  ck_assert_int_eq(memcmp(b.data, "a\0b", 3), 0);
  ck_assert_int_eq(db_bytes(NULL, 0).len, 0);
  ck_assert_ptr_nonnull(db_bytes(NULL, 0).data);
  ck_assert_str_eq(db_int64(INT64_MIN).inline_text, "-9223372036854775808");
  ck_assert_str_eq(db_int64(INT64_MAX).inline_text, "9223372036854775807");
  ck_assert_str_eq(db_bool(true).inline_text, "true");
  ck_assert_str_eq(db_bool(false).inline_text, "false");
}
END_TEST

/* A two-row result with columns n (int8), b (bool), raw (bytea), s (text). */
static PGresult *fake_result(void) {
  PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
  PGresAttDesc attrs[4];
  memset(attrs, 0, sizeof attrs);
  const char *names[] = {"n", "b", "raw", "s"};
  for (int i = 0; i < 4; i++) {
    attrs[i].name = (char *)names[i];
    attrs[i].atttypmod = -1;
    attrs[i].typlen = -1;
  }
  ck_assert(PQsetResultAttrs(r, 4, attrs));
  ck_assert(PQsetvalue(r, 0, 0, "-42", 3));
  ck_assert(PQsetvalue(r, 0, 1, "t", 1));
  ck_assert(PQsetvalue(r, 0, 2, "\\x00ff41", 8));
  ck_assert(PQsetvalue(r, 0, 3, "hello", 5));
  ck_assert(PQsetvalue(r, 1, 0, "99999999999999999999", 20));
  ck_assert(PQsetvalue(r, 1, 1, "maybe", 5));
  ck_assert(PQsetvalue(r, 1, 2, NULL, -1));
  ck_assert(PQsetvalue(r, 1, 3, "12x", 3));
  return r;
}

START_TEST(result_helpers_parse_and_reject) {
  db_result *r = (db_result *)fake_result();
  ck_assert_int_eq(db_nrows(r), 2);
  ck_assert_int_eq(db_ncols(r), 4);
  ck_assert_int_eq(db_col(r, "raw"), 2);
  ck_assert_int_eq(db_col(r, "nope"), -1);

  int64_t v = 0;
  ck_assert_int_eq(db_get_int64(r, 0, 0, &v), ERR_OK);
  ck_assert_int_eq(v, -42);
  ck_assert_int_eq(db_get_int64(r, 1, 0, &v), ERR_INVAL); /* overflow */
  ck_assert_int_eq(db_get_int64(r, 1, 3, &v), ERR_INVAL); /* trailing junk */
  ck_assert_int_eq(db_get_int64(r, 1, 2, &v), ERR_INVAL); /* NULL */
  ck_assert_int_eq(db_get_int64(r, 5, 0, &v), ERR_INVAL); /* no such row */

  bool b = false;
  ck_assert_int_eq(db_get_bool(r, 0, 1, &b), ERR_OK);
  ck_assert(b);
  ck_assert_int_eq(db_get_bool(r, 1, 1, &b), ERR_INVAL);

  unsigned char *bytes = NULL;
  size_t len = 0;
  ck_assert_int_eq(db_get_bytes(r, 0, 2, &bytes, &len), ERR_OK);
  ck_assert_uint_eq(len, 3);
  ck_assert_int_eq(memcmp(bytes,
                          "\x00\xff"
                          "A",
                          3),
                   0);
  free(bytes);
  ck_assert_int_eq(db_get_bytes(r, 1, 2, &bytes, &len), ERR_INVAL);
  ck_assert_ptr_null(bytes);

  ck_assert(db_is_null(r, 1, 2));
  ck_assert(!db_is_null(r, 0, 2));
  ck_assert(db_is_null(r, -1, 0));
  ck_assert(db_is_null(r, 0, 4));
  ck_assert_ptr_null(db_get(r, 1, 2));
  ck_assert_str_eq(db_get(r, 0, 3), "hello");
  ck_assert_int_eq(db_affected(r), 0);
  db_result_free(r);

  ck_assert_int_eq(db_nrows(NULL), 0);
  ck_assert_ptr_null(db_get(NULL, 0, 0));
  db_result_free(NULL);
}
END_TEST

static char tmpdir[256];

static void make_dir(void) {
  snprintf(tmpdir, sizeof tmpdir, "%s/dbtest.XXXXXX",
           getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void touch(const char *name, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
}

START_TEST(migration_files_are_listed_in_version_order) {
  make_dir();
  touch("0010_later.sql", "SELECT 1;");
  touch("0002_second.sql", "SELECT 1;");
  touch("0001_first-one.sql", "SELECT 1;");
  touch("README.md", "not a migration");
  touch(".0003_hidden.sql", "ignored");
  db_migration_file *files = NULL;
  size_t n = 0;
  ck_assert_int_eq(db_migrations_list(tmpdir, &files, &n), ERR_OK);
  ck_assert_uint_eq(n, 3);
  ck_assert_int_eq(files[0].version, 1);
  ck_assert_str_eq(files[0].file, "0001_first-one.sql");
  ck_assert_int_eq(files[1].version, 2);
  ck_assert_int_eq(files[2].version, 10);
  free(files);
}
END_TEST

START_TEST(migration_listing_rejects_bad_names_and_duplicates) {
  db_migration_file *files = NULL;
  size_t n = 0;
  make_dir();
  touch("1_short.sql", "");
  ck_assert_int_eq(db_migrations_list(tmpdir, &files, &n), ERR_INVAL);
  ck_assert_ptr_nonnull(strstr(db_last_error()->message, "1_short.sql"));
  ck_assert_ptr_null(files);

  make_dir();
  touch("0001_a b.sql", "");
  ck_assert_int_eq(db_migrations_list(tmpdir, &files, &n), ERR_INVAL);

  make_dir();
  touch("0001_a.sql", "");
  touch("0001_b.sql", "");
  ck_assert_int_eq(db_migrations_list(tmpdir, &files, &n), ERR_INVAL);
  ck_assert_ptr_nonnull(strstr(db_last_error()->message, "duplicate"));

  ck_assert_int_eq(db_migrations_list("/nonexistent/dir", &files, &n),
                   ERR_NOTFOUND);

  make_dir();
  ck_assert_int_eq(db_migrations_list(tmpdir, &files, &n),
                   ERR_OK); /* empty is fine */
  ck_assert_uint_eq(n, 0);
  free(files);
}
END_TEST

START_TEST(identifiers_are_restricted) {
  ck_assert(db_ident_ok("orders"));
  ck_assert(db_ident_ok("_x1"));
  ck_assert(!db_ident_ok(""));
  ck_assert(!db_ident_ok(NULL));
  ck_assert(!db_ident_ok("1abc"));
  ck_assert(!db_ident_ok("Orders"));
  ck_assert(!db_ident_ok("a\"; DROP SCHEMA public; --"));
  ck_assert(!db_ident_ok("a.b"));
  char longname[80];
  memset(longname, 'a', 64);
  longname[64] = '\0';
  ck_assert(!db_ident_ok(longname));
  longname[63] = '\0';
  ck_assert(db_ident_ok(longname));
}
END_TEST

START_TEST(tx_options_are_checked_before_begin) {
  /* Refused before any connection is touched: NULL c is never reached. */
  db_tx_opts o = {.role = "Robert'); DROP TABLE x; --"};
  ck_assert_int_eq(db_begin_opts(NULL, &o), ERR_INVAL);
  ck_assert_str_eq(db_last_error()->message, "invalid role name");
  db_setting server_param[] = {{"search_path", "evil"}};
  db_tx_opts p = {.settings = server_param, .nsettings = 1};
  ck_assert_int_eq(db_begin_opts(NULL, &p), ERR_INVAL);
  ck_assert_str_eq(db_last_error()->message, "invalid setting");
  db_setting no_value[] = {{"app.directory", NULL}};
  p.settings = no_value;
  ck_assert_int_eq(db_begin_opts(NULL, &p), ERR_INVAL);
  ck_assert_str_eq(db_last_error()->message, "invalid setting");
  p.settings = NULL;
  ck_assert_int_eq(db_begin_opts(NULL, &p), ERR_INVAL);
  ck_assert_str_eq(db_last_error()->message, "settings missing");
  /* Well-formed options get as far as the missing connection. */
  db_setting ok[] = {{"app.directory", "on"}};
  db_tx_opts fine = {.role = "orders_app", .settings = ok, .nsettings = 1};
  ck_assert_int_eq(db_begin_opts(NULL, &fine), ERR_INVAL);
  ck_assert_str_eq(db_last_error()->message, "no connection");
  db_tx_opts empty_role = {.role = ""};
  ck_assert_int_eq(db_begin_opts(NULL, &empty_role), ERR_INVAL);
  ck_assert_str_eq(db_last_error()->message, "no connection");
}
END_TEST

START_TEST(pool_config_is_validated) {
  db_pool *p = (db_pool *)1;
  ck_assert_int_eq(db_pool_new(NULL, &p), ERR_INVAL);
  ck_assert_ptr_null(p);
  db_config c = {0};
  ck_assert_int_eq(db_pool_new(&c, &p), ERR_INVAL);
  c.conninfo = "host=127.0.0.1";
  c.max_conns = -1;
  ck_assert_int_eq(db_pool_new(&c, &p), ERR_INVAL);
  c.max_conns = 0;
  ck_assert_int_eq(db_pool_new(&c, &p), ERR_OK);
  db_pool_stats st;
  db_pool_get_stats(p, &st);
  ck_assert_int_eq(st.open, 0); /* lazy: nothing opened yet */
  db_pool_free(p);
  db_pool_free(NULL);
  db_release(NULL);
  ck_assert_int_eq(db_exec(NULL, "SELECT 1", NULL, 0, NULL), ERR_INVAL);
  ck_assert_int_eq(db_rollback(NULL), ERR_OK);
  ck_assert(!db_in_tx(NULL));
}
END_TEST

/* The store every service's store.c is: its arguments checked, its
 * pool handed back. */
START_TEST(store_checks_its_role_and_keeps_its_pool) {
  db_config c = {.conninfo = "host=127.0.0.1"};
  db_pool *p = NULL;
  ck_assert_int_eq(db_pool_new(&c, &p), ERR_OK);
  db_store *s = (db_store *)1;
  ck_assert_int_eq(db_store_new(NULL, "app", &s), ERR_INVAL);
  ck_assert_ptr_null(s);
  ck_assert_int_eq(db_store_new(p, "Bad-Role", &s), ERR_INVAL);
  ck_assert_ptr_null(s);
  ck_assert_int_eq(db_store_new(p, "app", NULL), ERR_INVAL);
  ck_assert_int_eq(db_store_new(p, NULL, &s), ERR_OK);
  ck_assert_ptr_eq(db_store_pool(s), p);
  db_store_free(s);
  ck_assert_int_eq(db_store_new(p, "orders_app", &s), ERR_OK);
  ck_assert_ptr_eq(db_store_pool(s), p);
  db_store_free(s);
  db_store_free(NULL);
  db_pool_free(p);
}
END_TEST

static int closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
  close(fd); /* bound, never listened: connections are refused */
  return ntohs(sa.sin_port);
}

START_TEST(unreachable_server_is_unavailable_quickly) {
  char conninfo[128];
  snprintf(conninfo, sizeof conninfo,
           "host=127.0.0.1 port=%d dbname=x user=x password=hunter2",
           closed_port());
  db_config cfg = {.conninfo = conninfo, .max_conns = 2};
  db_pool *p = NULL;
  ck_assert_int_eq(db_pool_new(&cfg, &p), ERR_OK);
  int64_t t0 = time_mono_ms();
  db_conn *c = NULL;
  ck_assert_int_eq(db_acquire(p, &c), ERR_UNAVAILABLE);
  ck_assert_ptr_null(c);
  ck_assert_int_lt(time_mono_ms() - t0, 5000);
  const db_error *e = db_last_error();
  ck_assert_int_eq(e->code, ERR_UNAVAILABLE);
  ck_assert(e->message[0] != '\0');
  ck_assert_ptr_null(strstr(e->message, "hunter2"));
  ck_assert_int_eq(db_ping(p), ERR_UNAVAILABLE);
  db_pool_stats st;
  db_pool_get_stats(p, &st);
  ck_assert_int_eq(st.open, 0); /* failed attempts give their slot back */
  ck_assert_int_eq(st.in_use, 0);
  /* Bad schema names are refused before any connection is attempted. */
  ck_assert_int_eq(db_migrate(p, "/tmp", "Bad-Name", NULL), ERR_INVAL);
  /* A missing directory is reported before connecting too. */
  ck_assert_int_eq(db_migrate(p, "/nonexistent/dir", "ok", NULL), ERR_NOTFOUND);
  db_pool_free(p);
}
END_TEST

int main(void) {
  Suite *s = suite_create("db");
  TCase *tc = tcase_create("logic");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, sqlstates_map_to_error_codes);
  tcase_add_test(tc, server_messages_lose_the_value_part);
  tcase_add_test(tc, param_constructors_keep_values);
  tcase_add_test(tc, result_helpers_parse_and_reject);
  tcase_add_test(tc, migration_files_are_listed_in_version_order);
  tcase_add_test(tc, migration_listing_rejects_bad_names_and_duplicates);
  tcase_add_test(tc, identifiers_are_restricted);
  tcase_add_test(tc, tx_options_are_checked_before_begin);
  tcase_add_test(tc, pool_config_is_validated);
  tcase_add_test(tc, store_checks_its_role_and_keeps_its_pool);
  tcase_add_test(tc, unreachable_server_is_unavailable_quickly);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
