/*
 * cors.c - see cors.h. The list is parsed once at start-up; checking an
 * origin is a short linear scan (a handful of entries).
 */
#include "services/gateway/cors.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

struct cors {
  bool any;
  size_t n;
  char origins[CORS_MAX_ORIGINS][CORS_MAX_ORIGIN_LEN + 1];
};

static bool valid_origin(const char *s, size_t len) {
  const char *sep = NULL;
  for (size_t i = 0; i + 2 < len; i++)
    if (s[i] == ':' && s[i + 1] == '/' && s[i + 2] == '/') {
      sep = s + i;
      break;
    }
  if (sep == NULL || sep == s) return false;
  const char *host = sep + 3;
  size_t hlen = len - (size_t)(host - s);
  if (hlen == 0) return false;
  for (size_t i = 0; i < hlen; i++) {
    char c = host[i];
    if (!(isalnum((unsigned char)c) || c == '.' || c == '-' || c == ':' ||
          c == '[' || c == ']'))
      return false;
  }
  return true;
}

int cors_new(const char *origins, cors **out) {
  *out = NULL;
  cors *c = calloc(1, sizeof *c);
  if (c == NULL) return ERR_NOMEM;
  const char *p = origins ? origins : "";
  while (*p != '\0') {
    while (*p == ' ' || *p == ',') p++;
    if (*p == '\0') break;
    const char *start = p;
    while (*p != '\0' && *p != ',') p++;
    const char *end = p;
    while (end > start && end[-1] == ' ') end--;
    size_t len = (size_t)(end - start);
    if (len == 1 && start[0] == '*') {
      c->any = true;
      continue;
    }
    if (len > CORS_MAX_ORIGIN_LEN || c->n == CORS_MAX_ORIGINS ||
        !valid_origin(start, len)) {
      free(c);
      return ERR_INVAL;
    }
    for (size_t i = 0; i < len; i++)
      c->origins[c->n][i] = (char)tolower((unsigned char)start[i]);
    c->origins[c->n][len] = '\0';
    c->n++;
  }
  *out = c;
  return ERR_OK;
}

void cors_free(cors *c) { free(c); }

bool cors_allowed(const cors *c, const char *origin) {
  if (c == NULL || origin == NULL || origin[0] == '\0') return false;
  size_t len = strnlen(origin, CORS_MAX_ORIGIN_LEN + 1);
  if (len > CORS_MAX_ORIGIN_LEN || !valid_origin(origin, len)) return false;
  if (c->any) return true;
  for (size_t i = 0; i < c->n; i++) {
    if (strlen(c->origins[i]) != len) continue;
    size_t k = 0;
    while (k < len &&
           tolower((unsigned char)origin[k]) == (unsigned char)c->origins[i][k])
      k++;
    if (k == len) return true;
  }
  return false;
}
