/*
 * syncd_test.c - unit tests of syncd's parts that need no server: the
 * HLC, the canonical hash, the backoff, and the SQLite file (mode,
 * mutation ids, the outbox, the replica's rebase, recording results,
 * duplicates recorded once), the watched folder's scan.
 */
#include <check.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clients/syncd/clock.h"
#include "clients/syncd/files.h"
#include "clients/syncd/local.h"
#include "clients/syncd/replica.h"
#include "clients/syncd/rt.h"
#include "clients/syncd/store.h"

#define PRODUCT "01900000-0000-7000-8000-000000000001"

START_TEST(hlc_never_goes_back) {
  hlc c = {0, 0};
  hlc_tick(&c, 1000);
  ck_assert_int_eq(c.wall, 1000);
  ck_assert_int_eq(c.counter, 0);
  hlc_tick(&c, 900); /* the machine's clock went back */
  ck_assert_int_eq(c.wall, 1000);
  ck_assert_int_eq(c.counter, 1);
  hlc_recv(&c, 5000, 1001); /* the server is ahead */
  ck_assert_int_eq(c.wall, 5000);
  ck_assert_int_eq(c.counter, 0);
  hlc_recv(&c, 4000, 1002);
  ck_assert_int_eq(c.wall, 5000);
  ck_assert_int_eq(c.counter, 1);
  char a[32], b[32];
  hlc_format(&c, a);
  hlc_tick(&c, 5000);
  hlc_format(&c, b);
  ck_assert_int_lt(strcmp(a, b), 0);
  ck_assert_str_eq(b, "0000000005000-00002");
}
END_TEST

