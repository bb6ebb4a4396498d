/*
 * store.h - syncd's SQLite file: the device's identity and sync state
 * (table meta), the local replica (products, tables, orders), the outbox
 * of mutations and the conflicts the server reported.
 *
 * Several short-lived processes (the command line) share the file with
 * `syncd run`: WAL mode lets readers run beside the one writer, writes
 * take the lock up front (BEGIN IMMEDIATE) and wait for it (busy timeout)
 * instead of failing, and every step is one transaction, so a kill -9
 * leaves either the whole step or none of it.
 */
#ifndef CLIENTS_SYNCD_STORE_H
#define CLIENTS_SYNCD_STORE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Opens (creating, mode 0600) the file at path, switches it to WAL and
 * creates the schema. NULL on failure (a message on stderr). */
sqlite3 *store_open(const char *path);
void store_close(sqlite3 *db);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK; 0 on success. */
int store_begin(sqlite3 *db);
int store_commit(sqlite3 *db);
void store_rollback(sqlite3 *db);

/* Runs one statement, binding one const char * argument per parameter
 * (?1 .. ?N, as many as the statement has) as text. 0 on success. */
int store_exec(sqlite3 *db, const char *sql, ...);

/* meta: the value of key into out[cap] (false when absent). */
bool store_get(sqlite3 *db, const char *key, char *out, size_t cap);
int64_t store_get_int(sqlite3 *db, const char *key, int64_t dflt);
int store_set(sqlite3 *db, const char *key, const char *value);
int store_set_int(sqlite3 *db, const char *key, int64_t value);

/* One integer of a query without parameters but one optional text (p1
 * may be NULL); dflt when no row. */
int64_t store_int(sqlite3 *db, const char *sql, const char *p1, int64_t dflt);

#endif
