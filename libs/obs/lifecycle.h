/*
 * lifecycle.h - signal-driven graceful shutdown.
 *
 * Every service's main follows the same shape:
 *
 *   if (lifecycle_init() != ERR_OK) ...      // before any thread exists
 *   ... load config, open servers (their threads inherit the mask) ...
 *   int sig;
 *   (void)lifecycle_wait_for_stop(-1, &sig); // SIGTERM or SIGINT
 *   log_info("stopping", "signal", sig == SIGTERM ? "TERM" : "INT");
 *   admin_set_draining(admin);               // /readyz -> 503
 *   int rc = lifecycle_drain(grace_ms, drain_fn, state, &drain_rc);
 *   ... close what is left, exit 0 ...
 *
 * SIGTERM and SIGINT are blocked in every thread and collected
 * synchronously with sigtimedwait, so no async-signal-safety rules apply:
 * the waiting thread may log, lock and free. This only works when the
 * signals are blocked in *all* threads, hence lifecycle_init must run in
 * main before any thread is created (threads inherit the mask); a thread
 * created earlier (by a library constructor, say) would receive the signal
 * with its default action and kill the process.
 */
#ifndef OBS_LIFECYCLE_H
#define OBS_LIFECYCLE_H

#include <stdbool.h>
#include <stdint.h>

#include "libs/base/err.h"

/* Blocks SIGTERM and SIGINT in the calling thread (and so in every thread
 * it creates later) and ignores SIGPIPE process-wide (a peer closing a
 * socket must surface as EPIPE, not kill the process). Idempotent.
 * Returns ERR_OK, or ERR_IO when the signal calls fail. */
int lifecycle_init(void) WARN_UNUSED;

/* Waits for SIGTERM or SIGINT, at most timeout_ms milliseconds (negative:
 * forever). On ERR_OK *signo (may be NULL) holds the signal and
 * lifecycle_stopping() becomes true. A signal that arrived before the call
 * is not lost: it stays pending until taken here.
 * Errors: ERR_TIMEOUT when the time ran out, ERR_IO on a failed
 * sigtimedwait. Call from one thread only. */
int lifecycle_wait_for_stop(int64_t timeout_ms, int *signo) WARN_UNUSED;

/* True once lifecycle_wait_for_stop has returned a signal (or after
 * lifecycle_request_stop): long-running loops may poll it. */
bool lifecycle_stopping(void);

/* Asks the process to stop from inside (a fatal error in a worker, say):
 * sends SIGTERM to the process, so the waiter wakes exactly as for an
 * external stop. Safe from any thread. */
void lifecycle_request_stop(void);

/* Runs drain(arg) on a new thread and waits for it, at most grace_ms
 * milliseconds, or until another SIGTERM/SIGINT arrives (an operator who
 * presses Ctrl-C twice means "now"). The drain function should stop
 * accepting work, finish in-flight work and return its own ERR_* code,
 * which lands in *drain_result (may be NULL) when it finished in time.
 * Returns ERR_OK when drain returned within the grace period; ERR_TIMEOUT
 * when the grace period ran out; ERR_CLOSED on a second signal; ERR_NOMEM
 * or ERR_IO when the thread could not be started (drain not run). After
 * ERR_TIMEOUT or ERR_CLOSED the drain thread is still running, detached:
 * the caller should exit promptly rather than free what drain uses. */
int lifecycle_drain(int64_t grace_ms, int (*drain)(void *arg), void *arg,
                    int *drain_result) WARN_UNUSED;

/* Bounds what is left of shutdown once the work has drained: if the
 * process has not exited within ms, a detached thread logs a warning and
 * ends it with exit status 0 (the work was done; what hung is cleanup).
 * Why: nng 1.5.2 (Debian bookworm's) can hang forever in nng_close when a
 * message arrives on a connection at that instant (upstream issue #1543);
 * no caller can prevent that, and a process stuck there would hold its
 * pod until Kubernetes kills it. Call once, after draining, before
 * freeing; cancel it when cleanup is done (a process that goes on after
 * shutdown, like a test running a service in-process, must not be ended).
 * Errors: ERR_IO when the thread cannot start (nothing armed). */
int lifecycle_exit_watchdog(int64_t ms) WARN_UNUSED;

/* Disarms every watchdog armed so far. */
void lifecycle_exit_watchdog_cancel(void);

#endif
