/*
 * log.h - structured logging: one JSON object per line on stdout.
 *
 * Every line has "ts" (RFC 3339 ms), "level", "svc" (set once by
 * log_init), "msg", and the calling thread's request id as "request_id"
 * when one is set (log_set_request_id). Extra fields are key/value pairs:
 *
 *   log_info("call finished", "method", m, "code", "OK");
 *
 * (the macros append the terminating NULL).
 *
 * Values are strings (escaped through jansson). Lines are written with a
 * single write(2) so lines from many threads never interleave. Lines below
 * the configured level are dropped before any formatting. Never pass
 * secrets (passwords, tokens, keys) as values: log lines are not redacted.
 *
 * Details (log.c): each value is cut to 4096 bytes; bytes that are not
 * valid UTF-8 become U+FFFD; a key equal to a standard field or to an
 * earlier key is written as "_<key>"; a NULL value is written as null and
 * ends the field list (so an odd argument count never reads past the end).
 */
#ifndef OBS_LOG_H
#define OBS_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Sets the service name and minimum level. Call once at start-up; before
 * it, the service name is "-" and the level is LOG_INFO. */
void log_init(const char *service, enum log_level min_level);

/* Parses "debug", "info", "warn", "error" (case-insensitive); returns -1
 * for anything else. */
int log_level_parse(const char *s);

/* The request id attached to this thread's log lines (copied, at most 128
 * bytes); NULL clears it. */
void log_set_request_id(const char *request_id);
const char *log_request_id(void);

/* Logs msg with NULL-terminated key/value string pairs. */
void log_msg(enum log_level level, const char *msg, ...)
    __attribute__((sentinel));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__, (char *)0)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__, (char *)0)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__, (char *)0)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__, (char *)0)

#endif
