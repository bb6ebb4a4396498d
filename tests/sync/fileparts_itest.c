/*
 * fileparts_itest.c - streamed files (PutFilePart, GetFilePart) over sync's
 * real RPC port: PostgreSQL, Redis, auth, tenants, orders and sync as
 * separate processes (tests/harness), called as the gateway calls them
 * (its service identity, tests/harness/rpc.h) with a tenant owner's access
 * token from tenants' CreateTenant. The gateway's own streaming of HTTP
 * bodies is tested with the gateway (tests/sync/sync_itest.c).
 *
 * What is checked is what a user would depend on and an attacker would
 * try: a 3 MiB file in 256 KiB parts round-trips byte for byte and is
 * counted once; every part sent twice is applied once; a wrong hash
 * leaves nothing (no file, no upload, no part, usage as before); a gap,
 * another tenant's upload id, oversized parts and files, bad names are
 * refused and change nothing; the quota holds on the first part; two
 * uploads of one file racing to the end store it once; a kill -9 of sync
 * between two parts loses nothing (the upload continues from received);
 * the janitor removes an abandoned upload and gives its bytes back; a
 * present file answers the first part with existed/done. The test reads
 * the database as the superuser to see what is really stored.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/paseto/paseto.h"
#include "libs/rpc/rpc.h"
#include "proto/sync/v1/sync.pb-c.h"
#include "proto/tenants/v1/tenants.pb-c.h"
#include "tests/harness/cases.h"
#include "tests/harness/harness.h"
#include "tests/harness/http.h"
#include "tests/harness/identity.h"
#include "tests/harness/rpc.h"
#include "tests/harness/service.h"
#include "tests/harness/system.h"

#define PUT "sync.v1.Sync/PutFilePart"
#define GET "sync.v1.Sync/GetFilePart"
#define PASSWORD "correct horse battery"
#define PEPPER "SYNC_DEVICE_PEPPER=itest-pepper-not-secret-0123456789abcdef"
#define KIB 1024
#define MIB (1024 * 1024)
#define PART (256 * KIB)
#define QUOTA (16 * MIB)

/* auth, tenants, orders and sync (tests/harness/system.h), sync with a
 * quick files round, a 60 s idle-upload time and a 16 MiB quota. */
static char *const kSync[] = {PEPPER, "SYNC_FILES_SWEEP=200ms",
                              "SYNC_UPLOAD_IDLE=60s",
                              "SYNC_FILES_QUOTA_BYTES=16777216", NULL};
static const harness_system_opts kSystem = {
    .parts = HARNESS_WITH(HARNESS_TENANTS) | HARNESS_WITH(HARNESS_ORDERS) |
             HARNESS_WITH(HARNESS_SYNC),
    .rpc_workers = 8,
    .log_level = "info",
    .env = {[HARNESS_SYNC] = kSync},
};
static harness_system g_sys;

/* ------------------------------------------------------------ helpers --- */

typedef struct tenant {
  char id[UUID_STR_LEN + 1];
  char token[PASETO_TOKEN_MAX + 1]; /* the owner's access token */
} tenant;

/* A fresh tenant through tenants' CreateTenant (as the gateway calls it). */
static void make_tenant(tenant *t) {
  rpc_client *c = harness_rpc_client(g_sys.tenants.rpc_url);
  char slug[40], email[96];
  harness_unique(slug, sizeof slug, "fp");
  snprintf(email, sizeof email, "owner@%s.example", slug);
  Tenants__V1__Owner owner = TENANTS__V1__OWNER__INIT;
  owner.email = email;
  owner.password = PASSWORD;
  owner.name = "Owner";
  Tenants__V1__CreateTenantRequest req =
      TENANTS__V1__CREATE_TENANT_REQUEST__INIT;
  req.name = "Files";
  req.slug = slug;
  req.owner = &owner;
  rpc_result *r = harness_rpc_call(c, "tenants.v1.Tenants/CreateTenant",
                                   &req.base, NULL, NULL, NULL);
  CK_RPC_CODE(r, RPC_OK);
  Tenants__V1__CreateTenantResponse *resp =
      tenants__v1__create_tenant_response__unpack(NULL, r->payload_len,
                                                  r->payload);
  ck_assert_ptr_nonnull(resp);
  snprintf(t->id, sizeof t->id, "%s", resp->tenant->id);
  snprintf(t->token, sizeof t->token, "%s", resp->access_token);
  tenants__v1__create_tenant_response__free_unpacked(resp, NULL);
  rpc_result_free(r);
  rpc_client_free(c);
}

