/*
 * cfgdoc.h - a service's configuration table, printed for people and for
 * docs/CONFIG.md.
 *
 * Every service binary answers `--print-config` (svc_main does it for the
 * services on libs/svc; the gateway's main.c calls cfgdoc_print itself) by
 * writing its cfg_entry tables - nothing is read from the environment,
 * nothing is started - and exiting 0. tools/configdoc turns that output
 * into docs/CONFIG.md, and a test fails when the checked-in page differs,
 * so the page cannot drift from the tables.
 *
 * Output: one line per entry, tab-separated fields
 *   origin name kind default flags min max description
 * origin   who declares the entry ("libs/svc" for the common entries, or
 *          the service's name)
 * kind     string, int, duration, bool or url (config.h)
 * default  the default as written; "-" when there is none; "" (two double
 *          quotes) when it is the empty string
 * flags    comma-separated "required", "secret"; "-" when neither
 * min max  the bounds (milliseconds for durations); "-" "-" when unbounded
 * Tabs and newlines inside a field (none today) are printed as spaces.
 * The first line is a "#"-comment naming the fields.
 */
#ifndef SVC_CFGDOC_H
#define SVC_CFGDOC_H

#include <stdio.h>

#include "libs/obs/config.h"

/* The header line; print once before the tables. */
void cfgdoc_print_header(FILE *out);

/* Prints entries[0..n) with origin in the first field. Returns 0, or -1
 * when writing failed (ferror). */
int cfgdoc_print(FILE *out, const char *origin, const cfg_entry *entries,
                 size_t n);

/* True when argv asks for the table: exactly one argument,
 * "--print-config". */
int cfgdoc_requested(int argc, char *const argv[]);

#endif
