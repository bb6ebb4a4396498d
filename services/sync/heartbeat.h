/*
 * heartbeat.h - device heartbeats, kept off PostgreSQL's write path.
 *
 * 100,000 devices beating every 30 s is 3,300 beats a second; writing each
 * into its row would be 3,300 transactions a second for a timestamp. So a
 * beat is ONE Redis round trip (a script: the device's hash
 * sync:hb:<tid>:<did> {seen, ver, pending} and its name in the set
 * sync:hb:dirty), and a background round on every replica, every flush_ms:
 *   1. pops up to HEARTBEAT_BATCH dirty devices with their hashes (SPOP in
 *      a script: each popped by exactly one replica) and writes them per
 *      tenant in one transaction (store_beats_apply), which also marks the
 *      device online and writes DeviceOnline when it was offline;
 *   2. sweeps devices whose last heartbeat is older than twice the
 *      interval to offline with DeviceOffline (store_sweep_offline: one
 *      replica at a time under a PostgreSQL advisory lock, rows SKIP
 *      LOCKED, so each change is announced once).
 * A replica that dies after popping loses at most one flush of soft state
 * (last_seen_at, app_version, pending), which the device's next beat
 * restores. Redis down: beats are refused (UNAVAILABLE) and the device
 * keeps its data; the sweep still runs, so devices go offline.
 */
#ifndef SYNC_HEARTBEAT_H
#define SYNC_HEARTBEAT_H

#include <stdint.h>

#include "libs/base/err.h"
#include "libs/cache/cache.h"
#include "libs/outbox/outbox.h"
#include "services/sync/store.h"

#define HEARTBEAT_BATCH 1000      /* devices popped per flush step */
#define HEARTBEAT_VERSION_MAX 200 /* bytes of app_version (50 characters) */

typedef struct heartbeat_config {
  cache *redis;        /* borrowed; NULL: beats are refused */
  store *store;        /* borrowed */
  outbox *events;      /* borrowed; kicked after events were written */
  int64_t interval_ms; /* the devices' beat interval (30 s) */
  int64_t flush_ms;    /* the background round's period */
} heartbeat_config;

typedef struct heartbeat heartbeat;

/* Creates the heartbeat state and starts its background round. Errors:
 * ERR_INVAL, ERR_NOMEM, ERR_INTERNAL. *out: heartbeat_free. */
int heartbeat_new(const heartbeat_config *cfg, heartbeat **out) WARN_UNUSED;
/* Stops the round (waiting for one in progress) and frees h. NULL-safe. */
void heartbeat_free(heartbeat *h);

/* Records a beat of device did of tenant tid at now_ms: app_version NULL
 * keeps the last one, pending < 0 keeps it too. Errors: ERR_UNAVAILABLE
 * (no Redis or it failed). */
int heartbeat_record(heartbeat *h, const char *tid, const char *did,
                     const char *app_version, int32_t pending,
                     int64_t now_ms) WARN_UNUSED;

/* One background round now, on the caller's thread (tests). */
void heartbeat_run_once(heartbeat *h);

#endif