START_TEST(canonical_json_sorts_keys_without_spaces) {
  json_t *v = json_loads(
      "{\"z\": 1, \"a\": {\"y\": [1, 2], \"b\": \"\\u00e9\"}}", 0, NULL);
  char *t = canon_json(v);
  ck_assert_str_eq(t, "{\"a\":{\"b\":\"\xc3\xa9\",\"y\":[1,2]},\"z\":1}");
  char h[65];
  canon_hash("abc", h);
  ck_assert_str_eq(
      h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  free(t);
  json_decref(v);
}
END_TEST

static uint32_t top(uint32_t n) { return n - 1; }
static uint32_t bottom(uint32_t n) { return 0 * n; }

START_TEST(backoff_grows_to_its_cap_with_jitter) {
  ck_assert_int_eq(backoff_ms(1, 500, 30000, top), 500);
  ck_assert_int_eq(backoff_ms(3, 500, 30000, top), 2000);
  ck_assert_int_eq(backoff_ms(40, 500, 30000, top), 30000);
  ck_assert_int_eq(backoff_ms(40, 500, 30000, bottom), 250);
  for (int i = 0; i < 200; i++) {
    int64_t d = backoff_ms(1 + i % 10, 500, 4000,
                           (uint32_t(*)(uint32_t))randombytes_uniform);
    ck_assert_int_ge(d, 250);
    ck_assert_int_le(d, 4000);
  }
}
END_TEST

static char g_path[64];

static sqlite3 *fresh(void) {
  snprintf(g_path, sizeof g_path, "/tmp/syncd_test_XXXXXX");
  int fd = mkstemp(g_path);
  ck_assert_int_ge(fd, 0);
  close(fd);
  chmod(g_path, 0644);
  sqlite3 *db = store_open(g_path);
  ck_assert_ptr_nonnull(db);
  ck_assert_int_eq(store_exec(db,
                              "INSERT INTO products(id, version, active, "
                              "data) VALUES(?1, 1, 1, ?2)",
                              PRODUCT,
                              "{\"id\":\"" PRODUCT "\",\"name\":\"Soup\","
                              "\"price_cents\":450,\"active\":true}"),
                   0);
  return db;
}

static void done(sqlite3 *db) {
  store_close(db);
  char p[96];
  unlink(g_path);
  snprintf(p, sizeof p, "%s-wal", g_path);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", g_path);
  unlink(p);
}

static void text_of(sqlite3 *db, const char *sql, const char *p, char *out,
                    size_t cap) {
  sqlite3_stmt *st = NULL;
  ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  if (p != NULL) sqlite3_bind_text(st, 1, p, -1, SQLITE_STATIC);
  ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
  snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
}

START_TEST(the_file_is_private_and_mutations_queue_in_order) {
  sqlite3 *db = fresh();
  struct stat sb;
  ck_assert_int_eq(stat(g_path, &sb), 0);
  ck_assert_int_eq(sb.st_mode & 0777, 0600);
  char mode[16];
  text_of(db, "PRAGMA journal_mode", NULL, mode, sizeof mode);
  ck_assert_str_eq(mode, "wal");
  char oid[UUID_STR_LEN + 1], err[256];
  ck_assert_int_eq(local_order_add(db, PRODUCT, 2, NULL, oid, err), 0);
  ck_assert(uuid_is_valid(oid));
  ck_assert_int_eq(local_order_status(db, oid, "confirmed", err), 0);
  ck_assert_int_eq(local_order_status(db, oid, "cancelled", err), 0);
  ck_assert_int_eq(store_get_int(db, "next_mutation_id", 0), 4);
  /* The hash is over the canonical args, as the server checks it. */
  char args[512], hash[65], want[65], name[32];
  text_of(db, "SELECT args FROM outbox WHERE id = 1", NULL, args, sizeof args);
  text_of(db, "SELECT hash FROM outbox WHERE id = 1", NULL, hash, sizeof hash);
  json_t *a = json_loads(args, 0, NULL);
  char *canon = canon_json(a);
  ck_assert_str_eq(canon, args);
  canon_hash(canon, want);
  ck_assert_str_eq(hash, want);
  ck_assert_int_eq(
      json_integer_value(json_object_get(
          json_array_get(json_object_get(a, "items"), 0), "quantity")),
      2);
  free(canon);
  json_decref(a);
  text_of(db, "SELECT name FROM outbox WHERE id = 3", NULL, name, sizeof name);
  ck_assert_str_eq(name, "cancelOrder");
  /* Shown: the draft with both changes replayed. */
  char st[32];
  text_of(db, "SELECT status || ':' || version FROM orders WHERE id = ?1", oid,
          st, sizeof st);
  ck_assert_str_eq(st, "cancelled:3");
  /* Bad input is refused before anything is queued. */
  ck_assert_int_ne(local_order_add(db, PRODUCT, 0, NULL, oid, err), 0);
  ck_assert_int_ne(local_order_add(db, PRODUCT, 1, PRODUCT, oid, err), 0);
  ck_assert_ptr_nonnull(strstr(err, "--table"));
  ck_assert_int_ne(local_order_status(db, oid, "eaten", err), 0);
  ck_assert_int_eq(store_get_int(db, "next_mutation_id", 0), 4);
  done(db);
}
END_TEST

START_TEST(pulls_rebase_pending_changes_and_results_record_once) {
  sqlite3 *db = fresh();
  char oid[UUID_STR_LEN + 1], err[256], st[64];
  ck_assert_int_eq(local_order_add(db, PRODUCT, 1, NULL, oid, err), 0);
  json_t *r = json_pack("{s:i, s:s, s:s, s:i}", "id", 1, "status", "applied",
                        "server_id", oid, "version", 1);
  ck_assert_int_eq(store_begin(db), 0);
  ck_assert_int_eq(replica_record_result(db, 1, "createOrder", oid, "{}", r),
                   0);
  ck_assert_int_eq(store_commit(db), 0);
  json_decref(r);
  ck_assert_int_eq(local_order_status(db, oid, "preparing", err), 0);
  /* The server moved the order meanwhile (v2 confirmed): the pending
   * change is replayed over it, not lost. */
  json_t *c = json_pack("{s:s, s:s, s:s, s:i, s:{s:s, s:s, s:i}}", "entity",
                        "order", "op", "upsert", "id", oid, "version", 2,
                        "data", "id", oid, "status", "confirmed", "version", 2);
  ck_assert_int_eq(replica_apply_change(db, c), 0);
  json_decref(c);
  text_of(db, "SELECT status || ':' || version FROM orders WHERE id = ?1", oid,
          st, sizeof st);
  ck_assert_str_eq(st, "preparing:3");
  /* It conflicted (the device based it on v1): the server's copy wins
   * locally and the conflict is kept - once, even when the answer comes
   * again as a duplicate. */
  r = json_loads("{\"id\":2,\"status\":\"conflict\",\"conflict\":{"
                 "\"server_version\":2,\"server\":{\"status\":\"confirmed\","
                 "\"version\":2}}}",
                 0, NULL);
  json_object_set_new(json_object_get(json_object_get(r, "conflict"), "server"),
                      "id", json_string(oid));
  ck_assert_int_eq(replica_record_result(db, 2, "updateOrderStatus", oid,
                                         "{\"status\":\"preparing\"}", r),
                   0);
  json_object_set_new(r, "status", json_string("duplicate"));
  ck_assert_int_eq(replica_record_result(db, 2, "updateOrderStatus", oid,
                                         "{\"status\":\"preparing\"}", r),
                   0);
  json_decref(r);
  ck_assert_int_eq(store_int(db, "SELECT count(*) FROM conflicts", NULL, 0), 1);
  ck_assert_int_eq(store_int(db,
                             "SELECT count(*) FROM outbox WHERE status IS NULL",
                             NULL, 0),
                   0);
  text_of(db, "SELECT status || ':' || version FROM orders WHERE id = ?1", oid,
          st, sizeof st);
  ck_assert_str_eq(st, "confirmed:2");
  done(db);
}
END_TEST

static void put_file(const char *dir, const char *name, const char *text) {
  char p[256];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  ck_assert_int_eq(fclose(f), 0);
}

/* A pass hashes new and changed files only, follows no symlink, skips
 * hidden files and folders, forgets vanished files, and a changed file
 * is pending again. */
START_TEST(the_folder_scan_hashes_regular_files_only) {
  sqlite3 *db = fresh();
  char dir[] = "/tmp/syncd_files_XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  put_file(dir, "a.pdf", "abc");
  put_file(dir, ".hidden", "x");
  char p[256];
  snprintf(p, sizeof p, "%s/sub", dir);
  ck_assert_int_eq(mkdir(p, 0700), 0);
  snprintf(p, sizeof p, "%s/link.pdf", dir);
  ck_assert_int_eq(symlink("/etc/hostname", p), 0);
  ck_assert_int_eq(files_scan(db, dir), 1);
  char sha[80] = "";
  sqlite3_stmt *st = NULL;
  ck_assert_int_eq(
      sqlite3_prepare_v2(db, "SELECT sha256 FROM files", -1, &st, NULL),
      SQLITE_OK);
  ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
  snprintf(sha, sizeof sha, "%s", (const char *)sqlite3_column_text(st, 0));
  ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
  sqlite3_finalize(st);
  /* SHA-256("abc") */
  ck_assert_str_eq(
      sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  ck_assert_int_eq(files_scan(db, dir), 0); /* unchanged: not read again */
  ck_assert_int_eq(store_exec(db, "UPDATE files SET uploaded_at = 'x'"), 0);
  put_file(dir, "a.pdf", "abcd");
  ck_assert_int_eq(files_scan(db, dir), 1);
  ck_assert_int_eq(store_int(db,
                             "SELECT count(*) FROM files WHERE uploaded_at IS "
                             "NULL",
                             NULL, 0),
                   1);
  ck_assert_int_eq(files_mark_rehash(db, "a.pdf"), 0);
  ck_assert_int_eq(files_scan(db, dir), 1);
  snprintf(p, sizeof p, "%s/a.pdf", dir);
  ck_assert_int_eq(unlink(p), 0);
  ck_assert_int_eq(files_scan(db, dir), 0);
  ck_assert_int_eq(store_int(db, "SELECT count(*) FROM files", NULL, 0), 0);
  snprintf(p, sizeof p, "%s/nope", dir);
  ck_assert_int_eq(files_scan(db, p), -1);
  /* The folder of syncd's own file (the device secret) is refused. */
  ck_assert(!files_dir_allowed(db, "/tmp"));
  ck_assert_int_eq(files_scan(db, "/tmp"), -1);
  ck_assert(files_dir_allowed(db, dir));
  snprintf(p, sizeof p, "rm -rf '%s'", dir);
  ck_assert_int_eq(system(p), 0);
  done(db);
}
END_TEST

START_TEST(realtime_urls_are_parsed_strictly) {
  char host[64], path[64];
  int port = 0;
  ck_assert_int_eq(rt_parse_url("ws://127.0.0.1:8081", host, sizeof host, &port,
                                path, sizeof path),
                   0);
  ck_assert_str_eq(host, "127.0.0.1");
  ck_assert_int_eq(port, 8081);
  ck_assert_str_eq(path, "/v1/realtime");
  ck_assert_int_eq(rt_parse_url("ws://rt.example:80/v1/realtime", host,
                                sizeof host, &port, path, sizeof path),
                   0);
  ck_assert_str_eq(host, "rt.example");
  ck_assert_int_eq(port, 80);
  ck_assert_str_eq(path, "/v1/realtime");
  const char *bad[] = {
      "http://h:1", "ws://h",    "ws://:80", "ws://h:0", "ws://h:70000",
      "ws://h:8x/", "ws://h:/p", "",         NULL};
  for (int i = 0; bad[i] != NULL; i++)
    ck_assert_msg(
        rt_parse_url(bad[i], host, sizeof host, &port, path, sizeof path) != 0,
        "%s accepted", bad[i]);
  ck_assert_int_ne(
      rt_parse_url(NULL, host, sizeof host, &port, path, sizeof path), 0);
}
END_TEST

int main(void) {
  if (sodium_init() < 0) return EXIT_FAILURE;
  Suite *s = suite_create("syncd");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, hlc_never_goes_back);
  tcase_add_test(tc, canonical_json_sorts_keys_without_spaces);
  tcase_add_test(tc, backoff_grows_to_its_cap_with_jitter);
  tcase_add_test(tc, the_file_is_private_and_mutations_queue_in_order);
  tcase_add_test(tc, pulls_rebase_pending_changes_and_results_record_once);
  tcase_add_test(tc, the_folder_scan_hashes_regular_files_only);
  tcase_add_test(tc, realtime_urls_are_parsed_strictly);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