/* n random bytes (malloc'd) and their SHA-256 as hex into hex[65]. */
static uint8_t *random_file(size_t n, char hex[65]) {
  uint8_t *b = malloc(n + 1);
  ck_assert_ptr_nonnull(b);
  randombytes_buf(b, n);
  uint8_t h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, b, n);
  sodium_bin2hex(hex, 65, h, sizeof h);
  return b;
}

/* PutFilePart of data[0..len) at offset; the result (the caller frees). */
static rpc_result *put(rpc_client *c, const tenant *t, const char *hex,
                       const char *upload, int64_t size, int64_t offset,
                       const uint8_t *data, size_t len) {
  Sync__V1__PutFilePartRequest req = SYNC__V1__PUT_FILE_PART_REQUEST__INIT;
  req.sha256 = (char *)hex;
  req.upload_id = (char *)upload;
  req.size = size;
  req.offset = offset;
  req.data.data = (uint8_t *)data;
  req.data.len = len;
  return harness_rpc_call(c, PUT, &req.base, t->token, NULL, NULL);
}

typedef struct put_answer {
  int64_t size, received;
  bool existed, done;
} put_answer;

/* put() that must succeed: its answer. */
static put_answer put_ok(rpc_client *c, const tenant *t, const char *hex,
                         const char *upload, int64_t size, int64_t offset,
                         const uint8_t *data, size_t len) {
  rpc_result *r = put(c, t, hex, upload, size, offset, data, len);
  CK_RPC_CODE(r, RPC_OK);
  Sync__V1__PutFilePartResponse *m = sync__v1__put_file_part_response__unpack(
      NULL, r->payload_len, r->payload);
  ck_assert_ptr_nonnull(m);
  ck_assert_str_eq(m->sha256, hex);
  put_answer a = {.size = m->size,
                  .received = m->received,
                  .existed = m->existed,
                  .done = m->done};
  sync__v1__put_file_part_response__free_unpacked(m, NULL);
  rpc_result_free(r);
  return a;
}

/* The whole file in parts of part bytes under upload; the last answer. */
static put_answer upload_all(rpc_client *c, const tenant *t, const char *hex,
                             const char *upload, const uint8_t *b, size_t n,
                             size_t part) {
  put_answer a = {0};
  size_t off = 0;
  do {
    size_t len = n - off < part ? n - off : part;
    a = put_ok(c, t, hex, upload, (int64_t)n, (int64_t)off, b + off, len);
    off += len;
    ck_assert_int_eq(a.received, (int64_t)off);
    ck_assert(a.done == (off == n));
  } while (off < n);
  return a;
}

/* GetFilePart; the result (the caller frees). */
static rpc_result *get(rpc_client *c, const tenant *t, const char *hex,
                       int64_t offset, int32_t max) {
  Sync__V1__GetFilePartRequest req = SYNC__V1__GET_FILE_PART_REQUEST__INIT;
  req.sha256 = (char *)hex;
  req.offset = offset;
  req.max = max;
  return harness_rpc_call(c, GET, &req.base, t->token, NULL, NULL);
}

/* Reads the whole file in chunks of chunk bytes and compares it with
 * b[0..n). */
static void read_back(rpc_client *c, const tenant *t, const char *hex,
                      const uint8_t *b, size_t n, int32_t chunk) {
  size_t off = 0;
  do {
    rpc_result *r = get(c, t, hex, (int64_t)off, chunk);
    CK_RPC_CODE(r, RPC_OK);
    Sync__V1__GetFilePartResponse *m = sync__v1__get_file_part_response__unpack(
        NULL, r->payload_len, r->payload);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(m->size, (int64_t)n);
    size_t want = n - off < (size_t)chunk ? n - off : (size_t)chunk;
    ck_assert_uint_eq(m->data.len, want);
    ck_assert(memcmp(m->data.data, b + off, want) == 0);
    off += want;
    sync__v1__get_file_part_response__free_unpacked(m, NULL);
    rpc_result_free(r);
  } while (off < n);
}

/* One number from the database as the superuser (past RLS). */
static long long q(const char *sql, const char *arg) {
  long long v = harness_pg_count(&g_sys.pg, sql, arg);
  ck_assert_int_ge(v, 0);
  return v;
}

