/*
 * migrate.c - the per-service migration runner (db_migrate in db.h).
 *
 * Design. Everything that can be checked without the database is checked
 * first: the schema name, the file names, duplicate versions, sizes; then
 * every file is read and hashed. Only then does the runner take one
 * connection, switch off its statement timeout (a migration may run long,
 * and waiting for another replica's lock is expected), and take a
 * session-level pg_advisory_lock keyed on hashtextextended() of the schema
 * name. Under the lock it creates the schema and its schema_migrations
 * table, compares checksums of files already applied (a changed file is an
 * error before anything new runs), and applies the rest in order, each file
 * and its bookkeeping row in one transaction - a failing file leaves no
 * trace. The connection is discarded afterwards rather than pooled, which
 * also releases the advisory lock and forgets the session settings.
 *
 * Identifiers cannot be query parameters, so the schema name is pasted into
 * SQL - only after db_ident_ok() restricted it to [a-z_][a-z0-9_]*,
 * and always double-quoted. Migration files are trusted SQL shipped with
 * the service; their text runs through PQexec (db_conn_exec_script) because
 * a file holds many statements.
 */
#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "libs/base/strutil.h"
#include "libs/db/db.h"
#include "libs/db/db_internal.h"

#define SQL_MAX 512
#define CHECKSUM_HEX (crypto_hash_sha256_BYTES * 2 + 1)

typedef struct migration {
  db_migration_file f;
  char *text;
  char checksum[CHECKSUM_HEX];
} migration;

/* "0001_init.sql" -> 1; -1 when the name does not have that shape. */
static int parse_name(const char *name) {
  size_t len = strlen(name);
  if (len < 10 || len >= sizeof(((db_migration_file *)0)->file)) return -1;
  if (strcmp(name + len - 4, ".sql") != 0) return -1;
  for (int i = 0; i < 4; i++)
    if (name[i] < '0' || name[i] > '9') return -1;
  if (name[4] != '_') return -1;
  for (size_t i = 5; i < len - 4; i++) {
    char ch = name[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
      return -1;
  }
  return (name[0] - '0') * 1000 + (name[1] - '0') * 100 + (name[2] - '0') * 10 +
         (name[3] - '0');
}

static int by_version(const void *a, const void *b) {
  const db_migration_file *x = a, *y = b;
  return (x->version > y->version) - (x->version < y->version);
}

int db_migrations_list(const char *dir, db_migration_file **out, size_t *n) {
  *out = NULL;
  *n = 0;
  DIR *d = opendir(dir);
  if (d == NULL) {
    char msg[160];
    snprintf(msg, sizeof msg, "cannot open migrations directory: %s",
             strerror(errno));
    return db_set_error(errno == ENOENT ? ERR_NOTFOUND : ERR_IO, NULL, msg);
  }
  db_migration_file *files = NULL;
  size_t count = 0, cap = 0;
  int rc = ERR_OK;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    const char *name = e->d_name;
    size_t len = strlen(name);
    if (name[0] == '.' || len < 4 || strcmp(name + len - 4, ".sql") != 0)
      continue;
    int version = parse_name(name);
    if (version < 0) {
      char msg[200];
      snprintf(msg, sizeof msg,
               "migration file name is not NNNN_name.sql: %.120s", name);
      rc = db_set_error(ERR_INVAL, NULL, msg);
      goto done;
    }
    if (count == DB_MIGRATIONS_MAX) {
      rc = db_set_error(ERR_TOOBIG, NULL, "too many migration files");
      goto done;
    }
    if (count == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      db_migration_file *nf = realloc(files, ncap * sizeof *nf);
      if (nf == NULL) {
        rc = db_set_error(ERR_NOMEM, NULL, NULL);
        goto done;
      }
      files = nf;
      cap = ncap;
    }
    files[count].version = version;
    str_copy(files[count].file, name, sizeof files[count].file);
    count++;
  }
  if (count > 0) qsort(files, count, sizeof *files, by_version);
  for (size_t i = 1; i < count; i++) {
    if (files[i].version == files[i - 1].version) {
      char msg[300];
      snprintf(msg, sizeof msg, "duplicate migration version: %s and %s",
               files[i - 1].file, files[i].file);
      rc = db_set_error(ERR_INVAL, NULL, msg);
      goto done;
    }
  }
done:
  closedir(d);
  if (rc != ERR_OK) {
    free(files);
    return rc;
  }
  *out = files;
  *n = count;
  return ERR_OK;
}

