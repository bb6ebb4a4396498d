/*
 * metrics.c - the process-wide metrics registry (see metrics.h).
 *
 * Design. The registry is a growable array of family pointers behind one
 * mutex; it is touched only when a family is created and when the registry
 * is rendered, both rare. Each family keeps its children in a small
 * chained hash table behind the family's own mutex, so creating a child
 * (first use of a label tuple) is thread-safe without a global lock.
 * Children are allocated one by one and never freed or moved, which is what
 * lets callers keep a child pointer forever and update it without locks.
 *
 * Values are C11 atomics. A double cannot be atomically added to directly,
 * so counters, gauges and histogram sums keep the IEEE-754 bits in an
 * _Atomic uint64_t and add through a compare-and-swap loop; setting a gauge
 * is a plain atomic store of the bits. Histograms keep one non-cumulative
 * atomic counter per bucket (the last one is +Inf); rendering adds them up,
 * and derives _count from the same numbers so that _count always equals
 * the +Inf bucket in one scrape even while observations race with it.
 *
 * Output is deterministic: families sorted by name, children by their label
 * values (byte-wise, label by label), the overflow child last.
 */
#include "libs/obs/metrics.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libs/base/strbuf.h"
#include "libs/base/timeutil.h"

#define HASH_SLOTS 256
#define MAX_BUCKETS 64
#define MAX_NAME_LEN 200
#define MAX_HELP_LEN 1024
#define MAX_VALUE_LEN 256 /* label values are truncated past this */
#define OVERFLOW_VALUE "_overflow"

enum kind { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM };

struct metrics_child {
  struct metrics_family *family;
  struct metrics_child *next; /* hash chain */
  char *values[METRICS_MAX_LABELS];
  _Atomic uint64_t bits;     /* counter/gauge value, double bits */
  _Atomic uint64_t sum_bits; /* histogram sum, double bits */
  _Atomic uint64_t *buckets; /* histogram: nbuckets + 1 (the +Inf) */
};

struct metrics_family {
  char *name;
  char *help;
  enum kind kind;
  size_t nlabels;
  char *labels[METRICS_MAX_LABELS];
  double *bounds; /* histogram upper bounds, without +Inf */
  size_t nbounds;
  pthread_mutex_t mu; /* guards the hash table and nchildren */
  struct metrics_child *slots[HASH_SLOTS];
  size_t nchildren;
  struct metrics_child *overflow;
  atomic_bool overflow_used;
};

const double metrics_default_buckets[] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10,
};
const size_t metrics_default_nbuckets =
    sizeof metrics_default_buckets / sizeof metrics_default_buckets[0];

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_family **reg_families;
static size_t reg_n, reg_cap;
static atomic_bool process_registered;

/* ---- small helpers ---- */

static uint64_t dbits(double d) {
  uint64_t u;
  memcpy(&u, &d, sizeof u);
  return u;
}

static double bitsd(uint64_t u) {
  double d;
  memcpy(&d, &u, sizeof d);
  return d;
}

static void atomic_add_double(_Atomic uint64_t *p, double v) {
  uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
  while (!atomic_compare_exchange_weak_explicit(p, &old, dbits(bitsd(old) + v),
                                                memory_order_relaxed,
                                                memory_order_relaxed)) {
  }
}