static long long usage(const tenant *t) {
  return q("SELECT coalesce((SELECT bytes FROM sync.file_usage WHERE "
           "tenant_id = $1::uuid), 0)",
           t->id);
}
static long long files_of(const tenant *t) {
  return q("SELECT count(*) FROM sync.files WHERE tenant_id = $1::uuid", t->id);
}
static long long uploads_of(const tenant *t) {
  return q("SELECT count(*) FROM sync.uploads WHERE tenant_id = $1::uuid",
           t->id);
}
static long long parts_of(const tenant *t) {
  return q("SELECT count(*) FROM sync.upload_parts WHERE tenant_id = $1::uuid",
           t->id);
}
/* sync_upload_parts_total{status} on sync's /metrics. */
static double parts_counted(const char *status) {
  char series[96];
  snprintf(series, sizeof series, "sync_upload_parts_total{status=\"%s\"}",
           status);
  double v = harness_metric(g_sys.sync.admin_port, series);
  ck_assert(v >= 0);
  return v;
}

static long long received_of(const char *upload) {
  return q("SELECT received FROM sync.uploads WHERE id = $1::uuid", upload);
}

/* -------------------------------------------------------------- tests --- */

/* The tenant holds exactly one file, b[0..n) (read back in 1 MiB chunks),
 * counted once against its quota, with no staged part left. */
static void stored_once(rpc_client *c, const tenant *t, const char *hex,
                        const uint8_t *b, size_t n) {
  ck_assert_int_eq(files_of(t), 1);
  ck_assert_int_eq(usage(t), (long long)n);
  ck_assert_int_eq(parts_of(t), 0);
  read_back(c, t, hex, b, n, MIB);
}

START_TEST(a_3_mib_file_in_256_kib_parts_round_trips) {
  tenant t, other;
  make_tenant(&t);
  make_tenant(&other);
  rpc_client *c = harness_rpc_client(g_sys.sync.rpc_url);
  char hex[65], up[UUID_STR_LEN + 1];
  size_t n = 3 * MIB;
  uint8_t *b = random_file(n, hex);
  uuid_v7_str(up);
  put_answer a = upload_all(c, &t, hex, up, b, n, PART);
  ck_assert(a.done);
  ck_assert(!a.existed);
  ck_assert_int_eq(a.size, (int64_t)n);
  ck_assert_int_eq(files_of(&t), 1);
  ck_assert_int_eq(usage(&t), (long long)n);
  ck_assert_int_eq(parts_of(&t), 0); /* joined into the file, then deleted */
  ck_assert_int_eq(q("SELECT size FROM sync.files WHERE sha256 = "
                     "decode($1, 'hex')",
                     hex),
                   (long long)n);
  /* Read back in pieces that do not align with the parts. */
  read_back(c, &t, hex, b, n, 700 * KIB);
  read_back(c, &t, hex, b, n, MIB);
  /* HEAD: the size, no bytes; the end: no bytes; past it: OUT_OF_RANGE. */
  rpc_result *r = get(c, &t, hex, 0, 0);
  CK_RPC_CODE(r, RPC_OK);
  Sync__V1__GetFilePartResponse *m = sync__v1__get_file_part_response__unpack(
      NULL, r->payload_len, r->payload);
  ck_assert_int_eq(m->size, (int64_t)n);
  ck_assert_uint_eq(m->data.len, 0);
  sync__v1__get_file_part_response__free_unpacked(m, NULL);
  rpc_result_free(r);
  r = get(c, &t, hex, (int64_t)n, MIB);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  r = get(c, &t, hex, (int64_t)n + 1, MIB);
  CK_RPC_CODE(r, RPC_OUT_OF_RANGE);
  CK_RPC_VIOLATION(r, "offset");
  rpc_result_free(r);
  /* Bad reads. */
  r = get(c, &t, hex, -1, MIB);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  CK_RPC_VIOLATION(r, "offset");
  rpc_result_free(r);
  r = get(c, &t, hex, 0, MIB + 1);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  CK_RPC_VIOLATION(r, "max");
  rpc_result_free(r);
  /* Another tenant: absent. */
  r = get(c, &other, hex, 0, MIB);
  CK_RPC_CODE(r, RPC_NOT_FOUND);
  rpc_result_free(r);
  /* A read from offset 0 is a use (last_used_at moves); later chunks are
   * not written. */
  ck_assert_int_eq(q("UPDATE sync.files SET last_used_at = now() - interval "
                     "'3 days' WHERE sha256 = decode($1, 'hex') RETURNING 1",
                     hex),
                   1);
  r = get(c, &t, hex, PART, 1024);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  const char *old = "SELECT count(*) FROM sync.files WHERE sha256 = "
                    "decode($1, 'hex') AND last_used_at < now() - "
                    "interval '1 day'";
  ck_assert_int_eq(q(old, hex), 1);
  r = get(c, &t, hex, 0, 1024);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  ck_assert_int_eq(q(old, hex), 0);
  free(b);
  rpc_client_free(c);
}
END_TEST

