/*
 * cursor.h - the opaque cursor of a newest-first list of UUIDv7 rows
 * (ListOrders, ListDeliveries).
 *
 * Ids are UUIDv7, minted by the service in increasing order, so
 * "newest first" is ORDER BY id DESC and a page continues after the last
 * id it showed (keyset pagination: WHERE id < $cursor). An order created
 * while a client pages has a larger id than any it has seen, so it never
 * shifts the pages that follow (stable under inserts), and no OFFSET
 * scan grows with the page number. The cursor is the last id's 16 bytes
 * in unpadded base64url (22 characters): opaque to clients, and nothing
 * but an id can be smuggled through it.
 */
#ifndef BASE_CURSOR_H
#define BASE_CURSOR_H

#include <stddef.h>

#include "libs/base/err.h"
#include "libs/base/uuid.h"

#define CURSOR_LEN 22 /* characters, without the NUL */

/* Encodes the canonical UUID string id as a cursor into out (at least
 * CURSOR_LEN + 1 bytes). ERR_INVAL when id is not a UUID. */
int cursor_encode(const char *id, char out[CURSOR_LEN + 1]) WARN_UNUSED;

/* Decodes a cursor into the canonical lower-case UUID string id_out.
 * ERR_INVAL for anything that is not exactly a cursor this service made
 * (wrong length, alphabet, padding, trailing bits). */
int cursor_decode(const char *cursor,
                  char id_out[UUID_STR_LEN + 1]) WARN_UNUSED;

#endif
