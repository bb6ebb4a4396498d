/*
 * tool.h - runs one of tools/ as a user would, through /bin/sh, and
 * keeps what it printed on stdout (stderr goes to the test's own).
 */
#ifndef TESTS_CLIENTS_TOOL_H
#define TESTS_CLIENTS_TOOL_H

#include <stddef.h>

/* Runs the command built from fmt; its stdout (at most cap-1 bytes, the
 * rest read and dropped) into out. Returns its exit code, or -1 when it
 * could not run or died of a signal. */
int clients_run(char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
