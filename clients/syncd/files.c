/*
 * files.c - the watched folder's scan and the `files` table (see
 * files.h).
 *
 * A pass lists the folder once. Entries are looked at with fstatat(...,
 * AT_SYMLINK_NOFOLLOW) and opened with O_NOFOLLOW, so a symlink planted in
 * the folder never makes syncd read (and upload) a file elsewhere; only
 * regular files count, hidden ones (".name", e.g. a download in progress)
 * are skipped, and sizes and counts are capped (files.h). A file whose
 * size and mtime match its row is not read again; others are hashed
 * outside any transaction (reading 25 MiB must not hold the SQLite lock
 * the command line waits for), and the whole pass - new hashes, rows seen,
 * rows of vanished files removed - is then one transaction. A file that
 * changes while it is hashed (its stat differs before and after) is left
 * for the next pass. The folder holding syncd's own SQLite file is never
 * scanned: that file holds the device secret.
 */
#include "clients/syncd/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clients/syncd/store.h"

#define CHUNK (64 * 1024)

typedef struct entry {
  char name[256];
  int64_t size, mtime_ns;
  char hex[FILES_HASH_HEX + 1]; /* "" when unchanged (not hashed) */
} entry;

bool files_dir(sqlite3 *db, char *out, size_t cap) {
  const char *env = getenv("SYNCD_FILES_DIR");
  if (env != NULL && *env != '\0') {
    snprintf(out, cap, "%s", env);
    return true;
  }
  return store_get(db, "files_dir", out, cap) && out[0] != '\0';
}

int files_hash_fd(int fd, char hex[FILES_HASH_HEX + 1], int64_t *size) {
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  unsigned char *buf = malloc(CHUNK);
  if (buf == NULL) return -1;
  int64_t total = 0;
  ssize_t n;
  while ((n = read(fd, buf, CHUNK)) > 0) {
    total += n;
    if (total > FILES_MAX_BYTES) break;
    crypto_hash_sha256_update(&st, buf, (unsigned long long)n);
  }
  free(buf);
  if (n < 0 || total > FILES_MAX_BYTES) return -1;
  unsigned char d[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&st, d);
  sodium_bin2hex(hex, FILES_HASH_HEX + 1, d, sizeof d);
  *size = total;
  return 0;
}

static int64_t mtime_ns(const struct stat *sb) {
  return (int64_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec;
}

/* Whether the row of name records exactly this size and mtime. */
static bool unchanged(sqlite3 *db, const entry *e) {
  sqlite3_stmt *st = NULL;
  bool same = false;
  if (sqlite3_prepare_v2(db,
                         "SELECT 1 FROM files WHERE path = ?1 AND size = ?2 "
                         "AND mtime_ns = ?3",
                         -1, &st, NULL) != SQLITE_OK)
    return false;
  sqlite3_bind_text(st, 1, e->name, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, e->size);
  sqlite3_bind_int64(st, 3, e->mtime_ns);
  same = sqlite3_step(st) == SQLITE_ROW;
  sqlite3_finalize(st);
  return same;
}

/* Hashes name (opened without following a symlink) into e->hex; false
 * when it cannot be read or changed meanwhile. */
static bool hash_entry(int dfd, entry *e) {
  int fd = openat(dfd, e->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat a, b;
  int64_t got = 0;
  bool ok = fstat(fd, &a) == 0 && S_ISREG(a.st_mode) &&
            files_hash_fd(fd, e->hex, &got) == 0 && fstat(fd, &b) == 0 &&
            got == b.st_size && a.st_size == b.st_size &&
            mtime_ns(&a) == mtime_ns(&b);
  close(fd);
  if (!ok) return false;
  e->size = got;
  e->mtime_ns = mtime_ns(&b);
  return true;
}

/* The folder's candidate entries (hashing the new or changed ones);
 * their count, -1 when the folder cannot be read. *hashed gets how many
 * were hashed. */
static int list_folder(sqlite3 *db, const char *dir, entry *es, int *hashed) {
  DIR *d = opendir(dir);
  if (d == NULL) return -1;
  int n = 0;
  struct dirent *de;
  *hashed = 0;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.') continue;
    if (n == FILES_MAX_COUNT) {
      fprintf(stderr, "syncd: %s: more than %d files; the rest wait\n", dir,
              FILES_MAX_COUNT);
      break;
    }
    struct stat sb;
    if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(sb.st_mode) || sb.st_size > FILES_MAX_BYTES)
      continue;
    entry *e = &es[n];
    snprintf(e->name, sizeof e->name, "%s", de->d_name);
    e->size = sb.st_size;
    e->mtime_ns = mtime_ns(&sb);
    e->hex[0] = '\0';
    if (!unchanged(db, e)) {
      if (!hash_entry(dirfd(d), e)) continue;
      (*hashed)++;
    }
    n++;
  }
  closedir(d);
  return n;
}

