/*
 * watch.h - inotify on the watched folder, so `syncd run` starts a round
 * as soon as a file lands there instead of at the next poll. The poll's
 * rescan stays the fallback (and finds what changed while syncd was not
 * running): a lost or overflowed event only delays a file.
 */
#ifndef CLIENTS_SYNCD_WATCH_H
#define CLIENTS_SYNCD_WATCH_H

#include <stdbool.h>

/* A non-blocking inotify descriptor on dir (files written, moved in or
 * out, removed); -1 when inotify is unavailable. */
int watch_open(const char *dir);

/* Drains fd's events; true when there was any. fd -1: false. */
bool watch_changed(int fd);

void watch_close(int fd);

#endif
