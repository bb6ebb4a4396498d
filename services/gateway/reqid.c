/*
 * reqid.c - see reqid.h. A malformed client id is replaced, not refused:
 * tracing is a courtesy, and refusing a request over it would help no one.
 */
#include "services/gateway/reqid.h"

#include <string.h>

#include "libs/base/strutil.h"
#include "libs/base/uuid.h"

bool reqid_valid(const char *s) {
  if (s == NULL) return false;
  size_t n = strnlen(s, REQID_MAX + 1);
  return n > 0 && n <= REQID_MAX && str_is_printable(s, n);
}

void reqid_choose(const char *client, char out[REQID_MAX + 1]) {
  if (reqid_valid(client)) {
    (void)str_copy(out, client, REQID_MAX + 1);
    return;
  }
  uuid_v7_str(out);
}
