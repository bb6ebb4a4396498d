/*
 * stats.c - see stats.h.
 */
#include "tools/bots/stats.h"

#include <math.h>
#include <stdlib.h>

void stats_add(stats_op *s, long status, int ok, double ms) {
  s->count++;
  if (ok) {
    s->ok++;
  } else {
    int i = 0;
    while (i < s->ncodes && s->codes[i] != status) i++;
    if (i == s->ncodes && s->ncodes < STATS_MAX_CODES)
      s->codes[s->ncodes++] = status;
    if (i < s->ncodes)
      s->code_n[i]++;
    else
      s->other_failures++;
  }
  if (s->nms == s->cap && s->cap < STATS_MAX_SAMPLES) {
    size_t nc = s->cap ? s->cap * 2 : 1024;
    double *n = realloc(s->ms, nc * sizeof *n);
    if (n == NULL) return;
    s->ms = n;
    s->cap = nc;
  }
  if (s->nms < s->cap) s->ms[s->nms++] = ms;
}

long stats_failures(const stats_op *s) { return s->count - s->ok; }

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double stats_quantile(stats_op *s, double q) {
  if (s->nms == 0) return 0;
  qsort(s->ms, s->nms, sizeof *s->ms, cmp);
  size_t rank = (size_t)ceil(q * (double)s->nms);
  if (rank == 0) rank = 1;
  return s->ms[rank - 1];
}

json_t *stats_json(stats_op *s) {
  json_t *f = json_object();
  for (int i = 0; i < s->ncodes; i++) {
    char k[24];
    snprintf(k, sizeof k, "%ld", s->codes[i]);
    json_object_set_new(f, k, json_integer(s->code_n[i]));
  }
  if (s->other_failures)
    json_object_set_new(f, "other", json_integer(s->other_failures));
  return json_pack("{sIsIsIsos{sfsfsfsf}}", "count", (json_int_t)s->count, "ok",
                   (json_int_t)s->ok, "failed", (json_int_t)stats_failures(s),
                   "failures", f, "latency_ms", "p50", stats_quantile(s, 0.50),
                   "p90", stats_quantile(s, 0.90), "p99",
                   stats_quantile(s, 0.99), "max", stats_quantile(s, 1.0));
}

void stats_header(FILE *f) {
  fprintf(f, "%-14s %7s %7s %6s %8s %8s %8s %8s  %s\n", "OPERATION", "COUNT",
          "OK", "FAILED", "P50_MS", "P90_MS", "P99_MS", "MAX_MS",
          "FAILURES BY STATUS");
}

void stats_row(FILE *f, stats_op *s) {
  fprintf(f, "%-14s %7ld %7ld %6ld %8.1f %8.1f %8.1f %8.1f ", s->name, s->count,
          s->ok, stats_failures(s), stats_quantile(s, 0.5),
          stats_quantile(s, 0.9), stats_quantile(s, 0.99),
          stats_quantile(s, 1.0));
  for (int i = 0; i < s->ncodes; i++)
    fprintf(f, " %ld:%ld", s->codes[i], s->code_n[i]);
  if (s->other_failures) fprintf(f, " other:%ld", s->other_failures);
  if (s->ncodes == 0 && !s->other_failures) fputs(" -", f);
  fputc('\n', f);
}

void stats_free(stats_op *s) {
  free(s->ms);
  s->ms = NULL;
  s->nms = s->cap = 0;
}
