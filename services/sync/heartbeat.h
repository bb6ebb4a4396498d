/*
 * heartbeat.h - device heartbeats, kept off PostgreSQL's write path and
 * off any network round trip.
 *
 * 100,000 devices beating every 30 s is 3,300 beats a second; writing each
 * into its row would be 3,300 transactions a second for a timestamp. So a
 * beat is an append to this replica's buffer in memory (a mutex and a
 * copy: no Redis, no SQL), and a background round every flush_ms:
 *   1. takes the buffer (swapping in the empty spare, so beats go on
 *      while it writes), keeps each device's newest state (the latest
 *      seen time, the last app_version and pending given), and writes
 *      each tenant's devices with ONE statement per batch of up to
 *      HEARTBEAT_BATCH (store_beats_apply), which also marks devices
 *      online and writes DeviceOnline for those that were offline;
 *   2. sweeps devices whose last heartbeat is older than twice the
 *      interval to offline with DeviceOffline (store_sweep_offline: one
 *      replica at a time under a PostgreSQL advisory lock, rows SKIP
 *      LOCKED, so each change is announced once).
 * Every replica flushes its own beats; last_seen_at never moves back, and
 * the online flag is read under the row lock, so a device beating through
 * several replicas is announced once. A replica that dies loses at most
 * one flush period of soft state (last_seen_at, app_version, pending),
 * which the device's next beat restores (it beats every interval; it goes
 * offline only after two). An earlier version kept beats in Redis (one
 * script per beat, popped by the flush): the same guarantees for a Redis
 * round trip per beat (docs/PERFORMANCE.md "Sync").
 *
 * The buffer holds at most HEARTBEAT_BUFFER_MAX beats between two flushes
 * (about 20 s of 100,000 devices on one replica); beyond that, and when
 * a flush fails (PostgreSQL away: the beats are dropped, logged), beats
 * are refused with ERR_UNAVAILABLE until the next round makes room.
 */
#ifndef SYNC_HEARTBEAT_H
#define SYNC_HEARTBEAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/base/uuid.h"
#include "libs/outbox/outbox.h"
#include "services/sync/store.h"

#define HEARTBEAT_BATCH 1000       /* devices per flush statement */
#define HEARTBEAT_VERSION_MAX 200  /* bytes of app_version (50 characters) */
#define HEARTBEAT_BUFFER_MAX 65536 /* beats held between two flushes */

typedef struct heartbeat_config {
  store *store;        /* borrowed */
  outbox *events;      /* borrowed; kicked after events were written */
  int64_t interval_ms; /* the devices' beat interval (30 s) */
  int64_t flush_ms;    /* the background round's period */
} heartbeat_config;

typedef struct heartbeat heartbeat;

/* One beat as buffered. */
typedef struct heartbeat_beat {
  char tid[UUID_STR_LEN + 1];
  char did[UUID_STR_LEN + 1];
  int64_t seen_ms;
  int32_t pending; /* < 0: not given */
  int64_t cursor;  /* the device's pull cursor; < 0: not given */
  bool has_ver;
  char ver[HEARTBEAT_VERSION_MAX + 1];
} heartbeat_beat;

/* Creates the heartbeat state and starts its background round. Errors:
 * ERR_INVAL, ERR_NOMEM, ERR_INTERNAL. *out: heartbeat_free. */
int heartbeat_new(const heartbeat_config *cfg, heartbeat **out) WARN_UNUSED;
/* Stops the round (waiting for one in progress), writes what is still
 * buffered, and frees h. NULL-safe. */
void heartbeat_free(heartbeat *h);

/* Records a beat of device did of tenant tid at now_ms: app_version NULL
 * keeps the last one (longer than HEARTBEAT_VERSION_MAX: ERR_INVAL),
 * pending < 0 and cursor < 0 keep theirs too. Errors: ERR_INVAL,
 * ERR_UNAVAILABLE (the buffer is full). Nothing is kept of the pointers. */
int heartbeat_record(heartbeat *h, const char *tid, const char *did,
                     const char *app_version, int32_t pending, int64_t cursor,
                     int64_t now_ms) WARN_UNUSED;

/* One background round now, on the caller's thread (tests). */
void heartbeat_run_once(heartbeat *h);

/* Sorts b[0..n) by tenant and device and folds each device's beats into
 * one: the latest seen_ms, and the app_version, pending and cursor of its
 * latest beat that gave them. Returns the number of devices, now b[0..ret).
 * (Pure: the flush's first step, exposed for tests.) */
size_t heartbeat_coalesce(heartbeat_beat *b, size_t n);

#endif