/* Reads one file (bounded) and hashes it. */
static int load(const char *dir, migration *m) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, m->f.file);
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return db_set_error(ERR_IO, NULL, "cannot open migration file");
  struct stat st;
  int rc = ERR_OK;
  if (fstat(fileno(f), &st) != 0) {
    rc = db_set_error(ERR_IO, NULL, "cannot stat migration file");
    goto done;
  }
  if (st.st_size > DB_MIGRATION_MAX_BYTES) {
    rc = db_set_error(ERR_TOOBIG, NULL, "migration file too large");
    goto done;
  }
  size_t size = (size_t)st.st_size;
  m->text = malloc(size + 1);
  if (m->text == NULL) {
    rc = db_set_error(ERR_NOMEM, NULL, NULL);
    goto done;
  }
  if (fread(m->text, 1, size, f) != size) {
    rc = db_set_error(ERR_IO, NULL, "cannot read migration file");
    goto done;
  }
  m->text[size] = '\0';
  if (memchr(m->text, '\0', size) != NULL) {
    rc = db_set_error(ERR_INVAL, NULL, "migration file contains a NUL byte");
    goto done;
  }
  unsigned char hash[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(hash, (const unsigned char *)m->text, size);
  sodium_bin2hex(m->checksum, sizeof m->checksum, hash, sizeof hash);
done:
  fclose(f);
  if (rc != ERR_OK) db_prefix_error(m->f.file);
  return rc;
}

/* Applies one file and records it, in one transaction. */
static int apply(db_conn *c, const char *schema, const migration *m) {
  char sql[SQL_MAX], search_path[96];
  snprintf(search_path, sizeof search_path, "\"%s\", public", schema);
  int rc = db_begin(c, NULL);
  if (rc != ERR_OK) goto err;
  db_param sp[] = {db_text(search_path)};
  rc = db_exec(c, "SELECT set_config('search_path', $1, true)", sp, 1, NULL);
  if (rc != ERR_OK) goto err;
  rc = db_conn_exec_script(c, m->text);
  if (rc != ERR_OK) goto err;
  snprintf(sql, sizeof sql,
           "INSERT INTO \"%s\".schema_migrations (version, name, checksum) "
           "VALUES ($1, $2, $3)",
           schema);
  db_param rec[] = {db_int64(m->f.version), db_text(m->f.file),
                    db_text(m->checksum)};
  rc = db_exec(c, sql, rec, DB_NPARAMS(rec), NULL);
  if (rc != ERR_OK) goto err;
  rc = db_commit(c);
  if (rc != ERR_OK) goto err;
  return ERR_OK;
err : {
  db_error saved = *db_last_error();
  (void)db_rollback(c);
  db_set_error(saved.code, saved.sqlstate, saved.message);
  db_prefix_error(m->f.file);
}
  return rc;
}

/* Under the lock: creates the bookkeeping, checks applied files, applies
 * the rest. */
