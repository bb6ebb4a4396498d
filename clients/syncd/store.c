/*
 * store.c - the SQLite file (see store.h): opening it safely, the schema,
 * transactions and the small key/value table `meta`.
 *
 * The file holds the device secret, so it is created 0600 before SQLite
 * opens it (SQLite gives its -wal and -shm files the same mode) and forced
 * back to 0600 when it already existed. The busy timeout is generous: a
 * command-line process waits for `syncd run` to finish its step rather
 * than fail.
 */
#include "clients/syncd/store.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUSY_TIMEOUT_MS 15000

/* meta keys: base_url, tenant, device_id, device_secret, cursor,
 * next_mutation_id, hlc_wall, hlc_counter, online, last_sync, last_error,
 * files_dir, files_pass (the `files` table: files.h).
 * Replica rows keep the server's JSON (data) beside the fields syncd
 * reads. An order's `base` is the server's copy (or the local draft) and
 * `data` is base with the pending mutations applied; `synced` is 0 for an
 * order only known locally. An outbox row's
 * status is NULL until its result is recorded. */
static const char kSchema[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT "
    "NULL);"
    "CREATE TABLE IF NOT EXISTS products(id TEXT PRIMARY KEY, version "
    "INTEGER NOT NULL, active INTEGER NOT NULL, data TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS dining_tables(id TEXT PRIMARY KEY, version "
    "INTEGER NOT NULL, data TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS orders(id TEXT PRIMARY KEY, status TEXT NOT "
    "NULL, version INTEGER NOT NULL, data TEXT NOT NULL, base TEXT NOT NULL, "
    "synced INTEGER NOT "
    "NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS outbox(id INTEGER PRIMARY KEY, name TEXT NOT "
    "NULL, order_id TEXT NOT NULL, args TEXT NOT NULL, hash TEXT NOT NULL, "
    "client_time TEXT NOT NULL, hlc TEXT NOT NULL, status TEXT, result "
    "TEXT);"
    "CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(order_id) WHERE "
    "status IS NULL;"
    "CREATE TABLE IF NOT EXISTS conflicts(mutation_id INTEGER PRIMARY KEY, "
    "order_id TEXT NOT NULL, name TEXT NOT NULL, client TEXT NOT NULL, "
    "server_version INTEGER NOT NULL, server TEXT NOT NULL, recorded_at TEXT "
    "NOT NULL);"
    "CREATE TABLE IF NOT EXISTS refetch(order_id TEXT PRIMARY KEY);"
    "CREATE TABLE IF NOT EXISTS files(path TEXT PRIMARY KEY, size INTEGER "
    "NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL, uploaded_at "
    "TEXT, seen INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS files_pending ON files(sha256) WHERE "
    "uploaded_at IS NULL;";

static bool create_private(const char *path) {
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    perror(path);
    return false;
  }
  bool ok = fchmod(fd, 0600) == 0;
  if (!ok) perror(path);
  close(fd);
  return ok;
}

sqlite3 *store_open(const char *path) {
  if (!create_private(path)) return NULL;
  sqlite3 *db = NULL;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
    fprintf(stderr, "syncd: %s: %s\n", path,
            db ? sqlite3_errmsg(db) : "cannot open");
    sqlite3_close(db);
    return NULL;
  }
  sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
  char *err = NULL;
  if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
                   NULL, NULL, &err) != SQLITE_OK ||
      sqlite3_exec(db, kSchema, NULL, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "syncd: %s: %s\n", path, err ? err : "schema");
    sqlite3_free(err);
    sqlite3_close(db);
    return NULL;
  }
  return db;
}

void store_close(sqlite3 *db) { sqlite3_close(db); }

static int simple(sqlite3 *db, const char *sql) {
  char *err = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
  if (rc != SQLITE_OK) {
    fprintf(stderr, "syncd: %s: %s\n", sql, err ? err : "failed");
    sqlite3_free(err);
    return -1;
  }
  return 0;
}

int store_begin(sqlite3 *db) { return simple(db, "BEGIN IMMEDIATE"); }
int store_commit(sqlite3 *db) { return simple(db, "COMMIT"); }
void store_rollback(sqlite3 *db) {
  if (!sqlite3_get_autocommit(db)) (void)simple(db, "ROLLBACK");
}

int store_exec(sqlite3 *db, const char *sql, ...) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    fprintf(stderr, "syncd: prepare: %s\n", sqlite3_errmsg(db));
    return -1;
  }
  va_list ap;
  va_start(ap, sql);
  int n = sqlite3_bind_parameter_count(st);
  for (int i = 1; i <= n; i++) {
    const char *v = va_arg(ap, const char *);
    sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
  }
  va_end(ap);
  int rc = sqlite3_step(st);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW)
    fprintf(stderr, "syncd: step: %s\n", sqlite3_errmsg(db));
  sqlite3_finalize(st);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

bool store_get(sqlite3 *db, const char *key, char *out, size_t cap) {
  sqlite3_stmt *st = NULL;
  bool found = false;
  if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?1", -1, &st,
                         NULL) != SQLITE_OK)
    return false;
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  if (sqlite3_step(st) == SQLITE_ROW) {
    snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    found = true;
  }
  sqlite3_finalize(st);
  return found;
}

int64_t store_get_int(sqlite3 *db, const char *key, int64_t dflt) {
  char v[32];
  return store_get(db, key, v, sizeof v) ? strtoll(v, NULL, 10) : dflt;
}

int store_set(sqlite3 *db, const char *key, const char *value) {
  return store_exec(db,
                    "INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT "
                    "(key) DO UPDATE SET value = excluded.value",
                    key, value);
}

int store_set_int(sqlite3 *db, const char *key, int64_t value) {
  char v[32];
  snprintf(v, sizeof v, "%lld", (long long)value);
  return store_set(db, key, v);
}

int64_t store_int(sqlite3 *db, const char *sql, const char *p1, int64_t dflt) {
  sqlite3_stmt *st = NULL;
  int64_t v = dflt;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return dflt;
  if (p1 != NULL) sqlite3_bind_text(st, 1, p1, -1, SQLITE_STATIC);
  if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}
