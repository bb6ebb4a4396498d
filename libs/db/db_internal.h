/*
 * db_internal.h - what db.c shares with migrate.c and the unit tests.
 * Not part of the public API (visibility limited in BUILD).
 */
#ifndef LIBS_DB_DB_INTERNAL_H
#define LIBS_DB_DB_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "libs/db/db.h"

/* Runs trusted, multi-statement SQL text with PQexec (migration files
 * only: never anything built from input). Errors as db_exec. */
int db_conn_exec_script(db_conn *c, const char *sql) WARN_UNUSED;

/* Records an error for db_last_error and returns code. message NULL means
 * err_str(code). */
int db_set_error(int code, const char *sqlstate, const char *message);

/* Prepends "prefix: " to the thread's last error message. */
void db_prefix_error(const char *prefix);

/* Copies the first line of in to out (cap bytes, NUL-terminated),
 * non-printable bytes as '?'. from_server: also cut at the first ": ",
 * after which PostgreSQL quotes the offending value. */
void db_scrub_message(const char *in, bool from_server, char *out, size_t cap);

/* One migration file found on disk. */
typedef struct db_migration_file {
  int version;
  char file[128]; /* "0001_init.sql" */
} db_migration_file;

#define DB_MIGRATIONS_MAX 1000

/* Lists dir's migration files sorted by version into a malloc'd array the
 * caller frees. Names not ending in .sql (and dot files) are ignored.
 * Errors: ERR_NOTFOUND (no such directory), ERR_IO, ERR_INVAL (a .sql
 * file not named NNNN_name.sql, a duplicate version), ERR_TOOBIG (more
 * than DB_MIGRATIONS_MAX files), ERR_NOMEM. */
int db_migrations_list(const char *dir, db_migration_file **out,
                       size_t *n) WARN_UNUSED;

#endif