static int migrate_locked(db_conn *c, const char *schema, migration *ms,
                          size_t n, int *applied) {
  char sql[SQL_MAX];
  snprintf(sql, sizeof sql, "CREATE SCHEMA IF NOT EXISTS \"%s\"", schema);
  int rc = db_exec(c, sql, NULL, 0, NULL);
  if (rc != ERR_OK) return rc;
  snprintf(sql, sizeof sql,
           "CREATE TABLE IF NOT EXISTS \"%s\".schema_migrations ("
           " version integer PRIMARY KEY,"
           " name text NOT NULL,"
           " checksum text NOT NULL,"
           " applied_at timestamptz NOT NULL DEFAULT now())",
           schema);
  rc = db_exec(c, sql, NULL, 0, NULL);
  if (rc != ERR_OK) return rc;

  snprintf(
      sql, sizeof sql,
      "SELECT version, checksum FROM \"%s\".schema_migrations ORDER BY version",
      schema);
  db_result *done = NULL;
  rc = db_exec(c, sql, NULL, 0, &done);
  if (rc != ERR_OK) return rc;
  /* done_at[i]: row of ms[i] in `done`, or -1 when not applied yet. Both
   * lists are sorted by version. */
  int rows = db_nrows(done), row = 0;
  int *done_at = calloc(n > 0 ? n : 1, sizeof *done_at);
  if (done_at == NULL) {
    db_result_free(done);
    return db_set_error(ERR_NOMEM, NULL, NULL);
  }
  for (size_t i = 0; i < n; i++) {
    done_at[i] = -1;
    int64_t v = 0;
    while (row < rows && db_get_int64(done, row, 0, &v) == ERR_OK &&
           v < ms[i].f.version)
      row++;
    if (row < rows && db_get_int64(done, row, 0, &v) == ERR_OK &&
        v == ms[i].f.version)
      done_at[i] = row;
  }
  /* Versions recorded but missing on disk are ignored: an older replica
   * must still start while a newer one has already migrated. */
  for (size_t i = 0; i < n && rc == ERR_OK; i++) {
    if (done_at[i] < 0) continue;
    const char *sum = db_get(done, done_at[i], 1);
    if (sum == NULL || strcmp(sum, ms[i].checksum) != 0) {
      rc = db_set_error(ERR_CONFLICT, NULL,
                        "changed after it was applied (checksum differs)");
      db_prefix_error(ms[i].f.file);
    }
  }
  for (size_t i = 0; i < n && rc == ERR_OK; i++) {
    if (done_at[i] >= 0) continue;
    rc = apply(c, schema, &ms[i]);
    if (rc == ERR_OK && applied != NULL) (*applied)++;
  }
  free(done_at);
  db_result_free(done);
  return rc;
}

int db_migrate(db_pool *p, const char *dir, const char *schema, int *applied) {
  if (applied != NULL) *applied = 0;
  if (p == NULL || dir == NULL || !db_ident_ok(schema))
    return db_set_error(ERR_INVAL, NULL,
                        "invalid migration schema name or directory");
  if (sodium_init() < 0)
    return db_set_error(ERR_INTERNAL, NULL, "sodium_init failed");
  db_migration_file *files = NULL;
  size_t n = 0;
  int rc = db_migrations_list(dir, &files, &n);
  if (rc != ERR_OK) return rc;
  migration *ms = calloc(n > 0 ? n : 1, sizeof *ms);
  db_conn *c = NULL;
  if (ms == NULL) {
    rc = db_set_error(ERR_NOMEM, NULL, NULL);
    goto out;
  }
  for (size_t i = 0; i < n && rc == ERR_OK; i++) {
    ms[i].f = files[i];
    rc = load(dir, &ms[i]);
  }
  if (rc != ERR_OK) goto out;

  rc = db_acquire(p, &c);
  if (rc != ERR_OK) goto out;
  db_conn_discard(c); /* session settings and the lock die with it */
  db_param zero[] = {db_text("0")};
  rc = db_exec(c, "SELECT set_config('statement_timeout', $1, false)", zero, 1,
               NULL);
  if (rc != ERR_OK) goto out;
  char key[96];
  snprintf(key, sizeof key, "db_migrate:%s", schema);
  db_param k[] = {db_text(key)};
  rc = db_exec(c, "SELECT pg_advisory_lock(hashtextextended($1, 0))", k, 1,
               NULL);
  if (rc != ERR_OK) goto out;
  rc = migrate_locked(c, schema, ms, n, applied);
  if (rc == ERR_OK) {
    rc = db_exec(c, "SELECT pg_advisory_unlock(hashtextextended($1, 0))", k, 1,
                 NULL);
  }
out:
  db_release(c);
  for (size_t i = 0; ms != NULL && i < n; i++) free(ms[i].text);
  free(ms);
  free(files);
  return rc;
}
