/*
 * catalog.c - listing and describing methods from the generated access
 * tables (auth, tenants, orders).
 *
 * Design: the tables are linked in as plain data (one array of pointers
 * below; a new service adds one line). `describe` walks protobuf-c
 * descriptors breadth-first from the request and reply, printing each
 * message and enum once, in proto-like syntax so it reads like the
 * .proto an operator may already know; maps and single-member oneofs are
 * shown the way libs/pbjson maps them to JSON (an object; a field that
 * may be null), since JSON is what the operator will type.
 */
#include "tools/rpc/catalog.h"

#include "libs/pbjson/pbjson.h"

#include <string.h>

#include "proto/auth/v1/auth_access.h"
#include "proto/notifications/v1/notifications_access.h"
#include "proto/orders/v1/orders_access.h"
#include "proto/sync/v1/sync_access.h"
#include "proto/tenants/v1/tenants_access.h"

static const svcid_access_table *const TABLES[] = {
    &auth_v1_access, &tenants_v1_access,       &orders_v1_access,
    &sync_v1_access, &notifications_v1_access,
};
#define NTABLES (sizeof TABLES / sizeof TABLES[0])

/* Types printed by one describe; more than this many distinct messages
 * and enums behind one method is not a schema we have. */
#define SEEN_MAX 128

const svcid_method_access *catalog_find(const char *method) {
  for (size_t i = 0; i < NTABLES; i++) {
    const svcid_method_access *m = svcid_access_find(TABLES[i], method);
    if (m) return m;
  }
  return NULL;
}

bool catalog_service_of(const char *method, char out[CATALOG_SERVICE_MAX + 1]) {
  size_t n = strcspn(method, "./");
  if (n == 0 || n > CATALOG_SERVICE_MAX || method[n] != '.') return false;
  memcpy(out, method, n);
  out[n] = '\0';
  return true;
}

/* A filter matches the service ("auth") or the protobuf service
 * ("auth.v1.Auth"), never a mere prefix ("au"). */
static bool matches(const char *method, const char *filter) {
  char svc[CATALOG_SERVICE_MAX + 1];
  size_t n = strlen(filter);
  if (catalog_service_of(method, svc) && strcmp(svc, filter) == 0) return true;
  return strncmp(method, filter, n) == 0 && method[n] == '/';
}

static void print_callers(FILE *f, const svcid_method_access *m) {
  for (size_t i = 0; i < m->ncallers; i++) {
    const svcid_caller_rule *c = &m->callers[i];
    fprintf(f, "%s%s[%s]", i ? " " : "", c->service, svcid_user_name(c->user));
  }
}

size_t catalog_list(FILE *f, const char *filter) {
  size_t shown = 0;
  for (size_t t = 0; t < NTABLES; t++) {
    for (size_t i = 0; i < TABLES[t]->n; i++) {
      const svcid_method_access *m = &TABLES[t]->methods[i];
      if (filter && !matches(m->method, filter)) continue;
      fprintf(f, "%-36s %s -> %s  callers: ", m->method, m->input->name,
              m->output->name);
      print_callers(f, m);
      fputc('\n', f);
      shown++;
    }
  }
  return shown;
}

/* ---- describe ------------------------------------------------------- */

/* The descriptors already queued (messages and enums alike: both are
 * only compared by address). */
typedef struct seen {
  const void *desc[SEEN_MAX];
  bool is_enum[SEEN_MAX];
  size_t n;
} seen;

static void enqueue(seen *s, const void *desc, bool is_enum) {
  for (size_t i = 0; i < s->n; i++)
    if (s->desc[i] == desc) return;
  if (s->n == SEEN_MAX) return;
  s->desc[s->n] = desc;
  s->is_enum[s->n++] = is_enum;
}

/* The type's name, queueing messages and enums for their own block. */
static const char *type_name(seen *s, const ProtobufCFieldDescriptor *fd) {
  if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
    const ProtobufCMessageDescriptor *d = fd->descriptor;
    enqueue(s, d, false);
    return d->name;
  }
  if (fd->type == PROTOBUF_C_TYPE_ENUM) {
    const ProtobufCEnumDescriptor *d = fd->descriptor;
    enqueue(s, d, true);
    return d->name;
  }
  return pbjson_type_name(fd->type); /* a scalar: the others are above */
}

