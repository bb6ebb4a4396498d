/*
 * clock.h - the pure parts of a mutation's metadata: the hybrid logical
 * clock (HLC), the canonical JSON of args and its hash, and the reconnect
 * backoff. No I/O, so syncd_test.c checks them directly.
 */
#ifndef CLIENTS_SYNCD_CLOCK_H
#define CLIENTS_SYNCD_CLOCK_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* A hybrid logical clock (Kulkarni et al.): wall is the largest physical
 * time seen (ms), counter orders events within one wall value. It never
 * goes backwards, even when the machine's clock does. */
typedef struct hlc {
  int64_t wall;
  int64_t counter;
} hlc;

/* A local event at physical time now_ms: advances c. */
void hlc_tick(hlc *c, int64_t now_ms);
/* A remote time seen (the server's clock) at now_ms: advances c past it. */
void hlc_recv(hlc *c, int64_t remote_ms, int64_t now_ms);
/* "<wall ms, 13 digits>-<counter, 5 digits>": sorts as the clock does. */
void hlc_format(const hlc *c, char out[32]);

/* The canonical JSON of v (keys sorted, no spaces: what the server
 * hashes) into a malloc'd string; NULL on failure. */
char *canon_json(const json_t *v);
/* Hex SHA-256 of text into out[65]. */
void canon_hash(const char *text, char out[65]);

/* The delay before reconnect attempt `failures` (1, 2, ...): "full
 * jitter" exponential backoff, uniform in [base/2, min(cap, base *
 * 2^(failures-1))], so a kitchen full of devices returning at once does
 * not arrive in step. rnd(n) returns a uniform value in [0, n). */
int64_t backoff_ms(int failures, int64_t base_ms, int64_t cap_ms,
                   uint32_t (*rnd)(uint32_t));

#endif
