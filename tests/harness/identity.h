/*
 * identity.h - service identity in integration tests: one key per
 * service name (made once per test process under the harness's temporary
 * directory) and the trust bundle holding them all, so that every service
 * a test starts gets SERVICE_KEY_FILE/SERVICE_TRUST_FILE (service.c) and a
 * test can call a service as any one of them - or as nobody, which is
 * how the attack tests show the refusals.
 *
 * Names with keys: auth, tenants, orders, gateway, realtime,
 * notifications, sync, operator.
 */
#ifndef TESTS_HARNESS_IDENTITY_H
#define TESTS_HARNESS_IDENTITY_H

#include "libs/svcid/svcid.h"

/* The key file of service (made on first use). A name not in the list
 * above (a test's stand-in service) gets a key of its own, appended to
 * the bundle. Aborts for a string that is not a service name. */
const char *harness_identity_key_file(const char *service);

/* The trust bundle with every key above. */
const char *harness_identity_trust_file(void);

/* A signer for service (the test's to free), e.g. to mint odd tokens. */
svcid_signer *harness_identity_signer(const char *service);

#endif
