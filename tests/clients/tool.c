/*
 * tool.c - see tool.h.
 */
#include "tests/clients/tool.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/wait.h>

int clients_run(char *out, size_t cap, const char *fmt, ...) {
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  if (n < 0 || n >= (int)sizeof cmd) return -1;
  fprintf(stderr, "$ %s\n", cmd);
  FILE *f = popen(cmd, "r");
  if (f == NULL) return -1;
  size_t used = 0, k;
  char sink[4096];
  while ((k = fread(used + 1 < cap ? out + used : sink, 1,
                    used + 1 < cap ? cap - 1 - used : sizeof sink, f)) > 0)
    if (used + 1 < cap) used += k;
  out[used] = '\0';
  fprintf(stderr, "%s", out);
  int st = pclose(f);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
