/*
 * workq.h - a fixed pool of worker threads with a bounded queue.
 *
 * The HTTP engine's threads must never block, and a backend call does, so
 * every request that needs a backend is handed to this pool. The queue is
 * bounded: when it is full the gateway answers 503 at once instead of
 * holding requests in unbounded memory (back-pressure stays visible).
 */
#ifndef GATEWAY_WORKQ_H
#define GATEWAY_WORKQ_H

#include <stddef.h>

#include "libs/base/err.h"

typedef struct workq workq;

typedef void (*workq_fn)(void *arg);

/* Starts `threads` workers (1..1024) and a queue of `depth` jobs
 * (1..1000000). Errors: ERR_INVAL, ERR_NOMEM, ERR_INTERNAL (thread). *out
 * is the caller's (workq_free). */
int workq_new(int threads, size_t depth, workq **out) WARN_UNUSED;

/* Queues fn(arg) to run on a worker. Thread-safe. Errors: ERR_TOOBIG (the
 * queue is full), ERR_CLOSED (workq_close was called); fn is then not run
 * and arg stays the caller's. */
int workq_submit(workq *q, workq_fn fn, void *arg) WARN_UNUSED;

/* Stops accepting jobs (workq_submit answers ERR_CLOSED from now on),
 * lets the queued and running ones finish and joins the workers.
 * Idempotent. Must not be called from a job. */
void workq_close(workq *q);

/* workq_close, then frees q. NULL-safe. */
void workq_free(workq *q);

#endif
