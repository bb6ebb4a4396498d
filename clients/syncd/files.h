/*
 * files.h - the watched folder (SYNCD_FILES_DIR, or `init --files DIR`):
 * its files are hashed (SHA-256), recorded in the SQLite file and
 * uploaded by hash, only those the server lacks (upload.c).
 *
 * Table files: path (the name inside the folder), size, mtime_ns, sha256
 * (lower-case hex), uploaded_at (RFC 3339, NULL while not on the server),
 * seen (the scan that last saw it). A file whose size or mtime changed is
 * hashed again and uploaded again if its content is new to the server.
 */
#ifndef CLIENTS_SYNCD_FILES_H
#define CLIENTS_SYNCD_FILES_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FILES_MAX_BYTES ((int64_t)25 * 1024 * 1024) /* the server's cap */
#define FILES_MAX_COUNT 10000                       /* files per folder */
#define FILES_HASH_HEX 64

/* The folder to watch: SYNCD_FILES_DIR, else meta files_dir; false when
 * none is configured. */
bool files_dir(sqlite3 *db, char *out, size_t cap);

/* Whether dir exists and is not the folder of db's own file (which holds
 * the device secret and must never be uploaded). */
bool files_dir_allowed(sqlite3 *db, const char *dir);

/* One pass over dir (refused, -1, when !files_dir_allowed): regular files only
 * (symlinks, directories, devices skipped, never followed), at most
 * FILES_MAX_BYTES each and FILES_MAX_COUNT in all; new or changed ones hashed;
 * all recorded in one transaction, rows of vanished files removed. Returns the
 * number of files (re)hashed, -1 when the folder cannot be read. */
int files_scan(sqlite3 *db, const char *dir);

/* SHA-256 of the open file fd as lower-case hex, read in chunks; *size
 * gets the bytes read. 0 on success. */
int files_hash_fd(int fd, char hex[FILES_HASH_HEX + 1], int64_t *size);

/* Forgets the recorded size of path, so the next scan hashes it again. */
int files_mark_rehash(sqlite3 *db, const char *path);

/* `syncd files [--json]`: the recorded files and their state. */
int files_show(sqlite3 *db, bool json);

#endif
