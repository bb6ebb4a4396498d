/*
 * identity.c - see identity.h. Keys are generated with libs/paseto and
 * written once, under a lock, the first time any is asked for; the files
 * live in the harness's temporary directory and go with it.
 */
#include "tests/harness/identity.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "libs/paseto/paseto.h"
#include "tests/harness/harness.h"

static const char *const kNames[] = {"auth",    "tenants",  "orders",
                                     "gateway", "realtime", "notifications",
                                     "sync",    "operator"};
#define NNAMES (sizeof kNames / sizeof kNames[0])

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static bool made;
static char dir[512], trust[600];

/* Keys are made from unchecked fixtures and main() too, where Check's
 * assertions cannot report: a failure here aborts the test binary. */
static void must(bool ok, const char *what, const char *path) {
  if (ok) return;
  fprintf(stderr, "harness identity: %s %s\n", what, path ? path : "");
  abort();
}

static bool write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (f == NULL) return false;
  bool ok = fputs(text, f) >= 0;
  return fclose(f) == 0 && ok;
}

/* Writes <dir>/<name>.key and appends "<name> <public key>" to bundle. */
static void make_key(const char *name, char *bundle, size_t cap) {
  paseto_secret_key sk;
  paseto_public_key pk;
  paseto_keygen(&sk, &pk);
  char hex[PASETO_SECRET_HEX_LEN + 2], pub[PASETO_PASERK_PUBLIC_LEN + 1];
  char path[600];
  paseto_secret_key_to_hex(&sk, hex);
  paseto_secret_key_wipe(&sk);
  paseto_paserk_public(&pk, pub);
  snprintf(path, sizeof path, "%s/%s.key", dir, name);
  must(write_file(path, hex), "cannot write", path);
  size_t used = strlen(bundle);
  snprintf(bundle + used, cap - used, "%s %s\n", name, pub);
}

static void make_keys(void) {
  snprintf(dir, sizeof dir, "%s/keys", harness_init());
  mkdir(dir, 0700);
  snprintf(trust, sizeof trust, "%s/trust", dir);
  char bundle[NNAMES * 128] = "# harness service keys\n";
  must(paseto_init() == ERR_OK, "cannot initialise libsodium", NULL);
  for (size_t i = 0; i < NNAMES; i++)
    make_key(kNames[i], bundle, sizeof bundle);
  must(write_file(trust, bundle), "cannot write", trust);
  made = true;
}

static void ensure(void) {
  pthread_mutex_lock(&mu);
  if (!made) make_keys();
  pthread_mutex_unlock(&mu);
}

const char *harness_identity_key_file(const char *service) {
  static char paths[64][600];
  static size_t npaths;
  must(svcid_name_ok(service), "not a service name:", service);
  ensure();
  pthread_mutex_lock(&mu);
  const char *found = NULL;
  char path[600];
  snprintf(path, sizeof path, "%s/%s.key", dir, service);
  for (size_t i = 0; i < npaths && found == NULL; i++)
    if (strcmp(paths[i], path) == 0) found = paths[i];
  if (found == NULL) {
    must(npaths < 64, "too many service keys", NULL);
    bool known = false;
    for (size_t i = 0; i < NNAMES; i++)
      if (strcmp(kNames[i], service) == 0) known = true;
    if (!known) {
      /* A test's own stand-in service: a key of its own, trusted by the
       * services started after it (the bundle grows). */
      char line[160] = "";
      make_key(service, line, sizeof line);
      FILE *f = fopen(trust, "a");
      must(f != NULL && fputs(line, f) >= 0 && fclose(f) == 0,
           "cannot append to", trust);
    }
    snprintf(paths[npaths], sizeof paths[npaths], "%s", path);
    found = paths[npaths++];
  }
  pthread_mutex_unlock(&mu);
  return found;
}

const char *harness_identity_trust_file(void) {
  ensure();
  return trust;
}

svcid_signer *harness_identity_signer(const char *service) {
  svcid_signer *s = NULL;
  must(svcid_signer_load(service, harness_identity_key_file(service), &s) ==
           ERR_OK,
       "cannot load the key of", service);
  return s;
}