static char *dup_bounded(const char *s, size_t max) {
  size_t n = strnlen(s, max);
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

static bool valid_metric_name(const char *s) {
  if (!s || !*s || strlen(s) > MAX_NAME_LEN) return false;
  for (size_t i = 0; s[i]; i++) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              c == ':' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

/* Label names: [a-zA-Z_][a-zA-Z0-9_]*, and "__" prefixes are reserved for
 * Prometheus itself. */
static bool valid_label_name(const char *s) {
  if (!s || !*s || strlen(s) > MAX_NAME_LEN || strncmp(s, "__", 2) == 0)
    return false;
  for (size_t i = 0; s[i]; i++) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

static void child_free(struct metrics_child *c) {
  if (!c) return;
  for (size_t i = 0; i < METRICS_MAX_LABELS; i++) free(c->values[i]);
  free(c->buckets);
  free(c);
}

/* Allocates a child; values NULL means the overflow child. */
static struct metrics_child *child_new(struct metrics_family *f,
                                       const char *const *values) {
  struct metrics_child *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->family = f;
  for (size_t i = 0; i < f->nlabels; i++) {
    const char *v = values ? (values[i] ? values[i] : "") : OVERFLOW_VALUE;
    c->values[i] = dup_bounded(v, MAX_VALUE_LEN);
    if (!c->values[i]) goto err;
  }
  if (f->kind == KIND_HISTOGRAM) {
    c->buckets = calloc(f->nbounds + 1, sizeof *c->buckets);
    if (!c->buckets) goto err;
  }
  return c;
err:
  child_free(c);
  return NULL;
}

static void family_free(struct metrics_family *f) {
  if (!f) return;
  free(f->name);
  free(f->help);
  for (size_t i = 0; i < METRICS_MAX_LABELS; i++) free(f->labels[i]);
  free(f->bounds);
  child_free(f->overflow);
  for (size_t i = 0; i < HASH_SLOTS; i++) {
    struct metrics_child *c = f->slots[i], *n;
    for (; c; c = n) {
      n = c->next;
      child_free(c);
    }
  }
  pthread_mutex_destroy(&f->mu);
  free(f);
}

/* FNV-1a over the values, with a separator so ("ab","c") != ("a","bc"). */
static size_t hash_values(const char *const *values, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) {
    const char *v = values[i] ? values[i] : "";
    for (size_t k = 0; v[k] && k < MAX_VALUE_LEN; k++) {
      h ^= (unsigned char)v[k];
      h *= 1099511628211ULL;
    }
    h ^= 0xff;
    h *= 1099511628211ULL;
  }
  return (size_t)(h % HASH_SLOTS);
}

static bool values_equal(const struct metrics_child *c,
                         const char *const *values, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const char *v = values[i] ? values[i] : "";
    if (strncmp(c->values[i], v, MAX_VALUE_LEN) != 0) return false;
  }
  return true;
}

static struct metrics_family *find_locked(const char *name) {
  for (size_t i = 0; i < reg_n; i++)
    if (strcmp(reg_families[i]->name, name) == 0) return reg_families[i];
  return NULL;
}

static bool same_labels(const struct metrics_family *f, size_t nlabels,
                        const char *const *label_names) {
  if (f->nlabels != nlabels) return false;
  for (size_t i = 0; i < nlabels; i++)
    if (strcmp(f->labels[i], label_names[i]) != 0) return false;
  return true;
}

static metrics_family *family_create(enum kind kind, const char *name,
                                     const char *help, size_t nlabels,
                                     const char *const *label_names,
                                     const double *buckets, size_t nbuckets) {
  if (!valid_metric_name(name) || nlabels > METRICS_MAX_LABELS ||
      (nlabels > 0 && !label_names))
    return NULL;
  for (size_t i = 0; i < nlabels; i++) {
    if (!valid_label_name(label_names[i])) return NULL;
    if (kind == KIND_HISTOGRAM && strcmp(label_names[i], "le") == 0)
      return NULL;
    for (size_t j = 0; j < i; j++)
      if (strcmp(label_names[i], label_names[j]) == 0) return NULL;
  }
  if (kind == KIND_HISTOGRAM) {
    if (!buckets) {
      buckets = metrics_default_buckets;
      nbuckets = metrics_default_nbuckets;
    }
    /* An explicit trailing +Inf is accepted and dropped (it is implicit). */
    if (nbuckets > 0 && isinf(buckets[nbuckets - 1]) &&
        buckets[nbuckets - 1] > 0)
      nbuckets--;
    if (nbuckets > MAX_BUCKETS) return NULL;
    for (size_t i = 0; i < nbuckets; i++) {
      if (!isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1]))
        return NULL;
    }
  }

  pthread_mutex_lock(&reg_mu);
  struct metrics_family *f = find_locked(name);
  if (f) {
    /* First registration wins (help and buckets included). */
    if (f->kind != kind || !same_labels(f, nlabels, label_names)) f = NULL;
    pthread_mutex_unlock(&reg_mu);
    return f;
  }
  if (reg_n == reg_cap) {
    size_t ncap = reg_cap ? reg_cap * 2 : 32;
    struct metrics_family **nf = realloc(reg_families, ncap * sizeof *nf);
    if (!nf) goto err_unlock;
    reg_families = nf;
    reg_cap = ncap;
  }
  f = calloc(1, sizeof *f);
  if (!f) goto err_unlock;
  pthread_mutex_init(&f->mu, NULL);
  f->kind = kind;
  f->nlabels = nlabels;
  f->name = dup_bounded(name, MAX_NAME_LEN);
  f->help = dup_bounded(help ? help : "", MAX_HELP_LEN);
  if (!f->name || !f->help) goto err_free;
  for (size_t i = 0; i < nlabels; i++)
    if (!(f->labels[i] = dup_bounded(label_names[i], MAX_NAME_LEN)))
      goto err_free;
  if (kind == KIND_HISTOGRAM) {
    f->nbounds = nbuckets;
    f->bounds = malloc((nbuckets ? nbuckets : 1) * sizeof *f->bounds);
    if (!f->bounds) goto err_free;
    if (nbuckets) memcpy(f->bounds, buckets, nbuckets * sizeof *f->bounds);
  }
  f->overflow = child_new(f, NULL);
  if (!f->overflow) goto err_free;
  if (nlabels == 0) {
    /* A family without labels has exactly one child, exported from the
     * start (as 0) so dashboards see the series before the first event. */
    struct metrics_child *c = child_new(f, NULL);
    if (!c) goto err_free;
    f->slots[0] = c;
    f->nchildren = 1;
  }
  reg_families[reg_n++] = f;
  pthread_mutex_unlock(&reg_mu);
  return f;
