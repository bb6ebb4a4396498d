/*
 * cfgdoc.c - configuration tables as tab-separated lines (see cfgdoc.h).
 */
#include "libs/svc/cfgdoc.h"

#include <string.h>

static const char *kind_name(enum cfg_kind k) {
  switch (k) {
  case CFG_STRING:
    return "string";
  case CFG_INT:
    return "int";
  case CFG_DURATION_MS:
    return "duration";
  case CFG_BOOL:
    return "bool";
  case CFG_URL:
    return "url";
  }
  return "unknown";
}

/* s with tabs and line breaks as spaces, so one entry stays one line. */
static void put_field(FILE *out, const char *s) {
  for (; *s; s++) fputc(*s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s, out);
}

void cfgdoc_print_header(FILE *out) {
  fputs("# origin\tname\tkind\tdefault\tflags\tmin\tmax\tdescription\n", out);
}

int cfgdoc_print(FILE *out, const char *origin, const cfg_entry *entries,
                 size_t n) {
  for (size_t i = 0; i < n; i++) {
    const cfg_entry *e = &entries[i];
    put_field(out, origin);
    fputc('\t', out);
    put_field(out, e->name ? e->name : "");
    fprintf(out, "\t%s\t", kind_name(e->kind));
    if (e->required || e->def == NULL)
      fputs("-", out);
    else if (e->def[0] == '\0')
      fputs("\"\"", out);
    else
      put_field(out, e->def);
    fputc('\t', out);
    if (e->required && e->secret)
      fputs("required,secret", out);
    else if (e->required)
      fputs("required", out);
    else if (e->secret)
      fputs("secret", out);
    else
      fputs("-", out);
    if (e->min == 0 && e->max == 0)
      fputs("\t-\t-\t", out);
    else
      fprintf(out, "\t%lld\t%lld\t", e->min, e->max);
    put_field(out, e->description ? e->description : "");
    fputc('\n', out);
  }
  return ferror(out) ? -1 : 0;
}

int cfgdoc_requested(int argc, char *const argv[]) {
  return argc == 2 && argv != NULL && argv[1] != NULL &&
         strcmp(argv[1], "--print-config") == 0;
}
