/*
 * bus_internal.h - pieces shared by the files of libs/bus, not part of the
 * public API (visible to this package and its tests only).
 *
 * Metrics families are created once per process (pthread_once) and
 * children are looked up once per source, when the tracker or publisher
 * first meets it, so hot paths only do atomic increments.
 */
#ifndef BUS_INTERNAL_H
#define BUS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "libs/bus/bus.h"
#include "libs/obs/metrics.h"

typedef struct bus_metrics {
  metrics_family *published;
  metrics_family *received;
  metrics_family *gaps;
  metrics_family *backfilled;
  metrics_family *duplicates;
  metrics_family *backfill_failures;
  metrics_child *drop_bad_frame;
  metrics_child *drop_buffer_full;
  metrics_child *drop_lost;
  metrics_child *drop_too_many_sources;
} bus_metrics;

/* The process-wide families (never NULL; members may be NULL if the
 * registry refused them, and metrics updates are NULL-safe). */
const bus_metrics *bus_metrics_get(void);

/* The child of a {source}-labelled family. */
metrics_child *bus_metrics_source(metrics_family *f, const char *source);

/* True when s is 1..max printable ASCII bytes. */
bool bus_name_ok(const char *s, size_t max);

/* Size of the frame for a valid ev: topic, NUL, packed event. */
size_t bus_frame_size(const Rpc__V1__Event *ev);

/* Writes the frame of a valid ev into dst (bus_frame_size bytes). */
void bus_frame_write(const Rpc__V1__Event *ev, uint8_t *dst);

/* A deep copy of ev owned by the caller (rpc__v1__event__free_unpacked).
 * ERR_NOMEM. */
int bus_event_copy(const Rpc__V1__Event *ev, Rpc__V1__Event **out) WARN_UNUSED;

/* Counts a message that did not decode in t's statistics and metrics
 * (the subscriber shares its tracker's counters). Receive thread only. */
void bus_tracker_count_bad_frame(bus_tracker *t);

#endif