static int record_entry(sqlite3 *db, const entry *e, int64_t pass) {
  sqlite3_stmt *st = NULL;
  const char *sql =
      e->hex[0] == '\0'
          ? "UPDATE files SET seen = ?5 WHERE path = ?1"
          : "INSERT INTO files(path, size, mtime_ns, sha256, seen) "
            "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(path) DO UPDATE SET "
            "size = excluded.size, mtime_ns = excluded.mtime_ns, "
            "uploaded_at = CASE WHEN files.sha256 = excluded.sha256 THEN "
            "files.uploaded_at END, sha256 = excluded.sha256, "
            "seen = excluded.seen";
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
  sqlite3_bind_text(st, 1, e->name, -1, SQLITE_STATIC);
  if (e->hex[0] != '\0') {
    sqlite3_bind_int64(st, 2, e->size);
    sqlite3_bind_int64(st, 3, e->mtime_ns);
    sqlite3_bind_text(st, 4, e->hex, -1, SQLITE_STATIC);
  }
  sqlite3_bind_int64(st, 5, pass);
  int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
  sqlite3_finalize(st);
  return rc;
}

static int record_pass(sqlite3 *db, const entry *es, int n) {
  int64_t pass = store_get_int(db, "files_pass", 0) + 1;
  char p[32];
  snprintf(p, sizeof p, "%lld", (long long)pass);
  int rc = store_begin(db);
  for (int i = 0; rc == 0 && i < n; i++) rc = record_entry(db, &es[i], pass);
  if (rc == 0) rc = store_exec(db, "DELETE FROM files WHERE seen <> ?1", p);
  if (rc == 0) rc = store_set_int(db, "files_pass", pass);
  if (rc == 0) rc = store_commit(db);
  if (rc != 0) store_rollback(db);
  return rc;
}

bool files_dir_allowed(sqlite3 *db, const char *dir) {
  const char *f = sqlite3_db_filename(db, "main");
  char own[PATH_MAX], real[PATH_MAX], copy[PATH_MAX];
  if (f == NULL || realpath(dir, real) == NULL) return false;
  snprintf(copy, sizeof copy, "%s", f);
  return realpath(dirname(copy), own) == NULL || strcmp(own, real) != 0;
}

int files_scan(sqlite3 *db, const char *dir) {
  /* Not a folder, or the one holding syncd's own file: not scanned
   * (upload_scan says so). */
  if (!files_dir_allowed(db, dir)) return -1;
  entry *es = malloc(sizeof(entry) * FILES_MAX_COUNT);
  if (es == NULL) return -1;
  int hashed = 0;
  int n = list_folder(db, dir, es, &hashed);
  int rc = n < 0 ? -1 : record_pass(db, es, n);
  free(es);
  return rc == 0 ? hashed : -1;
}

int files_mark_rehash(sqlite3 *db, const char *path) {
  return store_exec(db, "UPDATE files SET size = -1 WHERE path = ?1", path);
}

int files_show(sqlite3 *db, bool json) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db,
                         "SELECT path, size, sha256, uploaded_at FROM files "
                         "ORDER BY path",
                         -1, &st, NULL) != SQLITE_OK)
    return 1;
  json_t *list = json_array();
  if (!json) printf("%-40s %10s %-12s %s\n", "PATH", "SIZE", "STATE", "SHA256");
  while (sqlite3_step(st) == SQLITE_ROW) {
    const char *path = (const char *)sqlite3_column_text(st, 0);
    long long size = sqlite3_column_int64(st, 1);
    const char *sha = (const char *)sqlite3_column_text(st, 2);
    const char *up = (const char *)sqlite3_column_text(st, 3);
    const char *state = up != NULL ? "uploaded" : "pending";
    if (json)
      json_array_append_new(list,
                            json_pack("{s:s, s:I, s:s, s:s, s:s?}", "path",
                                      path, "size", (json_int_t)size, "sha256",
                                      sha, "state", state, "uploaded_at", up));
    else
      printf("%-40s %10lld %-12s %s\n", path, size, state, sha);
  }
  sqlite3_finalize(st);
  if (json) {
    json_t *doc = json_pack("{s:o}", "files", list);
    char *s = json_dumps(doc, JSON_COMPACT);
    puts(s != NULL ? s : "{}");
    free(s);
    json_decref(doc);
  } else {
    json_decref(list);
  }
  return 0;
}