START_TEST(every_part_sent_twice_is_stored_once) {
  tenant t;
  make_tenant(&t);
  rpc_client *c = harness_rpc_client(g_sys.sync.rpc_url);
  char hex[65], up[UUID_STR_LEN + 1];
  size_t n = MIB + 1000; /* 5 parts, the last a short one */
  uint8_t *b = random_file(n, hex);
  uuid_v7_str(up);
  double applied = parts_counted("applied"),
         repeated = parts_counted("repeated");
  for (size_t off = 0; off < n;) {
    size_t len = n - off < PART ? n - off : PART;
    put_answer a1 =
        put_ok(c, &t, hex, up, (int64_t)n, (int64_t)off, b + off, len);
    put_answer a2 =
        put_ok(c, &t, hex, up, (int64_t)n, (int64_t)off, b + off, len);
    off += len;
    ck_assert_int_eq(a1.received, (int64_t)off);
    ck_assert_int_eq(a2.received, (int64_t)off);
    ck_assert(a1.done == (off == n) && a2.done == a1.done);
    ck_assert(!a2.existed);
  }
  /* The first part again, long after: the upload is done, not restarted. */
  put_answer a = put_ok(c, &t, hex, up, (int64_t)n, 0, b, PART);
  ck_assert(a.done);
  ck_assert_int_eq(a.received, (int64_t)n);
  /* Counted as what they were: 5 applied, 6 answered without applying. */
  ck_assert_int_eq((long)(parts_counted("applied") - applied), 5);
  ck_assert_int_eq((long)(parts_counted("repeated") - repeated), 6);
  stored_once(c, &t, hex, b, n);
  free(b);
  rpc_client_free(c);
}
END_TEST

START_TEST(a_wrong_hash_on_the_last_part_leaves_nothing) {
  tenant t;
  make_tenant(&t);
  rpc_client *c = harness_rpc_client(g_sys.sync.rpc_url);
  /* A file stored first, so "usage as before" is not just zero. */
  char kept[65], up0[UUID_STR_LEN + 1];
  uint8_t *k = random_file(1000, kept);
  uuid_v7_str(up0);
  (void)upload_all(c, &t, kept, up0, k, 1000, PART);
  long long before = usage(&t);
  ck_assert_int_eq(before, 1000);
  /* Named after other bytes of the same size. */
  char hex[65], wrong[65], up[UUID_STR_LEN + 1];
  size_t n = 600 * KIB;
  uint8_t *b = random_file(n, hex);
  uint8_t *w = random_file(n, wrong);
  uuid_v7_str(up);
  ck_assert_int_eq(put_ok(c, &t, wrong, up, (int64_t)n, 0, b, PART).received,
                   PART);
  ck_assert_int_eq(
      put_ok(c, &t, wrong, up, (int64_t)n, PART, b + PART, PART).received,
      2 * PART);
  ck_assert_int_eq(usage(&t), before + (long long)n); /* reserved */
  rpc_result *r =
      put(c, &t, wrong, up, (int64_t)n, 2 * PART, b + 2 * PART, n - 2 * PART);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  CK_RPC_VIOLATION(r, "content");
  rpc_result_free(r);
  ck_assert_int_eq(files_of(&t), 1); /* only the kept one */
  ck_assert_int_eq(uploads_of(&t), 1);
  ck_assert_int_eq(
      q("SELECT count(*) FROM sync.uploads WHERE id = $1::uuid", up), 0);
  ck_assert_int_eq(parts_of(&t), 0);
  ck_assert_int_eq(usage(&t), before);
  r = get(c, &t, wrong, 0, MIB);
  CK_RPC_CODE(r, RPC_NOT_FOUND);
  rpc_result_free(r);
  /* The refused upload is gone: a later part of it finds nothing. */
  r = put(c, &t, wrong, up, (int64_t)n, 2 * PART, b + 2 * PART, n - 2 * PART);
  CK_RPC_CODE(r, RPC_NOT_FOUND);
  rpc_result_free(r);
  /* A one-part upload with a wrong hash: the same. */
  char up2[UUID_STR_LEN + 1];
  uuid_v7_str(up2);
  r = put(c, &t, wrong, up2, 1000, 0, k, 1000);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  CK_RPC_VIOLATION(r, "content");
  rpc_result_free(r);
  ck_assert_int_eq(uploads_of(&t), 1);
  ck_assert_int_eq(usage(&t), before);
  free(b);
  free(w);
  free(k);
  rpc_client_free(c);
}
END_TEST

