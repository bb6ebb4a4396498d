/*
 * channel.c - channel names and their authorisation (see channel.h).
 *
 * A name is split into its kind (the prefix up to and including the last
 * fixed dot) and the id after it; the id must be a canonical UUID. The
 * tenant channels compare the id with the token's tid and the role rank
 * with staff; the private channel compares it with the token's sub.
 */
#include "services/realtime/channel.h"

#include <stdio.h>
#include <string.h>

#include "libs/authn/authn_caller.h"
#include "libs/base/uuid.h"

static const char *const kTenantKinds[] = {"orders.", "kitchen.", "tables.",
                                           "devices."};
#define PRIVATE_USER "private.user."
#define NKINDS (sizeof kTenantKinds / sizeof kTenantKinds[0])

static bool printable(const char *s) {
  for (; *s != '\0'; s++)
    if (*s <= 0x20 || *s >= 0x7f) return false;
  return true;
}

/* The id of a canonical (lower-case) UUID, or NULL. */
static const char *canonical_id(const char *id) {
  char canon[UUID_STR_LEN + 1];
  if (uuid_canonical(id, canon) != 0 || strcmp(canon, id) != 0) return NULL;
  return id;
}

bool channel_is_staff(const channel_who *cl) {
  return strcmp(cl->role, "device") == 0 ||
         authn_role_rank(cl->role) >= AUTHN_ROLE_STAFF;
}

static enum channel_verdict tenant_channel(const char *id,
                                           const channel_who *cl) {
  if (canonical_id(id) == NULL) return CHANNEL_INVALID;
  if (strcmp(id, cl->tenant_id) != 0 || !channel_is_staff(cl))
    return CHANNEL_DENIED;
  return CHANNEL_OK;
}

enum channel_verdict channel_authorize(const char *name,
                                       const channel_who *cl) {
  if (name == NULL || cl == NULL) return CHANNEL_INVALID;
  size_t n = strlen(name);
  if (n == 0 || n > CHANNEL_MAX || !printable(name)) return CHANNEL_INVALID;
  for (size_t i = 0; i < NKINDS; i++) {
    size_t k = strlen(kTenantKinds[i]);
    if (strncmp(name, kTenantKinds[i], k) == 0)
      return tenant_channel(name + k, cl);
  }
  size_t p = strlen(PRIVATE_USER);
  if (strncmp(name, PRIVATE_USER, p) != 0) return CHANNEL_NOT_FOUND;
  if (canonical_id(name + p) == NULL) return CHANNEL_INVALID;
  return strcmp(name + p, cl->user_id) == 0 ? CHANNEL_OK : CHANNEL_DENIED;
}

const char *channel_verdict_code(enum channel_verdict v) {
  switch (v) {
  case CHANNEL_OK:
    return "OK";
  case CHANNEL_INVALID:
    return "INVALID_ARGUMENT";
  case CHANNEL_NOT_FOUND:
    return "NOT_FOUND";
  case CHANNEL_DENIED:
    return "PERMISSION_DENIED";
  }
  return "INVALID_ARGUMENT";
}

bool channel_from_topic(const char *topic) {
  if (topic == NULL || strlen(topic) > CHANNEL_MAX) return false;
  /* notifications publishes each user's notifications on their channel */
  if (strncmp(topic, PRIVATE_USER, strlen(PRIVATE_USER)) == 0)
    return canonical_id(topic + strlen(PRIVATE_USER)) != NULL;
  for (size_t i = 0; i < NKINDS; i++) {
    size_t k = strlen(kTenantKinds[i]);
    if (strncmp(topic, kTenantKinds[i], k) == 0)
      return canonical_id(topic + k) != NULL;
  }
  return false;
}

enum channel_kind channel_kind_of(const char *name) {
  for (size_t i = 0; i < NKINDS; i++)
    if (strncmp(name, kTenantKinds[i], strlen(kTenantKinds[i])) == 0)
      return (enum channel_kind)i; /* kTenantKinds is in the enum's order */
  return CHANNEL_KIND_PRIVATE;
}

const char *channel_kind_name(enum channel_kind k) {
  static const char *const kNames[CHANNEL_KINDS] = {
      "orders", "kitchen", "tables", "devices", "private"};
  return k < CHANNEL_KINDS ? kNames[k] : "private";
}

bool channel_private_user(const char *user_id, char out[CHANNEL_MAX + 1]) {
  if (user_id == NULL || canonical_id(user_id) == NULL) return false;
  snprintf(out, CHANNEL_MAX + 1, PRIVATE_USER "%s", user_id);
  return true;
}
