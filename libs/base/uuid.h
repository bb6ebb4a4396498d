/*
 * uuid.h - UUIDv7 (RFC 9562) generation, parsing and formatting.
 *
 * Every id in the system is a UUIDv7: 48 bits of Unix milliseconds, then
 * random bits, so ids sort by creation time (good B-tree locality, and
 * clients can mint them offline). Within one process, ids made in the same
 * millisecond stay strictly increasing: the 12-bit rand_a field is used as a
 * counter seeded randomly each millisecond (RFC 9562 section 6.2, method 1),
 * and the timestamp is borrowed forward if the counter overflows.
 * Randomness comes from libsodium's randombytes.
 */
#ifndef BASE_UUID_H
#define BASE_UUID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"

#define UUID_LEN 16      /* bytes */
#define UUID_STR_LEN 36  /* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" */

typedef struct uuid {
  uint8_t b[UUID_LEN];
} uuid;

/* Makes a new UUIDv7. Thread-safe. Requires sodium_init() to have run
 * (uuid_v7 calls it if needed). */
void uuid_v7(uuid *out);

/* Writes the canonical lower-case form and a NUL into out, which must hold
 * UUID_STR_LEN + 1 bytes. */
void uuid_format(const uuid *u, char out[UUID_STR_LEN + 1]);

/* Parses the canonical 36-character form (either case). Returns ERR_INVAL for
 * anything else, including a wrong length, braces or "urn:uuid:". */
int uuid_parse(const char *s, size_t len, uuid *out) WARN_UNUSED;

/* Convenience: true when s (NUL-terminated) is a canonical UUID string. */
bool uuid_is_valid(const char *s);

/* Copies the UUID s (either case, NUL-terminated) into out (UUID_STR_LEN
 * + 1 bytes) in canonical lower case, the one spelling ids are compared,
 * logged and used as keys in. Returns ERR_OK, or ERR_INVAL for NULL or
 * anything uuid_parse refuses; out is then "". */
int uuid_canonical(const char *s, char out[UUID_STR_LEN + 1]);

/* Makes a new UUIDv7 and formats it into out (UUID_STR_LEN + 1 bytes). */
void uuid_v7_str(char out[UUID_STR_LEN + 1]);

/* The Unix milliseconds encoded in a UUIDv7. */
int64_t uuid_v7_time_ms(const uuid *u);

#endif
