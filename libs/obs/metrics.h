/*
 * metrics.h - a process-wide metrics registry with Prometheus text output.
 *
 * Three kinds, as in Prometheus: counters (only go up), gauges (set or add)
 * and histograms (cumulative buckets, sum and count). A metric is a family
 * with fixed label names; each distinct tuple of label values is a child.
 * Families are created once (typically at start-up) and live until the
 * process exits; creating a family whose name already exists returns the
 * existing one when kind and labels match. Children are created on first
 * use and their pointers stay valid for the life of the process, so hot
 * paths may look a child up once and then update it lock-free (updates are
 * atomic). Label values are copied.
 *
 * Names must match [a-zA-Z_:][a-zA-Z0-9_:]*; label values are escaped on
 * output. At most METRICS_MAX_LABELS labels per family and
 * METRICS_MAX_CHILDREN children per family: past that, updates go to one
 * overflow child whose label values are all "_overflow" (bounded memory
 * even if a caller passes unbounded values). Label values longer than 256
 * bytes are truncated; a NULL value counts as "". Label names must match
 * [a-zA-Z_][a-zA-Z0-9_]*, must not start with "__", must be distinct, and
 * a histogram may not use "le".
 */
#ifndef OBS_METRICS_H
#define OBS_METRICS_H

#include <stddef.h>

#include "libs/base/err.h"

#define METRICS_MAX_LABELS 4
#define METRICS_MAX_CHILDREN 1024

typedef struct metrics_family metrics_family;
typedef struct metrics_child metrics_child;

/* Creates (or returns the existing) family. label_names is an array of
 * nlabels names (may be NULL when nlabels is 0). Returns NULL on a bad name,
 * too many labels, a clash with an existing family of another kind or
 * labels, or out of memory. buckets: strictly increasing upper bounds (the
 * +Inf bucket is implicit); NULL selects metrics_default_buckets. */
metrics_family *metrics_counter(const char *name, const char *help,
                                size_t nlabels, const char *const *label_names);
metrics_family *metrics_gauge(const char *name, const char *help,
                              size_t nlabels, const char *const *label_names);
metrics_family *metrics_histogram(const char *name, const char *help,
                                  size_t nlabels,
                                  const char *const *label_names,
                                  const double *buckets, size_t nbuckets);

/* Latency buckets in seconds, 100 us .. 10 s. */
extern const double metrics_default_buckets[];
extern const size_t metrics_default_nbuckets;

/* The child for these label values (nlabels of them, as the family was
 * created with). Never NULL for a non-NULL family: on overflow or out of
 * memory it returns the family's overflow child. values may be NULL for a
 * family without labels; for a family with labels, NULL values select the
 * overflow child. Takes the family's lock: look children up once, not per
 * update, on hot paths. */
metrics_child *metrics_child_get(metrics_family *f, const char *const *values);

/* Updates. counter: metrics_inc/metrics_add (v >= 0). gauge: metrics_set,
 * metrics_add (v may be negative), metrics_inc. histogram: metrics_observe.
 * Calling an update that does not fit the kind is a no-op. NULL-safe. */
void metrics_inc(metrics_child *c);
void metrics_add(metrics_child *c, double v);
void metrics_set(metrics_child *c, double v);
void metrics_observe(metrics_child *c, double v);

/* Renders every family in the Prometheus text exposition format 0.0.4.
 * Returns a malloc'd NUL-terminated string the caller frees, or NULL on
 * out of memory. */
char *metrics_render(void);

/* Additions (not needed by most callers). */

/* The current value of a counter or gauge child, or the observation count
 * of a histogram child; 0 for NULL. Meant for tests and self-checks. */
double metrics_value(const metrics_child *c);

/* Renders one family only (same format as metrics_render). Caller frees;
 * NULL for a NULL family or out of memory. */
char *metrics_render_family(const metrics_family *f);

/* Registers the standard process gauges: process_start_time_seconds,
 * process_resident_memory_bytes, process_virtual_memory_bytes and
 * process_open_fds (the last three refreshed from /proc on every
 * metrics_render). Idempotent. Returns ERR_OK or ERR_NOMEM. */
int metrics_register_process(void);

#endif
