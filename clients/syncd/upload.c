/*
 * upload.c - upload by hash (see upload.h).
 *
 * The hashes not yet known to be on the server (uploaded_at NULL) go to
 * POST /v1/sync/files/missing, 1000 at a time (the server's cap); those
 * it already has are marked uploaded without sending a byte, and each
 * missing one is sent once - whatever number of names it has here - with
 * PUT /v1/sync/files/{sha256}, the body streamed from the file. Before
 * and after sending, the file's stat must still match its row: a file
 * changed meanwhile is marked to be hashed again on the next pass and
 * not recorded as uploaded. The server checks the SHA-256 itself; a 400
 * (the bytes did not match the name) is handled the same way. A failure
 * of the network or the server fails the round, so files share the
 * pushes' backoff; a kill -9 mid-upload leaves the row pending and the
 * server without the file (it stores a body only once it checked it), so
 * the next run sends it again.
 */
#include "clients/syncd/upload.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clients/syncd/files.h"
#include "clients/syncd/store.h"
#include "libs/base/timeutil.h"

#define MISSING_BATCH 1000

typedef char hash_hex[FILES_HASH_HEX + 1];

static int mark_uploaded(sqlite3 *db, const char *sha) {
  char now[RFC3339_MS_LEN + 1];
  if (time_format_rfc3339(time_now_ms(), now) != 0) return -1;
  return store_exec(db,
                    "UPDATE files SET uploaded_at = ?1 WHERE sha256 = ?2 AND "
                    "uploaded_at IS NULL",
                    now, sha);
}

/* Up to MISSING_BATCH pending hashes into hs; their count. */
static int pending(sqlite3 *db, hash_hex *hs) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db,
                         "SELECT DISTINCT sha256 FROM files WHERE uploaded_at "
                         "IS NULL AND size >= 0 ORDER BY sha256 LIMIT 1000",
                         -1, &st, NULL) != SQLITE_OK)
    return 0;
  int n = 0;
  while (n < MISSING_BATCH && sqlite3_step(st) == SQLITE_ROW)
    snprintf(hs[n++], sizeof hs[0], "%s",
             (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  return n;
}

/* Asks the server about hs[0..n); marks the ones it has as uploaded and
 * leaves the missing ones in *missing (the caller frees it). */
static int ask_missing(sync_ctx *x, hash_hex *hs, int n, json_t **missing) {
  json_t *arr = json_array();
  for (int i = 0; i < n; i++) json_array_append_new(arr, json_string(hs[i]));
  json_t *body = json_pack("{s:o}", "hashes", arr), *ans = NULL;
  http_target t = sync_target(x, true);
  long s = http_json(&t, "POST", "/v1/sync/files/missing", body, &ans);
  json_decref(body);
  json_t *m = json_object_get(ans, "missing");
  if (s != 200 || !json_is_array(m)) {
    json_decref(ans);
    return sync_fail(x, "files missing", s == 200 ? 502 : s);
  }
  int rc = store_begin(x->db);
  for (int i = 0; rc == 0 && i < n; i++) {
    bool lacks = false;
    size_t j;
    json_t *v;
    json_array_foreach(
        m, j, v) if (strcmp(json_string_value(v) ? json_string_value(v) : "",
                            hs[i]) == 0) lacks = true;
    if (!lacks) rc = mark_uploaded(x->db, hs[i]);
  }
  if (rc == 0) rc = store_commit(x->db);
  if (rc != 0) store_rollback(x->db);
  *missing = json_incref(m);
  json_decref(ans);
  return rc;
}

typedef struct located {
  char path[256];
  int64_t size, mtime_ns;
} located;

/* A recorded name of sha (not marked for rehash); false when none. */
static bool locate(sqlite3 *db, const char *sha, located *l) {
  sqlite3_stmt *st = NULL;
  bool found = false;
  if (sqlite3_prepare_v2(db,
                         "SELECT path, size, mtime_ns FROM files WHERE sha256 "
                         "= ?1 AND size >= 0 ORDER BY path LIMIT 1",
                         -1, &st, NULL) != SQLITE_OK)
    return false;
  sqlite3_bind_text(st, 1, sha, -1, SQLITE_STATIC);
  if (sqlite3_step(st) == SQLITE_ROW) {
    snprintf(l->path, sizeof l->path, "%s",
             (const char *)sqlite3_column_text(st, 0));
    l->size = sqlite3_column_int64(st, 1);
    l->mtime_ns = sqlite3_column_int64(st, 2);
    found = true;
  }
  sqlite3_finalize(st);
  return found;
}

static bool same_stat(int fd, const located *l) {
  struct stat sb;
  return fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == l->size &&
         (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec ==
             l->mtime_ns;
}

/* Sends the file of sha. 0: on the server (or nothing to send: the file
 * changed and waits for the next pass); -1: the round fails. */
static int put_one(sync_ctx *x, int dfd, const char *sha) {
  located l;
  if (!locate(x->db, sha, &l)) return 0;
  int fd = openat(dfd, l.path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 || !same_stat(fd, &l)) {
    if (fd >= 0) close(fd);
    return files_mark_rehash(x->db, l.path);
  }
  fprintf(stderr, "syncd: uploading %s (%lld bytes)\n", sha, (long long)l.size);
  char path[128];
  snprintf(path, sizeof path, "/v1/sync/files/%s", sha);
  http_target t = sync_target(x, true);
  json_t *ans = NULL;
  long s = http_put_file(&t, path, fd, l.size, x->cfg.upload_bps, &ans);
  bool changed = !same_stat(fd, &l);
  close(fd);
  const char *code =
      json_string_value(json_object_get(json_object_get(ans, "error"), "code"));
  bool quota =
      s == 400 && code != NULL && strcmp(code, "FAILED_PRECONDITION") == 0;
  json_decref(ans);
  if ((s == 200 || s == 201) && !changed) return mark_uploaded(x->db, sha);
  if (quota) {
    /* Over the tenant's quota: kept pending, tried again next round. */
    (void)store_set(x->db, "last_error", "files: over the server's quota");
    return 0;
  }
  if (changed || s == 400 || s == 200 || s == 201)
    return files_mark_rehash(x->db, l.path);
  return sync_fail(x, "files upload", s);
}

void upload_scan(sync_ctx *x) {
  char dir[1024];
  static bool said;
  if (files_dir(x->db, dir, sizeof dir) && files_scan(x->db, dir) < 0 &&
      !said) {
    fprintf(stderr,
            "syncd: %s: not scanned (unreadable, or the folder of syncd's "
            "own file, which holds its secret)\n",
            dir);
    said = true; /* once, not every round */
  }
}

int upload_round(sync_ctx *x) {
  char dir[1024];
  if (!files_dir(x->db, dir, sizeof dir)) return 0;
  static hash_hex hs[MISSING_BATCH];
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return 0;
  int rc = 0;
  for (int rounds = 0; rc == 0 && rounds < 100; rounds++) {
    int n = pending(x->db, hs);
    if (n == 0) break;
    json_t *missing = NULL;
    rc = ask_missing(x, hs, n, &missing);
    size_t i;
    json_t *v;
    json_array_foreach(missing, i, v) {
      if (rc != 0) break;
      const char *sha = json_string_value(v);
      if (sha != NULL && strlen(sha) == FILES_HASH_HEX)
        rc = put_one(x, dfd, sha);
    }
    json_decref(missing);
    if (n < MISSING_BATCH) break;
  }
  close(dfd);
  return rc;
}
