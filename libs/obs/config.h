/*
 * config.h - service configuration from environment variables.
 *
 * A service declares its settings once, as a static table:
 *
 *   static const cfg_entry entries[] = {
 *     {.name = "ORDERS_DB_URL", .kind = CFG_URL, .required = true,
 *      .secret = false, .description = "PostgreSQL connection string"},
 *     {.name = "ORDERS_RPC_WORKERS", .kind = CFG_INT, .def = "16",
 *      .min = 1, .max = 1024, .description = "RPC worker contexts"},
 *     {.name = "ORDERS_DRAIN_TIMEOUT", .kind = CFG_DURATION_MS, .def = "20s"},
 *     {.name = "ORDERS_TOKEN_KEY", .kind = CFG_STRING, .required = true,
 *      .secret = true},
 *   };
 *
 * cfg_load reads and validates every entry at once and reports every
 * problem, each naming its variable, so a bad deployment fails at start with
 * one clear message instead of at first use. cfg_print logs the effective
 * configuration (one line per entry) with secrets shown as "***" and
 * passwords inside connection strings redacted.
 *
 * Value syntax per kind:
 *   CFG_STRING       any text
 *   CFG_INT          decimal integer (optional sign), within [min, max]
 *   CFG_DURATION_MS  non-negative integer with optional unit ms, s, m, h
 *                    ("250", "250ms", "5s", "2m", "1h"; no unit = ms),
 *                    within [min, max] milliseconds
 *   CFG_BOOL         true/false, 1/0, yes/no, on/off (case-insensitive)
 *   CFG_URL          scheme://... (scheme [a-zA-Z][a-zA-Z0-9+.-]*), or the
 *                    libpq keyword form "host=... dbname=..."
 * An empty variable counts as unset (Kubernetes often sets empty values).
 * Values are at most CFG_MAX_VALUE bytes and must not contain control
 * characters.
 */
#ifndef OBS_CONFIG_H
#define OBS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"

#define CFG_MAX_ENTRIES 128
#define CFG_MAX_VALUE 4096

enum cfg_kind {
  CFG_STRING = 0,
  CFG_INT,
  CFG_DURATION_MS,
  CFG_BOOL,
  CFG_URL,
};

typedef struct cfg_entry {
  const char *name; /* the environment variable */
  enum cfg_kind kind;
  const char *def;         /* default, in the same syntax; NULL: none */
  bool required;           /* must be set in the environment (def unused) */
  bool secret;             /* never printed: shown as "***" */
  long long min, max;      /* CFG_INT/CFG_DURATION_MS inclusive bounds;
                              both 0 means unbounded */
  const char *description; /* one line, for people reading the table */
} cfg_entry;

typedef struct cfg cfg;

/* Reads entries[0..n) from the environment, validates them, and on success
 * stores a new configuration in *out (free with cfg_free). The entries
 * array and its strings are not copied: they must outlive the cfg (static
 * tables do). Defaults are validated like environment values, so a bad
 * default is caught at the first start.
 *
 * Errors: ERR_INVAL when any value is malformed, out of range, or a
 * required variable is unset, or the table itself is bad (NULL or duplicate
 * names, n > CFG_MAX_ENTRIES); err (capacity errcap, may be NULL) then
 * holds every problem, "; "-separated, each starting with the variable's
 * name. Secret values and malformed URLs are never echoed in err.
 * ERR_NOMEM on allocation failure. *out is NULL on failure. */
int cfg_load(const cfg_entry *entries, size_t n, cfg **out, char *err,
             size_t errcap) WARN_UNUSED;

/* Frees a configuration; NULL is ignored. */
void cfg_free(cfg *c);

/* Getters by variable name. Unknown names (a programming error) give
 * NULL/0/false. The returned string is owned by c.
 *   cfg_str: the value's text for any kind (a default is returned as
 *            written); NULL when unset without default.
 *   cfg_int, cfg_duration_ms: the parsed number (0 when unset/unknown).
 *   cfg_bool: the parsed boolean (false when unset/unknown).
 *   cfg_is_set: true when the value came from the environment. */
const char *cfg_str(const cfg *c, const char *name);
long long cfg_int(const cfg *c, const char *name);
int64_t cfg_duration_ms(const cfg *c, const char *name);
bool cfg_bool(const cfg *c, const char *name);
bool cfg_is_set(const cfg *c, const char *name);

/* Logs the effective configuration at LOG_INFO, one line per entry:
 * {"msg":"config","name":..,"value":..,"source":"env"|"default"|"unset"}.
 * Secret entries show "***" when set; other values go through cfg_redact. */
void cfg_print(const cfg *c);

/* Copies in to out (capacity cap > 0, always NUL-terminated) with
 * passwords replaced by "***": the password of every URL's user-info
 * ("postgres://user:pw@host" -> "postgres://user:***@host",
 * "redis://:pw@host" -> "redis://:***@host") and the value of every
 * password=, passwd=, pwd=, sslpassword=, secret= or token= key (libpq
 * keyword form, quoted values included, and URL query parameters). When
 * unsure where a password ends it redacts too much rather than too little.
 * Returns ERR_OK, or ERR_TOOBIG when out was too small (out then holds a
 * truncated, still redacted, prefix). */
int cfg_redact(const char *in, char *out, size_t cap);

#endif
