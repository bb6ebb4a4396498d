/*
 * cli.h - the pieces of the command line that main.c wires together.
 */
#ifndef CLIENTS_SYNCD_CLI_H
#define CLIENTS_SYNCD_CLI_H

#include <stdint.h>

#include "clients/syncd/sync.h"

typedef struct run_cfg {
  int64_t poll_ms;         /* SYNCD_POLL_MS, default 2000 */
  int64_t backoff_base_ms; /* SYNCD_BACKOFF_BASE_MS, default 500 */
  int64_t backoff_max_ms;  /* SYNCD_BACKOFF_MAX_MS, default 30000 */
  char realtime_url[512];  /* SYNCD_REALTIME_URL or init --realtime; "": none */
} run_cfg;

/* The sync loop until SIGTERM/SIGINT. */
int run_loop(sync_ctx *x, const run_cfg *rc);

/* `syncd status`, `syncd conflicts`, `syncd orders [--json]`. */
int show_status(sqlite3 *db);
int show_conflicts(sqlite3 *db, bool json);
int show_orders(sqlite3 *db, bool json);

#endif
