/*
 * http.h - syncd's calls to the gateway over libcurl: JSON in, JSON out.
 */
#ifndef CLIENTS_SYNCD_HTTP_H
#define CLIENTS_SYNCD_HTTP_H

#include <jansson.h>
#include <stdint.h>

typedef struct http_target {
  const char *base_url; /* "http://host:port" */
  const char *tenant;   /* the tenant's slug, sent as X-Tenant */
  const char *token;    /* bearer token, NULL: none */
  long timeout_ms;
} http_target;

/* method path with body (may be NULL). Returns the HTTP status, 0 when
 * the server could not be reached (the network is gone); *out (when not
 * NULL) gets the parsed answer or NULL. Answers are capped at 8 MiB. */
long http_json(const http_target *t, const char *method, const char *path,
               const json_t *body, json_t **out);

/* PUT path with the size bytes of the open file fd (from its current
 * offset) as a raw application/octet-stream body, streamed through
 * libcurl's read callback (never whole in memory); max_bps > 0 caps the
 * send rate. Returns like http_json; *out gets the parsed answer. */
long http_put_file(const http_target *t, const char *path, int fd, int64_t size,
                   int64_t max_bps, json_t **out);

#endif
