/*
 * stats.h - what the load bots measure, per operation: how many were
 * made, how many answered 2xx, the failures by HTTP status (0: no answer
 * at all), and every latency, from which the report takes percentiles.
 * Latencies are kept whole (a 60 s run at a few hundred requests a
 * second is a few MB at most; the array is capped) so percentiles are
 * exact, not estimated.
 */
#ifndef TOOLS_BOTS_STATS_H
#define TOOLS_BOTS_STATS_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#define STATS_MAX_CODES 16
#define STATS_MAX_SAMPLES (1u << 22)

typedef struct stats_op {
  const char *name;
  long count, ok;
  long codes[STATS_MAX_CODES], code_n[STATS_MAX_CODES]; /* failures */
  int ncodes;
  long other_failures; /* beyond STATS_MAX_CODES distinct codes */
  double *ms;
  size_t nms, cap;
} stats_op;

/* Records one finished request: its status (0: no answer), whether it
 * counts as success, its latency. */
void stats_add(stats_op *s, long status, int ok, double ms);

long stats_failures(const stats_op *s);

/* The q-quantile (0..1) of the latencies, nearest rank; 0 when none.
 * Sorts the samples in place. */
double stats_quantile(stats_op *s, double q);

/* {"count","ok","failed","failures":{"<status>":n},"latency_ms":{"p50",
 * "p90","p99","max"}} */
json_t *stats_json(stats_op *s);

/* One table row: name, count, ok, failed, p50, p90, p99, max, failures. */
void stats_row(FILE *f, stats_op *s);
void stats_header(FILE *f);

void stats_free(stats_op *s);

#endif
