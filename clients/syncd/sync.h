/*
 * sync.h - talking to the server: registration, the device session, and
 * one sync round (push the outbox, pull changes, refetch refused orders,
 * heartbeat when due).
 */
#ifndef CLIENTS_SYNCD_SYNC_H
#define CLIENTS_SYNCD_SYNC_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "clients/syncd/http.h"

typedef struct sync_cfg {
  int64_t heartbeat_ms; /* SYNCD_HEARTBEAT, default 30 s */
  int push_batch;       /* SYNCD_PUSH_BATCH, 1..500, default 100 */
  long timeout_ms;      /* SYNCD_TIMEOUT_MS, default 10 s */
  int64_t upload_bps;   /* SYNCD_UPLOAD_BPS, 0: no cap */
} sync_cfg;

typedef struct sync_ctx {
  sqlite3 *db;
  sync_cfg cfg;
  char base_url[512], tenant[64], device_id[40], secret[128];
  char token[1024]; /* the device token, in memory only */
  int64_t token_until_ms, next_beat_ms;
} sync_ctx;

/* Registers this file as a device: with staff credentials (email and
 * password, device_id NULL) a new device named name; or an existing
 * device_id with its secret. Stores url, tenant, id and secret. 0 on
 * success, else -1 with a message on stderr. */
int sync_register(sqlite3 *db, const sync_cfg *cfg, const char *url,
                  const char *tenant, const char *name, const char *email,
                  const char *password, const char *device_id,
                  const char *secret);

/* Loads the stored identity into x; false when the file is not
 * registered. */
bool sync_load(sync_ctx *x, sqlite3 *db, const sync_cfg *cfg);

/* One round. 0: done (everything pushed and pulled); -1: failed (the
 * network or the server; retry with backoff), with a reason in
 * meta.last_error. */
int sync_round(sync_ctx *x);

/* The gateway as x sees it, with the device token when auth. */
http_target sync_target(const sync_ctx *x, bool auth);

/* Records why a round failed (never a secret), goes offline, drops the
 * token on a 401; returns -1. */
int sync_fail(sync_ctx *x, const char *what, long status);

#endif
