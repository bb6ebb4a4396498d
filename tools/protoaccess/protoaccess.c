/*
 * protoaccess.c - build-time generator: the (rpc.v1.access) declarations
 * of a service's .proto become a C table (libs/svcid/access.h) and a
 * Markdown section of docs/RPC-ACCESS.md.
 *
 *   protoaccess --symbol auth_v1_access --c out.c --h out.h --md out.md
 *               DESCRIPTOR_SET FILE.proto...
 *
 * DESCRIPTOR_SET is protoc's --descriptor_set_out (with --include_imports)
 * for the FILEs; only methods of services declared in those FILEs are
 * written. protoc-c does not support extensions, so the option arrives as
 * an unknown field of MethodOptions (number 51234, length-delimited) and
 * is decoded here as an rpc.v1.Access message.
 *
 * Every method must declare its callers, and every caller must be a
 * service name or "*": a method nobody may call, or a typo in a name, fails
 * the build rather than the first request.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/descriptor.pb-c.h"
#include "libs/svcid/access.h"
#include "libs/svcid/svcid.h"
#include "proto/rpc/v1/access.pb-c.h"

#define ACCESS_FIELD 51234
#define SET_MAX (8 * 1024 * 1024)

typedef struct out_files {
  FILE *c, *h, *md;
  const char *symbol;
  int rules; /* caller arrays written so far */
  const Google__Protobuf__FileDescriptorSet *set;
  FILE *includes; /* #include lines of the message headers */
  char *seen[64]; /* headers already included */
  size_t nseen;
} out_files;

static int fail(const char *what, const char *detail) {
  fprintf(stderr, "protoaccess: %s%s%s\n", what, detail ? ": " : "",
          detail ? detail : "");
  return 1;
}

static uint8_t *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  uint8_t *buf = malloc(SET_MAX);
  size_t n = buf ? fread(buf, 1, SET_MAX, f) : 0;
  fclose(f);
  if (buf == NULL || n == SET_MAX) {
    free(buf);
    return NULL;
  }
  *len = n;
  return buf;
}

/* protoc-c's C name of a message descriptor: ".auth.v1.RegisterRequest"
 * -> "auth__v1__register_request__descriptor" (c_helpers.cc: FullNameToLower,
 * CamelToLower). */
static void descriptor_symbol(const char *type, char *out, size_t cap) {
  size_t n = 0;
  for (const char *p = type[0] == '.' ? type + 1 : type; *p && n + 4 < cap;
       p++) {
    if (*p == '.') {
      out[n++] = '_';
      out[n++] = '_';
    } else if (*p >= 'A' && *p <= 'Z') {
      if (n > 0 && out[n - 1] != '_') out[n++] = '_';
      out[n++] = (char)(*p - 'A' + 'a');
    } else {
      out[n++] = *p;
    }
  }
  out[n] = '\0';
  snprintf(out + n, cap - n, "__descriptor");
}

/* Adds the #include of the header that defines type (".pkg.Message"). */
static int include_type(out_files *o, const char *type) {
  for (size_t i = 0; i < o->set->n_file; i++) {
    const Google__Protobuf__FileDescriptorProto *f = o->set->file[i];
    size_t pl = strlen(f->package);
    if (strncmp(type + 1, f->package, pl) != 0 || type[pl + 1] != '.') continue;
    for (size_t m = 0; m < f->n_message_type; m++) {
      if (strcmp(type + pl + 2, f->message_type[m]->name) != 0) continue;
      for (size_t k = 0; k < o->nseen; k++)
        if (strcmp(o->seen[k], f->name) == 0) return 0;
      if (o->nseen == sizeof o->seen / sizeof o->seen[0])
        return fail("too many message files", NULL);
      o->seen[o->nseen++] = f->name;
      size_t len = strlen(f->name);
      fprintf(o->includes, "#include \"%.*s.pb-c.h\"\n",
              (int)(len - strlen(".proto")), f->name);
      return 0;
    }
  }
  return fail("message type not found", type);
}