err_free:
  family_free(f);
err_unlock:
  pthread_mutex_unlock(&reg_mu);
  return NULL;
}

metrics_family *metrics_counter(const char *name, const char *help,
                                size_t nlabels,
                                const char *const *label_names) {
  return family_create(KIND_COUNTER, name, help, nlabels, label_names, NULL, 0);
}

metrics_family *metrics_gauge(const char *name, const char *help,
                              size_t nlabels, const char *const *label_names) {
  return family_create(KIND_GAUGE, name, help, nlabels, label_names, NULL, 0);
}

metrics_family *metrics_histogram(const char *name, const char *help,
                                  size_t nlabels,
                                  const char *const *label_names,
                                  const double *buckets, size_t nbuckets) {
  return family_create(KIND_HISTOGRAM, name, help, nlabels, label_names,
                       buckets, nbuckets);
}

metrics_child *metrics_child_get(metrics_family *f, const char *const *values) {
  if (!f) return NULL;
  if (f->nlabels == 0) return f->slots[0];
  if (!values) {
    atomic_store(&f->overflow_used, true);
    return f->overflow;
  }
  size_t h = hash_values(values, f->nlabels);
  pthread_mutex_lock(&f->mu);
  struct metrics_child *c = f->slots[h];
  for (; c; c = c->next)
    if (values_equal(c, values, f->nlabels)) break;
  if (!c && f->nchildren < METRICS_MAX_CHILDREN) {
    c = child_new(f, values);
    if (c) {
      c->next = f->slots[h];
      f->slots[h] = c;
      f->nchildren++;
    }
  }
  pthread_mutex_unlock(&f->mu);
  if (!c) {
    atomic_store(&f->overflow_used, true);
    c = f->overflow;
  }
  return c;
}

void metrics_inc(metrics_child *c) { metrics_add(c, 1.0); }

void metrics_add(metrics_child *c, double v) {
  if (!c || isnan(v)) return;
  if (c->family->kind == KIND_COUNTER) {
    if (v < 0) return;
  } else if (c->family->kind != KIND_GAUGE) {
    return;
  }
  atomic_add_double(&c->bits, v);
}

void metrics_set(metrics_child *c, double v) {
  if (!c || c->family->kind != KIND_GAUGE) return;
  atomic_store_explicit(&c->bits, dbits(v), memory_order_relaxed);
}

void metrics_observe(metrics_child *c, double v) {
  if (!c || c->family->kind != KIND_HISTOGRAM || isnan(v)) return;
  const struct metrics_family *f = c->family;
  /* Buckets are few (<= 64): a linear scan beats a binary search's
   * branches for the typical 10-20 latency buckets. */
  size_t i = 0;
  while (i < f->nbounds && v > f->bounds[i]) i++;
  atomic_fetch_add_explicit(&c->buckets[i], 1, memory_order_relaxed);
  atomic_add_double(&c->sum_bits, v);
}

double metrics_value(const metrics_child *c) {
  if (!c) return 0;
  if (c->family->kind == KIND_HISTOGRAM) {
    uint64_t n = 0;
    for (size_t i = 0; i <= c->family->nbounds; i++)
      n += atomic_load_explicit(&c->buckets[i], memory_order_relaxed);
    return (double)n;
  }
  return bitsd(atomic_load_explicit(&c->bits, memory_order_relaxed));
}

/* ---- rendering ---- */

/* HELP text escapes backslash and newline; label values also escape the
 * double quote (exposition format 0.0.4). */
static void buf_escaped(strbuf *b, const char *s, bool quote) {
  for (; *s; s++) {
    if (*s == '\\')
      strbuf_puts(b, "\\\\");
    else if (*s == '\n')
      strbuf_puts(b, "\\n");
    else if (quote && *s == '"')
      strbuf_puts(b, "\\\"");
    else
      strbuf_putn(b, s, 1);
  }
}

