/*
 * periodic.h - a background thread that runs one function over and over:
 * at start, then interval_ms after each run ends, until stopped. Every
 * service's janitor (expiring rows, repairing cache keys, reaping
 * half-finished work) has this shape; the service writes only the round
 * itself.
 *
 *   static void janitor_round(void *arg) { ... one pass, logs failures ... }
 *   periodic_options o = {.name = "janitor", .interval_ms = 30000,
 *                         .fn = janitor_round, .arg = deps};
 *   periodic *p;
 *   if (periodic_start(&o, &p) != ERR_OK) ...
 *   ...
 *   periodic_stop(p);   // prompt: the thread waits on a condition variable
 *
 * The interval is measured on the monotonic clock from the end of one run
 * to the start of the next, so a slow round never makes rounds pile up,
 * and a wall-clock step neither skips nor repeats one. fn runs on the
 * periodic's own thread only, never twice at once; a failure inside it is
 * its own business (log it and try again next round).
 */
#ifndef SVC_PERIODIC_H
#define SVC_PERIODIC_H

#include <stdint.h>

#include "libs/base/err.h"

typedef struct periodic periodic;

typedef struct periodic_options {
  const char *name;      /* thread name shown by ps/gdb (first 15 bytes);
                            NULL: unnamed */
  int64_t interval_ms;   /* > 0 */
  void (*fn)(void *arg); /* one round; required */
  void *arg;             /* passed to fn; borrowed until periodic_stop */
} periodic_options;

/* Starts the thread; its first round runs at once. o is copied (name
 * too). Errors: ERR_INVAL (no fn, interval_ms <= 0), ERR_NOMEM,
 * ERR_INTERNAL (no thread). *out is the caller's: periodic_stop it. */
int periodic_start(const periodic_options *o, periodic **out) WARN_UNUSED;

/* Asks for a round now instead of at the end of the interval: at once
 * when the thread is waiting, right after the current round when one is
 * running (several wakes during a round make one extra round). The
 * interval then counts from that round's end. NULL-safe; thread-safe. */
void periodic_wake(periodic *p);

/* Stops the thread - waiting for a round in progress to finish, never
 * interrupting it - joins it and frees p. Must not be called from fn.
 * NULL-safe. */
void periodic_stop(periodic *p);

#endif
