/*
 * store.h - the auth service's SQL (schema "auth"; migrations/).
 *
 * Every function that touches tenant data runs in a transaction for that
 * tenant: db_begin sets app.tenant_id, the transaction switches to the
 * non-superuser role (AUTH_DB_ROLE, default auth_app) so the forced RLS
 * policies apply even when the service connects as a superuser, and every
 * statement also filters on tenant_id explicitly. The one lookup without a
 * tenant is store_refresh_tenant (the refresh token's routing row).
 *
 * Users come back without their password hash except from
 * store_user_by_email (Login needs it). Nothing here logs values.
 * All functions return ERR_OK or an ERR_* (db.h's mapping); the outcome of
 * a business rule that refused a change is reported separately (see
 * store_refusal) with ERR_OK and nothing changed.
 */
#ifndef AUTH_STORE_H
#define AUTH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/db/db.h"
#include "services/auth/pwpool.h"

#define STORE_EMAIL_MAX 254 /* bytes */
#define STORE_NAME_MAX 400  /* bytes (100 characters of up to 4 bytes) */
#define STORE_ROLE_MAX 15
#define STORE_PHONE_MAX 16 /* E.164: '+' and up to 15 digits */
#define STORE_KEY_MAX 255  /* creation (idempotency) key bytes */
#define STORE_HASHBYTES 32 /* refresh-token hash */
#define STORE_MAX_JTIS 32  /* access jtis returned for revocation */

/* The auth service's store is libs/db's: its pool and its role. */
typedef db_store store;

typedef struct auth_user {
  char id[UUID_STR_LEN + 1];
  char tenant_id[UUID_STR_LEN + 1];
  char email[STORE_EMAIL_MAX + 1];
  char name[STORE_NAME_MAX + 1];
  char role[STORE_ROLE_MAX + 1];
  char created_at[RFC3339_MS_LEN + 1];
  char phone[STORE_PHONE_MAX + 1]; /* E.164 (validate_phone), "" for none */
  bool disabled;
  int64_t tokens_valid_after_ms;       /* 0: none */
  char password_hash[PWPOOL_HASH_MAX]; /* only from store_user_by_email */
} auth_user;

/* Why a change was refused (ERR_OK returned, nothing changed). */
enum store_refusal {
  STORE_DONE = 0,
  STORE_LAST_OWNER, /* would leave the tenant without an owner */
  STORE_FORBIDDEN,  /* an admin touching an owner / granting owner */
  STORE_NOT_FOUND,  /* no such user in the tenant */
};

/* db is borrowed. role: the role each transaction switches to (copied;
 * NULL or "" for none). ERR_INVAL for a role that is not [a-z_][a-z0-9_]*
 * of at most 63 bytes, ERR_NOMEM. */
int store_new(db_pool *db, const char *role, store **out) WARN_UNUSED;
void store_free(store *s);

#define STORE_REQHASH_LEN 32 /* request hash of an idempotent creation */

/* What made a user through an idempotent call (idem.h): the calling
 * principal, its key, and the keyed hash of the request (may be NULL). */
typedef struct store_creation {
  const char *principal;
  const char *key;
  const uint8_t *hash; /* STORE_REQHASH_LEN bytes */
} store_creation;

/* Inserts a user. creation may be NULL (or name an empty key): none.
 * ERR_EXISTS when the e-mail is taken in the tenant (*key_conflict false)
 * or the (principal, key) was used (*key_conflict true). *out gets the
 * stored user. */
int store_user_insert(store *s, const char *tenant, const auth_user *in,
                      const store_creation *creation, bool *key_conflict,
                      auth_user *out) WARN_UNUSED;

/* The user an idempotent call of principal with key created, and its
 * request hash (*has_hash false for users made before hashes were kept).
 * ERR_NOTFOUND when none. */
int store_user_by_creation_key(store *s, const char *tenant,
                               const char *principal, const char *key,
                               auth_user *out, uint8_t hash[STORE_REQHASH_LEN],
                               bool *has_hash) WARN_UNUSED;

/* Lookups. ERR_NOTFOUND when absent. */
int store_user_by_email(store *s, const char *tenant, const char *email,
                        auth_user *out) WARN_UNUSED;
int store_user_by_id(store *s, const char *tenant, const char *id,
                     auth_user *out) WARN_UNUSED;

/* Up to limit users of the tenant ordered by id, after after_id (NULL or
 * "" for the start); customers only when include_customers. out holds
 * limit entries; *n gets how many, *more whether others follow. */
int store_users_list(store *s, const char *tenant, bool include_customers,
                     const char *after_id, int limit, auth_user *out, int *n,
                     bool *more) WARN_UNUSED;

/* ListRecipients: the enabled users of tenant whose role is in roles (a
 * text[] literal such as "{owner,admin}"), by id after after_id (NULL or
 * "": from the first), at most limit into out. ERR_INVAL without roles. */