/* The shortest decimal that reads back as the same double, so 0.1 prints
 * as "0.1" and not "0.10000000000000001". */
static void fmt_double(double v, char out[40]) {
  if (isnan(v)) {
    snprintf(out, 40, "NaN");
    return;
  }
  if (isinf(v)) {
    snprintf(out, 40, v > 0 ? "+Inf" : "-Inf");
    return;
  }
  int prec = 1;
  for (; prec < 17; prec++) {
    snprintf(out, 40, "%.*g", prec, v);
    if (strtod(out, NULL) == v) break;
  }
  /* %g switches to an exponent once the exponent reaches the precision;
   * counters read better as plain integers ("800000", not "8e+05"), so
   * widen the precision for magnitudes below 1e15. */
  if (v != 0 && fabs(v) < 1e15) {
    int e = (int)floor(log10(fabs(v)));
    if (e >= prec) prec = e + 1;
  }
  snprintf(out, 40, "%.*g", prec, v);
}

static void put_labels(strbuf *b, const struct metrics_family *f,
                       const struct metrics_child *c, const char *le) {
  if (f->nlabels == 0 && !le) return;
  strbuf_puts(b, "{");
  for (size_t i = 0; i < f->nlabels; i++) {
    if (i) strbuf_puts(b, ",");
    strbuf_puts(b, f->labels[i]);
    strbuf_puts(b, "=\"");
    buf_escaped(b, c->values[i], true);
    strbuf_puts(b, "\"");
  }
  if (le) {
    if (f->nlabels) strbuf_puts(b, ",");
    strbuf_puts(b, "le=\"");
    strbuf_puts(b, le);
    strbuf_puts(b, "\"");
  }
  strbuf_puts(b, "}");
}

static void render_child(strbuf *b, const struct metrics_family *f,
                         const struct metrics_child *c) {
  char num[40];
  if (f->kind != KIND_HISTOGRAM) {
    strbuf_puts(b, f->name);
    put_labels(b, f, c, NULL);
    fmt_double(bitsd(atomic_load_explicit(&c->bits, memory_order_relaxed)),
               num);
    strbuf_printf(b, " %s\n", num);
    return;
  }
  uint64_t cum = 0;
  for (size_t i = 0; i <= f->nbounds; i++) {
    cum += atomic_load_explicit(&c->buckets[i], memory_order_relaxed);
    char le[40];
    if (i < f->nbounds)
      fmt_double(f->bounds[i], le);
    else
      snprintf(le, sizeof le, "+Inf");
    strbuf_puts(b, f->name);
    strbuf_puts(b, "_bucket");
    put_labels(b, f, c, le);
    strbuf_printf(b, " %llu\n", (unsigned long long)cum);
  }
  fmt_double(bitsd(atomic_load_explicit(&c->sum_bits, memory_order_relaxed)),
             num);
  strbuf_puts(b, f->name);
  strbuf_puts(b, "_sum");
  put_labels(b, f, c, NULL);
  strbuf_printf(b, " %s\n", num);
  strbuf_puts(b, f->name);
  strbuf_puts(b, "_count");
  put_labels(b, f, c, NULL);
  strbuf_printf(b, " %llu\n", (unsigned long long)cum);
}

static int cmp_child(const void *a, const void *b, void *arg) {
  size_t nlabels = *(const size_t *)arg;
  const struct metrics_child *x = *(const struct metrics_child *const *)a;
  const struct metrics_child *y = *(const struct metrics_child *const *)b;
  for (size_t i = 0; i < nlabels; i++) {
    int r = strcmp(x->values[i], y->values[i]);
    if (r) return r;
  }
  return 0;
}

static int cmp_family(const void *a, const void *b) {
  const struct metrics_family *x = *(const struct metrics_family *const *)a;
  const struct metrics_family *y = *(const struct metrics_family *const *)b;
  return strcmp(x->name, y->name);
}

static void render_family(strbuf *b, struct metrics_family *f) {
  static const char *const kinds[] = {"counter", "gauge", "histogram"};
  strbuf_printf(b, "# HELP %s ", f->name);
  buf_escaped(b, f->help, false);
  strbuf_printf(b, "\n# TYPE %s %s\n", f->name, kinds[f->kind]);

  pthread_mutex_lock(&f->mu);
  size_t n = f->nchildren;
  struct metrics_child **list = malloc((n ? n : 1) * sizeof *list);
  if (!list) {
    pthread_mutex_unlock(&f->mu);
    b->oom = true;
    return;
  }
  size_t k = 0;
  for (size_t i = 0; i < HASH_SLOTS; i++)
    for (struct metrics_child *c = f->slots[i]; c; c = c->next) list[k++] = c;
  pthread_mutex_unlock(&f->mu);
  /* Children are never removed, so the pointers stay valid unlocked. */
  qsort_r(list, k, sizeof *list, cmp_child, &f->nlabels);
  for (size_t i = 0; i < k; i++) render_child(b, f, list[i]);
  if (atomic_load(&f->overflow_used)) render_child(b, f, f->overflow);
  free(list);
}

