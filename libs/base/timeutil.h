/*
 * timeutil.h - clocks and RFC 3339 timestamps.
 *
 * Wall-clock time is Unix milliseconds in an int64_t everywhere (the same
 * unit the events and the database use); durations and deadlines use the
 * monotonic clock so that a clock step never fires or postpones a timeout.
 * Timestamps on the wire are RFC 3339 UTC with exactly three fractional
 * digits: "2026-11-22T10:00:00.123Z" (HTTP-API.md).
 */
#ifndef BASE_TIMEUTIL_H
#define BASE_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"

#define RFC3339_MS_LEN 24 /* "2026-11-22T10:00:00.123Z" */

/* Unix time in milliseconds (CLOCK_REALTIME). */
int64_t time_now_ms(void);

/* Monotonic time in nanoseconds / milliseconds since an arbitrary origin. */
int64_t time_mono_ns(void);
int64_t time_mono_ms(void);

/* Sleeps for at least ms milliseconds (returns at once for ms <= 0),
 * resuming when a signal handler interrupts the sleep. The one sleep of
 * the code base: back-offs, test hooks and the polling loops of tests. */
void time_sleep_ms(int64_t ms);

/* Formats Unix milliseconds as RFC 3339 UTC with milliseconds and a NUL.
 * out must hold RFC3339_MS_LEN + 1 bytes. Returns ERR_INVAL for times
 * outside years 0000-9999. */
int time_format_rfc3339(int64_t unix_ms,
                        char out[RFC3339_MS_LEN + 1]) WARN_UNUSED;

/* Parses an RFC 3339 date-time ("2026-11-22T10:00:00Z",
 * "...T10:00:00.5+02:00", lower-case t/z allowed) into Unix milliseconds.
 * Fractions beyond milliseconds are truncated. Returns ERR_INVAL for
 * anything that is not a complete, valid RFC 3339 date-time. */
int time_parse_rfc3339(const char *s, size_t len, int64_t *unix_ms) WARN_UNUSED;

#endif