START_TEST(gaps_other_tenants_uploads_and_bad_parts_are_refused) {
  tenant t, evil;
  make_tenant(&t);
  make_tenant(&evil);
  rpc_client *c = harness_rpc_client(g_sys.sync.rpc_url);
  char hex[65], up[UUID_STR_LEN + 1];
  size_t n = MIB;
  uint8_t *b = random_file(n, hex);
  uuid_v7_str(up);
  (void)put_ok(c, &t, hex, up, (int64_t)n, 0, b, PART);
  double refused = parts_counted("refused");
  /* A gap: offset ahead of received. */
  rpc_result *r = put(c, &t, hex, up, (int64_t)n, 2 * PART, b + 2 * PART, PART);
  CK_RPC_CODE(r, RPC_FAILED_PRECONDITION);
  CK_RPC_VIOLATION(r, "offset");
  ck_assert_ptr_nonnull(strstr(r->violations[0].description, "262144"));
  rpc_result_free(r);
  /* Behind received, but not an exact re-send (another length). */
  r = put(c, &t, hex, up, (int64_t)n, 0, b, 1000);
  CK_RPC_CODE(r, RPC_FAILED_PRECONDITION);
  rpc_result_free(r);
  ck_assert_int_eq(received_of(up), PART);
  ck_assert_int_eq(parts_of(&t), 1);
  /* Another tenant naming this upload: NOT_FOUND, as a first part and as a
   * next one; the upload is untouched. */
  r = put(c, &evil, hex, up, (int64_t)n, PART, b + PART, PART);
  CK_RPC_CODE(r, RPC_NOT_FOUND);
  rpc_result_free(r);
  r = put(c, &evil, hex, up, (int64_t)n, 0, b, PART);
  CK_RPC_CODE(r, RPC_NOT_FOUND);
  rpc_result_free(r);
  ck_assert_int_eq(received_of(up), PART);
  ck_assert_int_eq(parts_of(&t), 1);
  ck_assert_int_eq(uploads_of(&evil), 0);
  ck_assert_int_eq(usage(&evil), 0);
  /* The same upload id with another size or name. */
  r = put(c, &t, hex, up, (int64_t)n - 1, PART, b + PART, PART);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  CK_RPC_VIOLATION(r, "upload_id");
  rpc_result_free(r);
  /* Bad parts, each named. */
  char big_hex[65], up2[UUID_STR_LEN + 1];
  uuid_v7_str(up2);
  uint8_t *big = random_file(MIB + 1, big_hex);
  r = put(c, &t, big_hex, up2, MIB + 1, 0, big, MIB + 1);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  CK_RPC_VIOLATION(r, "data");
  rpc_result_free(r);
  r = put(c, &t, hex, up2, 25 * MIB + 1, 0, b, PART);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  CK_RPC_VIOLATION(r, "size");
  rpc_result_free(r);
  char upper[65];
  snprintf(upper, sizeof upper, "%s", hex);
  for (char *p = upper; *p; p++)
    if (*p >= 'a' && *p <= 'f') *p = (char)(*p - 'a' + 'A');
  r = put(c, &t, upper, up2, (int64_t)n, 0, b, PART);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  CK_RPC_VIOLATION(r, "sha256");
  rpc_result_free(r);
  r = put(c, &t, hex, "not-a-uuid", (int64_t)n, 0, b, PART);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  CK_RPC_VIOLATION(r, "upload_id");
  rpc_result_free(r);
  r = put(c, &t, hex, up2, (int64_t)n, 0, b, 0); /* empty, size > 0 */
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  CK_RPC_VIOLATION(r, "data");
  rpc_result_free(r);
  r = put(c, &t, hex, up2, (int64_t)n, (int64_t)n - 10, b, PART); /* past */
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  CK_RPC_VIOLATION(r, "data");
  rpc_result_free(r);
  r = put(c, &t, hex, up2, (int64_t)n, -1, b, PART);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  CK_RPC_VIOLATION(r, "offset");
  rpc_result_free(r);
  /* None of them started an upload, each counted refused; no token at
   * all is refused before a part is looked at. */
  ck_assert_int_eq((long)(parts_counted("refused") - refused), 12);
  ck_assert_int_eq(uploads_of(&t), 1);
  ck_assert_int_eq(usage(&t), (long long)n);
  Sync__V1__PutFilePartRequest req = SYNC__V1__PUT_FILE_PART_REQUEST__INIT;
  req.sha256 = hex;
  req.upload_id = up2;
  req.size = 1;
  req.data.data = b;
  req.data.len = 1;
  r = harness_rpc_call(c, PUT, &req.base, NULL, NULL, NULL);
  CK_RPC_CODE(r, RPC_UNAUTHENTICATED);
  rpc_result_free(r);
  free(big);
  free(b);
  rpc_client_free(c);
}
END_TEST

