/*
 * register.c - making this file a device (sync_register, sync.h).
 *
 * With staff credentials: log in (POST /v1/auth/login), register a device
 * (POST /v1/sync/devices) and keep its secret, shown by the server only
 * then; the staff token is used for that one call and forgotten. With a
 * device id and secret: check them by opening a session, then ask where
 * the device's mutation ids stand (the pull answer's last_mutation_id),
 * so a reinstalled device does not reuse ids the server has seen. The
 * secret goes only into the 0600 SQLite file, never to stdout or logs.
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "clients/syncd/store.h"
#include "clients/syncd/sync.h"

static int staff_register(const http_target *base, const char *name,
                          const char *email, const char *password, char id[40],
                          char secret[128]) {
  json_t *body = json_pack("{s:s, s:s}", "email", email, "password", password);
  json_t *ans = NULL;
  long s = http_json(base, "POST", "/v1/auth/login", body, &ans);
  json_decref(body);
  const char *tok = json_string_value(json_object_get(ans, "access_token"));
  if (s != 200 || tok == NULL) {
    fprintf(stderr, "syncd: login refused (HTTP %ld)\n", s);
    json_decref(ans);
    return -1;
  }
  char token[1024];
  snprintf(token, sizeof token, "%s", tok);
  json_decref(ans);
  http_target t = *base;
  t.token = token;
  body = json_pack("{s:s, s:s}", "name", name, "platform", "linux");
  s = http_json(&t, "POST", "/v1/sync/devices", body, &ans);
  json_decref(body);
  const char *did =
      json_string_value(json_object_get(json_object_get(ans, "device"), "id"));
  const char *sec = json_string_value(json_object_get(ans, "device_secret"));
  int rc = -1;
  if (s == 201 && did != NULL && sec != NULL && strlen(did) < 40 &&
      strlen(sec) < 128) {
    snprintf(id, 40, "%s", did);
    snprintf(secret, 128, "%s", sec);
    rc = 0;
  } else {
    fprintf(stderr, "syncd: device registration refused (HTTP %ld)\n", s);
  }
  json_decref(ans);
  sodium_memzero(token, sizeof token);
  return rc;
}

/* The device's last_mutation_id on the server (-1: unknown). */
static int64_t server_last_mutation(sync_ctx *x) {
  http_target t = {.base_url = x->base_url,
                   .tenant = x->tenant,
                   .token = x->token,
                   .timeout_ms = x->cfg.timeout_ms};
  json_t *ans = NULL;
  long s = http_json(&t, "GET", "/v1/sync/pull?cursor=0&limit=1", NULL, &ans);
  json_t *v = json_object_get(ans, "last_mutation_id");
  int64_t last = s == 200 && json_is_integer(v) ? json_integer_value(v) : -1;
  json_decref(ans);
  return last;
}

/* Checks an existing device's secret with a session; its last mutation
 * id into *last. */
static int device_check(const sync_cfg *cfg, const char *url,
                        const char *tenant, const char *id, const char *secret,
                        int64_t *last) {
  sync_ctx x = {.cfg = *cfg};
  snprintf(x.base_url, sizeof x.base_url, "%s", url);
  snprintf(x.tenant, sizeof x.tenant, "%s", tenant);
  http_target t = {
      .base_url = url, .tenant = tenant, .timeout_ms = cfg->timeout_ms};
  char path[128];
  snprintf(path, sizeof path, "/v1/sync/devices/%s/session", id);
  json_t *body = json_pack("{s:s}", "device_secret", secret), *ans = NULL;
  long s = http_json(&t, "POST", path, body, &ans);
  json_decref(body);
  const char *tok = json_string_value(json_object_get(ans, "access_token"));
  if (s == 200 && tok != NULL) snprintf(x.token, sizeof x.token, "%s", tok);
  json_decref(ans);
  if (x.token[0] == '\0') {
    fprintf(stderr, "syncd: device id or secret refused (HTTP %ld)\n", s);
    return -1;
  }
  *last = server_last_mutation(&x);
  sodium_memzero(x.token, sizeof x.token);
  if (*last < 0) fprintf(stderr, "syncd: cannot read the device's state\n");
  return *last < 0 ? -1 : 0;
}

int sync_register(sqlite3 *db, const sync_cfg *cfg, const char *url,
                  const char *tenant, const char *name, const char *email,
                  const char *password, const char *device_id,
                  const char *secret) {
  char have[40];
  if (store_get(db, "device_id", have, sizeof have)) {
    fprintf(stderr, "syncd: already registered as device %s\n", have);
    return -1;
  }
  if (strlen(url) >= 512 || strlen(tenant) >= 64) {
    fprintf(stderr, "syncd: --url or --tenant too long\n");
    return -1;
  }
  http_target base = {
      .base_url = url, .tenant = tenant, .timeout_ms = cfg->timeout_ms};
  char id[40] = "", sec[128] = "";
  int64_t last = 0;
  if (device_id == NULL) {
    if (staff_register(&base, name, email, password, id, sec) != 0) return -1;
  } else {
    if (strlen(device_id) >= sizeof id || strlen(secret) >= sizeof sec) {
      fprintf(stderr, "syncd: device id or secret too long\n");
      return -1;
    }
    if (device_check(cfg, url, tenant, device_id, secret, &last) != 0)
      return -1;
    snprintf(id, sizeof id, "%s", device_id);
    snprintf(sec, sizeof sec, "%s", secret);
  }
  int rc = store_begin(db);
  if (rc == 0) rc = store_set(db, "base_url", url);
  if (rc == 0) rc = store_set(db, "tenant", tenant);
  if (rc == 0) rc = store_set(db, "device_id", id);
  if (rc == 0) rc = store_set(db, "device_secret", sec);
  if (rc == 0 && store_get_int(db, "next_mutation_id", 1) <= last)
    rc = store_set_int(db, "next_mutation_id", last + 1);
  if (rc == 0) rc = store_commit(db);
  if (rc != 0) store_rollback(db);
  sodium_memzero(sec, sizeof sec);
  if (rc == 0) printf("registered device %s\n", id);
  return rc;
}