/* The rpc.v1.Access of a method, or NULL when it declares none. */
static Rpc__V1__Access *
method_access(const Google__Protobuf__MethodDescriptorProto *m) {
  if (m->options == NULL) return NULL;
  const ProtobufCMessage *o = &m->options->base;
  for (unsigned i = 0; i < o->n_unknown_fields; i++) {
    const ProtobufCMessageUnknownField *u = &o->unknown_fields[i];
    if (u->tag != ACCESS_FIELD ||
        u->wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED)
      continue;
    /* protobuf-c keeps the field's bytes as they came: the length varint,
     * then the message. */
    size_t skip = 0;
    while (skip < u->len && (u->data[skip] & 0x80)) skip++;
    if (++skip > u->len) return NULL;
    return rpc__v1__access__unpack(NULL, u->len - skip, u->data + skip);
  }
  return NULL;
}

static bool caller_ok(const Rpc__V1__Caller *c) {
  return c != NULL && c->service != NULL &&
         (strcmp(c->service, "*") == 0 || svcid_name_ok(c->service)) &&
         (int)c->user >= SVCID_USER_NONE && (int)c->user <= SVCID_USER_OWNER;
}

/* Writes one method: its caller array to .c, its row to .md. Returns the
 * index of the caller array, or -1 on a bad declaration. */
static int write_method(out_files *o, const char *full,
                        const Rpc__V1__Access *a) {
  if (a->n_callers == 0) return fail("no callers declared for", full), -1;
  int idx = o->rules++;
  fprintf(o->c, "static const svcid_caller_rule callers_%d[] = {\n", idx);
  fprintf(o->md, "| `%s` |", full);
  for (size_t i = 0; i < a->n_callers; i++) {
    const Rpc__V1__Caller *c = a->callers[i];
    if (!caller_ok(c)) return fail("bad caller in", full), -1;
    fprintf(o->c, "    {\"%s\", %d},\n", c->service, (int)c->user);
    fprintf(o->md, "%s %s (%s)", i ? "," : "", c->service,
            svcid_user_name((int)c->user));
  }
  fprintf(o->c, "};\n");
  fprintf(o->md, " |\n");
  return idx;
}

/* Appends "pkg.Service/Method" rows of one file to rows (a growing
 * text of the methods array). Returns 0 or 1 on failure. */
static int write_file(out_files *o,
                      const Google__Protobuf__FileDescriptorProto *f,
                      FILE *rows, size_t *n) {
  for (size_t s = 0; s < f->n_service; s++) {
    const Google__Protobuf__ServiceDescriptorProto *sv = f->service[s];
    for (size_t m = 0; m < sv->n_method; m++) {
      char full[256];
      snprintf(full, sizeof full, "%s.%s/%s", f->package, sv->name,
               sv->method[m]->name);
      const Google__Protobuf__MethodDescriptorProto *md = sv->method[m];
      Rpc__V1__Access *a = method_access(md);
      if (a == NULL) return fail("no (rpc.v1.access) option on", full);
      char in[256], out[256];
      descriptor_symbol(md->input_type, in, sizeof in);
      descriptor_symbol(md->output_type, out, sizeof out);
      if (include_type(o, md->input_type) || include_type(o, md->output_type)) {
        rpc__v1__access__free_unpacked(a, NULL);
        return 1;
      }
      int idx = write_method(o, full, a);
      size_t nc = a->n_callers;
      rpc__v1__access__free_unpacked(a, NULL);
      if (idx < 0) return 1;
      fprintf(rows, "    {\"%s\", callers_%d, %zu, &%s, &%s},\n", full, idx, nc,
              in, out);
      (*n)++;
    }
  }
  return 0;
}

static bool wanted(const char *name, char **files, int nfiles) {
  for (int i = 0; i < nfiles; i++)
    if (strcmp(files[i], name) == 0) return true;
  return false;
}

