/*
 * show.c - the read-only commands: `syncd status`, `syncd conflicts`,
 * `syncd orders` (cli.h). They read the file beside a running `syncd
 * run` (WAL: readers never wait for the writer). --json prints one JSON
 * document for scripts and tests; otherwise a table for people.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/syncd/cli.h"
#include "clients/syncd/store.h"

int show_status(sqlite3 *db) {
  char dev[40] = "", last[40] = "", err[160] = "";
  store_get(db, "device_id", dev, sizeof dev);
  store_get(db, "last_sync", last, sizeof last);
  store_get(db, "last_error", err, sizeof err);
  json_t *o = json_pack(
      "{s:s, s:b, s:I, s:I, s:I, s:I, s:s, s:s}", "device_id", dev, "online",
      store_get_int(db, "online", 0) == 1, "pending",
      (json_int_t)store_int(
          db, "SELECT count(*) FROM outbox WHERE status IS NULL", NULL, 0),
      "last_mutation_id",
      (json_int_t)store_get_int(db, "next_mutation_id", 1) - 1, "cursor",
      (json_int_t)store_get_int(db, "cursor", 0), "conflicts",
      (json_int_t)store_int(db, "SELECT count(*) FROM conflicts", NULL, 0),
      "last_sync", last, "last_error", err);
  char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  puts(text);
  free(text);
  json_decref(o);
  return 0;
}

/* Rows of sql as JSON objects: the columns' names, text or integers;
 * columns named data/client/server hold JSON text and are embedded. */
static json_t *rows(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  json_t *a = json_array();
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return a;
  while (sqlite3_step(st) == SQLITE_ROW) {
    json_t *o = json_object();
    for (int i = 0; i < sqlite3_column_count(st); i++) {
      const char *name = sqlite3_column_name(st, i);
      const char *t = (const char *)sqlite3_column_text(st, i);
      json_t *v;
      if (sqlite3_column_type(st, i) == SQLITE_INTEGER)
        v = json_integer(sqlite3_column_int64(st, i));
      else if (strcmp(name, "data") == 0 || strcmp(name, "client") == 0 ||
               strcmp(name, "server") == 0)
        v = t != NULL ? json_loads(t, 0, NULL) : json_null();
      else
        v = t != NULL ? json_string(t) : json_null();
      json_object_set_new(o, name, v != NULL ? v : json_null());
    }
    json_array_append_new(a, o);
  }
  sqlite3_finalize(st);
  return a;
}

static void print_json(json_t *v) {
  char *text = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  puts(text);
  free(text);
}

int show_conflicts(sqlite3 *db, bool as_json) {
  json_t *a = rows(db, "SELECT mutation_id, order_id, name, client, "
                       "server_version, server, recorded_at FROM conflicts "
                       "ORDER BY mutation_id");
  if (as_json) {
    json_t *o = json_pack("{s:o}", "conflicts", a);
    print_json(o);
    json_decref(o);
    return 0;
  }
  printf("%-9s %-36s %-18s %-10s %s\n", "MUTATION", "ORDER", "CHANGE", "SERVER",
         "SERVER STATUS");
  size_t i;
  json_t *c;
  json_array_foreach(a, i, c) {
    const json_t *srv = json_object_get(c, "server");
    printf("%-9lld %-36s %-18s v%-9lld %s\n",
           (long long)json_integer_value(json_object_get(c, "mutation_id")),
           json_string_value(json_object_get(c, "order_id")),
           json_string_value(json_object_get(c, "name")),
           (long long)json_integer_value(json_object_get(c, "server_version")),
           json_is_object(srv)
               ? json_string_value(json_object_get(srv, "status"))
               : "-");
  }
  json_decref(a);
  return 0;
}

int show_orders(sqlite3 *db, bool as_json) {
  json_t *a = rows(db, "SELECT id, status, version, synced, data FROM orders "
                       "ORDER BY id");
  if (as_json) {
    json_t *o = json_pack("{s:o}", "orders", a);
    print_json(o);
    json_decref(o);
    return 0;
  }
  printf("%-36s %-10s %-7s %-6s %s\n", "ORDER", "STATUS", "VERSION", "SYNCED",
         "TOTAL");
  size_t i;
  json_t *r;
  json_array_foreach(a, i, r) {
    printf("%-36s %-10s %-7lld %-6s %lld\n",
           json_string_value(json_object_get(r, "id")),
           json_string_value(json_object_get(r, "status")),
           (long long)json_integer_value(json_object_get(r, "version")),
           json_integer_value(json_object_get(r, "synced")) ? "yes" : "no",
           (long long)json_integer_value(
               json_object_get(json_object_get(r, "data"), "total_cents")));
  }
  json_decref(a);
  return 0;
}