/* The part methods behind the same guards as every other: no service
 * identity, a service they do not declare (a compromised pod of another
 * service), or the gateway's identity without the member's token - each
 * refused before anything is staged or read. */
START_TEST(parts_need_the_gateways_identity_and_a_members_token) {
  tenant t;
  make_tenant(&t);
  char hex[65], up[UUID_STR_LEN + 1];
  uint8_t *b = random_file(PART, hex);
  uuid_v7_str(up);
  tenant no_token = t;
  no_token.token[0] = '\0';
  const struct {
    const char *as; /* NULL: no identity */
    const tenant *who;
    int code;
  } cases[] = {{NULL, &t, RPC_UNAUTHENTICATED},
               {"orders", &t, RPC_PERMISSION_DENIED},
               {"gateway", &no_token, RPC_UNAUTHENTICATED}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    rpc_client *c = harness_rpc_client_as(g_sys.sync.rpc_url, cases[i].as);
    rpc_result *r = put(c, cases[i].who, hex, up, PART, 0, b, PART);
    CK_RPC_CODE(r, cases[i].code);
    rpc_result_free(r);
    r = get(c, cases[i].who, hex, 0, PART);
    CK_RPC_CODE(r, cases[i].code);
    rpc_result_free(r);
    rpc_client_free(c);
  }
  ck_assert_int_eq(uploads_of(&t), 0);
  ck_assert_int_eq(parts_of(&t), 0);
  ck_assert_int_eq(usage(&t), 0);
  free(b);
}
END_TEST

START_TEST(over_quota_on_the_first_part_reserves_nothing) {
  tenant t;
  make_tenant(&t);
  rpc_client *c = harness_rpc_client(g_sys.sync.rpc_url);
  char hex[65], up[UUID_STR_LEN + 1];
  uint8_t *b = random_file(PART, hex);
  uuid_v7_str(up);
  /* 20 MiB announced, the quota 16 MiB: refused on the first part. */
  rpc_result *r = put(c, &t, hex, up, 20 * MIB, 0, b, PART);
  CK_RPC_CODE(r, RPC_FAILED_PRECONDITION);
  CK_RPC_VIOLATION(r, "content");
  rpc_result_free(r);
  ck_assert_int_eq(uploads_of(&t), 0);
  ck_assert_int_eq(parts_of(&t), 0);
  ck_assert_int_eq(usage(&t), 0);
  /* Reservations count: 10 MiB reserved, then 10 MiB more is refused. */
  char up2[UUID_STR_LEN + 1], up3[UUID_STR_LEN + 1];
  uuid_v7_str(up2);
  uuid_v7_str(up3);
  (void)put_ok(c, &t, hex, up2, 10 * MIB, 0, b, PART);
  ck_assert_int_eq(usage(&t), 10 * MIB);
  r = put(c, &t, hex, up3, 10 * MIB, 0, b, PART);
  CK_RPC_CODE(r, RPC_FAILED_PRECONDITION);
  rpc_result_free(r);
  ck_assert_int_eq(usage(&t), 10 * MIB);
  ck_assert_int_eq(uploads_of(&t), 1);
  free(b);
  rpc_client_free(c);
}
END_TEST

typedef struct racer {
  const tenant *t;
  const char *hex, *upload;
  const uint8_t *b;
  size_t n;
  pthread_barrier_t *go;
  put_answer last;
} racer;