static int generate(out_files *o,
                    const Google__Protobuf__FileDescriptorSet *set,
                    char **files, int nfiles) {
  char *rows_text = NULL, *inc_text = NULL, *callers_text = NULL;
  size_t rows_len = 0, inc_len = 0, callers_len = 0, n = 0;
  FILE *rows = open_memstream(&rows_text, &rows_len);
  o->includes = open_memstream(&inc_text, &inc_len);
  FILE *c_out = o->c;
  o->c = open_memstream(&callers_text, &callers_len);
  o->set = set;
  if (rows == NULL || o->includes == NULL || o->c == NULL)
    return fail("out of memory", NULL);
  int rc = 0, found = 0;
  for (size_t i = 0; i < set->n_file && rc == 0; i++) {
    if (!wanted(set->file[i]->name, files, nfiles)) continue;
    found++;
    fprintf(o->md, "\n### `%s`\n\n| method | callers (user) |\n|---|---|\n",
            set->file[i]->name);
    rc = write_file(o, set->file[i], rows, &n);
  }
  fclose(rows);
  fclose(o->includes);
  fclose(o->c);
  o->c = c_out;
  if (rc == 0 && found != nfiles) rc = fail("a file is not in the set", NULL);
  if (rc == 0) {
    fprintf(o->c, "/* Generated by tools/protoaccess. Do not edit. */\n");
    fprintf(o->c, "#include \"libs/svcid/access.h\"\n%s\n%s", inc_text,
            callers_text);
    fprintf(o->c, "\nstatic const svcid_method_access methods[] = {\n%s};\n",
            rows_text);
    fprintf(o->c, "\nconst svcid_access_table %s = {\"%s\", methods, %zu};\n",
            o->symbol, files[0], n);
    fprintf(o->h, "/* Generated by tools/protoaccess. Do not edit. */\n");
    fprintf(o->h, "#pragma once\n#include \"libs/svcid/access.h\"\n");
    fprintf(o->h, "extern const svcid_access_table %s;\n", o->symbol);
  }
  free(rows_text);
  free(inc_text);
  free(callers_text);
  return rc;
}

int main(int argc, char **argv) {
  const char *cpath = NULL, *hpath = NULL, *mdpath = NULL, *symbol = NULL;
  int i = 1;
  for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
    if (strcmp(argv[i], "--c") == 0)
      cpath = argv[i + 1];
    else if (strcmp(argv[i], "--h") == 0)
      hpath = argv[i + 1];
    else if (strcmp(argv[i], "--md") == 0)
      mdpath = argv[i + 1];
    else if (strcmp(argv[i], "--symbol") == 0)
      symbol = argv[i + 1];
    else
      return fail("unknown option", argv[i]);
  }
  if (!cpath || !hpath || !mdpath || !symbol || argc - i < 2)
    return fail("usage: protoaccess --symbol S --c F --h F --md F SET FILE...",
                NULL);
  size_t len;
  uint8_t *buf = read_all(argv[i], &len);
  if (buf == NULL) return fail("cannot read", argv[i]);
  Google__Protobuf__FileDescriptorSet *set =
      google__protobuf__file_descriptor_set__unpack(NULL, len, buf);
  free(buf);
  if (set == NULL) return fail("not a descriptor set", argv[i]);
  out_files o = {.c = fopen(cpath, "w"),
                 .h = fopen(hpath, "w"),
                 .md = fopen(mdpath, "w"),
                 .symbol = symbol};
  int rc = o.c && o.h && o.md ? generate(&o, set, argv + i + 1, argc - i - 1)
                              : fail("cannot write the outputs", NULL);
  google__protobuf__file_descriptor_set__free_unpacked(set, NULL);
  if (o.c) rc |= fclose(o.c) != 0;
  if (o.h) rc |= fclose(o.h) != 0;
  if (o.md) rc |= fclose(o.md) != 0;
  return rc;
}
