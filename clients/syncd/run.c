/*
 * run.c - `syncd run`: the loop (run_loop, cli.h).
 *
 * A round runs when the outbox has something (checked locally every
 * 200 ms, so a command-line change goes out at once while online), when
 * the poll interval has passed, when a file lands in the watched folder
 * (inotify, watch.h), when realtime publishes something for the tenant
 * (rt.h: a pull within ~200 ms of the notification), when the device
 * token is due for renewal (so a long poll never lets the realtime
 * connection's token expire), or when the backoff after a failure ends.
 * The poll stays the safety net: a lost notification, or realtime being
 * down, costs at most one poll interval.
 * Failures back off exponentially with full jitter (clock.h) up to
 * SYNCD_BACKOFF_MAX_MS, so devices returning together after an outage do
 * not arrive together. SIGTERM/SIGINT end the loop between rounds; a kill
 * -9 at any point loses nothing (every step is a transaction).
 */
#include <signal.h>
#include <sodium.h>
#include <stdio.h>

#include "clients/syncd/cli.h"
#include "clients/syncd/clock.h"
#include "clients/syncd/files.h"
#include "clients/syncd/rt.h"
#include "clients/syncd/store.h"
#include "clients/syncd/watch.h"
#include "libs/base/timeutil.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

static uint32_t rnd(uint32_t n) { return randombytes_uniform(n); }

int run_loop(sync_ctx *x, const run_cfg *rc) {
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  int failures = 0;
  int64_t next = 0;
  char dir[1024];
  int wfd = files_dir(x->db, dir, sizeof dir) ? watch_open(dir) : -1;
  rt *r =
      rc->realtime_url[0] != '\0'
          ? rt_start(rc->realtime_url, rc->backoff_base_ms, rc->backoff_max_ms)
          : NULL;
  fprintf(stderr, "syncd: device %s syncing with %s%s\n", x->device_id,
          x->base_url, r != NULL ? " (realtime on)" : "");
  while (!g_stop) {
    int64_t now = time_mono_ms();
    bool poked = rt_poked(r);
    bool renew = x->token[0] != '\0' && time_now_ms() >= x->token_until_ms;
    bool queued =
        poked || renew || watch_changed(wfd) ||
        store_int(x->db, "SELECT count(*) FROM outbox WHERE status IS NULL",
                  NULL, 0) > 0;
    if (now >= next || (queued && failures == 0)) {
      int ok = sync_round(x);
      rt_token(r, x->token);
      if (ok == 0) {
        if (failures > 0) fprintf(stderr, "syncd: back online\n");
        failures = 0;
        next = time_mono_ms() + rc->poll_ms;
      } else {
        failures++;
        int64_t d =
            backoff_ms(failures, rc->backoff_base_ms, rc->backoff_max_ms, rnd);
        if (failures == 1) fprintf(stderr, "syncd: offline, retrying\n");
        next = time_mono_ms() + d;
      }
    }
    time_sleep_ms(200);
  }
  rt_stop(r);
  watch_close(wfd);
  (void)store_set(x->db, "online", "0");
  return 0;
}