static void *race_last(void *arg) {
  racer *x = arg;
  rpc_client *c = harness_rpc_client(g_sys.sync.rpc_url);
  size_t off = x->n - PART;
  pthread_barrier_wait(x->go);
  x->last = put_ok(c, x->t, x->hex, x->upload, (int64_t)x->n, (int64_t)off,
                   x->b + off, PART);
  rpc_client_free(c);
  return NULL;
}

START_TEST(two_uploads_of_one_file_racing_to_the_end_store_it_once) {
  tenant t;
  make_tenant(&t);
  rpc_client *c = harness_rpc_client(g_sys.sync.rpc_url);
  char hex[65], u1[UUID_STR_LEN + 1], u2[UUID_STR_LEN + 1];
  size_t n = MIB;
  uint8_t *b = random_file(n, hex);
  uuid_v7_str(u1);
  uuid_v7_str(u2);
  /* Both uploads up to their last part (both reserve the size). */
  for (size_t off = 0; off < n - PART; off += PART) {
    (void)put_ok(c, &t, hex, u1, (int64_t)n, (int64_t)off, b + off, PART);
    (void)put_ok(c, &t, hex, u2, (int64_t)n, (int64_t)off, b + off, PART);
  }
  ck_assert_int_eq(usage(&t), 2 * (long long)n);
  pthread_barrier_t go;
  pthread_barrier_init(&go, NULL, 2);
  racer r1 = {&t, hex, u1, b, n, &go, {0}}, r2 = {&t, hex, u2, b, n, &go, {0}};
  pthread_t a, z;
  ck_assert_int_eq(pthread_create(&a, NULL, race_last, &r1), 0);
  ck_assert_int_eq(pthread_create(&z, NULL, race_last, &r2), 0);
  pthread_join(a, NULL);
  pthread_join(z, NULL);
  pthread_barrier_destroy(&go);
  ck_assert(r1.last.done && r2.last.done);
  ck_assert(r1.last.existed != r2.last.existed); /* one stored it */
  stored_once(c, &t, hex, b, n);
  free(b);
  rpc_client_free(c);
}
END_TEST

START_TEST(an_existing_file_answers_the_first_part_existed_and_done) {
  tenant t;
  make_tenant(&t);
  rpc_client *c = harness_rpc_client(g_sys.sync.rpc_url);
  char hex[65], u1[UUID_STR_LEN + 1], u2[UUID_STR_LEN + 1];
  size_t n = 300 * KIB;
  uint8_t *b = random_file(n, hex);
  uuid_v7_str(u1);
  uuid_v7_str(u2);
  (void)upload_all(c, &t, hex, u1, b, n, PART);
  put_answer a = put_ok(c, &t, hex, u2, (int64_t)n, 0, b, PART);
  ck_assert(a.existed && a.done);
  ck_assert_int_eq(a.size, (int64_t)n);
  ck_assert_int_eq(
      q("SELECT count(*) FROM sync.uploads WHERE id = $1::uuid", u2), 0);
  ck_assert_int_eq(usage(&t), (long long)n);
  /* The empty file: one empty part stores it. */
  char e[65], u3[UUID_STR_LEN + 1];
  uint8_t *none = random_file(0, e);
  uuid_v7_str(u3);
  a = put_ok(c, &t, e, u3, 0, 0, none, 0);
  ck_assert(a.done && !a.existed);
  ck_assert_int_eq(files_of(&t), 2);
  rpc_result *r = get(c, &t, e, 0, MIB);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  free(none);
  free(b);
  rpc_client_free(c);
}
END_TEST