/* protoc-c spells map<K, V> as a repeated nested "<Field>Entry" message
 * with fields key and value (the shape libs/pbjson recognises too). */
static const ProtobufCMessageDescriptor *
map_entry(const ProtobufCFieldDescriptor *fd) {
  const ProtobufCMessageDescriptor *d = fd->descriptor;
  size_t n;
  if (fd->label != PROTOBUF_C_LABEL_REPEATED ||
      fd->type != PROTOBUF_C_TYPE_MESSAGE || d->n_fields != 2)
    return NULL;
  n = strlen(d->name);
  if (n < 5 || strcmp(d->name + n - 5, "Entry") != 0) return NULL;
  if (strcmp(d->fields[0].name, "key") != 0 ||
      strcmp(d->fields[1].name, "value") != 0)
    return NULL;
  return d;
}

/* Members of fd's oneof (fields sharing its case offset), or 0. */
static size_t oneof_members(const ProtobufCMessageDescriptor *d,
                            const ProtobufCFieldDescriptor *fd) {
  size_t n = 0;
  if (!(fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) return 0;
  for (unsigned i = 0; i < d->n_fields; i++)
    if ((d->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
        d->fields[i].quantifier_offset == fd->quantifier_offset)
      n++;
  return n;
}

static void print_field(FILE *f, seen *s, const ProtobufCMessageDescriptor *d,
                        const ProtobufCFieldDescriptor *fd) {
  const ProtobufCMessageDescriptor *entry = map_entry(fd);
  size_t oneof = oneof_members(d, fd);
  if (entry) {
    const char *k = type_name(s, &entry->fields[0]);
    fprintf(f, "  map<%s, %s> %s = %u;", k, type_name(s, &entry->fields[1]),
            fd->name, fd->id);
  } else {
    const char *label = fd->label == PROTOBUF_C_LABEL_REPEATED   ? "repeated "
                        : fd->label == PROTOBUF_C_LABEL_REQUIRED ? "required "
                        : fd->label == PROTOBUF_C_LABEL_OPTIONAL || oneof == 1
                            ? "optional "
                            : "";
    fprintf(f, "  %s%s %s = %u;", label, type_name(s, fd), fd->name, fd->id);
  }
  /* A one-member oneof is this project's optional field (null in JSON);
   * a real oneof takes one member at a time. */
  if (oneof > 1) fputs("  // oneof: set at most one", f);
  fputc('\n', f);
}

static void print_message(FILE *f, seen *s,
                          const ProtobufCMessageDescriptor *d) {
  fprintf(f, "message %s {\n", d->name);
  for (unsigned i = 0; i < d->n_fields; i++)
    print_field(f, s, d, &d->fields[i]);
  fputs("}\n", f);
}

static void print_enum(FILE *f, const ProtobufCEnumDescriptor *d) {
  fprintf(f, "enum %s {\n", d->name);
  for (unsigned i = 0; i < d->n_values; i++)
    fprintf(f, "  %s = %d;\n", d->values[i].name, d->values[i].value);
  fputs("}\n", f);
}

void catalog_describe(FILE *f, const svcid_method_access *m) {
  seen s = {.n = 0};
  fprintf(f, "%s\n  request:  %s\n  response: %s\n  callers:  ", m->method,
          m->input->name, m->output->name);
  print_callers(f, m);
  fputs("\n  (callers: service[user]; '*' = any service with an identity;"
        " user = the least user role a call must carry, none = service"
        " only)\n  (JSON: field names as below; enum values lower case"
        " without the enum's prefix, as the gateway speaks them)\n",
        f);
  enqueue(&s, m->input, false);
  enqueue(&s, m->output, false);
  /* s grows while printing: each block queues the types it uses. */
  for (size_t i = 0; i < s.n; i++) {
    fputc('\n', f);
    if (s.is_enum[i])
      print_enum(f, s.desc[i]);
    else
      print_message(f, &s, s.desc[i]);
  }
}