static void process_collect(void);

char *metrics_render(void) {
  if (atomic_load(&process_registered)) process_collect();
  strbuf b = {0};
  strbuf_reserve(&b, 4096);
  pthread_mutex_lock(&reg_mu);
  qsort(reg_families, reg_n, sizeof *reg_families, cmp_family);
  for (size_t i = 0; i < reg_n && !b.oom; i++)
    render_family(&b, reg_families[i]);
  pthread_mutex_unlock(&reg_mu);
  if (b.oom) {
    free(b.p);
    return NULL;
  }
  return b.p;
}

char *metrics_render_family(const metrics_family *f) {
  if (!f) return NULL;
  strbuf b = {0};
  strbuf_reserve(&b, 4096);
  pthread_mutex_lock(&reg_mu);
  render_family(&b, (struct metrics_family *)f);
  pthread_mutex_unlock(&reg_mu);
  if (b.oom) {
    free(b.p);
    return NULL;
  }
  return b.p;
}

/* ---- standard process metrics ---- */

static metrics_child *proc_rss, *proc_vsz, *proc_fds;

/* Reads /proc/self/statm (pages) for the resident and virtual sizes and
 * counts /proc/self/fd; cheap enough to do on every scrape. */
static void process_collect(void) {
  FILE *fp = fopen("/proc/self/statm", "r");
  if (fp) {
    unsigned long long size = 0, resident = 0;
    if (fscanf(fp, "%llu %llu", &size, &resident) == 2) {
      long page = sysconf(_SC_PAGESIZE);
      if (page > 0) {
        metrics_set(proc_vsz, (double)size * (double)page);
        metrics_set(proc_rss, (double)resident * (double)page);
      }
    }
    fclose(fp);
  }
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
      if (e->d_name[0] != '.') n++;
    closedir(d);
    metrics_set(proc_fds, (double)(n > 0 ? n - 1 : 0)); /* minus d's own */
  }
}

/* The process start time: boot time (/proc/stat btime) plus the start
 * offset in clock ticks (/proc/self/stat field 22). Falls back to now. */
static double process_start_seconds(void) {
  double now = (double)time_now_ms() / 1000.0;
  char line[1024];
  unsigned long long btime = 0, ticks = 0;
  FILE *fp = fopen("/proc/stat", "r");
  if (!fp) return now;
  while (fgets(line, sizeof line, fp))
    if (sscanf(line, "btime %llu", &btime) == 1) break;
  fclose(fp);
  fp = fopen("/proc/self/stat", "r");
  if (!fp) return now;
  size_t n = fread(line, 1, sizeof line - 1, fp);
  fclose(fp);
  line[n] = '\0';
  /* The command name (field 2) may contain spaces and ')': skip past the
   * last ')' and count fields from field 3. */
  char *p = strrchr(line, ')');
  if (!p || btime == 0) return now;
  p++;
  for (int field = 3; field < 22 && p; field++) {
    p = strchr(p + 1, ' ');
  }
  long hz = sysconf(_SC_CLK_TCK);
  if (!p || hz <= 0 || sscanf(p, " %llu", &ticks) != 1) return now;
  return (double)btime + (double)ticks / (double)hz;
}

int metrics_register_process(void) {
  if (atomic_load(&process_registered)) return ERR_OK;
  metrics_family *start = metrics_gauge(
      "process_start_time_seconds",
      "Start time of the process since unix epoch in seconds.", 0, NULL);
  metrics_family *rss =
      metrics_gauge("process_resident_memory_bytes",
                    "Resident memory size in bytes.", 0, NULL);
  metrics_family *vsz = metrics_gauge("process_virtual_memory_bytes",
                                      "Virtual memory size in bytes.", 0, NULL);
  metrics_family *fds = metrics_gauge(
      "process_open_fds", "Number of open file descriptors.", 0, NULL);
  if (!start || !rss || !vsz || !fds) return ERR_NOMEM;
  metrics_set(metrics_child_get(start, NULL), process_start_seconds());
  proc_rss = metrics_child_get(rss, NULL);
  proc_vsz = metrics_child_get(vsz, NULL);
  proc_fds = metrics_child_get(fds, NULL);
  atomic_store(&process_registered, true);
  return ERR_OK;
}