START_TEST(the_janitor_removes_an_abandoned_upload_and_gives_its_bytes_back) {
  tenant t;
  make_tenant(&t);
  rpc_client *c = harness_rpc_client(g_sys.sync.rpc_url);
  char hex[65], up[UUID_STR_LEN + 1], done_hex[65], up2[UUID_STR_LEN + 1];
  uint8_t *b = random_file(MIB, hex);
  uint8_t *d = random_file(1000, done_hex);
  uuid_v7_str(up);
  uuid_v7_str(up2);
  (void)put_ok(c, &t, hex, up, MIB, 0, b, PART);
  (void)upload_all(c, &t, done_hex, up2, d, 1000, PART);
  ck_assert_int_eq(usage(&t), MIB + 1000);
  ck_assert_int_eq(uploads_of(&t), 2);
  /* A fresh upload stays (SYNC_UPLOAD_IDLE is 60 s here)... */
  time_sleep_ms(1000); /* several rounds of SYNC_FILES_SWEEP (200 ms) */
  ck_assert_int_eq(uploads_of(&t), 2);
  /* ...an idle one goes, with its parts and its reservation; the stored
   * one's row goes too, and its file stays counted. */
  ck_assert_int_eq(q("WITH u AS (UPDATE sync.uploads SET updated_at = now() - "
                     "interval '2 hours' WHERE tenant_id = $1::uuid "
                     "RETURNING 1) SELECT count(*) FROM u",
                     t.id),
                   2);
  for (int64_t end = time_now_ms() + 30000;
       uploads_of(&t) > 0 && time_now_ms() < end;)
    time_sleep_ms(100);
  ck_assert_int_eq(uploads_of(&t), 0);
  ck_assert_int_eq(parts_of(&t), 0);
  ck_assert_int_eq(usage(&t), 1000);
  ck_assert_int_eq(files_of(&t), 1);
  /* The removed upload's next part finds nothing. */
  rpc_result *r = put(c, &t, hex, up, MIB, PART, b + PART, PART);
  CK_RPC_CODE(r, RPC_NOT_FOUND);
  rpc_result_free(r);
  free(b);
  free(d);
  rpc_client_free(c);
}
END_TEST

/* Last: it kills and restarts sync. */
START_TEST(kill_9_of_sync_between_two_parts_loses_nothing) {
  tenant t;
  make_tenant(&t);
  rpc_client *c = harness_rpc_client(g_sys.sync.rpc_url);
  char hex[65], up[UUID_STR_LEN + 1];
  size_t n = 2 * MIB;
  uint8_t *b = random_file(n, hex);
  uuid_v7_str(up);
  (void)put_ok(c, &t, hex, up, (int64_t)n, 0, b, PART);
  (void)put_ok(c, &t, hex, up, (int64_t)n, PART, b + PART, PART);
  rpc_client_free(c);
  harness_signal(g_sys.sync.proc, SIGKILL);
  ck_assert_int_ne(harness_wait_exit(g_sys.sync.proc, 15000), -1);
  ck_assert(harness_system_restart(&g_sys, HARNESS_SYNC, NULL, NULL));
  c = harness_rpc_client(g_sys.sync.rpc_url);
  /* The retry of the part in flight is answered, then the rest goes on
   * from received. */
  put_answer a = put_ok(c, &t, hex, up, (int64_t)n, PART, b + PART, PART);
  ck_assert_int_eq(a.received, 2 * PART);
  for (size_t off = 2 * PART; off < n; off += PART)
    a = put_ok(c, &t, hex, up, (int64_t)n, (int64_t)off, b + off, PART);
  ck_assert(a.done && !a.existed);
  stored_once(c, &t, hex, b, n);
  free(b);
  rpc_client_free(c);
}
END_TEST

/* ------------------------------------------------------------- system --- */

int main(void) {
  harness_init();
  if (sodium_init() < 0) return EXIT_FAILURE;
  /* sync's key in the trust bundle before auth reads it. */
  (void)harness_identity_key_file("sync");
  if (!harness_system_start(&g_sys, &kSystem)) return EXIT_FAILURE;
  Suite *s = suite_create("fileparts_itest");
  HARNESS_ADD_CASE(s, a_3_mib_file_in_256_kib_parts_round_trips, 120, NULL);
  HARNESS_ADD_CASE(s, every_part_sent_twice_is_stored_once, 120, NULL);
  HARNESS_ADD_CASE(s, a_wrong_hash_on_the_last_part_leaves_nothing, 120, NULL);
  HARNESS_ADD_CASE(s, gaps_other_tenants_uploads_and_bad_parts_are_refused, 120,
                   NULL);
  HARNESS_ADD_CASE(s, parts_need_the_gateways_identity_and_a_members_token, 120,
                   NULL);
  HARNESS_ADD_CASE(s, over_quota_on_the_first_part_reserves_nothing, 120, NULL);
  HARNESS_ADD_CASE(s, two_uploads_of_one_file_racing_to_the_end_store_it_once,
                   120, NULL);
  HARNESS_ADD_CASE(s, an_existing_file_answers_the_first_part_existed_and_done,
                   120, NULL);
  HARNESS_ADD_CASE(
      s, the_janitor_removes_an_abandoned_upload_and_gives_its_bytes_back, 120,
      NULL);
  HARNESS_ADD_CASE(s, kill_9_of_sync_between_two_parts_loses_nothing, 180,
                   NULL);
  int rc = harness_system_end(&g_sys, harness_run_shared(s));
  harness_cleanup();
  return rc;
}
