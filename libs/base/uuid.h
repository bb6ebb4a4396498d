/*
 * uuid.h - UUIDv7 (RFC 9562) generation, parsing and formatting.
 *
 * Every id in the system is a UUIDv7: 48 bits of Unix milliseconds, then
 * random bits, so ids sort by creation time (good B-tree locality, and
 * clients can mint them offline). Within one process every id is greater
 * than the one made before it, as bytes and as canonical strings (RFC 9562
 * section 6.2, method 1: "fixed bit-length dedicated counter"):
 *   - the 12-bit rand_a field is a counter, seeded randomly each new
 *     millisecond in its lower half (0..2047), so at least 2048 ids fit in
 *     one millisecond before anything else happens;
 *   - another id in the same millisecond increments it;
 *   - when it overflows, the timestamp is borrowed one millisecond forward
 *     (the counter restarts at 0), so ids never repeat or go back;
 *   - a clock that steps backwards does not move the ids back: the last
 *     timestamp is kept and the counter goes on from it until the clock
 *     passes it again.
 * All of it is one mutex-protected (last_ms, counter) pair: thread-safe.
 * The 62 bits of rand_b stay random. Randomness comes from libsodium's
 * randombytes.
 */
#ifndef BASE_UUID_H
#define BASE_UUID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"

#define UUID_LEN 16     /* bytes */
#define UUID_STR_LEN 36 /* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" */

typedef struct uuid {
  uint8_t b[UUID_LEN];
} uuid;

/* Makes a new UUIDv7. Thread-safe. Requires sodium_init() to have run
 * (uuid_v7 calls it if needed). */
void uuid_v7(uuid *out);

/* uuid_v7 with the clock reading given: uuid_v7 is
 * uuid_v7_at(time_now_ms(), out). now_ms goes through the same monotonic
 * state, so an id is still greater than every earlier one even when now_ms
 * is older than the last (what a clock stepping back looks like). For
 * callers that already read the clock, and for tests of the rules above. */
void uuid_v7_at(int64_t now_ms, uuid *out);

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

/* Makes a new UUIDv7 and formats it into out (UUID_STR_LEN + 1 bytes).
 * Returns its Unix milliseconds (uuid_v7_time_ms): the created_at of a row
 * keyed by the id, so that ordering by id and by created_at agree. */
int64_t uuid_v7_str(char out[UUID_STR_LEN + 1]);

/* The Unix milliseconds encoded in a UUIDv7. */
int64_t uuid_v7_time_ms(const uuid *u);

#endif
