/*
 * outbox_internal.h - the pure parts of libs/outbox, exposed for its unit
 * test only (//libs/outbox:outbox_internal has private visibility).
 */
#ifndef OUTBOX_OUTBOX_INTERNAL_H
#define OUTBOX_OUTBOX_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "libs/outbox/outbox.h"

#define OUTBOX_SCHEMA_MAX 63 /* PostgreSQL's identifier length */
#define OUTBOX_SOURCE_MAX 64 /* libs/bus's BUS_MAX_SOURCE_LEN */

/* True when s is [a-z_][a-z0-9_]*, 1..OUTBOX_SCHEMA_MAX bytes: safe to
 * put between double quotes in SQL text. */
bool outbox_schema_ok(const char *s);

/* True when s is 1..OUTBOX_SOURCE_MAX bytes of [a-z0-9_.-]. */
bool outbox_source_ok(const char *s);

/* Checks an event before it is written: ERR_INVAL (missing, too long or
 * non-printable topic or type, malformed tenant_id, NULL payload with a
 * length), ERR_TOOBIG (payload over OUTBOX_PAYLOAD_MAX), ERR_OK. */
int outbox_event_check(const outbox_event *ev) WARN_UNUSED;

/* Writes tmpl into out (cap bytes) with every "{o}" replaced by
 * "<schema>".outbox. ERR_INVAL for a bad schema, ERR_TOOBIG. */
int outbox_sql(const char *tmpl, const char *schema, char *out,
               size_t cap) WARN_UNUSED;

#endif
