/*
 * lifecycle.c - signal-driven graceful shutdown (see lifecycle.h).
 *
 * Design. Signals are never handled asynchronously: SIGTERM and SIGINT
 * stay blocked and one thread collects them with sigtimedwait. That keeps
 * the shutdown path ordinary code (logging, locks, malloc are all fine)
 * and makes it testable: raise() or kill(getpid()) just leaves the signal
 * pending until the test waits for it.
 *
 * The drain runs on its own thread so the caller can enforce the grace
 * period and watch for a second signal at the same time. The waiter polls
 * the drain's completion between short sigtimedwait slices; 20 ms of
 * latency at shutdown is irrelevant and it avoids a second wake-up channel.
 * The drain's state is shared by the two threads and freed by whichever
 * lets go last, because the waiter may give up before the drain returns.
 */
#include "libs/obs/lifecycle.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "libs/base/timeutil.h"

#define POLL_SLICE_MS 20

static atomic_bool stopping;

static void stop_set(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGINT);
}

int lifecycle_init(void) {
  sigset_t set;
  stop_set(&set);
  if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) return ERR_IO;
  struct sigaction sa = {.sa_handler = SIG_IGN};
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGPIPE, &sa, NULL) != 0) return ERR_IO;
  return ERR_OK;
}

/* One sigtimedwait of at most ms (negative: forever). Returns the signal,
 * 0 on timeout, -1 on error. */
static int wait_signal(int64_t ms) {
  sigset_t set;
  stop_set(&set);
  for (;;) {
    int sig;
    if (ms < 0) {
      sig = sigwaitinfo(&set, NULL);
    } else {
      struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
                            .tv_nsec = (long)(ms % 1000) * 1000000L};
      sig = sigtimedwait(&set, NULL, &ts);
    }
    if (sig > 0) return sig;
    if (errno == EAGAIN) return 0;
    if (errno != EINTR) return -1;
    /* EINTR (another handled signal): retry; the remaining time is
     * recomputed by callers that care (lifecycle_wait_for_stop). */
    if (ms >= 0) return 0;
  }
}

int lifecycle_wait_for_stop(int64_t timeout_ms, int *signo) {
  int64_t deadline = timeout_ms < 0 ? -1 : time_mono_ms() + timeout_ms;
  for (;;) {
    int64_t left = -1;
    if (deadline >= 0) {
      left = deadline - time_mono_ms();
      if (left < 0) left = 0;
    }
    int sig = wait_signal(left);
    if (sig < 0) return ERR_IO;
    if (sig > 0) {
      atomic_store(&stopping, true);
      if (signo) *signo = sig;
      return ERR_OK;
    }
    if (deadline >= 0 && time_mono_ms() >= deadline) return ERR_TIMEOUT;
  }
}

bool lifecycle_stopping(void) { return atomic_load(&stopping); }

void lifecycle_request_stop(void) {
  atomic_store(&stopping, true);
  /* Process-directed, so whichever thread waits in sigtimedwait gets it. */
  kill(getpid(), SIGTERM);
}

struct drain_state {
  int (*fn)(void *);
  void *arg;
  int result;
  atomic_bool done;
  atomic_int refs; /* waiter + drain thread */
};

static void drain_release(struct drain_state *d) {
  if (atomic_fetch_sub(&d->refs, 1) == 1) free(d);
}

static void *drain_main(void *p) {
  struct drain_state *d = p;
  d->result = d->fn(d->arg);
  atomic_store(&d->done, true); /* seq_cst: publishes result */
  drain_release(d);
  return NULL;
}

int lifecycle_drain(int64_t grace_ms, int (*drain)(void *arg), void *arg,
                    int *drain_result) {
  if (!drain) return ERR_INVAL;
  struct drain_state *d = calloc(1, sizeof *d);
  if (!d) return ERR_NOMEM;
  d->fn = drain;
  d->arg = arg;
  atomic_init(&d->refs, 2);
  pthread_t t;
  if (pthread_create(&t, NULL, drain_main, d) != 0) {
    free(d);
    return ERR_IO;
  }
  pthread_detach(t);
  int64_t deadline = time_mono_ms() + (grace_ms > 0 ? grace_ms : 0);
  int rc;
  for (;;) {
    if (atomic_load(&d->done)) {
      if (drain_result) *drain_result = d->result;
      rc = ERR_OK;
      break;
    }
    int64_t left = deadline - time_mono_ms();
    if (left <= 0) {
      rc = ERR_TIMEOUT;
      break;
    }
    int sig = wait_signal(left < POLL_SLICE_MS ? left : POLL_SLICE_MS);
    if (sig > 0) {
      rc = ERR_CLOSED;
      break;
    }
  }
  drain_release(d);
  return rc;
}

/* ------------------------------------------------------------ watchdog --- */

/* Each arming gets a generation; cancelling moves it on, so a sleeping
 * watchdog of an older generation wakes up and does nothing. */
static atomic_long watchdog_gen;

typedef struct watchdog_arg {
  int64_t ms;
  long gen;
} watchdog_arg;

static void *watchdog_main(void *p) {
  watchdog_arg a = *(watchdog_arg *)p;
  free(p);
  time_sleep_ms(a.ms);
  if (atomic_load(&watchdog_gen) != a.gen) return NULL; /* cancelled */
  /* Not the logger: it may be what hangs. One write(2) of a fixed line. */
  static const char line[] =
      "{\"level\":\"warn\",\"msg\":\"shutdown cleanup hung; exiting\"}\n";
  ssize_t unused = write(STDOUT_FILENO, line, sizeof line - 1);
  (void)unused;
  _Exit(0);
  return NULL;
}

int lifecycle_exit_watchdog(int64_t ms) {
  watchdog_arg *arg = malloc(sizeof *arg);
  if (arg == NULL) return ERR_IO;
  arg->ms = ms > 0 ? ms : 0;
  arg->gen = atomic_fetch_add(&watchdog_gen, 1) + 1;
  pthread_attr_t attr;
  pthread_t t;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int rc = pthread_create(&t, &attr, watchdog_main, arg);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    free(arg);
    return ERR_IO;
  }
  return ERR_OK;
}

void lifecycle_exit_watchdog_cancel(void) {
  atomic_fetch_add(&watchdog_gen, 1);
}
