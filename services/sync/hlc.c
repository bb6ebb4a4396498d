/*
 * hlc.c - see hlc.h. Pure functions, unit-tested in sync_test.c.
 */
#include "services/sync/hlc.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"

#define WALL_LEN 24 /* "2026-12-06T10:00:00.000Z" */

static bool node_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > HLC_NODE_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '-'))
      return false;
  }
  return true;
}

int hlc_parse(const char *s, hlc *out) {
  memset(out, 0, sizeof *out);
  if (s == NULL) return ERR_INVAL;
  size_t len = strlen(s);
  if (len <= 64 && time_parse_rfc3339(s, len, &out->wall_ms) == ERR_OK)
    return ERR_OK; /* a plain time */
  /* "<24-byte wall>-<4 hex>-<node>" */
  if (len < WALL_LEN + 7 || s[WALL_LEN] != '-' || s[WALL_LEN + 5] != '-')
    return ERR_INVAL;
  if (time_parse_rfc3339(s, WALL_LEN, &out->wall_ms) != ERR_OK)
    return ERR_INVAL;
  uint32_t c = 0;
  for (size_t i = 0; i < 4; i++) {
    int v = str_hex_digit(s[WALL_LEN + 1 + i]);
    if (v < 0) return ERR_INVAL;
    c = c * 16 + (uint32_t)v;
  }
  out->counter = c;
  const char *node = s + WALL_LEN + 6;
  if (!node_ok(node)) return ERR_INVAL;
  str_copy(out->node, node, sizeof out->node);
  return ERR_OK;
}

int hlc_compare(const hlc *a, const hlc *b) {
  if (a->wall_ms != b->wall_ms) return a->wall_ms < b->wall_ms ? -1 : 1;
  if (a->counter != b->counter) return a->counter < b->counter ? -1 : 1;
  int c = strcmp(a->node, b->node);
  return c < 0 ? -1 : c > 0;
}

int hlc_format(const hlc *h, char out[HLC_TEXT_MAX + 1]) {
  char wall[RFC3339_MS_LEN + 1];
  if (time_format_rfc3339(h->wall_ms, wall) != ERR_OK || h->counter > 0xffff)
    return ERR_INVAL;
  snprintf(out, HLC_TEXT_MAX + 1, "%s-%04x-%s", wall, (unsigned)h->counter,
           h->node);
  return ERR_OK;
}
