/*
 * watch.c - see watch.h. Events are only a nudge: their contents are not
 * read (the scan compares size and mtime itself), so the buffer is just
 * drained.
 */
#include "clients/syncd/watch.h"

#include <sys/inotify.h>
#include <unistd.h>

int watch_open(const char *dir) {
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return -1;
  if (inotify_add_watch(fd, dir,
                        IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM |
                            IN_DELETE | IN_ATTRIB) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool watch_changed(int fd) {
  if (fd < 0) return false;
  char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
  bool any = false;
  while (read(fd, buf, sizeof buf) > 0) any = true;
  return any;
}

void watch_close(int fd) {
  if (fd >= 0) close(fd);
}
