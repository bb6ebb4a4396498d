/*
 * hlc.h - hybrid logical clocks as mutations carry them (`client_time`)
 * and as sync records the last write of each entity (last_write_wins).
 *
 * Text form: "<wall>-<counter>-<node>", e.g.
 *   2026-12-06T10:00:00.000Z-0003-0193a1b2-...-device-id
 * wall: RFC 3339 UTC with milliseconds (the device's physical clock,
 * never behind the largest HLC it has seen); counter: 4 hex digits, the
 * logical part that orders events within one millisecond; node: 1-64
 * bytes of [A-Za-z0-9-] naming the writer (the device id), the final
 * tie-breaker. A plain RFC 3339 time is accepted as counter 0, node "".
 * Order: wall, then counter, then node (bytes). Writes made through the
 * plain API (staff at the till) have no HLC: their clock is the order's
 * updated_at, counter 0, node "server".
 */
#ifndef SYNC_HLC_H
#define SYNC_HLC_H

#include <stdint.h>

#include "libs/base/err.h"

#define HLC_NODE_MAX 64
#define HLC_TEXT_MAX (24 + 1 + 4 + 1 + HLC_NODE_MAX) /* 94 */

typedef struct hlc {
  int64_t wall_ms;
  uint32_t counter; /* 0..0xffff */
  char node[HLC_NODE_MAX + 1];
} hlc;

/* Parses s (the text form above, or a plain RFC 3339 time). ERR_INVAL
 * for anything else. */
int hlc_parse(const char *s, hlc *out) WARN_UNUSED;

/* <0, 0, >0 as a is before, equal to, after b. */
int hlc_compare(const hlc *a, const hlc *b);

/* The canonical text of h into out[HLC_TEXT_MAX + 1]. */
int hlc_format(const hlc *h, char out[HLC_TEXT_MAX + 1]) WARN_UNUSED;

#endif
