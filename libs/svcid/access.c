/*
 * access.c - see access.h. Tables are small (a service has tens of
 * methods), so lookups are linear; they run once per call next to an
 * Ed25519-cache lookup and a protobuf decode.
 */
#include "libs/svcid/access.h"

#include <string.h>

const svcid_method_access *svcid_access_find(const svcid_access_table *t,
                                             const char *method) {
  if (t == NULL || method == NULL) return NULL;
  for (size_t i = 0; i < t->n; i++)
    if (strcmp(t->methods[i].method, method) == 0) return &t->methods[i];
  return NULL;
}

const svcid_caller_rule *svcid_access_caller(const svcid_method_access *m,
                                             const char *service) {
  if (m == NULL || service == NULL || service[0] == '\0') return NULL;
  const svcid_caller_rule *any = NULL;
  for (size_t i = 0; i < m->ncallers; i++) {
    if (strcmp(m->callers[i].service, service) == 0) return &m->callers[i];
    if (strcmp(m->callers[i].service, "*") == 0) any = &m->callers[i];
  }
  return any;
}

const char *svcid_user_name(int user) {
  static const char *const names[] = {"none",  "anonymous", "customer",
                                      "staff", "admin",     "owner"};
  if (user < 0 || user > SVCID_USER_OWNER) return "?";
  return names[user];
}

int svcid_user_rank(int user) {
  return user >= SVCID_USER_CUSTOMER && user <= SVCID_USER_OWNER ? user - 1 : 0;
}