int store_users_by_role(store *s, const char *tenant, const char *roles,
                        const char *after_id, int limit, auth_user *out, int *n,
                        bool *more) WARN_UNUSED;

/* Sets user id's phone (E.164 from validate_phone; "" removes it) and
 * returns the user. ERR_NOTFOUND when id is not a user of tenant. */
int store_user_set_phone(store *s, const char *tenant, const char *id,
                         const char *phone, auth_user *out) WARN_UNUSED;

/* Changes a user's role; moves tokens_valid_after to now, or a second past
 * its previous value if that is later (returned in *out), so access tokens
 * carrying the old role - including ones issued after an earlier change in
 * the same second - stop working. The rules,
 * race-free (every owner row of the tenant is locked first, and the
 * acting user's role is read again in the same transaction, so a token
 * minted before a concurrent demotion cannot act on its old role): the
 * actor must still exist as owner or admin, only an owner may grant or
 * take "owner" (STORE_FORBIDDEN), the last owner
 * cannot stop being one (STORE_LAST_OWNER). *changed says whether the
 * role differed (no change: tokens_valid_after untouched). */
int store_user_set_role(store *s, const char *tenant, const char *id,
                        const char *role, const char *actor_id,
                        enum store_refusal *refusal, bool *changed,
                        auth_user *out) WARN_UNUSED;

/* Deletes a user with its sessions, same rules as set_role. *out gets
 * the removed user. */
int store_user_delete(store *s, const char *tenant, const char *id,
                      const char *actor_id, enum store_refusal *refusal,
                      auth_user *out) WARN_UNUSED;

/* Deletes every user (and session) of a tenant; *n gets how many, and
 * ids[0..min(n, cap)) their ids. */
int store_tenant_delete_users(store *s, const char *tenant,
                              char (*ids)[UUID_STR_LEN + 1], size_t cap,
                              size_t *n) WARN_UNUSED;

/* A new session: a family for user_id, and its first refresh token
 * (hash, the access jti issued with it, expiry in Unix ms). */
int store_session_create(store *s, const char *tenant, const char *user_id,
                         const uint8_t hash[STORE_HASHBYTES],
                         const char *access_jti,
                         int64_t expires_ms) WARN_UNUSED;

/* The tenant a refresh token hash belongs to. ERR_NOTFOUND. */
int store_refresh_tenant(store *s, const uint8_t hash[STORE_HASHBYTES],
                         char tenant[UUID_STR_LEN + 1]) WARN_UNUSED;

enum store_rotate_result {
  STORE_ROTATED = 0, /* *user filled; new token stored */
  STORE_INVALID,     /* unknown, expired, revoked family, user gone */
  STORE_REUSED,      /* spent token presented again: family revoked now */
};

typedef struct store_rotate {
  /* in */
  const uint8_t *old_hash; /* STORE_HASHBYTES */
  const uint8_t *new_hash; /* STORE_HASHBYTES */
  const char *new_access_jti;
  int64_t new_expires_ms;
  int64_t reuse_interval_ms; /* a spent token within this is a retry */
  int64_t access_ttl_ms;     /* jtis younger than this are returned */
  /* out */
  enum store_rotate_result result;
  auth_user user;
  char family_id[UUID_STR_LEN + 1];
  /* STORE_REUSED: access jtis of the family that may still be valid */
  char jtis[STORE_MAX_JTIS][UUID_STR_LEN + 1];
  size_t njtis;
} store_rotate;

/* Rotates a refresh token of tenant. The family row and the token row
 * are both locked (FOR UPDATE OF f, t), so simultaneous refreshes of one
 * token serialise and every one after the first sees it spent: reuse
 * (family revoked) unless within reuse_interval_ms; the spend itself is
 * conditional (spent_at IS NULL), 0 rows also counting as reuse. */
int store_refresh_rotate(store *s, const char *tenant,
                         store_rotate *r) WARN_UNUSED;

/* Revokes user_id's session named by a refresh token hash (when hash is
 * not NULL) or else by the access jti issued with it. *found says whether
 * a session of that user matched; jtis/njtis as in store_rotate. */
int store_session_revoke(store *s, const char *tenant, const char *user_id,
                         const uint8_t *hash, const char *access_jti,
                         int64_t access_ttl_ms, bool *found,
                         char (*jtis)[UUID_STR_LEN + 1],
                         size_t *njtis) WARN_UNUSED;

/* Records the configured public keys (not tenant data): upserts each kid
 * (kids[0] "active", the others "verify-only"); keys no longer configured
 * stay as history, marked verify-only. */
int store_keys_record(store *s, const char *const *kids,
                      const char *const *public_b64, size_t n) WARN_UNUSED;

#endif
